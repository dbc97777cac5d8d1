"""The ASGI application: Open Inference Protocol (KServe v2 REST) on onnxruntime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._protocol import ProtocolError, decode_input, encode_tensor
from .repository import Repository, ServedModel
from nmn.interchange.safe_load import DEFAULT_MAX_BYTES

__all__ = ["create_app", "serve", "DEFAULT_MAX_REQUEST_BYTES"]

#: Default bound on an inference request body: 64 MiB.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024**2

_SERVER_NAME = "nmn-serve"
_UNKNOWN = "_unknown_"  # metrics label for requests naming no served model
_INLINE_BYTES = 64 * 1024  # parse/encode smaller payloads on the event loop
_ENV_CONFIG = "NMN_SERVE_CONFIG"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


def _json_response(obj: Any, status: int = 200) -> Response:
    # allow_nan: a model may legitimately output NaN/Inf; Python's json reads it back.
    body = json.dumps(obj, allow_nan=True, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json_response({"error": message}, status)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "nmn_serve_infer_requests",
            "Inference requests received, per model.",
            ["model"],
            registry=self.registry,
        )
        self.errors = Counter(
            "nmn_serve_infer_errors",
            "Inference requests answered with an error, per model and HTTP status.",
            ["model", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nmn_serve_infer_latency_seconds",
            "Time from request to answer for inference requests, per model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batches = Histogram(
            "nmn_serve_batch_requests",
            "Requests merged into one onnxruntime run by dynamic batching, per model.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )

    def on_batch(self, model: str, requests: int, rows: int) -> None:
        self.batches.labels(model).observe(requests)


def create_app(
    model_path_or_dir: str | os.PathLike,
    *,
    max_batch: int | None = None,
    batch_timeout_ms: float = 2.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_model_bytes: int = DEFAULT_MAX_BYTES,
    allow_nonfinite: bool = False,
    intra_op_threads: int | None = None,
    executor_threads: int | None = None,
    strict: bool = False,
) -> Starlette:
    """Build the ASGI app serving a ``.onnx`` file or a folder of them.

    Every file is validated with :func:`nmn.interchange.safe_load.load_model_safely`
    before an onnxruntime session is made; a bad file raises (``ValueError``
    naming the file) here, at start-up. Model names are the file stems.

    ``max_batch`` > 1 turns on dynamic batching for models whose inputs all
    have a symbolic first dimension; ``batch_timeout_ms`` is the longest a
    request waits for companions. ``max_request_bytes`` bounds a request body
    (413 above it). Float inputs holding NaN/Inf are refused unless
    ``allow_nonfinite``.

    Example (a one-node model, served in-process)::

        >>> import os, tempfile, onnx
        >>> from onnx import helper, TensorProto
        >>> g = helper.make_graph(
        ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])])
        >>> path = os.path.join(tempfile.mkdtemp(), "relu.onnx")
        >>> onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), path)
        >>> from starlette.testclient import TestClient
        >>> client = TestClient(create_app(path))
        >>> client.get("/v2/models/relu").json()["inputs"]
        [{'name': 'x', 'datatype': 'FP32', 'shape': [-1, 2]}]
        >>> client.post("/v2/models/relu/infer", json={"inputs": [
        ...     {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [-1.0, 2.0]}]}
        ... ).json()["outputs"]
        [{'name': 'y', 'datatype': 'FP32', 'shape': [1, 2], 'data': [0.0, 2.0]}]
    """
    metrics = _Metrics()
    repo = Repository(
        model_path_or_dir,
        max_model_bytes=max_model_bytes,
        intra_op_threads=intra_op_threads,
        max_batch=max_batch,
        batch_timeout_ms=batch_timeout_ms,
        on_batch=metrics.on_batch,
        strict=strict,  # a folder serves its good files and lists the refused ones, unless strict
    )
    executor = ThreadPoolExecutor(
        max_workers=executor_threads or min(32, (os.cpu_count() or 1) + 4),
        thread_name_prefix="nmn-serve",
    )

    def find(request: Request) -> ServedModel:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        model = repo.get(name)
        if model is None:
            raise ProtocolError(
                f"unknown model {name!r}; this server serves {sorted(repo.models)}", 404
            )
        if version is not None and version != "1":
            raise ProtocolError(f"model {name!r} has no version {version!r} (only '1')", 404)
        return model

    # ------------------------------------------------------------ health, metadata

    async def live(request: Request) -> Response:
        return _json_response({"live": True})

    async def ready(request: Request) -> Response:
        return _json_response({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return _json_response(
            {"name": _SERVER_NAME, "version": _version(), "extensions": ["model_repository"]}
        )

    async def model_metadata(request: Request) -> Response:
        try:
            return _json_response(find(request).metadata())
        except ProtocolError as exc:
            return _error(str(exc), exc.status)

    async def model_ready(request: Request) -> Response:
        try:
            model = find(request)
        except ProtocolError as exc:
            return _error(str(exc), exc.status)
        return _json_response({"name": model.name, "ready": True})

    async def repository_index(request: Request) -> Response:
        return _json_response(
            repo.index()
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -------------------------------------------------------------------- inference

    async def infer(request: Request) -> Response:
        start = time.perf_counter()
        name = request.path_params["name"]
        label = name if name in repo.models else _UNKNOWN
        metrics.requests.labels(label).inc()
        loop = asyncio.get_running_loop()
        try:
            model = find(request)
            body = await _read_body(request, max_request_bytes, model.name)
            if len(body) > _INLINE_BYTES:
                parsed = await loop.run_in_executor(
                    executor, _parse_request, body, model, allow_nonfinite
                )
            else:
                parsed = _parse_request(body, model, allow_nonfinite)
            feeds, wanted, req_id = parsed
            del body
            if model.batcher is not None:
                outputs = await asyncio.wrap_future(model.batcher.submit(feeds))
                outputs = {k: outputs[k] for k in wanted}
            else:
                outputs = await loop.run_in_executor(executor, model.run, feeds, wanted)
            del feeds
            if sum(v.nbytes for v in outputs.values()) > _INLINE_BYTES:
                payload = await loop.run_in_executor(
                    executor, _encode_response, model.name, req_id, outputs
                )
            else:
                payload = _encode_response(model.name, req_id, outputs)
            response = Response(payload, media_type="application/json")
        except ProtocolError as exc:
            response = _error(str(exc), exc.status)
        except Exception as exc:  # onnxruntime errors and anything unforeseen
            response = _runtime_error(name, exc)
        if response.status_code >= 400:
            metrics.errors.labels(label, str(response.status_code)).inc()
        metrics.latency.labels(label).observe(time.perf_counter() - start)
        return response

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(f"{request.method} {request.url.path}: {exc.detail}", exc.status_code)

    async def internal(request: Request, exc: Exception) -> Response:
        return _error(f"internal error: {type(exc).__name__}", 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            yield
        finally:
            repo.close()
            executor.shutdown(wait=False, cancel_futures=True)

    routes = [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/repository/index", repository_index, methods=["POST", "GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found, Exception: internal},
        lifespan=lifespan,
    )
    app.state.repository = repo
    app.state.metrics_registry = metrics.registry
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nmn")
    except Exception:
        return "0"


async def _read_body(request: Request, limit: int, model: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ProtocolError(f"model {model!r}: invalid Content-Length {declared!r}") from None
        if size > limit:
            raise ProtocolError(
                f"model {model!r}: request body of {size} bytes is over the limit of {limit} bytes",
                413,
            )
    if request.headers.get("inference-header-content-length") is not None:
        raise ProtocolError(
            f"model {model!r}: the binary tensor data extension is not supported; send JSON"
        )
    chunks = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ProtocolError(
                f"model {model!r}: request body is over the limit of {limit} bytes", 413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_request(body: bytes, model: ServedModel, allow_nonfinite: bool):
    where = f"model {model.name!r}"
    if not body:
        raise ProtocolError(f"{where}: empty request body; expected a JSON object with 'inputs'")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ProtocolError(f"{where}: request body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ProtocolError(f"{where}: request must be a JSON object, got {type(payload).__name__}")
    req_id = payload.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise ProtocolError(f"{where}: 'id' must be a string, got {req_id!r}")
    params = payload.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise ProtocolError(f"{where}: 'parameters' must be an object")
    inputs = payload.get("inputs")
    if inputs is None:
        raise ProtocolError(f"{where}: 'inputs' is missing; expected a list of tensors")
    if not isinstance(inputs, list):
        raise ProtocolError(f"{where}: 'inputs' must be a list of tensors, got {type(inputs).__name__}")

    feeds: dict[str, np.ndarray] = {}
    for i, obj in enumerate(inputs):
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            raise ProtocolError(f"{where}: inputs[{i}] must be an object with a string 'name'")
        name = obj["name"]
        spec = model.input_by_name.get(name)
        if spec is None:
            raise ProtocolError(
                f"{where}: unexpected input {name!r}; the model's inputs are "
                f"{[t.name for t in model.inputs]}"
            )
        if name in feeds:
            raise ProtocolError(f"{where}: input {name!r} is given twice")
        feeds[name] = decode_input(
            obj,
            model=model.name,
            expected_datatype=spec.datatype,
            expected_shape=spec.shape,
            allow_nonfinite=allow_nonfinite,
        )
    missing = [t.name for t in model.inputs if t.name not in feeds]
    if missing:
        raise ProtocolError(f"{where}: missing input(s) {missing}; the model needs {[t.name for t in model.inputs]}")
    if model.batcher is not None and len(model.inputs) > 1:
        rows = {a.shape[0] for a in feeds.values()}
        if len(rows) > 1:
            raise ProtocolError(
                f"{where}: inputs disagree on the batch (first) dimension: "
                f"{ {n: a.shape[0] for n, a in feeds.items()} }"
            )

    wanted = list(model.output_names)
    requested = payload.get("outputs")
    if requested is not None:
        if not isinstance(requested, list):
            raise ProtocolError(f"{where}: 'outputs' must be a list of {{'name': ...}} objects")
        if requested:
            wanted = []
            for i, obj in enumerate(requested):
                if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                    raise ProtocolError(f"{where}: outputs[{i}] must be an object with a string 'name'")
                if obj["name"] not in model.output_names:
                    raise ProtocolError(
                        f"{where}: unknown output {obj['name']!r}; the model's outputs are "
                        f"{model.output_names}"
                    )
                if obj["name"] not in wanted:
                    wanted.append(obj["name"])
    return feeds, wanted, req_id


def _encode_response(model: str, req_id: str | None, outputs: dict[str, np.ndarray]) -> bytes:
    resp: dict[str, Any] = {"model_name": model, "model_version": "1"}
    if req_id is not None:
        resp["id"] = req_id
    resp["outputs"] = [encode_tensor(n, np.asarray(v)) for n, v in outputs.items()]
    return json.dumps(resp, allow_nan=True, separators=(",", ":")).encode()


def _runtime_error(model: str, exc: Exception) -> Response:
    kind = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
    if kind in ("InvalidArgument", "InvalidGraph", "NotImplemented") or isinstance(exc, ValueError):
        return _error(f"model {model!r}: onnxruntime refused the inputs: {text}", 400)
    return _error(f"model {model!r}: inference failed ({kind}): {text}", 500)


# ----------------------------------------------------------------------------- serve


def serve(
    path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    max_batch: int | None = None,
    batch_timeout_ms: float = 2.0,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    allow_nonfinite: bool = False,
    log_level: str = "info",
    strict: bool = False,
) -> None:
    """Serve ``path`` (a .onnx file or a folder of them) with uvicorn; blocks.

    With ``workers`` > 1 uvicorn starts that many processes, each loading
    the models itself (they are stateless: put them, or many hosts, behind
    any HTTP load balancer). Models are validated here first, so a bad file
    stops start-up with an error naming it.

    Example::

        serve("models/", port=8000, max_batch=32)      # then: curl localhost:8000/v2/models/mlp
    """
    import uvicorn

    config = {
        "model_path_or_dir": os.fspath(path),
        "max_batch": max_batch,
        "batch_timeout_ms": batch_timeout_ms,
        "max_request_bytes": max_request_bytes,
        "allow_nonfinite": allow_nonfinite,
        "strict": strict,
    }
    common = dict(host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)
    if workers <= 1:
        app = create_app(config.pop("model_path_or_dir"), **config)
        uvicorn.run(app, **common)
        return
    Repository(os.fspath(path), strict=strict).close()  # fail fast, once, on a bad file
    os.environ[_ENV_CONFIG] = json.dumps(config)
    uvicorn.run("nmn.serve.app:_app_from_env", factory=True, workers=workers, **common)


def _app_from_env() -> Starlette:
    """uvicorn factory for worker processes; reads the config ``serve`` set."""
    config = json.loads(os.environ[_ENV_CONFIG])
    return create_app(config.pop("model_path_or_dir"), **config)
