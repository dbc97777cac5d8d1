"""Shared helpers of the any-to-any interchange matrix, the golden-file tests and ``nmn convert``'s tests.

Everything here goes through the public interchange API (``nmn.interchange.export / load / predict``) and the
reference models of ``models/``. Results are cached per process: a reference model is built and exported once
per (model, source framework) and reused for every target framework.

Run as a script, it checks the Keras reference models on the Keras backend named by ``KERAS_BACKEND`` and prints
one JSON line (the matrix test runs it in a subprocess per backend)::

    KERAS_BACKEND=jax python -m tests.interchange.matrix_util keras-backend
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # ``models`` lives at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

import models
from nmn.interchange import run_onnx

FRAMEWORKS = models.FRAMEWORKS
NAMES = models.NAMES
RTOL = 1e-5  # of the output scale, float32
FRESH_BATCH = 3  # differs from the example batch (2): the symbolic batch dimension is exercised
_IO = {"torch": "torch_io", "nnx": "jax_io", "linen": "jax_io", "keras": "keras_io", "tf": "tf_io", "mlx": "mlx_io"}


# ------------------------------------------------------------------------------------------------ availability
@functools.cache
def unavailable(framework: str) -> str | None:
    """``None`` when ``framework``'s interchange module and reference models import, else the reason."""
    try:
        importlib.import_module(f"nmn.interchange.{_IO[framework]}")
    except Exception as err:
        return f"nmn.interchange.{_IO[framework]} does not import ({type(err).__name__}: {err})"
    try:
        models.module(framework)
    except Exception as err:
        return f"models.{framework}_models does not import ({type(err).__name__}: {err})"
    return None


def io_module(framework: str):
    return importlib.import_module(f"nmn.interchange.{_IO[framework]}")


# ------------------------------------------------------------------------------------------------ host arrays
def native(framework: str, arrays: list[np.ndarray]) -> list:
    """numpy -> the framework's own arrays (what its ``export`` wants as example inputs)."""
    if framework == "torch":
        import torch

        return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    if framework in ("nnx", "linen"):
        import jax.numpy as jnp

        return [jnp.asarray(a) for a in arrays]  # int64 ids become int32 (x64 off); the exporter casts them back
    if framework == "mlx":
        import mlx.core as mx

        return [mx.array(a) for a in arrays]
    if framework == "tf":
        import tensorflow as tf

        return [tf.constant(a) for a in arrays]
    return [np.asarray(a) for a in arrays]  # keras: numpy on every backend


def export(framework: str, model, arrays: list[np.ndarray], path=None):
    """Export through ``nmn.interchange.export`` (Linen reference models carry their variables)."""
    from nmn.interchange import export as _export

    inputs = native(framework, arrays)
    example = tuple(inputs) if framework == "torch" else (inputs[0] if len(inputs) == 1 else inputs)
    if framework == "linen" and isinstance(model, tuple):  # LinenModel or load()'s (module, variables)
        module, variables = model
        return _export(module, example, path, framework="linen", variables=variables)
    return _export(model, example, path, framework=framework)


def load(framework: str, source):
    from nmn.interchange import load as _load

    return _load(source, framework)


def predict(framework: str, model, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Eager inference through ``<framework>_io.predict``; a local shim where an io module has none yet."""
    io = io_module(framework)
    if hasattr(io, "predict"):
        from nmn.interchange import predict as _predict

        return _predict(model, framework, list(arrays))
    return _SHIMS[framework](model, list(arrays))


def _mlx_predict(model, arrays):  # SHIM: nmn.interchange.mlx_io has no predict() (see the report of issue 7)
    import mlx.core as mx

    was_training = getattr(model, "training", False)
    model.eval()
    try:
        out = model(*[mx.array(a) for a in arrays])
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        mx.eval(*outs)
        return [np.array(o) for o in outs]
    finally:
        model.train(was_training)


_SHIMS = {"mlx": _mlx_predict}


# ------------------------------------------------------------------------------------------------ comparisons
def initializers(proto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def rel_error(got, want) -> float:
    """max |got - want| / max |want| (0 for empty outputs); shapes must agree."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape}")
    if not want.size:
        return 0.0
    return float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-12)


def worst_error(got: list, want: list) -> float:
    if len(got) != len(want):
        raise AssertionError(f"{len(got)} outputs, expected {len(want)}")
    return max(rel_error(g, w) for g, w in zip(got, want))


def weight_diff(a, b) -> list[str]:
    """Differences between the initializers of two files, compared by name: [] when bit-identical."""
    ia, ib = initializers(a), initializers(b)
    problems = []
    if sorted(ia) != sorted(ib):
        problems.append(
            f"initializer names differ: only in A {sorted(set(ia) - set(ib))}, only in B {sorted(set(ib) - set(ia))}"
        )
    for name in sorted(set(ia) & set(ib)):
        x, y = ia[name], ib[name]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            problems.append(f"{name}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}, bytes differ")
    return problems


