"""The "after" examples of docs/migrating-from-0.3.md (every ``python`` block) run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "migrating-from-0.3.md"
SECTIONS = re.findall(r"^### (.+?)\n(.*?)(?=^### |^## |\Z)", DOC.read_text(), re.S | re.M)
BLOCKS = {title: re.findall(r"```python\n(.*?)```", body, re.S)[0] for title, body in SECTIONS if "```python" in body}
NEEDS = {
    "PyTorch": "torch",
    "Flax NNX": "flax.nnx",
    "Flax Linen": "flax.linen",
    "Keras 3": "keras",
    "TensorFlow": "tensorflow",
    "MLX": "mlx.core",
}


def test_every_framework_has_an_example():
    assert set(BLOCKS) == set(NEEDS), f"sections with a runnable example: {sorted(BLOCKS)}"


@pytest.mark.parametrize("title", sorted(NEEDS))
def test_after_example_runs(title):
    pytest.importorskip(NEEDS[title], reason=f"{NEEDS[title]} is not installed")
    exec(compile(BLOCKS[title], f"{DOC}:{title}", "exec"), {"__name__": "migration_example"})
