"""The ``nmn`` command: ``info``, ``doctor``, ``check``, ``convert``, ``serve`` and ``predict``.

Import-light: each subcommand imports what it needs when it runs.

    >>> main(["version"])  # doctest: +ELLIPSIS
    nmn 1...
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import nmn

_EXTRAS = {"torch": "torch", "flax": "jax", "jax": "jax", "keras": "keras", "tensorflow": "tf", "mlx": "mlx"}
# the import name of each optional dependency -> the extra that installs it
_MODULE_EXTRAS = {
    **_EXTRAS,
    "optax": "jax",
    "starlette": "serve",
    "uvicorn": "serve",
    "httpx": "serve",
    "prometheus_client": "serve",
    "grpc": "serve",
    "sklearn": "demo",
    "matplotlib": "demo",
}
# the extra each command needs (convert: the --to framework's)
_COMMAND_EXTRAS = {"serve": "serve", "predict": "serve"}


def install_hint(extra: str) -> str:
    """The command that adds ``extra`` to this nmn install.

    ``>=1.0`` matters: the PyPI name ``nmn`` holds an older, different package (0.3.x). With the bound, pip keeps
    the nmn 1.0 installed from a checkout or wheel and adds the extra's packages; where no nmn 1.0 is installed
    and none is published, pip says so instead of installing the old package.

    Args:
        extra: an extra of ``pyproject.toml`` (``torch``, ``jax``, ``keras``, ``tf``, ``mlx``, ``serve``, ...).

    Example:
        >>> install_hint("serve")
        'pip install "nmn[serve]>=1.0"'
    """
    return f'pip install "nmn[{extra}]>=1.0"'


def _missing_extra(err: ImportError) -> str | None:
    """The extra that provides the module an ``ImportError`` is about, if it is one of nmn's optional ones."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    return _MODULE_EXTRAS.get(name)


def _cmd_version(args) -> int:
    print(f"nmn {nmn.__version__}")
    return 0


def _cmd_doctor(args) -> int:
    versions = nmn.doctor()
    width = max(len(k) for k in versions)
    for package, version in versions.items():
        hint = f"   ({install_hint(_EXTRAS[package])})" if version is None and package in _EXTRAS else ""
        print(f"{package:<{width}}  {version or 'not installed'}{hint}")
    return 0


def _cmd_info(args) -> int:
    print(f"nmn {nmn.__version__} - Yat layers for torch, nnx, linen, keras, tf and mlx, defined as ONNX functions")
    print(
        "commands: version, doctor, ops, check MODEL.onnx, convert MODEL.onnx --to FRAMEWORK --out PATH "
        "(needs that framework's extra), serve PATH and predict URL --input x.npy (need the serve extra); "
        "nmn COMMAND --help for each"
    )
    return 0


def _cmd_ops(args) -> int:
    """Print the registry of ``nmn`` functions: name, version, inputs and attributes with defaults."""
    from nmn.core.schemas import DOMAIN, DOMAIN_VERSION, FUNCTIONS, OPSET

    print(f"domain {DOMAIN!r} version {DOMAIN_VERSION}, built from ai.onnx opset {OPSET}")
    for schema in FUNCTIONS.values():
        attrs = ", ".join(f"{k}: {t}" + ("" if d is None else f" = {d!r}") for k, (t, d) in schema.attributes.items())
        print(
            f"  {schema.name}({', '.join(schema.inputs)}) -> {', '.join(schema.outputs)}"
            + (f"  [{attrs}]" if attrs else "")
        )
    return 0


def _check_limits(args):
    """The :class:`~nmn.interchange.safe_load.Limits` of ``nmn check``'s options."""
    import dataclasses

    from nmn.interchange.safe_load import Limits

    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Limits) if getattr(args, f.name, None) is not None
    }
    return Limits(**given)


