"""scripts/bench_torch.py runs and prints its markdown table (a smoke run; no timing is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_torch.py"


def test_bench_script_smoke(capsys):
    spec = importlib.util.spec_from_file_location("bench_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--repeat", "1", "--warmup", "0", "--only", "dense", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "| dense 784->256, batch 64 | eager |" in out and "fwd+bwd ratio" in out


def test_bench_script_cpu_time_smoke(capsys):
    spec = importlib.util.spec_from_file_location("bench_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--repeat", "1", "--warmup", "0", "--only", "conv", "--device", "cpu", "--cpu-time"])
    out = capsys.readouterr().out
    assert "clock process CPU time" in out and "| conv 3x3 16->16, 8x16x16x16 | eager |" in out
