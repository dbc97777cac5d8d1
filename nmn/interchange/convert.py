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

Nothing is lost (:mod:`nmn.interchange._atomic`): every output is written into a hidden staging folder beside
``--out``, checked there (including the read-back in a fresh Python process, in the documented way above), and
only then renamed into place. On any failure or interrupt (Ctrl-C, SIGTERM) the staging folder is removed: nothing
new is left and nothing existing is changed. An existing output is replaced only with ``--overwrite``, and never
when it is a folder holding files a SavedModel does not have, or when it is the input file. When the architecture
sibling (``model.onnx`` beside ``model.pt``) *is* the input, the input is used as it is and not rewritten. Modes
follow the umask.

The exit code is 0 when both checks are within 1e-5 of the output scale, 1 otherwise (or on any error, with a
one-line message and nothing half-written), 2 for a usage error.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from nmn.interchange._atomic import Stage

RTOL = 1e-5
TARGETS = ("torch", "nnx", "linen", "keras", "tf", "mlx")


# ------------------------------------------------------------------------------------------------ inputs
def random_inputs(proto, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for a file's graph inputs: symbolic dims = ``batch``; integers are ids below the vocabulary."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in proto.graph.initializer}
    vocab = next(
        (int(inits[n.input[0]].dims[0]) for n in proto.graph.node if n.op_type == "Gather" and n.input[0] in inits), 2
    )
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[vi.name] = (rng.integers(0, vocab, size=shape) if dtype.kind in "iu" else rng.normal(size=shape)).astype(
            dtype
        )
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
    if framework == "mlx":  # mlx_io has no predict() yet: run the module eagerly
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


class ConvertError(ValueError):
    """A conversion that cannot or may not be done (a usage problem): nothing was written."""


def output_names(to: str, out: Path) -> list[str]:
    """The entries of ``out``'s folder that converting to ``to`` writes: ``out`` first, then its siblings.

    >>> output_names("torch", Path("m.pt"))
    ['m.pt', 'm.onnx', 'm_loader.py']
    >>> output_names("keras", Path("m.onnx"))
    Traceback (most recent call last):
    ...
    nmn.interchange.convert.ConvertError: --out m.onnx: a Keras model is saved as a .keras file
    """
    if to == "keras" and out.suffix != ".keras":
        raise ConvertError(f"--out {out}: a Keras model is saved as a .keras file")
    if to == "mlx" and out.suffix != ".safetensors":
        raise ConvertError(f"--out {out}: MLX weights are written as a .safetensors file")
    if to in ("keras", "tf"):
        return [out.name]
    arch = _sibling(out, ".onnx")
    if arch.name == out.name:
        raise ConvertError(f"--out {out} must not end in .onnx (the architecture is written to {arch})")
    return [out.name, arch.name] + ([_sibling(out, "_loader.py").name] if to == "torch" else [])


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


def _write_architecture(proto, path: Path | None) -> None:
    from nmn.interchange import save_model

    if path is not None:  # None: the architecture is the input file itself, kept as it is
        save_model(proto, path)


def _write_torch(model, proto, out: Path, arch: Path | None) -> None:
    import torch

    _write_architecture(proto, arch)
    with open(out, "wb") as f:
        torch.save(model.state_dict(), f)
    _sibling(out, "_loader.py").write_text(_TORCH_LOADER.format(pt=out.name, onnx=_sibling(out, ".onnx").name))


def _write_nnx(model, proto, out: Path, arch: Path | None) -> None:
    from flax import nnx, serialization

    _write_architecture(proto, arch)
    out.write_bytes(serialization.msgpack_serialize(nnx.state(model).to_pure_dict()))


def _linen_variables(model):
    return model.variables if hasattr(model, "variables") else model[1]


def _write_linen(model, proto, out: Path, arch: Path | None) -> None:
    from flax import serialization

    _write_architecture(proto, arch)
    out.write_bytes(serialization.to_bytes(_linen_variables(model)))


def _write_keras(model, proto, out: Path, arch: Path | None) -> None:
    model.save(out)


def _write_tf(model, proto, out: Path, arch: Path | None) -> None:
    import tensorflow as tf

    tf.saved_model.save(model, str(out))


def _write_mlx(model, proto, out: Path, arch: Path | None) -> None:
    _write_architecture(proto, arch)
    model.save_weights(str(out))


_WRITERS = {
    "torch": _write_torch,
    "nnx": _write_nnx,
    "linen": _write_linen,
    "keras": _write_keras,
    "tf": _write_tf,
    "mlx": _write_mlx,
}

_SAVEDMODEL_FILES = {"saved_model.pb", "fingerprint.pb", "keras_metadata.pb"}
_VARIABLES_FILE = re.compile(r"variables\.(index|data-\d+-of-\d+)$")


def _replaceable(to: str):
    """``may_replace`` for :class:`~nmn.interchange._atomic.Stage`: a reason an existing target must stay."""

    def may_replace(target: Path) -> str | None:
        if target.is_symlink():
            return "is a symbolic link"
        if not target.is_dir():
            return None
        if to != "tf":
            return "is a folder"
        for entry in target.iterdir():
            if entry.is_file() and entry.name in _SAVEDMODEL_FILES:
                continue
            if (
                entry.is_dir()
                and entry.name == "variables"
                and all(f.is_file() and _VARIABLES_FILE.match(f.name) for f in entry.iterdir())
            ):
                continue
            if entry.is_dir() and entry.name == "assets" and not any(entry.iterdir()):
                continue
            return f"is a folder holding {entry.name!r}, which nmn convert does not write"
        return None

    return may_replace


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
        except Exception:
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
            n = sum(
                sizes.get(init, 0) for key, init in layer["params"].items() if layer.get("trainable", {}).get(key, True)
            )
            rows.append((layer["name"], layer["kind"], n))
    else:
        rows = [
            (n.name, f"{n.domain or 'ai.onnx'}::{n.op_type}", sum(sizes.get(i, 0) for i in n.input))
            for n in proto.graph.node
            if n.domain == "nmn"
        ]
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
    for what, (abs_err, rel_err) in (("loaded model", check), ("read back in a fresh process", back)):
        print(
            f"{what:>28}: max |{framework} - onnxruntime| = {abs_err:.3g} ({rel_err:.2g} x output scale) "
            f"on random inputs (batch {batch}, seed {seed})",
            file=file,
        )


# ------------------------------------------------------------------------------------------------ fresh process
_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
}


