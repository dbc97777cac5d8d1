"""No constant of the Yat math is written as a literal outside ``nmn/core`` and ``onnx_ops`` (issue 15.3).

The constants (default epsilon 1e-5, the softermax floor 1e-12, the 1e-8 norm guard, sqrt(2) for
``constant_alpha=True``) live once in :mod:`nmn.core.options`; everywhere else imports them. The check reads the
library's source with :mod:`tokenize`, so docstrings and comments (which document the defaults) do not count.
"""

from __future__ import annotations

import io
import math
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("nmn", "models")
EXEMPT = ("nmn/core/",)
# Literals that equal a Yat constant by coincidence: tolerances, host-layer defaults (LayerNorm / BatchNorm
# epsilon 1e-5, GELU's 1/sqrt(2)) and division guards. Each entry is (path, a fragment of the line, why); an entry
# that no longer matches any literal is itself a failure, so the list cannot go stale.
NOT_YAT = (
    ("nmn/interchange/torch_io/functions.py", 'node.kwargs.get("eps", 1e-5)', "torch layer_norm's own default eps"),
    ("nmn/interchange/convert.py", "RTOL = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/convert.py", "float(np.max(np.abs(w))), 1e-12)", "a division guard in an error measure"),
    ("nmn/interchange/emit.py", "1.0 / math.sqrt(2.0)", "GELU's erf argument"),
    ("nmn/interchange/graph.py", "rtol: float = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/graph.py", "if e.size else 0.0, 1e-12)", "a division guard in an error measure"),
    ("nmn/interchange/jax_io/__init__.py", "rtol: float = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/keras_io/__init__.py", "rtol: float = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/mlx_io/__init__.py", "rtol: float = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/tf_io/__init__.py", "rtol: float = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/torch_io/__init__.py", "rtol: float = 1e-5", "a comparison tolerance"),
    ("nmn/interchange/stdops/semantics.py", "1 / math.sqrt(2)", "GELU's erf argument"),
    ("nmn/interchange/stdops/semantics.py", 'attrs.get("epsilon", 1e-5)', "ONNX Batch/LayerNormalization's default"),
    ("models/tf_models.py", "epsilon: float = 1e-5", "the example LayerNorm's epsilon"),
)
CONSTANTS = {
    1e-5: "1e-5 (DEFAULT_EPSILON)",
    1e-12: "1e-12 (SOFTERMAX_EPSILON)",
    1e-8: "1e-8 (NORM_GUARD)",
    math.sqrt(2.0): "sqrt(2) (SQRT2)",
}


def _not_yat(rel: str, line: str, used: set | None) -> bool:
    for i, (path, fragment, _why) in enumerate(NOT_YAT):
        if rel == path and fragment in line:
            if used is not None:
                used.add(i)
            return True
    return False


def offenders(root: Path = ROOT, used: set | None = None) -> list[str]:
    """``path:line: constant`` for every Yat-math literal in code (not strings or comments) outside core,
    less the :data:`NOT_YAT` lines (their indices are added to ``used``)."""
    found = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(EXEMPT):
                continue
            text = path.read_text()
            lines = text.splitlines()
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
            for i, tok in enumerate(tokens):
                if tok.type == tokenize.NUMBER:
                    try:
                        value = float(tok.string.replace("_", ""))
                    except ValueError:
                        continue
                    for constant, label in CONSTANTS.items():
                        if math.isclose(value, constant, rel_tol=1e-6):
                            if not _not_yat(rel, lines[tok.start[0] - 1], used):
                                found.append(f"{rel}:{tok.start[0]}: {label}")
                elif tok.type == tokenize.NAME and tok.string == "sqrt" and i + 3 < len(tokens):
                    if (
                        tokens[i + 1].string == "("
                        and tokens[i + 2].type == tokenize.NUMBER
                        and float(tokens[i + 2].string) == 2.0
                        and tokens[i + 3].string == ")"
                        and not _not_yat(rel, lines[tok.start[0] - 1], used)
                    ):
                        found.append(f"{rel}:{tok.start[0]}: sqrt(2) (SQRT2)")
    return found


def test_the_scan_finds_a_planted_literal(tmp_path):
    (tmp_path / "nmn" / "core").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "nmn" / "core" / "ok.py").write_text("EPS = 1e-5\n")
    (tmp_path / "nmn" / "layer.py").write_text('"""default 1e-5"""\n# 1e-12\nx = 1e-05 + math.sqrt(2.0)\n')
    assert offenders(tmp_path) == ["nmn/layer.py:3: 1e-5 (DEFAULT_EPSILON)", "nmn/layer.py:3: sqrt(2) (SQRT2)"]


def test_every_not_yat_entry_still_matches():
    used: set = set()
    offenders(used=used)
    stale = [NOT_YAT[i][:2] for i in range(len(NOT_YAT)) if i not in used]
    assert not stale, f"NOT_YAT entries that match no literal any more (remove them): {stale}"


def test_no_yat_constant_literal_outside_core():
    found = offenders()
    assert not found, "import the constant from nmn.core.options instead:\n" + "\n".join(found)
