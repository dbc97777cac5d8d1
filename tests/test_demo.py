"""The README's main command: the demo trains, exports, loads everywhere and agrees with onnxruntime."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WAIT = 1800  # seconds: the demo trains and imports every framework; generous for a loaded machine


def test_demo_runs_and_every_framework_agrees(tmp_path):
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--epochs", "2", "--out", str(tmp_path), "--no-serve"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the demo did not end within {WAIT} s:\n{err.stdout}\n{err.stderr}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = dict(re.findall(r"^\| (\w+)\s+\| ([0-9.]+%)", proc.stdout, re.M))
    assert set(rows) >= {"onnxruntime", "torch", "nnx", "linen", "keras", "tf", "mlx"}, proc.stdout
    assert len(set(rows.values())) == 1  # the same accuracy in every framework and in onnxruntime
    diffs = [float(d) for d in re.findall(r"^\| \w+\s+\| [0-9.]+%\s+\| ([0-9.e+-]+)\s+\|", proc.stdout, re.M)]
    assert diffs and max(diffs) < 1e-3
    assert (tmp_path / "yat_mlp_torch.onnx").exists()
    assert re.search(r"^demo took \d+ s on \d+ CPU core", proc.stdout, re.M), proc.stdout[-500:]
