"""Run the Keras conformance rows and tests/keras on the Keras backends this process is not using.

A Keras backend is fixed per process, so each other backend gets one subprocess (both run in parallel):
``KERAS_BACKEND=<b> python -m pytest tests/conformance -k keras tests/keras``. The JAX run uses cheaper XLA
compile flags (the tests compile many tiny programs; their speed does not matter).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("tensorflow", "jax", "torch")
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def _installed(backend):
    try:
        __import__(MODULES[backend])
    except ImportError:
        return False
    return True


def test_other_keras_backends_pass():
    if os.environ.get("NMN_KERAS_SUBPROCESS"):
        pytest.skip("already inside a per-backend subprocess")
    current = keras.backend.backend()
    others = [b for b in BACKENDS if b != current and _installed(b)]
    if not others:
        pytest.skip("no other Keras backend installed")
    procs = {}
    for backend in others:
        env = dict(os.environ, KERAS_BACKEND=backend, NMN_KERAS_SUBPROCESS="1")
        if backend == "jax":
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                " --xla_llvm_disable_expensive_passes=true"
            ).strip()
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/conformance",
            "-k",
            "keras",
            "tests/keras",
            "--deselect",
            "tests/keras/test_backends.py::test_other_keras_backends_pass",
        ]
        procs[backend] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    failures = []
    for backend, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            summary = [ln for ln in out.splitlines() if ln.startswith(("FAILED", "ERROR"))]
            failures.append(
                f"--- KERAS_BACKEND={backend} (exit {proc.returncode}) ---\n" + "\n".join(summary) + f"\n{out[-6000:]}"
            )
    assert not failures, "\n".join(failures)