def fresh_inputs(proto, seed: int = 7, batch: int = FRESH_BATCH) -> list[np.ndarray]:
    """Random inputs for a file's graph inputs (symbolic dims = ``batch``; integer inputs are token ids)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in proto.graph.initializer}
    vocab = _vocabulary(proto)
    out = []
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if dtype.kind in "iu":
            out.append(rng.integers(0, vocab, size=shape).astype(dtype))
        else:
            out.append(rng.normal(size=shape).astype(dtype))
    return out


def _vocabulary(proto) -> int:
    inits = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Gather" and node.input[0] in inits:
            return int(inits[node.input[0]].dims[0])
    return 2


def input_names(proto) -> list[str]:
    inits = {t.name for t in proto.graph.initializer}
    return [vi.name for vi in proto.graph.input if vi.name not in inits]


def feeds(proto, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(input_names(proto), arrays))


# ------------------------------------------------------------------------------------------------ the matrix
@dataclass
class Source:
    """A reference model built and exported in framework ``fw``."""

    name: str
    fw: str
    model: Any = None
    inputs: list = field(default_factory=list)
    proto: Any = None
    self_error: float | None = None  # A vs onnxruntime, example inputs
    fresh_error: float | None = None  # A vs onnxruntime, fresh inputs (another batch size)
    parameters: int | None = None
    error: str | None = None  # why the build/export failed
    seconds: float = 0.0


@functools.cache
def source(name: str, fw: str) -> Source:
    """Build ``name`` in ``fw``, export it, and compare ``fw`` with onnxruntime (cached per process)."""
    src = Source(name, fw)
    t0 = time.perf_counter()
    try:
        src.model, src.inputs = models.build(fw, name, seed=0)
        src.parameters = models.count_parameters(fw, src.model)
        src.proto = export(fw, src.model, src.inputs)
        ort = run_onnx(src.proto, feeds(src.proto, src.inputs))
        src.self_error = worst_error(predict(fw, src.model, src.inputs), ort)
        fresh = fresh_inputs(src.proto, seed=11)
        src.fresh_error = worst_error(predict(fw, src.model, fresh), run_onnx(src.proto, feeds(src.proto, fresh)))
    except Exception as err:
        src.error = f"{type(err).__name__}: {err}"
        src.traceback = traceback.format_exc()
    src.seconds = time.perf_counter() - t0
    return src


@dataclass
class Cell:
    name: str
    src: str
    dst: str
    status: str = "pending"  # ok / fail / xfail
    load_error: float | None = None  # B vs onnxruntime on fresh inputs
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


RESULTS: dict[tuple[str, str, str], Cell] = {}
SOURCES: dict[tuple[str, str], Source] = {}
KERAS_BACKENDS: dict[str, dict[str, str]] = {}  # backend -> model -> "ok" or the problem


def run_cell(name: str, a: str, b: str) -> Cell:
    """Load A's file of ``name`` into B, compare with onnxruntime on fresh inputs, export again, compare weights."""
    cell = Cell(name, a, b)
    t0 = time.perf_counter()
    src = source(name, a)
    SOURCES[(name, a)] = src
    if src.error:
        cell.problems.append(f"source {a} failed: {src.error}")
    else:
        try:
            loaded = load(b, src.proto)
            fresh = fresh_inputs(src.proto, seed=zlib.crc32(f"{name}/{a}/{b}".encode()) % 1000)  # stable per cell
            want = run_onnx(src.proto, feeds(src.proto, fresh))
            cell.load_error = worst_error(predict(b, loaded, fresh), want)
            if not cell.load_error <= RTOL:
                cell.problems.append(f"load: {b} differs from onnxruntime: {cell.load_error:.3g} x output scale")
        except Exception as err:
            cell.problems.append(f"load: {type(err).__name__}: {err}")
            cell.traceback = traceback.format_exc()
        if cell.load_error is not None:
            try:
                again = export(b, loaded, fresh)
                cell.problems += [f"re-export: {p}" for p in weight_diff(src.proto, again)]
            except Exception as err:
                cell.problems.append(f"re-export: {type(err).__name__}: {err}")
                cell.traceback = traceback.format_exc()
    cell.status = "fail" if cell.problems else "ok"
    cell.seconds = time.perf_counter() - t0
    RESULTS[(name, a, b)] = cell
    return cell


_MARK = {"ok": "ok", "fail": "FAIL", "xfail": "xfail", "xpass": "XPASS", "pending": "-"}


