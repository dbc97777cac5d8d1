"""``nmn serve`` and ``nmn predict`` subcommands.

``nmn.cli`` calls :func:`add_commands` with its argparse subparsers; both
commands also run as ``python -m nmn.serve serve ...`` / ``... predict ...``.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

import numpy as np

__all__ = ["add_commands", "main"]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve`` and ``predict`` on an argparse subparsers object.

    Example::

        >>> import argparse
        >>> parser = argparse.ArgumentParser(prog="nmn")
        >>> add_commands(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["serve", "model.onnx", "--port", "9000"])
        >>> args.port, args.func.__name__
        (9000, 'run_serve')
    """
    p = subparsers.add_parser(
        "serve",
        help="serve ONNX models over the Open Inference Protocol (KServe v2 REST and gRPC)",
        description=(
            "Serve a .onnx file, or every .onnx file in a folder (model name = file stem), "
            "with onnxruntime behind the Open Inference Protocol: /v2/health/*, "
            "/v2/models/NAME[/ready|/infer|/config|/stats], /metrics, and with --grpc-port the "
            "gRPC API. Every file is validated first."
        ),
    )
    p.add_argument("path", help="a .onnx file or a folder of .onnx files")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="turn on dynamic batching: merge concurrent requests up to N rows",
    )
    p.add_argument(
        "--batch-timeout-ms",
        type=float,
        default=2.0,
        help="longest a request waits for others to batch with (default 2.0)",
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=None,
        help="refuse request bodies above this size with 413 (default 64 MiB)",
    )
    p.add_argument(
        "--max-values",
        type=int,
        default=None,
        help="refuse requests whose inputs hold more values than this with 400 (default 16Mi)",
    )
    p.add_argument(
        "--body-timeout-s",
        type=float,
        default=30.0,
        help="answer 408 when a request body takes longer than this to arrive (default 30)",
    )
    p.add_argument(
        "--max-inflight-bytes",
        type=int,
        default=None,
        help="answer 503 while the bodies of the requests being served add up to more than this "
        "(default 4 x --max-request-bytes, per worker)",
    )
    p.add_argument(
        "--keep-alive-s",
        type=float,
        default=5.0,
        help="close idle keep-alive connections after this many seconds (default 5)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=512,
        help="concurrent connections/requests before answering 503 (default 512; 0 = no cap)",
    )
    p.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="also serve the protocol's gRPC API (inference.GRPCInferenceService) on this port "
        "(default: off; Triton and KServe use 8001)",
    )
    p.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="accept NaN/Inf in float inputs (refused by default)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to start if any file of the folder is refused (default: serve the good ones)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument(
        "--write-triton-repo",
        metavar="DIR",
        default=None,
        help="instead of serving, write a Triton model repository for PATH to DIR and exit",
    )
    p.set_defaults(func=run_serve)

    q = subparsers.add_parser(
        "predict",
        help="send a .npy file to an Open Inference Protocol server and show the outputs",
        description=(
            "POST an array to URL/v2/models/MODEL/infer. URL is the server root, or "
            "http://host:port/v2/models/MODEL. A .npz input maps input names to arrays."
        ),
    )
    q.add_argument("url", help="server URL, e.g. http://127.0.0.1:8000")
    q.add_argument("--input", required=True, help="input array: .npy (one input) or .npz (by name)")
    q.add_argument("--model", default=None, help="model name (default: the only served model)")
    q.add_argument("--input-name", default=None, help="input name (default: the model's only input)")
    q.add_argument("--output", default=None, help="save outputs: .npy (first output) or .npz (all)")
    q.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    q.set_defaults(func=run_predict)


def _fail(command: str, message: str) -> int:
    print(f"nmn {command}: error: {message}", file=sys.stderr)
    return 2


def run_serve(args: argparse.Namespace) -> int:
    """Entry point of ``nmn serve``; returns an exit code."""
    from nmn.interchange.safe_load import UnsafeModelError

    from .repository import ModelLoadError

    try:
        if args.write_triton_repo:
            from .triton import write_triton_repo

            names = write_triton_repo(
                args.path,
                args.write_triton_repo,
                max_batch=args.max_batch,
                batch_timeout_ms=args.batch_timeout_ms,
            )
            print(f"wrote Triton model repository {args.write_triton_repo}: {', '.join(names)}")
            return 0
        from .app import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_VALUES, serve

        serve(
            args.path,
            host=args.host,
            port=args.port,
            workers=args.workers,
            max_batch=args.max_batch,
            batch_timeout_ms=args.batch_timeout_ms,
            max_request_bytes=args.max_request_bytes or DEFAULT_MAX_REQUEST_BYTES,
            max_values=args.max_values or DEFAULT_MAX_VALUES,
            body_timeout_s=args.body_timeout_s,
            max_inflight_bytes=args.max_inflight_bytes,
            keep_alive_s=args.keep_alive_s,
            max_connections=args.max_connections or None,
            grpc_port=args.grpc_port,
            allow_nonfinite=args.allow_nonfinite,
            log_level=args.log_level,
            strict=getattr(args, "strict", False),
        )
    except (UnsafeModelError, ModelLoadError, OSError) as exc:
        return _fail("serve", str(exc))
    except KeyboardInterrupt:
        return 130
    return 0


