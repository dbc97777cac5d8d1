"""The ASGI application: Open Inference Protocol (KServe v2 REST) on onnxruntime.

Inference requests take JSON tensors or the binary tensor data extension
(``Inference-Header-Content-Length``), optionally gzip/deflate compressed;
answers are JSON or binary as the request asks. The same
:class:`~nmn.serve._engine.Engine` serves gRPC (:mod:`nmn.serve._grpc`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import zlib
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nmn.interchange.safe_load import DEFAULT_MAX_BYTES

from ._engine import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_VALUES,
    EXTENSIONS,
    SERVER_NAME,
    Engine,
    runtime_error,
)
from ._protocol import (
    ProtocolError,
    array_from_bytes,
    datatype_of,
    decode_input,
    json_data_text,
    segment_index,
    serialize_bytes,
    split_data,
)
from .repository import Repository, ServedModel

__all__ = ["create_app", "serve", "DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_VALUES"]

#: Default longest wait for a request body to arrive, seconds.
DEFAULT_BODY_TIMEOUT_S = 30.0

_INLINE_BYTES = 64 * 1024  # parse/encode smaller payloads on the event loop
_ENV_CONFIG = "NMN_SERVE_CONFIG"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _json_response(obj: Any, status: int = 200) -> Response:
    # allow_nan: a model may legitimately output NaN/Inf; Python's json reads it back.
    body = json.dumps(obj, allow_nan=True, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json_response({"error": message}, status)


def create_app(
    model_path_or_dir: str | os.PathLike,
    *,
    max_batch: int | None = None,
    batch_timeout_ms: float = 2.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_values: int = DEFAULT_MAX_VALUES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    max_inflight_bytes: int | None = None,
    max_model_bytes: int = DEFAULT_MAX_BYTES,
    allow_nonfinite: bool = False,
    intra_op_threads: int | None = None,
    executor_threads: int | None = None,
    grpc_port: int | None = None,
    grpc_host: str = "127.0.0.1",
    strict: bool = False,
) -> _App:
    """Build the ASGI app serving a ``.onnx`` file or a folder of them.

    Every file is validated with :func:`nmn.interchange.safe_load.load_model_safely`
    before an onnxruntime session is made; a bad file raises (``ValueError``
    naming the file) here, at start-up. Model names are the file stems.

    Args:
        model_path_or_dir: a ``.onnx`` file or a folder of them.
        max_batch: > 1 turns on dynamic batching for models whose inputs all
            have a symbolic first dimension.
        batch_timeout_ms: the longest a request waits for companions.
        max_request_bytes: bound on a request body, after decompression (413).
        max_values: bound on the values of all inputs of one request (400).
        body_timeout_s: the longest a request body may take to arrive (408).
        max_inflight_bytes: bound on the bodies of all REST requests being read
            or served at once (503 above it; default 4 x ``max_request_bytes``).
        max_model_bytes: bound on a model file.
        allow_nonfinite: accept NaN/Inf in float inputs (refused by default).
        intra_op_threads: onnxruntime threads per session (default: its own).
        executor_threads: threads that parse, run and encode requests.
        grpc_port: also serve the protocol's gRPC API on this port (started
            with the app's lifespan, sharing its models and limits).
        grpc_host: address the gRPC server binds.
        strict: refuse the whole folder if any file is refused (default: serve
            the good ones and list the others UNAVAILABLE in the repository index).

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
    engine = Engine(
        model_path_or_dir,
        max_batch=max_batch,
        batch_timeout_ms=batch_timeout_ms,
        max_request_bytes=max_request_bytes,
        max_values=max_values,
        max_model_bytes=max_model_bytes,
        allow_nonfinite=allow_nonfinite,
        intra_op_threads=intra_op_threads,
        executor_threads=executor_threads,
        strict=strict,
    )
    repo = engine.repo

    def find(request: Request) -> ServedModel:
        return engine.find(request.path_params["name"], request.path_params.get("version"))

    # ------------------------------------------------------------ health, metadata

    async def live(request: Request) -> Response:
        return _json_response({"live": True})

    async def ready(request: Request) -> Response:
        return _json_response({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return _json_response({"name": SERVER_NAME, "version": _version(), "extensions": EXTENSIONS})

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

    async def model_config(request: Request) -> Response:
        try:
            return _json_response(engine.config(find(request)))
        except ProtocolError as exc:
            return _error(str(exc), exc.status)

    async def model_stats(request: Request) -> Response:
        try:
            name = request.path_params.get("name")
            return _json_response(engine.statistics(name, request.path_params.get("version")))
        except ProtocolError as exc:
            return _error(str(exc), exc.status)

    async def repository_index(request: Request) -> Response:
        return _json_response(
            repo.index()  # READY models and UNAVAILABLE refused files (Repository.index)
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(f"{request.method} {request.url.path}: {exc.detail}", exc.status_code)

    async def internal(request: Request, exc: Exception) -> Response:
        return _error(f"internal error: {type(exc).__name__}", 500)

    grpc_server = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if grpc_port is not None:
            from ._grpc import start_grpc_server

            grpc_server.append(start_grpc_server(engine, grpc_port, host=grpc_host))
        try:
            yield
        finally:
            for server in grpc_server:
                server.stop(grace=2).wait(5)
            engine.close()

    routes = [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/stats", model_stats, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/config", model_config, methods=["GET"]),
        Route("/v2/models/{name}/stats", model_stats, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/config", model_config, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/stats", model_stats, methods=["GET"]),
        # POSTs to these never reach Starlette (see _App); other methods get its 405.
        Route("/v2/models/{name}/infer", internal, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", internal, methods=["POST"]),
        Route("/v2/repository/index", repository_index, methods=["POST", "GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    starlette = Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found, Exception: internal},
        lifespan=lifespan,
    )
    starlette.state.repository = repo
    starlette.state.engine = engine
    starlette.state.metrics_registry = engine.metrics.registry
    return _App(
        starlette, engine, body_timeout_s, 4 * max_request_bytes if max_inflight_bytes is None else max_inflight_bytes
    )


class _App:
    """ASGI entry: inference requests go straight to :func:`_infer`, the rest to Starlette.

    Skipping Starlette's routing and Request/Response objects on the hot path is
    where most of the per-request Python time went (see scripts/bench_serve.py).
    """

    def __init__(self, starlette: Starlette, engine: Engine, body_timeout_s: float, max_inflight_bytes: int):
        self.starlette = starlette
        self.state = starlette.state
        self.engine = engine
        self.body_timeout_s = float(body_timeout_s)
        self.max_inflight_bytes = int(max_inflight_bytes)
        self.inflight = 0  # bytes of request bodies being read or served (event-loop thread only)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = _infer_route(scope["path"])
            if route is not None:
                await _infer(self, scope, receive, send, *route)
                return
        await self.starlette(scope, receive, send)


def _infer_route(path: str) -> tuple[str, str | None] | None:
    """``/v2/models/NAME[/versions/V]/infer`` -> (NAME, V); None for any other path."""
    if not (path.startswith("/v2/models/") and path.endswith("/infer")):
        return None
    parts = path[len("/v2/models/") : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


async def _send(send, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _infer(app: _App, scope, receive, send, name: str, version: str | None) -> None:
    engine = app.engine
    start = time.perf_counter()
    label = engine.label(name)
    loop = asyncio.get_running_loop()
    headers = {k: v for k, v in scope["headers"]}
    status = 200
    decode_ns = encode_ns = 0
    held = [0]  # bytes of this request counted against --max-inflight-bytes
    try:
        model = engine.find(name, version)
        body = await _read_body(receive, headers, engine.max_request_bytes, model.name, app.body_timeout_s, app, held)
        header_len = headers.get(b"inference-header-content-length")
        t0 = time.perf_counter_ns()
        if len(body) > _INLINE_BYTES:
            holder = [body]
            del body
            parsed = await loop.run_in_executor(engine.executor, _parse_request, holder, header_len, model, engine)
        else:
            parsed = _parse_request([body], header_len, model, engine)
            del body
        decode_ns = time.perf_counter_ns() - t0
        feeds, wanted, binary, req_id = parsed
        t1 = time.perf_counter_ns()
        if model.batcher is not None:
            outputs = await asyncio.wrap_future(model.batcher.submit(feeds))
            outputs = {k: outputs[k] for k in wanted}
        else:
            outputs = await loop.run_in_executor(engine.executor, model.run, feeds, wanted)
        engine.record_run(model, feeds, time.perf_counter_ns() - t1)
        del feeds
        t2 = time.perf_counter_ns()
        if sum(v.nbytes for v in outputs.values()) > _INLINE_BYTES:
            payload, out_headers = await loop.run_in_executor(
                engine.executor, _encode_response, model.name, req_id, outputs, binary
            )
        else:
            payload, out_headers = _encode_response(model.name, req_id, outputs, binary)
        del outputs
        accept = headers.get(b"accept-encoding", b"").lower()
        if accept:
            payload, out_headers = _compress(payload, out_headers, accept)
        encode_ns = time.perf_counter_ns() - t2
    except ProtocolError as exc:
        status, payload, out_headers = exc.status, _error_bytes(str(exc)), _JSON_HEADERS
    except Exception as exc:  # onnxruntime errors and anything unforeseen
        err = runtime_error(name, exc)
        status, payload, out_headers = err.status, _error_bytes(str(err)), _JSON_HEADERS
    finally:
        app.inflight -= held[0]
    engine.record_request(label, status, time.perf_counter() - start, decode_ns, encode_ns)
    await _send(send, status, payload, out_headers)


def _error_bytes(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nmn")
    except Exception:
        return "0"


def _reserve(app, held: list, n: int, model: str) -> None:
    """Count ``n`` more body bytes against the server-wide in-flight budget (503 above it)."""
    if app.inflight + n > app.max_inflight_bytes:
        raise ProtocolError(
            f"model {model!r}: the server is busy: {app.inflight} bytes of request bodies are in flight and "
            f"this one needs {n} more, over the limit of {app.max_inflight_bytes} (nmn serve "
            "--max-inflight-bytes); retry later",
            503,
        )
    app.inflight += n
    held[0] += n


async def _read_body(receive, headers: dict, limit: int, model: str, timeout_s: float, app=None, held=None):
    """The whole body (decompressed), refusing more than ``limit`` bytes or a stalled sender."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            size = -1
        if size < 0:
            raise ProtocolError(f"model {model!r}: invalid Content-Length {declared.decode(errors='replace')!r}")
        if size > limit:
            raise ProtocolError(
                f"model {model!r}: request body of {size} bytes is over the limit of {limit} bytes "
                "(nmn serve --max-request-bytes)",
                413,
            )
    if app is not None and declared is not None:
        _reserve(app, held, size, model)
    # With a Content-Length the body goes straight into one buffer (no list of
    # chunks joined into a second copy).
    buf = bytearray(size) if declared is not None else None
    chunks = []
    total = 0
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    timed_out = []

    def expire() -> None:
        timed_out.append(True)
        task.cancel()

    timer = loop.call_later(timeout_s, expire)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ProtocolError(f"model {model!r}: the client went away before sending its body")
            chunk = message.get("body", b"")
            if chunk:
                if total + len(chunk) > limit:
                    raise ProtocolError(
                        f"model {model!r}: request body is over the limit of {limit} bytes "
                        "(nmn serve --max-request-bytes)",
                        413,
                    )
                if buf is not None:
                    if total + len(chunk) > len(buf):
                        raise ProtocolError(f"model {model!r}: the body is longer than its Content-Length")
                    buf[total : total + len(chunk)] = chunk
                else:
                    if app is not None:
                        _reserve(app, held, len(chunk), model)
                    chunks.append(chunk)
                total += len(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if timed_out:
            raise ProtocolError(
                f"model {model!r}: the request body did not arrive within {timeout_s:g} s (nmn serve --body-timeout-s)",
                408,
            ) from None
        raise
    finally:
        timer.cancel()
    if buf is not None:
        if total != len(buf):
            raise ProtocolError(f"model {model!r}: the body ended after {total} of its {len(buf)} bytes")
        body = buf if total > _INLINE_BYTES else bytes(buf)
    else:
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    del chunks
    encoding = headers.get(b"content-encoding")
    if encoding is not None and encoding.lower() not in (b"identity", b""):
        body = _decompress(body, encoding.lower(), limit, model)
        if app is not None:
            _reserve(app, held, max(0, len(body) - total), model)
    return body


def _decompress(body: bytes, encoding: bytes, limit: int, model: str) -> bytes:
    if encoding in (b"gzip", b"x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == b"deflate":
        wbits = zlib.MAX_WBITS if body[:1] and (body[0] & 0x0F) == 8 else -zlib.MAX_WBITS
    else:
        raise ProtocolError(
            f"model {model!r}: Content-Encoding {encoding.decode(errors='replace')!r} is not "
            "supported; use gzip, deflate or none"
        )
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"model {model!r}: the {encoding.decode()} body does not decompress ({exc})") from None
    if len(out) > limit or d.unconsumed_tail:
        raise ProtocolError(
            f"model {model!r}: the decompressed request body is over the limit of {limit} bytes "
            "(nmn serve --max-request-bytes)",
            413,
        )
    if not d.eof:
        raise ProtocolError(f"model {model!r}: the {encoding.decode()} body is truncated")
    return out


def _compress(payload: bytes, headers: list, accept: bytes) -> tuple[bytes, list]:
    codings = [c.split(b";")[0].strip() for c in accept.split(b",")]
    if b"gzip" in codings:
        c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        name = b"gzip"
    elif b"deflate" in codings:
        c = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
        name = b"deflate"
    else:
        return payload, headers
    return c.compress(payload) + c.flush(), headers + [(b"content-encoding", name)]


def _flag(params: Any, key: str, where: str) -> bool | None:
    if not isinstance(params, dict) or key not in params:
        return None
    value = params[key]
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}: parameter {key!r} must be true or false, got {value!r}")
    return value


def _parse_request(holder: list, header_len: bytes | None, model: ServedModel, engine: Engine):
    """Body -> (feeds, wanted outputs, outputs to send binary, request id).

    ``holder`` is a one-item list owning the body, so the body can be freed as
    soon as its tensors are out of it (the caller keeps no reference).
    """
    where = f"model {model.name!r}"
    body = holder.pop()
    binary = memoryview(b"")
    if header_len is not None:
        try:
            n = int(header_len)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise ProtocolError(
                f"{where}: Inference-Header-Content-Length {header_len.decode(errors='replace')!r} "
                f"must be a whole number from 0 to the body size {len(body)}"
            )
        binary = memoryview(body)[n:]
        body = bytes(memoryview(body)[:n]) if n < len(body) else body
    if not body:
        raise ProtocolError(f"{where}: empty request body; expected a JSON object with 'inputs'")
    header, segments = split_data(body)
    try:
        payload = _loads(header)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ProtocolError(f"{where}: request body is not valid JSON ({exc})") from None
    if segments and not _segments_in_place(payload, len(segments)):
        payload, segments = json.loads(body), []  # a placeholder landed elsewhere: no shortcut
    del body, header
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
    budget = [engine.max_values]
    offset = 0
    for i, obj in enumerate(inputs):
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            raise ProtocolError(f"{where}: inputs[{i}] must be an object with a string 'name'")
        name = obj["name"]
        if name in feeds:
            raise ProtocolError(f"{where}: input {name!r} is given twice")
        engine.check_tensor(model, name, obj.get("datatype"), obj.get("shape"), budget)
        spec = model.input_by_name[name]
        tparams = obj.get("parameters")
        size = tparams.get("binary_data_size") if isinstance(tparams, dict) else None
        if size is not None:
            iwhere = f"{where}, input {name!r}"
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ProtocolError(f"{iwhere}: 'binary_data_size' must be a non-negative integer, got {size!r}")
            if "data" in obj:
                raise ProtocolError(f"{iwhere}: give either 'data' or 'binary_data_size', not both")
            if offset + size > len(binary):
                raise ProtocolError(
                    f"{iwhere}: 'binary_data_size' {size} runs past the end of the binary data "
                    f"({len(binary) - offset} bytes left)"
                )
            feeds[name] = array_from_bytes(
                iwhere,
                spec.datatype,
                obj["shape"],
                binary[offset : offset + size],
                allow_nonfinite=engine.allow_nonfinite,
            )
            offset += size
        else:
            feeds[name] = decode_input(
                obj,
                model=model.name,
                expected_datatype=spec.datatype,
                expected_shape=spec.shape,
                allow_nonfinite=engine.allow_nonfinite,
                segments=segments,
            )
    if offset != len(binary):
        raise ProtocolError(
            f"{where}: {len(binary) - offset} bytes of binary data after the last tensor's 'binary_data_size'"
        )
    engine.check_feeds(model, feeds)

    all_binary = _flag(params, "binary_data_output", where) or False
    if isinstance(params, dict) and "classification" in params:
        raise ProtocolError(f"{where}: the classification extension is not supported")
    requested = payload.get("outputs")
    names = []
    binary_out: set[str] = set()
    if requested is not None:
        if not isinstance(requested, list):
            raise ProtocolError(f"{where}: 'outputs' must be a list of {{'name': ...}} objects")
        for i, obj in enumerate(requested):
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise ProtocolError(f"{where}: outputs[{i}] must be an object with a string 'name'")
            oparams = obj.get("parameters")
            if isinstance(oparams, dict) and oparams.get("classification"):
                raise ProtocolError(f"{where}: the classification extension is not supported")
            flag = _flag(oparams, "binary_data", f"{where}, output {obj['name']!r}")
            if flag if flag is not None else all_binary:
                binary_out.add(obj["name"])
            names.append(obj["name"])
    wanted = engine.wanted_outputs(model, names)
    if not names and all_binary:
        binary_out = set(wanted)
    return feeds, wanted, binary_out, req_id


try:  # orjson parses numbers several times faster than json; it is optional
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def _loads(text):
    """``json.loads``, through orjson when it is installed and agrees the text is plain JSON.

    Anything orjson refuses (NaN/Infinity literals, integers past 64 bits, deep
    nesting, bad JSON) goes to ``json.loads``, which accepts the first two and
    words the errors.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _segments_in_place(payload: Any, n: int) -> bool:
    """True if each of the ``n`` placeholders is exactly one input's ``data``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        return False
    seen = set()
    for obj in payload["inputs"]:
        if isinstance(obj, dict):
            k = segment_index(obj.get("data"))
            if k is not None:
                seen.add(k)
    return seen == set(range(n))


def _encode_response(model: str, req_id: str | None, outputs: dict[str, np.ndarray], binary: set[str]):
    head = b'{"model_name":' + json.dumps(model).encode() + b',"model_version":"1"'
    if req_id is not None:
        head += b',"id":' + json.dumps(req_id).encode()
    parts = []
    blobs = []
    for name, value in outputs.items():
        arr = np.asarray(value)
        datatype = datatype_of(arr)
        meta = b'{"name":%s,"datatype":"%s","shape":%s' % (
            json.dumps(name).encode(),
            datatype.encode(),
            json.dumps(list(arr.shape), separators=(",", ":")).encode(),
        )
        if name in binary:
            blob = (
                serialize_bytes(arr)
                if datatype == "BYTES"
                else np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            )
            blobs.append(blob)
            parts.append(meta + b',"parameters":{"binary_data_size":%d}}' % len(blob))
        else:
            parts.append(meta + b',"data":' + json_data_text(arr) + b"}")
    header = head + b',"outputs":[' + b",".join(parts) + b"]}"
    if not blobs:
        return header, _JSON_HEADERS
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"inference-header-content-length", str(len(header)).encode()),
    ]
    return b"".join([header, *blobs]), headers


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
    max_values: int = DEFAULT_MAX_VALUES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    max_inflight_bytes: int | None = None,
    keep_alive_s: float = 5.0,
    max_connections: int | None = 512,
    allow_nonfinite: bool = False,
    grpc_port: int | None = None,
    log_level: str = "info",
    strict: bool = False,
) -> None:
    """Serve ``path`` (a .onnx file or a folder of them) with uvicorn; blocks.

    With ``workers`` > 1 uvicorn starts that many processes, each loading
    the models itself (they are stateless: put them, or many hosts, behind
    any HTTP load balancer; with ``grpc_port`` every worker binds the gRPC port
    with SO_REUSEPORT and the kernel spreads connections). Models are
    validated here first, so a bad file stops start-up with an error naming it.

    Args:
        path: a ``.onnx`` file or a folder of them.
        host, port: where REST listens.
        workers: server processes.
        max_batch, batch_timeout_ms: dynamic batching (off unless max_batch > 1).
        max_request_bytes, max_values, body_timeout_s: per-request bounds
            (413 / 400 / 408 naming the limit).
        max_inflight_bytes: bound on all request bodies at once, per worker (503).
        keep_alive_s: idle keep-alive connections are closed after this.
        max_connections: concurrent connections and requests before uvicorn
            answers 503 (caps stalled connections too); None for no cap.
        allow_nonfinite: accept NaN/Inf in float inputs.
        grpc_port: also serve gRPC (``inference.GRPCInferenceService``) there.
        log_level: uvicorn's log level.
        strict: refuse to start if any file of the folder is refused.

    Example::

        serve("models/", port=8000, max_batch=32, grpc_port=8001)   # then: curl localhost:8000/v2/models/mlp
    """
    import uvicorn

    _return_big_blocks()
    config = {
        "model_path_or_dir": os.fspath(path),
        "max_batch": max_batch,
        "batch_timeout_ms": batch_timeout_ms,
        "max_request_bytes": max_request_bytes,
        "max_values": max_values,
        "body_timeout_s": body_timeout_s,
        "max_inflight_bytes": max_inflight_bytes,
        "allow_nonfinite": allow_nonfinite,
        "grpc_port": grpc_port,
        "grpc_host": host,
        "strict": strict,
    }
    common = dict(
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=keep_alive_s,
        limit_concurrency=max_connections,
        # h11 (the fallback parser) bounds the request line and headers; httptools has its own limits.
        h11_max_incomplete_event_size=64 * 1024,
    )
    if workers <= 1:
        app = create_app(config.pop("model_path_or_dir"), **config)
        uvicorn.run(app, **common)
        return
    Repository(os.fspath(path), strict=strict).close()  # fail fast, once, on a bad file
    os.environ[_ENV_CONFIG] = json.dumps(config)
    uvicorn.run("nmn.serve.app:_app_from_env", factory=True, workers=workers, **common)


def _return_big_blocks(threshold: int = 256 * 1024) -> None:
    """Have glibc's malloc give blocks of ``threshold`` bytes and more straight back to the OS.

    By default glibc raises its mmap threshold after the first large free (up to
    32 MiB), so request bodies and tensors then come from per-thread heaps that
    keep the memory after the request. A fixed threshold turns that off. A
    no-op where the C library is not glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, int(threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _app_from_env():
    """uvicorn factory for worker processes; reads the config ``serve`` set."""
    _return_big_blocks()
    config = json.loads(os.environ[_ENV_CONFIG])
    return create_app(config.pop("model_path_or_dir"), **config)