def table() -> str:
    """The matrix as markdown: one block per model, rows = source framework A, columns = target B."""
    lines = [
        "# nmn interchange matrix",
        "",
        (
            "Each cell: A's file loaded into B equals onnxruntime on fresh inputs (batch "
            f"{FRESH_BATCH}) within {RTOL:g} of the output scale, and B's re-export has bit-identical weights."
        ),
        "`ok` passes, `FAIL` fails, `xfail` is a known failure (reason below), `-` was not run. The `export` column:",
        "A's own export checked against A (worst relative error on the example and fresh inputs).",
        "",
    ]
    notes = []
    for name in NAMES:
        if not any(k[0] == name for k in RESULTS):
            continue
        lines.append(f"## {name}")
        lines.append("")
        lines.append("| A \\ B | export | " + " | ".join(FRAMEWORKS) + " |")
        lines.append("|---|---|" + "---|" * len(FRAMEWORKS))
        for a in FRAMEWORKS:
            src = SOURCES.get((name, a))
            if src is None:
                head = "n/a" if unavailable(a) else "-"
            elif src.error:
                head = "FAIL"
            else:
                head = f"ok {max(src.self_error, src.fresh_error):.1e}"
            row = [head]
            for b in FRAMEWORKS:
                cell = RESULTS.get((name, a, b))
                row.append(_MARK[cell.status] if cell else ("n/a" if unavailable(a) or unavailable(b) else "-"))
                if cell and cell.problems:
                    notes.append(f"- {name} {a} -> {b} ({cell.status}): {cell.problems[0][:300]}")
            lines.append(f"| {a} | " + " | ".join(row) + " |")
        lines.append("")
    errors = [c.load_error for c in RESULTS.values() if c.load_error is not None]
    if errors:
        lines += [
            f"Largest B-vs-onnxruntime error over the {len(errors)} cells that loaded: "
            f"{max(errors):.2g} x the output scale (tolerance {RTOL:g}).",
            "",
        ]
    if KERAS_BACKENDS:
        lines += [
            "## Keras on its other backends (subprocess each)",
            "",
            (
                "Per model: built and exported on that backend (same ONNX graph as in-process Keras, onnxruntime "
                "agrees), loaded back, re-exported bit-identically, and PyTorch's file of the model loads."
            ),
            "",
            "| backend | " + " | ".join(NAMES) + " |",
            "|---|" + "---|" * len(NAMES),
        ]
        for backend, row in KERAS_BACKENDS.items():
            lines.append(
                f"| {backend} | "
                + " | ".join(("ok" if row[n] == "ok" else "FAIL") if n in row else "-" for n in NAMES)
                + " |"
            )
        lines.append("")
    if notes:
        lines += ["## Failures and known failures", ""] + notes + [""]
    return "\n".join(lines)


def write_table(path: str | os.PathLike | None = None) -> str:
    """Write :func:`table` to ``path`` (default ``$NMN_MATRIX_OUT`` or ``out/matrix.md``)."""
    path = path or os.environ.get("NMN_MATRIX_OUT") or ROOT / "out" / "matrix.md"
    text = table()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text


# ------------------------------------------------------------------------------------------------ keras backends
# Building a Keras model on the JAX backend compiles every initializer eagerly (~10 s per model here), so the
# other-backend runs cover the models with distinct layer kinds (dense, 2-D conv + pooling, conv-transpose,
# 1-D and 3-D conv, attention) by default; NMN_MATRIX_FULL=1 runs all of them.
KERAS_BACKEND_MODELS = ("yat_mlp", "yat_cnn", "yat_autoencoder", "yat_seq", "yat_transformer")


def keras_backend_models() -> tuple[str, ...]:
    return NAMES if os.environ.get("NMN_MATRIX_FULL") else KERAS_BACKEND_MODELS


def keras_backend_report(torch_files: dict[str, bytes] | None = None) -> dict:
    """Under the current ``KERAS_BACKEND``: build every reference model in Keras, export, check onnxruntime, load
    back into Keras, compare, re-export bit-identically; load the given torch files into Keras too."""
    import keras
    import onnx

    report = {"backend": keras.backend.backend(), "models": {}}
    for name in keras_backend_models():
        entry: dict[str, Any] = {}
        try:
            src = source(name, "keras")
            if src.error:
                raise RuntimeError(src.error)
            entry.update(
                ops=[n.op_type for n in src.proto.graph.node], self_error=src.self_error, fresh_error=src.fresh_error
            )
            cell = run_cell(name, "keras", "keras")
            entry["roundtrip"] = cell.problems or "ok"
            if torch_files and name in torch_files:
                proto = onnx.load_from_string(torch_files[name])
                loaded = load("keras", proto)
                fresh = fresh_inputs(proto, seed=5)
                err = worst_error(predict("keras", loaded, fresh), run_onnx(proto, feeds(proto, fresh)))
                again = weight_diff(proto, export("keras", loaded, fresh))
                entry["from_torch"] = "ok" if err <= RTOL and not again else f"error {err:.3g}; {again[:2]}"
        except Exception as err:
            entry["error"] = f"{type(err).__name__}: {err}"[:500]
        report["models"][name] = entry
    return report


if __name__ == "__main__":  # pragma: no cover - run by test_matrix in a subprocess
    if sys.argv[1:2] == ["keras-backend"]:
        files = {}
        if len(sys.argv) > 2:
            for path in Path(sys.argv[2]).glob("*.onnx"):
                files[path.stem] = path.read_bytes()
        print("KERAS_REPORT " + json.dumps(keras_backend_report(files)))
