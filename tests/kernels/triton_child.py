"""Running a test file's Triton kernel checks in a child pytest process (Triton's interpreter).

Importing triton aborts a process that has loaded TensorFlow (and torch probes for triton, e.g. in
``torch.optim``), so triton is not installed into the test environment's site-packages: ``.ci/run`` installs it
into ``<venv>/triton-interp`` (or set ``NMN_TRITON_PATH``), and only a child pytest process
(``TRITON_INTERPRET=1``, ``NMN_TRITON_CHILD=1``, that folder on ``PYTHONPATH``) imports it. A kernel test file
marks its kernel checks :data:`child` and has one parent test that calls :func:`run_child` on itself.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = os.environ.get("NMN_TRITON_CHILD") == "1"
TRITON_PATH = Path(os.environ.get("NMN_TRITON_PATH") or Path(sys.prefix) / "triton-interp")
HAVE_TRITON = (TRITON_PATH / "triton").is_dir() or importlib.util.find_spec("triton") is not None
ROOT = Path(__file__).resolve().parents[2]

#: the parent's test that starts the child: skipped inside the child and where triton is not installed
parent = pytest.mark.skipif(CHILD, reason="this is the child")
needs_triton = pytest.mark.skipif(
    not HAVE_TRITON, reason=f"triton is not installed (looked in {TRITON_PATH} and site-packages)"
)


def child(reason: str):
    """The mark of a kernel check that runs only in the child process (``reason`` names the parent test)."""
    return pytest.mark.skipif(not CHILD, reason=reason)


def run_child(test_file: str, timeout: int) -> None:
    """Run ``test_file`` in a child pytest under Triton's interpreter; fail with its output unless it passed."""
    path = os.pathsep.join(p for p in (str(TRITON_PATH), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, TRITON_INTERPRET="1", NMN_TRITON_CHILD="1", PYTHONPATH=path)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", test_file]
    try:
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the Triton interpreter tests ran past {timeout} s; output so far:\n{err.stdout}\n{err.stderr}")
    assert run.returncode == 0, f"Triton interpreter tests failed (rc {run.returncode}):\n{run.stdout}\n{run.stderr}"
    assert " passed" in run.stdout and "skipped" in run.stdout, f"unexpected child summary:\n{run.stdout}"
