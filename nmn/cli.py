"""The ``nmn`` command: ``info``, ``doctor``, ``check``, ``convert``, ``serve`` and ``predict``.

Import-light: each subcommand imports what it needs when it runs.

    >>> main(["version"])
    nmn 1.0.0
    0
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import nmn

_EXTRAS = {"torch": "torch", "flax": "jax", "keras": "keras", "tensorflow": "tf", "mlx": "mlx"}


def _cmd_version(args) -> int:
    print(f"nmn {nmn.__version__}")
    return 0


def _cmd_doctor(args) -> int:
    versions = nmn.doctor()
    width = max(len(k) for k in versions)
    for package, version in versions.items():
        hint = f'   (pip install "nmn[{_EXTRAS[package]}]")' if version is None and package in _EXTRAS else ""
        print(f"{package:<{width}}  {version or 'not installed'}{hint}")
    return 0


def _cmd_info(args) -> int:
    print(f"nmn {nmn.__version__} - Yat layers for torch, nnx, linen, keras, tf and mlx, defined as ONNX functions")
    print("commands: version, doctor, ops, check MODEL.onnx, convert MODEL.onnx --to FRAMEWORK --out PATH, "
          "serve PATH, predict URL --input x.npy")
    return 0


def _cmd_ops(args) -> int:
    """Print the registry of ``nmn`` functions: name, version, inputs and attributes with defaults."""
    from nmn.core.schemas import DOMAIN, DOMAIN_VERSION, FUNCTIONS, OPSET

    print(f"domain {DOMAIN!r} version {DOMAIN_VERSION}, built from ai.onnx opset {OPSET}")
    for schema in FUNCTIONS.values():
        attrs = ", ".join(f"{k}: {t}" + ("" if d is None else f" = {d!r}") for k, (t, d) in schema.attributes.items())
        print(f"  {schema.name}({', '.join(schema.inputs)}) -> {', '.join(schema.outputs)}" + (f"  [{attrs}]" if attrs else ""))
    return 0


def _cmd_check(args) -> int:
    """Validate a file, run it in onnxruntime on random inputs and print a summary table."""
    import numpy as np

    from nmn.interchange import load_model_safely, manifest_of, run_onnx

    try:
        model = load_model_safely(args.model)
    except (ValueError, OSError) as err:   # one line, no traceback: the file is bad, not the program
        reason = "; ".join(line.strip(" -") for line in str(err).splitlines() if line.strip())
        print(f"nmn check: {reason}", file=sys.stderr)
        return 2
    from onnx import helper

    rng = np.random.default_rng(args.seed)
    given = {}
    if args.input:
        loaded = np.load(args.input)
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
            value = rng.integers(0, 2, size=shape) if dtype.kind in "iu" else rng.normal(size=shape)
        feeds[vi.name] = np.asarray(value).astype(dtype)
    try:
        outputs = run_onnx(model, feeds)
    except Exception as err:  # onnxruntime's own errors (wrong input shape, ...) as one line
        print(f"nmn check: {args.model}: onnxruntime could not run it: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    manifest = manifest_of(model)
    n_params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    print(f"{args.model}: valid nmn ONNX file (source: {manifest['source'] if manifest else 'foreign'}), "
          f"{len(model.graph.node)} nodes, {n_params:,} tensor values")
    rows = [(n.name, f"{n.domain or 'ai.onnx'}::{n.op_type}") for n in model.graph.node if n.domain == "nmn"]
    if rows:
        width = max(len(r[0]) for r in rows)
        print(f"{'node':<{width}}  op")
        for name, op in rows:
            print(f"{name:<{width}}  {op}")
    for vi, out in zip(model.graph.output, outputs):
        print(f"output {vi.name}: shape {list(out.shape)}, finite {bool(np.all(np.isfinite(out)))}, "
              f"mean {float(np.mean(out)):.4g}")
    return 0 if all(np.all(np.isfinite(o)) for o in outputs) else 1


def _cmd_convert(args) -> int:
    from nmn.interchange.convert import convert

    return convert(args.model, args.to, args.out, batch=args.batch, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nmn", description="nmn: Yat layers in six frameworks, via ONNX")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    sub.add_parser("info", help="what nmn is and its commands").set_defaults(func=_cmd_info)
    sub.add_parser("doctor", help="which frameworks are installed").set_defaults(func=_cmd_doctor)
    check = sub.add_parser("check", help="validate an ONNX file and run it in onnxruntime on random inputs")
    check.add_argument("model")
    check.add_argument("--batch", type=int, default=2, help="size of symbolic dimensions (default 2)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--input", help="a .npy (single input) or .npz (by input name) file of inputs to use")
    check.set_defaults(func=_cmd_check)
    sub.add_parser("ops", help="print the registry of nmn ONNX functions").set_defaults(func=_cmd_ops)
    convert = sub.add_parser("convert", help="convert an nmn ONNX file to a framework's native artefact")
    convert.add_argument("model")
    convert.add_argument("--to", required=True, choices=["torch", "nnx", "linen", "keras", "tf", "mlx"])
    convert.add_argument("--out", required=True, help="output path (file or folder, by framework)")
    convert.add_argument("--batch", type=int, default=2, help="batch size of the random check inputs")
    convert.add_argument("--seed", type=int, default=0)
    convert.set_defaults(func=_cmd_convert)
    try:
        from nmn.serve.cli import add_commands
    except ImportError:  # the serve extra is not installed: the other commands still work
        add_commands = None
    if add_commands is not None:
        add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        return _cmd_info(args)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
