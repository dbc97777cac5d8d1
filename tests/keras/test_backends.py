"""Run the Keras conformance rows and tests/keras on the Keras backends this process is not using.

A Keras backend is fixed per process, so each other backend gets one subprocess (both run in parallel):
``KERAS_BACKEND=<b> python -m pytest tests/conformance -k keras tests/keras --deselect ...``. The JAX run uses
cheaper XLA compile flags (the tests compile many tiny programs; their speed does not matter).

The other backends run a representative subset: everything that reaches backend code, which is every op family
and layer kind (every forward row but the value-only ones below, every gradient row, every dtype row, every
padding mode, grouping, mask and normalisation), the Keras idioms that run backend ops (``fit``, ``.keras`` save
and load, float16 inputs, channels-first) and the attention and shape semantics. Left out there, and run on this
process's backend by the main suite, is only what gives the same code path a second time (``EXCLUDED``, each
entry with its reason); ``test_subset_*`` check that the exclusions name real tests and leave every layer kind
covered.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("tensorflow", "jax", "torch")
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
WAIT = 7200  # seconds per backend run; generous: a loaded 2-core machine took 9 min for the jax run alone

# conformance forward rows whose option only changes the values fed to the shared Yat tail (nmn.core.yat), not
# the backend ops it runs: the same ops run in the row named after each
VALUE_ONLY_ROWS = {
    "dense-nobias": "dense-default",
    "dense-constbias": "dense-default",
    "dense-constalpha": "dense-default",
    "dense-constalpha-num": "dense-default",
    "dense-noalpha": "dense-default",
    "dense-eps-large": "dense-default",
    "conv2d-nobias-noalpha": "conv2d-valid",
    "convT2d-constalpha-nobias": "convT2d-stride2",
    "mha-nobias": "mha-default",
}
# whole tests (or parametrized rows) of the backend-neutral kind: test -> why it adds nothing on another backend
EXCLUDED = {
    "tests/keras/test_layers.py::test_invalid_options_raise_at_construction": (
        "the argument checks run in plain Python before any backend op"
    ),
    "tests/keras/test_layers.py::test_get_config_roundtrip_keeps_output": (
        "get_config/from_config is plain Python and get/set_weights is Keras's own; the .keras save and load test "
        "runs the backend's variables"
    ),
    "tests/keras/test_layers.py::test_compute_output_shape_matches_call": (
        "compute_output_shape is plain Python; every forward row checks the called shape against onnxruntime"
    ),
    "tests/keras/test_v03_options.py::test_bad_drop_rate_names_the_layer": (
        "the option checks run in plain Python before any backend op"
    ),
    "tests/keras/test_v03_options.py::test_dropconnect_round_trips_through_config": "get_config is plain Python",
    "tests/keras/test_v03_options.py::test_export_of_a_dropconnect_layer_is_the_file_without_it": (
        "the export walk reads layers and their spec, not backend ops"
    ),
    "tests/conformance/test_semantics.py::test_conv_transpose_shape_equals_host[2-keras]": (
        "rank 1 runs every padding / output_padding / stride through the backend's conv_transpose; the 2-D and "
        "3-D grids repeat it with more axes (the convT2d/convT3d forward rows check their shapes)"
    ),
    "tests/conformance/test_semantics.py::test_conv_transpose_shape_equals_host[3-keras]": "as the 2-D grid",
    "tests/conformance/test_semantics.py::test_conv_transpose_keras_geometry_interchange[valid-0-3-2]": (
        "the export walk reads layers, not backend ops (one geometry is kept)"
    ),
    "tests/conformance/test_semantics.py::test_conv_transpose_keras_geometry_interchange[same-0-2-3]": (
        "as the valid geometry"
    ),
}
SELF = "tests/keras/test_backends.py"


def excluded(backend: str) -> list[str]:
    """The node ids (prefixes) a ``KERAS_BACKEND=backend`` run deselects."""
    forward = "tests/conformance/test_conformance.py::test_forward_matches_onnxruntime"
    return [f"{forward}[keras-{backend}-{row}]" for row in VALUE_ONLY_ROWS] + list(EXCLUDED) + [SELF]


def _installed(backend):
    try:
        __import__(MODULES[backend])
    except ImportError:
        return False
    return True


def _functions(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}


def test_subset_exclusions_name_existing_tests():
    """A renamed test or case would make an exclusion stale (and silently run it again): each must exist."""
    from tests.conformance import cases

    ids = {c.id: c for c in cases.CASES}
    for row, kept in VALUE_ONLY_ROWS.items():
        assert row in ids and kept in ids, f"{row} -> {kept}: not a conformance case id"
        assert ids[row].kind == ids[kept].kind, f"{row} is a {ids[row].kind}, {kept} a {ids[kept].kind}"
    for node in EXCLUDED:
        path, test = node.split("::")
        name, _, param = test.partition("[")
        assert name in _functions(ROOT / path), f"{node}: no test {name} in {path}"
        if name == "test_conv_transpose_shape_equals_host":
            assert param.rstrip("]").split("-") in (["2", "keras"], ["3", "keras"]), node
    with_rank_1 = "tests/conformance/test_semantics.py::test_conv_transpose_shape_equals_host[1-keras]"
    assert with_rank_1 not in EXCLUDED  # the transposed-conv shape grid still runs on every backend


def test_subset_keeps_every_layer_kind_on_every_backend():
    from tests.conformance import cases

    kept = [c for c in cases.CASES if c.id not in VALUE_ONLY_ROWS]
    assert {c.kind for c in kept} == {c.kind for c in cases.CASES}
    assert {c.kind for c in kept if c.grad} == {c.kind for c in cases.CASES if c.grad}
    for backend in BACKENDS:  # only forward rows are left out: every gradient and dtype row keeps running
        assert not [n for n in excluded(backend) if "test_gradients" in n or "test_dtypes" in n]


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
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        cmd += ["tests/conformance", "-k", "keras", "tests/keras"]
        for node in excluded(backend):
            cmd += ["--deselect", node]
        procs[backend] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    failures = []
    for backend, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            failures.append(f"--- KERAS_BACKEND={backend}: no end after {WAIT} s ---\n{out[-6000:]}")
            continue
        if proc.returncode != 0:
            summary = [ln for ln in out.splitlines() if ln.startswith(("FAILED", "ERROR"))]
            failures.append(
                f"--- KERAS_BACKEND={backend} (exit {proc.returncode}) ---\n" + "\n".join(summary) + f"\n{out[-6000:]}"
            )
    assert not failures, "\n".join(failures)
