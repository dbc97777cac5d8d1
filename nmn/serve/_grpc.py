"""The Open Inference Protocol's gRPC API (``inference.GRPCInferenceService``) on an :class:`Engine`.

The messages and the service come from ``grpc_predict_v2.proto``, compiled by
grpcio-tools' protoc into the descriptor set ``grpc_predict_v2.binpb`` (the
command is in the .proto). The message classes are made from it in a private
descriptor pool rather than by importing generated ``_pb2`` modules: those
would register the protocol's ``inference.*`` names in protobuf's default pool,
where tritonclient's and kserve's generated modules register the same names, and
two such modules cannot be imported into one process. The server is grpcio's threaded server: each
call runs in a pool thread, onnxruntime releases the GIL while it runs, and the
models, limits, batching, statistics and metrics are the REST app's own.
Errors carry the same messages as REST, with the matching status code
(400 -> INVALID_ARGUMENT, 404 -> NOT_FOUND, 413 -> RESOURCE_EXHAUSTED, ...).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ._engine import EXTENSIONS, HTTP_TO_GRPC, SERVER_NAME, Engine, runtime_error
from ._protocol import DATATYPE_TO_NUMPY, ProtocolError, array_from_bytes, check_finite, datatype_of, serialize_bytes

__all__ = ["start_grpc_server"]

# InferTensorContents field per datatype.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR_SET = os.path.join(os.path.dirname(__file__), "grpc_predict_v2.binpb")


class _Messages:
    """The protocol's message classes (``pb.ModelInferRequest``, ...), from a private pool."""

    def __init__(self, path: str = DESCRIPTOR_SET):
        self.pool = descriptor_pool.DescriptorPool()
        with open(path, "rb") as fh:
            for f in descriptor_pb2.FileDescriptorSet.FromString(fh.read()).file:
                self.pool.Add(f)
        self.service = self.pool.FindServiceByName(SERVICE)
        self.DataType = self.pool.FindEnumTypeByName("inference.DataType")

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            desc = self.pool.FindMessageTypeByName(f"inference.{name}")
        except KeyError:
            raise AttributeError(f"the protocol has no message {name!r}") from None
        cls = message_factory.GetMessageClass(desc)
        setattr(self, name, cls)
        return cls


pb = _Messages()


def _abort(context: grpc.ServicerContext, exc: ProtocolError):
    code = getattr(grpc.StatusCode, HTTP_TO_GRPC.get(exc.status, "INTERNAL"))
    context.abort(code, str(exc))


