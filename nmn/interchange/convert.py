"""``nmn convert MODEL.onnx --to FRAMEWORK --out PATH``: an nmn ONNX file as a framework's native artefact.

The file is opened through the safe loader, loaded into the framework (``nmn.interchange.load``), checked against
onnxruntime on random inputs, written in the framework's own format, read back from that format and checked
again. A summary table (layers, parameters, differences) is printed. What each framework gets:

=========  ======================================  ============================================================
framework  ``--out``                               reading it back (what :func:`read_back` does)
=========  ======================================  ============================================================
torch      ``model.pt``: the ``state_dict``, plus  ``m = nmn.interchange.torch_io.load("model.onnx")``;
           ``model.onnx`` (the architecture) and   ``m.load_state_dict(torch.load("model.pt"))`` - or
           ``model_loader.py`` (those two lines)   ``python model_loader.py``
nnx        ``model.msgpack``: the ``nnx.State`` as  ``m = jax_io.load("model.onnx", framework="nnx")``, then
           a pure dict (``flax.serialization``),   ``nnx.update(m, state)`` with the restored pure dict
           plus ``model.onnx``
linen      ``model.msgpack``: the Linen variables  ``jax_io.load("model.onnx", framework="linen")``, then
           (``flax.serialization.to_bytes``), plus  ``flax.serialization.from_bytes(variables, data)``
           ``model.onnx``
keras      ``model.keras`` (``Model.save``)         ``keras.saving.load_model("model.keras")`` (import nmn.keras)
tf         a SavedModel folder                     ``tf.saved_model.load(folder)`` (a callable)
mlx        ``model.safetensors`` (``save_weights``)  ``m = mlx_io.load("model.onnx")``;
           plus ``model.onnx``                     ``m.load_weights("model.safetensors")``
=========  ======================================  ============================================================

The exit code is 0 when both checks are within 1e-5 of the output scale, 1 otherwise (or on any error, with a
message and nothing half-written).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np

RTOL = 1e-5
TARGETS = ("torch", "nnx", "linen", "keras", "tf", "mlx")


# ------------------------------------------------------------------------------------------------ inputs
def random_inputs(proto, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for a file's graph inputs: symbolic dims = ``batch``; integers are ids below the vocabulary."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in proto.graph.initializer}
    vocab = next((int(inits[n.input[0]].dims[0]) for n in proto.graph.node
                  if n.op_type == "Gather" and n.input[0] in inits), 2)
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[vi.name] = (rng.integers(0, vocab, size=shape) if dtype.kind in "iu"
                          else rng.normal(size=shape)).astype(dtype)
    return feeds


def _errors(got: list, want: list) -> tuple[float, float]:
    """(max absolute difference, the same relative to the output scale) over all outputs."""
    if len(got) != len(want):
        raise ValueError(f"{len(got)} outputs, onnxruntime gives {len(want)}")
    worst_abs = worst_rel = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            raise ValueError(f"output shape {g.shape} differs from onnxruntime's {w.shape}")
        if not w.size:
            continue
        d = float(np.max(np.abs(g - w)))
        worst_abs = max(worst_abs, d)
        worst_rel = max(worst_rel, d / max(float(np.max(np.abs(w))), 1e-12))
    return worst_abs, worst_rel


def _predict(framework: str, model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import importlib

    from nmn.interchange import _MODULES

    io = importlib.import_module(f"nmn.interchange.{_MODULES[framework]}")
    if hasattr(io, "predict"):
        from nmn.interchange import predict

        return predict(model, framework, inputs)
    if framework == "mlx":   # mlx_io has no predict() yet: run the module eagerly
        import mlx.core as mx

        model.eval()
        out = model(*[mx.array(x) for x in inputs])
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        mx.eval(*outs)
        return [np.array(o) for o in outs]
    raise RuntimeError(f"nmn.interchange.{_MODULES[framework]} has no predict()")


# ------------------------------------------------------------------------------------------------ writers
def _sibling(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix)


def _architecture(proto, out: Path) -> Path:
    from nmn.interchange import save_model

    arch = _sibling(out, ".onnx")
    if arch.resolve() == out.resolve():
        raise ValueError(f"--out {out} must not end in .onnx (the architecture is written to {arch})")
    save_model(proto, arch)
    return arch


_TORCH_LOADER = '''"""Load {pt} (a state_dict) into the architecture {onnx} (written by nmn convert)."""
from pathlib import Path

import torch

from nmn.interchange import torch_io

HERE = Path(__file__).resolve().parent


def load():
    model = torch_io.load(HERE / "{onnx}")
    model.load_state_dict(torch.load(HERE / "{pt}", weights_only=True))
    return model


if __name__ == "__main__":
    print(load())
'''


def _write_torch(model, proto, out: Path) -> list[Path]:
    import torch

    arch = _architecture(proto, out)
    torch.save(model.state_dict(), out)
    loader = _sibling(out, "_loader.py")
    loader.write_text(_TORCH_LOADER.format(pt=out.name, onnx=arch.name))
    return [out, arch, loader]


def _write_nnx(model, proto, out: Path) -> list[Path]:
    from flax import nnx, serialization

    arch = _architecture(proto, out)
    out.write_bytes(serialization.msgpack_serialize(nnx.state(model).to_pure_dict()))
    return [out, arch]


def _linen_variables(model):
    return model.variables if hasattr(model, "variables") else model[1]


def _write_linen(model, proto, out: Path) -> list[Path]:
    from flax import serialization

    arch = _architecture(proto, out)
    out.write_bytes(serialization.to_bytes(_linen_variables(model)))
    return [out, arch]


def _write_keras(model, proto, out: Path) -> list[Path]:
    if out.suffix != ".keras":
        raise ValueError(f"--out {out}: a Keras model is saved as a .keras file")
    model.save(out)
    return [out]


def _write_tf(model, proto, out: Path) -> list[Path]:
    import tensorflow as tf

    tf.saved_model.save(model, str(out))
    return [out]


def _write_mlx(model, proto, out: Path) -> list[Path]:
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: MLX weights are written as a .safetensors file")
    arch = _architecture(proto, out)
    model.save_weights(str(out))
    return [out, arch]


_WRITERS = {"torch": _write_torch, "nnx": _write_nnx, "linen": _write_linen, "keras": _write_keras,
            "tf": _write_tf, "mlx": _write_mlx}


# ------------------------------------------------------------------------------------------------ readers
def read_back(framework: str, out: str | os.PathLike):
    """Read an artefact written by :func:`convert` back into ``framework``: a model that
    ``nmn.interchange.predict`` runs (for ``tf``, the restored SavedModel object, a callable)."""
    out = Path(out)
    from nmn.interchange import load

    if framework == "torch":
        import torch

        model = load(_sibling(out, ".onnx"), "torch")
        model.load_state_dict(torch.load(out, weights_only=True))
        return model
    if framework == "nnx":
        from flax import nnx, serialization

        model = load(_sibling(out, ".onnx"), "nnx")
        state = nnx.state(model)
        state.replace_by_pure_dict(serialization.msgpack_restore(out.read_bytes()))
        nnx.update(model, state)
        return model
    if framework == "linen":
        from flax import serialization

        model = load(_sibling(out, ".onnx"), "linen")
        variables = serialization.from_bytes(_linen_variables(model), out.read_bytes())
        if hasattr(model, "_replace"):
            return model._replace(variables=variables)
        if hasattr(model, "variables") and not isinstance(model, tuple):
            model.variables = variables
            return model
        return (model[0], variables)
    if framework == "keras":
        import keras

        import nmn.keras  # noqa: F401 - registers the nmn layers for deserialisation

        return keras.saving.load_model(out)
    if framework == "tf":
        import tensorflow as tf

        return tf.saved_model.load(str(out))
    if framework == "mlx":
        model = load(_sibling(out, ".onnx"), "mlx")
        model.load_weights(str(out))
        return model
    raise ValueError(f"unknown framework {framework!r}; expected one of {list(TARGETS)}")


def predict_read_back(framework: str, model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run a model returned by :func:`read_back` on numpy inputs."""
    if framework == "tf" and not hasattr(model, "trainable_variables_by_name"):
        import tensorflow as tf

        try:
            from nmn.interchange import predict

            return predict(model, "tf", inputs)
        except Exception:  # noqa: BLE001 - a restored SavedModel is not the original class: call it directly
            out = model(*[tf.constant(x) for x in inputs])
            return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    return _predict(framework, model, inputs)


