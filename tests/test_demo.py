"""The README's main command: the demo trains, exports, loads everywhere and agrees with onnxruntime."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_and_every_framework_agrees(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--epochs", "2", "--out", str(tmp_path),
                           "--no-serve"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = dict(re.findall(r"^\| (\w+)\s+\| ([0-9.]+%)", proc.stdout, re.M))
    assert set(rows) >= {"onnxruntime", "torch", "nnx", "linen", "keras", "tf", "mlx"}, proc.stdout
    assert len(set(rows.values())) == 1          # the same accuracy in every framework and in onnxruntime
    diffs = [float(d) for d in re.findall(r"^\| \w+\s+\| [0-9.]+%\s+\| ([0-9.e+-]+)\s+\|", proc.stdout, re.M)]
    assert diffs and max(diffs) < 1e-3
    assert (tmp_path / "yat_mlp_torch.onnx").exists()