class _Servicer:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ------------------------------------------------------------ health, metadata

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        try:
            self.engine.find(request.name, request.version)
        except ProtocolError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        from .app import _version

        return pb.ServerMetadataResponse(name=SERVER_NAME, version=_version(), extensions=EXTENSIONS)

    def ModelMetadata(self, request, context):
        try:
            meta = self.engine.find(request.name, request.version).metadata()
        except ProtocolError as exc:
            _abort(context, exc)
        T = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[T(**t) for t in meta["inputs"]],
            outputs=[T(**t) for t in meta["outputs"]],
        )

    def RepositoryIndex(self, request, context):
        M = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[M(**row) for row in self.engine.repo.index()])

    def ModelConfig(self, request, context):
        try:
            cfg = self.engine.config(self.engine.find(request.name, request.version))
        except ProtocolError as exc:
            _abort(context, exc)

        def tensor(kind, t):
            msg = kind(name=t["name"], data_type=pb.DataType.values_by_name[t["data_type"]].number, dims=t["dims"])
            if "reshape" in t:
                msg.reshape.SetInParent()
            return msg

        config = pb.ModelConfig(
            name=cfg["name"],
            platform=cfg["platform"],
            backend=cfg["backend"],
            max_batch_size=cfg["max_batch_size"],
            input=[tensor(pb.ModelInput, t) for t in cfg["input"]],
            output=[tensor(pb.ModelOutput, t) for t in cfg["output"]],
        )
        if "dynamic_batching" in cfg:
            config.dynamic_batching.max_queue_delay_microseconds = cfg["dynamic_batching"][
                "max_queue_delay_microseconds"
            ]
        return pb.ModelConfigResponse(config=config)

    def ModelStatistics(self, request, context):
        try:
            stats = self.engine.statistics(request.name or None, request.version)
        except ProtocolError as exc:
            _abort(context, exc)
        out = pb.ModelStatisticsResponse()
        for s in stats["model_stats"]:
            m = out.model_stats.add(
                name=s["name"],
                version=s["version"],
                last_inference=s["last_inference"],
                inference_count=s["inference_count"],
                execution_count=s["execution_count"],
            )
            for key, d in s["inference_stats"].items():
                getattr(m.inference_stats, key).count = d["count"]
                getattr(m.inference_stats, key).ns = d["ns"]
        return out

    # -------------------------------------------------------------------- inference

    def ModelInfer(self, request, context):
        engine = self.engine
        start = time.perf_counter()
        label = engine.label(request.model_name)
        status = 200
        decode_ns = encode_ns = 0
        try:
            t0 = time.perf_counter_ns()
            model = engine.find(request.model_name, request.model_version)
            feeds = self._feeds(model, request)
            wanted = engine.wanted_outputs(model, [o.name for o in request.outputs])
            decode_ns = time.perf_counter_ns() - t0
            try:
                outputs = engine.run_sync(model, feeds, wanted)
            except ProtocolError:
                raise
            except Exception as exc:
                raise runtime_error(model.name, exc) from None
            t1 = time.perf_counter_ns()
            response = pb.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
            for name, value in outputs.items():
                arr = np.asarray(value)
                datatype = datatype_of(arr)
                response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
                if datatype == "BYTES":
                    response.raw_output_contents.append(serialize_bytes(arr))
                else:
                    response.raw_output_contents.append(
                        np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
                    )
            encode_ns = time.perf_counter_ns() - t1
        except ProtocolError as exc:
            status = exc.status
            engine.record_request(label, status, time.perf_counter() - start)
            _abort(context, exc)
        engine.record_request(label, status, time.perf_counter() - start, decode_ns, encode_ns)
        return response

    def _feeds(self, model, request) -> dict[str, np.ndarray]:
        engine = self.engine
        where = f"model {model.name!r}"
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise ProtocolError(
                f"{where}: {len(raw)} raw_input_contents for {len(request.inputs)} inputs; give one per input, in order"
            )
        if request.parameters:
            for key in request.parameters:
                if key == "classification":
                    raise ProtocolError(f"{where}: the classification extension is not supported")
        feeds: dict[str, np.ndarray] = {}
        budget = [engine.max_values]
        for i, t in enumerate(request.inputs):
            if t.name in feeds:
                raise ProtocolError(f"{where}: input {t.name!r} is given twice")
            shape = list(t.shape)
            engine.check_tensor(model, t.name, t.datatype, shape, budget)
            iwhere = f"{where}, input {t.name!r}"
            if raw:
                if t.HasField("contents"):
                    raise ProtocolError(f"{iwhere}: give either raw_input_contents or contents, not both")
                feeds[t.name] = array_from_bytes(
                    iwhere, t.datatype, shape, raw[i], allow_nonfinite=engine.allow_nonfinite
                )
                continue
            field = _CONTENTS.get(t.datatype)
            if field is None:
                raise ProtocolError(f"{iwhere}: {t.datatype} tensors must come in raw_input_contents")
            values = getattr(t.contents, field)
            count = int(np.prod(shape))
            if len(values) != count:
                raise ProtocolError(
                    f"{iwhere}: shape {shape} needs {count} elements but contents.{field} holds {len(values)}"
                )
            dtype = DATATYPE_TO_NUMPY[t.datatype]
            if t.datatype == "BYTES":
                arr = np.empty(count, dtype=object)
                arr[:] = list(values)
            else:
                wide = np.array(
                    values,
                    dtype=np.float64
                    if dtype.kind == "f"
                    else np.int64
                    if dtype.kind == "i"
                    else np.uint64
                    if dtype.kind == "u"
                    else np.bool_,
                )
                if dtype.kind in "iu" and wide.size:
                    info = np.iinfo(dtype)
                    if int(wide.min()) < info.min or int(wide.max()) > info.max:
                        raise ProtocolError(
                            f"{iwhere}: values from {int(wide.min())} to {int(wide.max())} do not fit "
                            f"{t.datatype} [{info.min}, {info.max}]"
                        )
                arr = wide.astype(dtype)
                if dtype.kind == "f" and not engine.allow_nonfinite:
                    check_finite(iwhere, arr, t.datatype)
            feeds[t.name] = arr.reshape(shape)
        engine.check_feeds(model, feeds)
        return feeds


def start_grpc_server(engine: Engine, port: int, *, host: str = "127.0.0.1", threads: int | None = None) -> grpc.Server:
    """Start the gRPC server for ``engine`` on ``host:port``; returns it (call ``.stop(grace)``)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads or 16, thread_name_prefix="nmn-grpc"),
        options=[
            ("grpc.max_receive_message_length", engine.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ],
        maximum_concurrent_rpcs=512,
    )
    servicer = _Servicer(engine)
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, m.name),
            request_deserializer=message_factory.GetMessageClass(m.input_type).FromString,
            response_serializer=message_factory.GetMessageClass(m.output_type).SerializeToString,
        )
        for m in pb.service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"nmn serve: cannot bind the gRPC port {address}")
    server.start()
    return server