# ------------------------------------------------------------------------------------------------ summary
def _layer_rows(proto) -> list[tuple[str, str, int]]:
    from onnx import numpy_helper  # noqa: F401

    from nmn.interchange import manifest_of

    sizes = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer}
    manifest = manifest_of(proto)
    rows = []
    if manifest:
        for layer in manifest["layers"]:
            n = sum(sizes.get(init, 0) for key, init in layer["params"].items()
                    if layer.get("trainable", {}).get(key, True))
            rows.append((layer["name"], layer["kind"], n))
    else:
        rows = [(n.name, f"{n.domain or 'ai.onnx'}::{n.op_type}",
                 sum(sizes.get(i, 0) for i in n.input)) for n in proto.graph.node if n.domain == "nmn"]
    return rows


def _print_summary(model_path, framework, written, rows, check, back, batch, seed, file=None) -> None:
    file = file or sys.stdout
    print(f"nmn convert: {model_path} -> {framework}: " + ", ".join(str(p) for p in written), file=file)
    width = max([len("layer")] + [len(r[0]) for r in rows])
    kwidth = max([len("kind")] + [len(r[1]) for r in rows])
    print(f"{'layer':<{width}}  {'kind':<{kwidth}}  {'parameters':>12}", file=file)
    for name, kind, n in rows:
        print(f"{name:<{width}}  {kind:<{kwidth}}  {n:>12,}", file=file)
    print(f"{'total':<{width}}  {'':<{kwidth}}  {sum(r[2] for r in rows):>12,}", file=file)
    for what, (abs_err, rel_err) in (("loaded model", check), ("read back", back)):
        print(f"{what:>12}: max |{framework} - onnxruntime| = {abs_err:.3g} ({rel_err:.2g} x output scale) "
              f"on random inputs (batch {batch}, seed {seed})", file=file)