def _read_back_main(argv: list[str]) -> int:
    """``python -m nmn.interchange.convert --read-back FRAMEWORK OUT INPUTS.npz RESULT.npz`` (the fresh-process
    check): read ``OUT`` back the documented way, run it on the inputs, save the outputs."""
    framework, out, inputs_path, result_path = argv
    with np.load(inputs_path) as data:
        inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    if framework == "torch":  # the written loader is the documented recipe: run it
        import importlib.util

        loader = _sibling(Path(out), "_loader.py")
        spec = importlib.util.spec_from_file_location("nmn_convert_loader", loader)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.load()
    else:
        model = read_back(framework, out)
    outputs = predict_read_back(framework, model, inputs)
    np.savez(result_path, *[np.asarray(o) for o in outputs])
    return 0


def _fresh_process_outputs(framework: str, out: Path, inputs: list[np.ndarray], scratch: Path) -> list[np.ndarray]:
    """Read ``out`` back in a new Python process and return its outputs on ``inputs``."""
    np.savez(scratch / "inputs.npz", *inputs)
    env = {**os.environ, **{k: v for k, v in _QUIET_ENV.items() if k not in os.environ}}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nmn.interchange.convert",
            "--read-back",
            framework,
            str(out),
            str(scratch / "inputs.npz"),
            str(scratch / "result.npz"),
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        raise RuntimeError(
            f"reading {out.name} back in a fresh process failed: "
            f"{lines[-1] if lines else f'exit code {proc.returncode}'}"
        )
    with np.load(scratch / "result.npz") as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM unwinds like Ctrl-C (a ``KeyboardInterrupt``, so the staging folder is removed) while a conversion
    runs."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------ entry point
