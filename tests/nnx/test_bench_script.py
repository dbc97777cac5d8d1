"""scripts/bench_jax.py runs and prints its markdown table (a smoke run; no timing is asserted)."""

from __future__ import annotations

import importlib.util
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