class Progress:
    """A one-line progress display of named steps on stderr (tqdm), for long CLI work.

    Shown when ``enabled`` is true, hidden when false; ``None`` shows it only when stderr is a terminal. While a
    step runs the line is redrawn every half second, so the elapsed time moves during one long step (a big file's
    validation, the bounded onnxruntime run). :meth:`close` clears the line; call it before printing a result or
    an error, so that no half-drawn bar is left in between.

    Args:
        desc: the label, e.g. ``"nmn check"``.
        steps: the names of the steps, in order.
        enabled: ``True`` (``--progress``), ``False`` (``--no-progress``) or ``None`` (when stderr is a terminal).

    Example:
        >>> with Progress("nmn demo", ["one", "two"], enabled=False) as progress:
        ...     progress.step(1)
        ...     progress.shown
        False
    """

    TICK_S = 0.5  # redraw interval while a step runs

    def __init__(self, desc: str, steps: Sequence[str], enabled: bool | None = None):
        from tqdm import tqdm

        self.steps = list(steps)
        self.desc = desc
        self._bar = tqdm(
            total=len(self.steps),
            desc=desc,
            unit="step",
            disable=(not enabled) if enabled is not None else None,
            file=sys.stderr,
            leave=False,
            bar_format="{desc} (step {n_fmt}/{total_fmt}) [{elapsed}]",
        )
        self.shown = not self._bar.disable
        self._stop = None
        if self.shown:
            import threading

            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, name="nmn-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_S):
            self._bar.refresh()

    def step(self, i: int) -> None:
        """Show that step ``i`` (0-based) is running."""
        self._bar.n = i + 1
        self._bar.set_description_str(f"{self.desc}: {self.steps[i]}", refresh=True)

    def close(self) -> None:
        """Stop redrawing and clear the line (idempotent)."""
        if self._stop is not None:
            self._stop.set()
            self._ticker.join()
            self._stop = None
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cmd_check(args) -> int:
    """Validate a file, run it in onnxruntime on random inputs (in a bounded child process) and print a summary.

    Every refusal is one line on stderr, exit status 2 (the file is bad) or 1 (it ran but failed). A progress line
    (``--progress``; by default when stderr is a terminal) names the running step; it is cleared before anything
    else is printed.
    """
    try:
        limits = _check_limits(args)
    except ValueError as err:  # a bound that is not positive
        print(f"nmn check: {_one_line(err)}", file=sys.stderr)
        return 2
    steps = ["load and validate", "make inputs", f"run in onnxruntime (limit {limits.check_seconds:g} s)"]
    with Progress("nmn check", steps, args.progress) as progress:
        return _check(args, limits, progress)


def _one_line(err) -> str:
    return "; ".join(line.strip(" -") for line in str(err).splitlines() if line.strip())


def _check(args, limits, progress: Progress) -> int:
    import numpy as np

    from nmn.interchange.manifest import read_manifest
    from nmn.interchange.validate import BudgetError, load_model_safely, run_bounded

    def refuse(message: str, code: int) -> int:
        progress.close()
        print(f"nmn check: {message}", file=sys.stderr)
        return code

    progress.step(0)
    try:
        model = load_model_safely(args.model, limits=limits)
    except (ValueError, OSError) as err:  # one line, no traceback: the file is bad, not the program
        return refuse(_one_line(err), 2)
    from onnx import helper

    progress.step(1)
    rng = np.random.default_rng(args.seed)
    given = {}
    if args.input:
        try:
            loaded = np.load(args.input)
        except (ValueError, OSError) as err:
            return refuse(f"--input {args.input!r}: cannot be read as .npy/.npz ({_one_line(err)})", 2)
        given = dict(loaded) if hasattr(loaded, "files") else {None: loaded}
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    for vi in graph_inputs:
        tt = vi.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        value = given.get(vi.name, given.get(None) if len(graph_inputs) == 1 else None)
        if value is None:
            shape = [d.dim_value if d.HasField("dim_value") else args.batch for d in tt.shape.dim]
            nbytes = int(np.prod(shape, dtype=object) or 0) * dtype.itemsize
            if nbytes > limits.check_memory_bytes:
                return refuse(
                    f"{args.model}: input {vi.name!r} of shape {shape} needs {nbytes} bytes; "
                    + limits.over("check_memory_bytes", "that", f"{nbytes} bytes"),
                    2,
                )
            if dtype.kind == "b":
                value = rng.integers(0, 2, size=shape).astype(bool)
            else:
                value = rng.integers(0, 2, size=shape) if dtype.kind in "iu" else rng.normal(size=shape)
        feeds[vi.name] = np.asarray(value).astype(dtype)
    progress.step(2)
    try:
        outputs = run_bounded(model, feeds, limits, source=args.model)
    except BudgetError as err:  # time/memory budget, or onnxruntime's own error, as one line
        return refuse(_one_line(err), 1)
    manifest = read_manifest(model, limits)
    progress.close()
    n_params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    print(
        f"{args.model}: valid nmn ONNX file (source: {manifest.get('source', 'nmn') if manifest else 'foreign'}), "
        f"{len(model.graph.node)} nodes, {n_params:,} tensor values"
    )
    rows = [(n.name, f"{n.domain or 'ai.onnx'}::{n.op_type}") for n in model.graph.node if n.domain == "nmn"]
    if rows:
        width = max(len(r[0]) for r in rows)
        print(f"{'node':<{width}}  op")
        for name, op in rows:
            print(f"{name:<{width}}  {op}")
    finite = [bool(np.all(np.isfinite(o))) if np.asarray(o).dtype.kind in "fc" else True for o in outputs]
    for vi, out, ok in zip(model.graph.output, outputs, finite):
        mean = f"{float(np.mean(out)):.4g}" if out.size and out.dtype.kind in "biufc" else "n/a"
        print(f"output {vi.name}: shape {list(out.shape)}, finite {ok}, mean {mean}")
    return 0 if all(finite) else 1