def convert(
    model_path: str | os.PathLike,
    to: str,
    out: str | os.PathLike,
    *,
    batch: int = 2,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> int:
    """Convert an nmn ONNX file to ``to``'s native artefact at ``out``; print a summary; return an exit code.

    Args:
        model_path: the nmn ONNX file (opened for reading only, through the safe loader).
        to: one of ``torch``, ``nnx``, ``linen``, ``keras``, ``tf``, ``mlx``.
        out: the artefact (see the table above); its siblings are written beside it.
        batch: size of the symbolic dimensions of the random check inputs.
        seed: seed of the random check inputs.
        overwrite: replace existing outputs (never a folder of other files, never the input).
        progress: show a progress bar on stderr (default: when stderr is a terminal).

    Returns:
        0 when the loaded model and the read-back artefact agree with onnxruntime within 1e-5 of the output
        scale; 1 on a failed check or error; 2 on a usage error.

    Example:
        >>> import tempfile
        >>> convert("missing.onnx", "torch", tempfile.mkdtemp() + "/m.pt")   # doctest: +ELLIPSIS
        1
    """
    from tqdm.auto import tqdm

    if to not in TARGETS:
        print(f"nmn convert: unknown framework {to!r}; expected one of {list(TARGETS)}", file=sys.stderr)
        return 2
    model_path, out = Path(model_path), Path(out)
    steps = ["open", f"load into {to}", "check", "write", "read back (fresh process)", "move into place"]
    bar = tqdm(
        total=len(steps),
        desc="nmn convert",
        unit="step",
        disable=(not progress) if progress is not None else None,
        file=sys.stderr,
        leave=False,
        bar_format="{desc}: {n_fmt}/{total_fmt} {postfix} [{elapsed}]",
    )

    def step(i: int) -> None:
        bar.n = i
        bar.set_postfix_str(steps[i])
        bar.refresh()

    try:
        with _sigterm_as_exit():
            return _convert(model_path, to, out, batch, seed, overwrite, step)
    except KeyboardInterrupt:
        bar.close()
        print("nmn convert: interrupted; nothing new was written and existing files are unchanged", file=sys.stderr)
        return 130
    finally:
        bar.close()


def _convert(model_path: Path, to: str, out: Path, batch: int, seed: int, overwrite: bool, step) -> int:
    from nmn.interchange import load, load_model_safely, run_onnx
    from nmn.interchange.reader import UnsupportedModelError
    from nmn.interchange.validate import ModelValidationError

    def fail(message: str, code: int = 1) -> int:
        print(f"nmn convert: {message}", file=sys.stderr)
        return code

    try:
        names = output_names(to, out)
    except ConvertError as err:
        return fail(str(err), 2)
    folder = out.parent
    arch_is_input = False
    for name in names:
        if _same_file(folder / name, model_path):
            if name.endswith(".onnx") and name != out.name:
                arch_is_input = True  # IN.onnx -> IN.pt: the input is the architecture; it is not rewritten
                continue
            return fail(f"--out {out} would overwrite the input file {model_path}; choose another --out", 2)
    written = [n for n in names if not (arch_is_input and n.endswith(".onnx") and n != out.name)]
    if folder.exists() and not folder.is_dir():
        return fail(f"--out {out}: {folder} is not a folder", 2)
    stage = Stage(folder, overwrite=overwrite, may_replace=_replaceable(to))
    try:
        stage.check_targets(written)
    except (FileExistsError, PermissionError) as err:
        return fail(str(err), 1)

    step(0)
    try:
        proto = load_model_safely(model_path)
    except (ModelValidationError, FileNotFoundError, OSError, ValueError) as err:
        reason = "; ".join(line.strip(" -") for line in str(err).splitlines() if line.strip())
        return fail(f"{model_path}: {reason}")
    step(1)
    try:
        model = load(proto, to)
    except (ImportError, UnsupportedModelError) as err:
        return fail(f"cannot load {model_path} into {to}, nothing written: {_one_line(err)}")
    except Exception as err:
        return fail(f"cannot load {model_path} into {to}, nothing written: {_one_line(err)}")
    feeds = random_inputs(proto, batch, seed)
    inputs = list(feeds.values())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with (
            Stage(folder, overwrite=overwrite, may_replace=_replaceable(to)) as stage,
            tempfile.TemporaryDirectory(prefix="nmn-convert-") as scratch,
        ):
            step(2)
            want = run_onnx(proto, feeds)
            check = _errors(_predict(to, model, inputs), want)
            if check[1] > RTOL:
                return fail(
                    f"the loaded {to} model differs from onnxruntime by {check[1]:.2g} x the output scale (more than "
                    f"{RTOL:g}); nothing written"
                )
            step(3)
            staged = {n: stage.path(n) for n in written}
            arch = None if to in ("keras", "tf") or arch_is_input else staged[_sibling(out, ".onnx").name]
            if arch_is_input:  # the fresh-process check needs the architecture beside the weights
                shutil.copyfile(model_path, stage.root / _sibling(out, ".onnx").name)
            _WRITERS[to](model, proto, staged[out.name], arch)
            step(4)
            back = _errors(_fresh_process_outputs(to, staged[out.name], inputs, Path(scratch)), want)
            if back[1] > RTOL:
                return fail(
                    f"{out.name} read back in a fresh process differs from onnxruntime by {back[1]:.2g} x "
                    f"the output scale (more than {RTOL:g}); nothing written"
                )
            step(5)
            stage.commit()
    except (FileExistsError, PermissionError) as err:
        return fail(str(err))
    except Exception as err:
        return fail(f"{model_path} -> {to} failed, nothing written: {_one_line(err)}")
    shown = [folder / n for n in written] + ([model_path] if arch_is_input else [])
    _print_summary(model_path, to, shown, _layer_rows(proto), check, back, batch, seed)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--read-back"]:
        sys.exit(_read_back_main(sys.argv[2:]))
    print(
        "usage: python -m nmn.interchange.convert --read-back FRAMEWORK OUT INPUTS.npz RESULT.npz (use nmn convert)",
        file=sys.stderr,
    )
    sys.exit(2)


__all__ = ["ConvertError", "convert", "output_names", "predict_read_back", "random_inputs", "read_back"]
