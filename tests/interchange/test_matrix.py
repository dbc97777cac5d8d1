"""The any-to-any interchange matrix: every reference model, every ordered pair (A, B) of frameworks.

For each cell: build the model in A (seeded), export it (the exporter checks onnxruntime against A; the source
tests check again, on the example inputs and on fresh inputs of another batch size), load A's file into B,
compare B with onnxruntime on fresh inputs (1e-5 of the output scale, float32), export again from B and compare
every initializer with A's file by name, bit for bit (a loaded model writes the file's own names back, so names
are the same in every framework).

The matrix is written to ``out/matrix.md`` (and printed with ``pytest -s``). Keras is one row/column (on the
in-process backend); the other two Keras backends are checked by a subprocess each (``test_keras_backend``).
The subprocesses cover ``matrix_util.KERAS_BACKEND_MODELS`` (every layer kind; building Keras models on JAX
compiles each initializer eagerly, ~10 s a model); ``NMN_MATRIX_FULL=1`` runs all reference models there.
Known failures are listed in :data:`KNOWN` with their reason and run as non-strict xfails (none at present).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.interchange import matrix_util as mu

# (model or "*", A or "*", B or "*") -> (stage, reason): cells expected to fail until their owner fixes them.
# stage "source": A cannot build/export the model; "re-export": B loads A's file correctly (that part is still
# asserted) but exporting the loaded model again fails. Run as non-strict xfails; an XPASS fails the test so that
# the entry gets removed.
KNOWN: dict[tuple[str, str, str], tuple[str, str]] = {}


def known(name: str, a: str, b: str) -> tuple[str, str] | None:
    for (n, x, y), entry in KNOWN.items():
        if n in ("*", name) and x in ("*", a) and y in ("*", b):
            return entry
    return None


def _unavailable(*frameworks: str) -> str | None:
    for fw in frameworks:
        reason = mu.unavailable(fw)
        if reason:
            return f"{fw}: {reason}"
    return None


@pytest.fixture(scope="module", autouse=True)
def _write_table():
    yield
    if (
        mu.RESULTS or mu.KERAS_BACKENDS
    ):  # a run of only the source or Keras-backend tests leaves the last table in place
        print("\n" + mu.write_table())


@pytest.mark.parametrize("a", mu.FRAMEWORKS)
@pytest.mark.parametrize("name", mu.NAMES)
def test_source(name, a):
    """Build in A, export, onnxruntime equals A on the example inputs and on fresh inputs (another batch)."""
    reason = _unavailable(a)
    if reason:
        pytest.xfail(reason)
    src = mu.source(name, a)
    mu.SOURCES[(name, a)] = src
    entry = known(name, a, "*")
    if src.error and entry and entry[0] == "source":
        pytest.xfail(entry[1])
    assert src.error is None, src.error + "\n" + getattr(src, "traceback", "")
    assert src.self_error <= mu.RTOL and src.fresh_error <= mu.RTOL, (src.self_error, src.fresh_error)
    dims = src.proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param, "the batch dimension must stay symbolic"
    if name == "yat_mlp":
        assert src.parameters == 235_148, src.parameters


@pytest.mark.parametrize("b", mu.FRAMEWORKS)
@pytest.mark.parametrize("a", mu.FRAMEWORKS)
@pytest.mark.parametrize("name", mu.NAMES)
def test_cell(name, a, b):
    """A's file -> B: equals onnxruntime on fresh inputs; B's re-export has A's weights bit for bit."""
    reason = _unavailable(a, b)
    if reason:
        mu.RESULTS[(name, a, b)] = mu.Cell(name, a, b, status="xfail", problems=[reason])
        pytest.xfail(reason)
    cell = mu.run_cell(name, a, b)
    entry = known(name, a, b)
    if entry:
        stage, why = entry
        # problems of an earlier stage than the known one are real failures
        order = ["source", "load", "re-export"]
        other = [p for p in cell.problems if order.index(_stage(p)) < order.index(stage)]
        assert not other, "\n".join(other) + "\n" + getattr(cell, "traceback", "")
        if cell.problems:
            cell.status = "xfail"
            pytest.xfail(why)
        cell.status = "xpass"
        pytest.fail(f"listed as a known failure but passes now; remove it from KNOWN ({why})")
    assert not cell.problems, "\n".join(cell.problems) + "\n" + getattr(cell, "traceback", "")


def _stage(problem: str) -> str:
    for stage in ("source", "load", "re-export"):
        if problem.startswith(stage):
            return stage
    return "load"


