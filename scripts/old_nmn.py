"""Import an earlier nmn release beside this one, under another name, for the benchmarks only.

``pip install --no-deps --target /tmp/nmn035 "nmn==0.3.5"`` puts the release's ``nmn/`` folder under
``/tmp/nmn035``; :func:`load_old` copies that folder to a temporary directory as ``nmn_old`` (rewriting the
release's own absolute ``nmn.`` imports to ``nmn_old.``) and imports it, so the two packages live in one process.
The earlier release is never a dependency of the library: only the ``--old PATH`` option of the benchmark
scripts uses this module.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

_IMPORTS = re.compile(r"\b(from|import)\s+nmn(?=[.\s])")


def load_old(path, submodule, name="nmn_old"):
    """Import ``name.submodule`` (e.g. ``nmn_old.torch``) from the ``nmn/`` package folder under ``path``.

    Args:
        path: the ``--target`` folder of ``pip install --no-deps --target PATH nmn==0.3.5``.
        submodule: the framework package to import (``"torch"``, ``"nnx"``, ``"linen"``).
        name: the import name of the copy (default ``nmn_old``).

    Returns the imported submodule. Raises ``SystemExit`` with the install command when ``path`` holds no
    ``nmn/`` folder.

    Example (a fake release with one module that imports itself absolutely):
        >>> root = Path(tempfile.mkdtemp()); (root / "nmn" / "torch").mkdir(parents=True)
        >>> _ = (root / "nmn" / "__init__.py").write_text("VERSION = '0.0'")
        >>> _ = (root / "nmn" / "torch" / "__init__.py").write_text("from nmn import VERSION")
        >>> load_old(root, "torch", name="nmn_doctest_old").VERSION
        '0.0'
    """
    src = Path(path) / "nmn"
    if not (src / "__init__.py").is_file():
        raise SystemExit(
            f"--old {path}: no nmn/ package there; install the earlier release with "
            f"pip install --no-deps --target {path} 'nmn==0.3.5'"
        )
    if name not in sys.modules:
        root = Path(tempfile.mkdtemp(prefix="nmn_old_"))
        dst = root / name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "examples"))
        for py in dst.rglob("*.py"):
            text = py.read_text(encoding="utf-8")
            py.write_text(_IMPORTS.sub(lambda m: f"{m.group(1)} {name}", text), encoding="utf-8")
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{name}.{submodule}")