def _cmd_convert(args) -> int:
    from nmn.interchange.convert import convert

    return convert(
        args.model,
        args.to,
        args.out,
        batch=args.batch,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=args.progress,
    )


def _needs_extra(command: str, extra: str | None, err: BaseException) -> int:
    what = f"the {extra} extra: {install_hint(extra)}" if extra else f"a package that is missing ({err})"
    print(f"nmn {command}: needs {what}", file=sys.stderr)
    return 2


def _add_progress_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress line on stderr (default: only when stderr is a terminal)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``nmn`` argument parser (subcommands import their frameworks only when they run).

    Example:
        >>> "convert" in build_parser().format_help()
        True
    """
    parser = argparse.ArgumentParser(
        prog="nmn",
        description="nmn: Yat layers in six frameworks, via ONNX. Commands marked [needs ...] need an "
        f"extra installed ({install_hint('EXTRA')}); nmn doctor shows what is installed.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    sub.add_parser("info", help="what nmn is and its commands").set_defaults(func=_cmd_info)
    sub.add_parser("doctor", help="which frameworks are installed").set_defaults(func=_cmd_doctor)
    check = sub.add_parser("check", help="validate an ONNX file and run it in onnxruntime on random inputs")
    check.add_argument("model")
    check.add_argument("--batch", type=int, default=2, help="size of symbolic dimensions (default 2)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--input", help="a .npy (single input) or .npz (by input name) file of inputs to use")
    import dataclasses

    from nmn.interchange.safe_load import Limits

    for f in dataclasses.fields(Limits):  # every bound of docs/security.md is an option
        check.add_argument(
            Limits.option(f.name),
            dest=f.name,
            type=type(f.default),
            default=None,
            metavar="N",
            help=f"raise the bound {f.name} (default {f.default})",
        )
    _add_progress_option(check)
    check.set_defaults(func=_cmd_check)
    sub.add_parser("ops", help="print the registry of nmn ONNX functions").set_defaults(func=_cmd_ops)
    convert = sub.add_parser("convert", help="convert an nmn ONNX file to a framework's native artefact")
    convert.add_argument("model")
    convert.add_argument("--to", required=True, choices=["torch", "nnx", "linen", "keras", "tf", "mlx"])
    convert.add_argument("--out", required=True, help="output path (file or folder, by framework)")
    convert.add_argument("--batch", type=int, default=2, help="batch size of the random check inputs")
    convert.add_argument("--seed", type=int, default=0)
    convert.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (never a folder holding other files, never the input)",
    )
    _add_progress_option(convert)
    convert.set_defaults(func=_cmd_convert)
    try:
        from nmn.serve.cli import add_commands
    except ImportError as err:  # the serve extra is not installed: the commands still show and name it
        add_commands = None
        missing = err
    if add_commands is not None:
        add_commands(sub)
    else:
        for name, what in (
            ("serve", "serve ONNX models over the Open Inference Protocol"),
            ("predict", "send a .npy file to an Open Inference Protocol server"),
        ):
            stub = sub.add_parser(name, help=what, add_help=False)
            stub.add_argument("rest", nargs=argparse.REMAINDER)
            stub.set_defaults(func=lambda args, _err=missing: _needs_extra(args.command, "serve", _err))
    for action in sub._choices_actions:  # nmn --help marks what needs an extra
        extra = _COMMAND_EXTRAS.get(action.dest)
        if extra:
            action.help = f"{action.help} [needs the {extra} extra]"
        elif action.dest == "convert":
            action.help = f"{action.help} [needs the target framework's extra]"
    return parser


# Framework start-up noise (TensorFlow's C++ log lines, oneDNN notes, absl/gRPC warnings) is silenced before any
# framework is imported; a value the user set is kept.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
    "GLOG_minloglevel": "3",
}


def quiet_frameworks() -> None:
    """Set the environment variables that keep TensorFlow/JAX start-up logs off the terminal (user values win)."""
    import os

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nmn`` command line; returns the exit code.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Example:
        >>> main(["version"])  # doctest: +ELLIPSIS
        nmn ...
        0
    """
    quiet_frameworks()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        return _cmd_info(args)
    try:
        return int(args.func(args) or 0)
    except ImportError as err:  # an optional dependency the command needs is not installed: one line
        extra = _missing_extra(err) or _COMMAND_EXTRAS.get(args.command)
        if extra is None and "pip install" in str(err):
            print(f"nmn {args.command}: {str(err).splitlines()[0]}", file=sys.stderr)
            return 2
        return _needs_extra(args.command, extra, err)
    except KeyboardInterrupt:
        print(f"nmn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