def _split_url(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"URL {url!r} must look like http://host:port")
    path = parts.path.rstrip("/")
    model = None
    if "/v2/models/" in path:
        prefix, rest = path.split("/v2/models/", 1)
        model = rest.split("/")[0] or None
        path = prefix
    elif path.endswith("/v2"):
        path = path[: -len("/v2")]
    return f"{parts.scheme}://{parts.netloc}{path}", model


def _summary(name: str, arr: np.ndarray) -> str:
    text = f"{name}: {arr.dtype} shape={list(arr.shape)}"
    if arr.size and arr.dtype.kind in "fiub":
        flat = arr.reshape(-1)
        stats = flat.astype(np.float64)
        text += f" min={stats.min():.6g} max={stats.max():.6g} mean={stats.mean():.6g}"
        head = ", ".join(f"{v:.6g}" if arr.dtype.kind == "f" else str(v) for v in flat[:6].tolist())
        text += f" first=[{head}{', ...' if flat.size > 6 else ''}]"
    return text


def _fit_dtype(name: str, arr: np.ndarray, datatype: str | None) -> np.ndarray:
    """Cast e.g. a float64 .npy to the model's FP32 (same kind of number only)."""
    from ._protocol import DATATYPE_TO_NUMPY

    target = DATATYPE_TO_NUMPY.get(datatype or "")
    if target is None or target == arr.dtype or target.kind == "O":
        return arr
    if (arr.dtype.kind, target.kind) in {("f", "f"), ("i", "i"), ("u", "i"), ("i", "f"), ("u", "f")}:
        print(f"note: input {name!r}: casting {arr.dtype} to {datatype}", file=sys.stderr)
        return arr.astype(target)
    return arr  # let the server say what it expects


def run_predict(args: argparse.Namespace) -> int:
    """Entry point of ``nmn predict``; returns an exit code."""
    from .client import Client, ServeError

    try:
        base, model = _split_url(args.url)
    except ValueError as exc:
        return _fail("predict", str(exc))
    model = args.model or model
    try:
        loaded = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return _fail("predict", f"cannot read input {args.input!r}: {exc}")
    try:
        with Client(base, timeout=args.timeout) as client:
            if model is None:
                names = client.models()
                if len(names) != 1:
                    return _fail("predict", f"the server serves {names}; choose one with --model")
                model = names[0]
            meta = client.metadata(model)
            declared = {t["name"]: t["datatype"] for t in meta["inputs"]}
            if isinstance(loaded, np.lib.npyio.NpzFile):
                inputs = {k: loaded[k] for k in loaded.files}
            else:
                name = args.input_name
                if name is None:
                    if len(declared) != 1:
                        return _fail(
                            "predict",
                            f"model {model!r} has inputs {list(declared)}; pass --input-name "
                            "or a .npz file keyed by input name",
                        )
                    name = next(iter(declared))
                inputs = {name: loaded}
            inputs = {n: _fit_dtype(n, a, declared.get(n)) for n, a in inputs.items()}
            outputs = client.infer(model, inputs)
    except ServeError as exc:
        return _fail("predict", exc.message if exc.message else str(exc))
    except Exception as exc:  # connection refused, timeouts, ...
        return _fail("predict", f"{type(exc).__name__}: {exc}")

    print(f"model {model!r}: {len(outputs)} output(s)")
    for name, arr in outputs.items():
        print("  " + _summary(name, arr))
    if args.output:
        if args.output.endswith(".npz"):
            np.savez(args.output, **outputs)
        else:
            first = next(iter(outputs))
            np.save(args.output, outputs[first])
            if len(outputs) > 1:
                print(f"saved only output {first!r}; use a .npz path to save all", file=sys.stderr)
        print(f"saved to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m nmn.serve [serve] PATH ...`` or ``python -m nmn.serve predict URL ...``."""
    parser = argparse.ArgumentParser(prog="python -m nmn.serve")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("serve", "predict", "-h", "--help"):
        argv.insert(0, "serve")
    args = parser.parse_args(argv)
    return args.func(args)
