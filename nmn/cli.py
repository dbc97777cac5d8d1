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
    print("commands: version, doctor, check MODEL.onnx, convert MODEL.onnx --to FRAMEWORK --out PATH, "
          "serve PATH, predict URL --input x.npy")
    return 0


def _cmd_check(args) -> int:
    """Validate a file, run it in onnxruntime on random inputs and print a summary table."""
    import numpy as np

    from nmn.interchange import load_model_safely, manifest_of, run_onnx
    from nmn.interchange.validate import ModelValidationError

    try:
        model = load_model_safely(args.model)
    except (ModelValidationError, FileNotFoundError) as err:
        print(f"nmn check: {err}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    from onnx import helper

    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else args.batch for d in tt.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[vi.name] = (rng.integers(0, 2, size=shape) if dtype.kind in "iu" else rng.normal(size=shape)).astype(dtype)
    outputs = run_onnx(model, feeds)
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
    check.set_defaults(func=_cmd_check)
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