def test_mlp_parameter_count_everywhere():
    """The seed post's MLP has 235,148 parameters in every framework where it builds."""
    counts = {}
    for fw in mu.FRAMEWORKS:
        if mu.unavailable(fw):
            continue
        src = mu.source("yat_mlp", fw)
        if src.parameters is not None:
            counts[fw] = src.parameters
    assert counts and set(counts.values()) == {235_148}, counts


OTHER_KERAS_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != os.environ.get("KERAS_BACKEND", "tensorflow")]


@pytest.mark.parametrize("backend", OTHER_KERAS_BACKENDS)
def test_keras_backend(backend, tmp_path):
    """Keras on another backend (subprocess): same ONNX graph as in-process Keras, round trip, torch files load."""
    reason = _unavailable("keras")
    if reason:
        pytest.xfail(reason)
    torch_dir = tmp_path / "torch_files"
    torch_dir.mkdir()
    if not mu.unavailable("torch"):
        for name in mu.keras_backend_models():
            src = mu.source(name, "torch")
            if not src.error:
                (torch_dir / f"{name}.onnx").write_bytes(src.proto.SerializeToString())
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax":  # cheaper XLA compiles, as tests/keras/test_backends.py: many tiny programs, speed moot
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
        ).strip()
    proc = subprocess.run(
        [sys.executable, "-m", "tests.interchange.matrix_util", "keras-backend", str(torch_dir)],
        cwd=mu.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,  # generous: a keras backend run took over 600 s on a heavily loaded machine
        check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("KERAS_REPORT ")), None)
    assert line, f"no report from the {backend} subprocess (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(line[len("KERAS_REPORT ") :])
    assert report["backend"] == backend
    assert sorted(report["models"]) == sorted(mu.keras_backend_models())
    problems = []
    for name, entry in report["models"].items():
        before = len(problems)
        if "error" in entry:
            if not known(name, "keras", "*"):
                problems.append(f"{name}: {entry['error']}")
            mu.KERAS_BACKENDS.setdefault(backend, {})[name] = entry["error"]
            continue
        here = mu.source(name, "keras")
        if not here.error and entry["ops"] != [n.op_type for n in here.proto.graph.node]:
            problems.append(f"{name}: the ONNX graph differs from the in-process backend's")
        if entry["roundtrip"] != "ok":
            problems.append(f"{name}: keras round trip: {entry['roundtrip']}")
        if max(entry["self_error"], entry["fresh_error"]) > mu.RTOL:
            problems.append(f"{name}: onnxruntime vs keras-{backend}: {entry['self_error']}, {entry['fresh_error']}")
        if entry.get("from_torch", "ok") != "ok":
            problems.append(f"{name}: torch file -> keras-{backend}: {entry['from_torch']}")
        mu.KERAS_BACKENDS.setdefault(backend, {})[name] = "ok" if len(problems) == before else problems[-1]
    assert not problems, "\n".join(problems)


# A YatEmbed used only for lookup writes no alpha (only ``attend`` reads it), while its manifest config says
# use_alpha=True; these loaders' from_spec then refuse the layer. Reproduction in the report of issue 7.
EMBED_LOOKUP_KNOWN: dict[str, str] = {}  # framework -> reason (none at present)


@pytest.mark.parametrize("b", mu.FRAMEWORKS)
def test_embed_lookup_only_file_loads(b):
    """A file whose YatEmbed is only looked up (no tied attend head) loads everywhere and matches onnxruntime."""
    reason = _unavailable("torch", b)
    if reason:
        pytest.xfail(reason)
    import torch

    import nmn.torch as nt

    torch.manual_seed(0)
    net = torch.nn.Sequential(nt.YatEmbed(10, 4), nt.YatNMN(4, 3)).eval()
    proto = mu.export("torch", net, [np.random.default_rng(0).integers(0, 10, (2, 5))])
    try:
        loaded = mu.load(b, proto)
        fresh = mu.fresh_inputs(proto)
        assert mu.worst_error(mu.predict(b, loaded, fresh), mu.run_onnx(proto, mu.feeds(proto, fresh))) <= mu.RTOL
        assert not mu.weight_diff(proto, mu.export(b, loaded, fresh))
    except Exception as err:
        if b in EMBED_LOOKUP_KNOWN and "alpha" in str(err):
            pytest.xfail(EMBED_LOOKUP_KNOWN[b])
        raise
    if b in EMBED_LOOKUP_KNOWN:
        pytest.fail(f"passes now; remove {b} from EMBED_LOOKUP_KNOWN")
