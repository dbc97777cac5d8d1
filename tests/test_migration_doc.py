"""The before/after examples of docs/migrating-from-0.3.md run as written.

Every framework section holds a ``python nmn-0.3`` block (the code as nmn 0.3 had it) and a ``python`` block
(the same with nmn 1.x). The 1.x blocks run here, in this process. The 0.3 blocks run in a subprocess against
nmn 0.3.5 itself when ``NMN_OLD_PATH`` names a folder holding it (``pip install --no-deps --target DIR
nmn==0.3.5``; the old package is never a dependency), so the "before" side is checked against the real old
package, not against a description of it; without the variable they are skipped, saying how to run them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "migrating-from-0.3.md"
SECTIONS = re.findall(r"^### (.+?)\n(.*?)(?=^### |^## |\Z)", DOC.read_text(), re.S | re.M)
AFTER = {title: re.findall(r"```python\n(.*?)```", body, re.S) for title, body in SECTIONS}
BEFORE = {title: re.findall(r"```python nmn-0\.3\n(.*?)```", body, re.S) for title, body in SECTIONS}
NEEDS = {
    "PyTorch": "torch",
    "Flax NNX": "flax.nnx",
    "Flax Linen": "flax.linen",
    "Keras 3": "keras",
    "TensorFlow": "tensorflow",
    "MLX": "mlx.core",
}
OLD = os.environ.get("NMN_OLD_PATH")


def test_every_framework_has_a_before_and_an_after_example():
    pairs = {t for t in NEEDS if len(AFTER.get(t, ())) == 1 and len(BEFORE.get(t, ())) == 1}
    assert pairs == set(NEEDS), f"sections with one 0.3 block and one 1.x block: {sorted(pairs)}"


@pytest.mark.parametrize("title", sorted(NEEDS))
def test_after_example_runs(title):
    pytest.importorskip(NEEDS[title], reason=f"{NEEDS[title]} is not installed")
    exec(compile(AFTER[title][0], f"{DOC}:{title}", "exec"), {"__name__": "migration_example"})


@pytest.mark.parametrize("title", sorted(NEEDS))
def test_before_example_runs_on_nmn_0_3(title, tmp_path):
    if not OLD:
        pytest.skip("NMN_OLD_PATH is not set (pip install --no-deps --target DIR nmn==0.3.5; NMN_OLD_PATH=DIR)")
    if not (Path(OLD) / "nmn" / "__init__.py").is_file():
        pytest.fail(f"NMN_OLD_PATH={OLD}: expected a folder holding nmn/__init__.py (nmn 0.3.5)")
    pytest.importorskip(NEEDS[title], reason=f"{NEEDS[title]} is not installed")
    env = dict(os.environ, PYTHONPATH=OLD, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    script = tmp_path / "before_example.py"
    script.write_text(BEFORE[title][0])
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"the nmn 0.3 example of {title} failed on nmn 0.3.5:\n{run.stderr[-3000:]}"
    probe = subprocess.run(
        [sys.executable, "-c", "import nmn, sys; sys.stdout.write(nmn.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.startswith(str(Path(OLD).resolve())) or probe.stdout.startswith(OLD), probe.stdout