# ------------------------------------------------------------------------------------------------ entry point
def convert(model_path: str | os.PathLike, to: str, out: str | os.PathLike, *, batch: int = 2, seed: int = 0) -> int:
    """Convert an nmn ONNX file to ``to``'s native artefact at ``out``; print a summary; return an exit code."""
    from nmn.interchange import load, load_model_safely, run_onnx
    from nmn.interchange.reader import UnsupportedModelError
    from nmn.interchange.validate import ModelValidationError

    if to not in TARGETS:
        print(f"nmn convert: unknown framework {to!r}; expected one of {list(TARGETS)}", file=sys.stderr)
        return 2
    out = Path(out)
    try:
        proto = load_model_safely(model_path)
    except (ModelValidationError, FileNotFoundError, OSError, ValueError) as err:
        print(f"nmn convert: {model_path}: {err}", file=sys.stderr)
        return 1
    try:
        model = load(proto, to)
    except (ImportError, UnsupportedModelError) as err:
        print(f"nmn convert: cannot load {model_path} into {to}: {err}", file=sys.stderr)
        return 1
    feeds = random_inputs(proto, batch, seed)
    inputs = list(feeds.values())
    try:
        want = run_onnx(proto, feeds)
        check = _errors(_predict(to, model, inputs), want)
        if out.exists() and out.is_dir() and to == "tf":
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        written = _WRITERS[to](model, proto, out)
        back = _errors(predict_read_back(to, read_back(to, out), inputs), want)
    except Exception as err:  # noqa: BLE001 - a conversion failure is reported, not a stack trace
        print(f"nmn convert: {model_path} -> {to} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    _print_summary(model_path, to, written, _layer_rows(proto), check, back, batch, seed)
    ok = check[1] <= RTOL and back[1] <= RTOL
    if not ok:
        print(f"nmn convert: {to} differs from onnxruntime by more than {RTOL:g} x the output scale",
              file=sys.stderr)
    return 0 if ok else 1


__all__ = ["convert", "predict_read_back", "random_inputs", "read_back"]
