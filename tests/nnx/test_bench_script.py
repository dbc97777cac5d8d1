"""scripts/bench_jax.py and the JAX rows of scripts/bench_attention_memory.py run and print their markdown tables
(smoke runs; no timing or memory figure is asserted)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_jax.py"


def test_bench_script_smoke(capsys):
    spec = importlib.util.spec_from_file_location("bench_jax", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_jax", module)  # Linen dataclasses look their module up
    spec.loader.exec_module(module)
    module.main(["--quick", "--repeats", "1", "--only", "dense"])
    out = capsys.readouterr().out
    assert "| nnx | dense 784->256, batch 64 |" in out and "| linen | dense 784->256, batch 64 |" in out
    assert "fwd+bwd ratio" in out


def test_bench_script_cpu_time_smoke(capsys):
    """--cpu-time times by the process CPU time and says so; one API, one family keeps it short."""
    spec = importlib.util.spec_from_file_location("bench_jax", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_jax", module)
    spec.loader.exec_module(module)
    module.main(["--quick", "--repeats", "1", "--only", "dense", "--api", "nnx", "--cpu-time"])
    out = capsys.readouterr().out
    assert "clock process CPU time" in out and "| nnx | dense 784->256, batch 64 |" in out
    assert "| linen |" not in out


def test_attention_memory_script_jax_smoke(capsys):
    """scripts/bench_attention_memory.py's JAX rows: one fresh process per case, each cell a figure (not an error)."""
    path = SCRIPT.parent / "bench_attention_memory.py"
    spec = importlib.util.spec_from_file_location("bench_attention_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--lengths", "64", "--modes", "fwd", "--frameworks", "jax", "--embed", "16", "--heads", "2"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| 64 | fwd |"))
    cells = [c.strip() for c in row.strip("|").split("|")][2:]
    assert len(cells) == 3 and all(re.match(r"-?\d+\.\d( |;|$)", c) for c in cells), row
