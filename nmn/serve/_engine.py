"""What REST and gRPC share: the models, limits, request validation, running, statistics, metrics."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from ._protocol import (
    DATATYPE_TO_NUMPY,
    DATATYPE_TO_TRITON,
    ProtocolError,
    check_header,
)
from .repository import Repository, ServedModel

SERVER_NAME = "nmn-serve"
UNKNOWN = "_unknown_"  # metrics label for requests naming no served model
EXTENSIONS = ["model_repository", "binary_tensor_data", "model_configuration", "statistics"]

#: Default bound on a request body (after decompression): 64 MiB.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024**2
#: Default bound on the values (elements of all inputs) in one request: 16 Mi.
DEFAULT_MAX_VALUES = 16 * 1024**2

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: gRPC status code names for the HTTP statuses the server answers with.
HTTP_TO_GRPC = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class Metrics:
    """Prometheus metrics of one server (its own registry: two apps never clash)."""

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


@dataclass
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Triton-style statistics of one model (the ``statistics`` extension)."""

    last_inference: int = 0  # ms since the epoch
    inference_count: int = 0  # rows inferred (1 per request for models without a batch dim)
    execution_count: int = 0  # onnxruntime runs
    durations: dict[str, _Duration] = field(
        default_factory=lambda: {
            k: _Duration() for k in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
        }
    )

    def as_dict(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "version": "1",
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {k: d.as_dict() for k, d in self.durations.items()},
            "batch_stats": [],
        }


class Engine:
    """The served models and everything a request goes through, whatever the protocol."""

    def __init__(
        self,
        model_path_or_dir: str | os.PathLike,
        *,
        max_batch: int | None,
        batch_timeout_ms: float,
        max_request_bytes: int,
        max_values: int,
        max_model_bytes: int,
        allow_nonfinite: bool,
        intra_op_threads: int | None,
        executor_threads: int | None,
        strict: bool = False,
    ):
        self.metrics = Metrics()
        self.max_request_bytes = int(max_request_bytes)
        self.max_values = int(max_values)
        self.allow_nonfinite = allow_nonfinite
        self.max_batch = max_batch
        self.batch_timeout_ms = batch_timeout_ms
        self._lock = threading.Lock()
        self.stats: dict[str, ModelStats] = {}
        self.repo = Repository(
            model_path_or_dir,
            max_model_bytes=max_model_bytes,
            intra_op_threads=intra_op_threads,
            max_batch=max_batch,
            batch_timeout_ms=batch_timeout_ms,
            on_batch=self._on_batch,
            strict=strict,  # a folder serves its good files and lists the refused ones, unless strict
        )
        self.stats = {name: ModelStats() for name in self.repo.models}
        self.executor = ThreadPoolExecutor(
            max_workers=executor_threads or min(32, (os.cpu_count() or 1) + 4),
            thread_name_prefix="nmn-serve",
        )

    def _on_batch(self, model: str, requests: int, rows: int) -> None:
        self.metrics.batches.labels(model).observe(requests)
        with self._lock:
            st = self.stats.get(model)
            if st is not None:
                st.execution_count += 1

    def close(self) -> None:
        self.repo.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ lookup

    def find(self, name: str, version: str | None = None) -> ServedModel:
        model = self.repo.get(name)
        if model is None:
            reason = getattr(self.repo, "refused", {}).get(name)
            if reason is not None:
                raise ProtocolError(f"model {name!r} is unavailable: {reason}", 404)
            raise ProtocolError(f"unknown model {name!r}; this server serves {sorted(self.repo.models)}", 404)
        if version not in (None, "", "1"):
            raise ProtocolError(f"model {name!r} has no version {version!r} (only '1')", 404)
        return model

    def label(self, name: str) -> str:
        return name if name in self.repo.models else UNKNOWN

    # -------------------------------------------------------------- validation

    def check_tensor(self, model: ServedModel, name: Any, datatype: Any, shape: Any, budget: list[int]) -> int:
        """Header checks every protocol shares; returns the element count."""
        where = f"model {model.name!r}, input {name!r}"
        spec = model.input_by_name.get(name)
        if spec is None:
            raise ProtocolError(
                f"model {model.name!r}: unexpected input {name!r}; the model's inputs are "
                f"{[t.name for t in model.inputs]}"
            )
        count = check_header(where, datatype, shape, spec.datatype, spec.shape)
        if count == 0:
            # One answer with and without batching (onnxruntime's own errors on
            # empty tensors differ per model and leak its internals).
            raise ProtocolError(f"{where}: shape {list(shape)} holds no values; send at least one row")
        budget[0] -= count
        if budget[0] < 0:
            raise ProtocolError(
                f"model {model.name!r}: the request holds more than the limit of "
                f"{self.max_values} values (nmn serve --max-values); input {name!r} has {count}"
            )
        return count

    def check_feeds(self, model: ServedModel, feeds: Mapping[str, np.ndarray]) -> None:
        where = f"model {model.name!r}"
        missing = [t.name for t in model.inputs if t.name not in feeds]
        if missing:
            raise ProtocolError(
                f"{where}: missing input(s) {missing}; the model needs {[t.name for t in model.inputs]}"
            )
        if model.batchable:
            rows = {a.shape[0] for a in feeds.values()}
            if len(rows) > 1:
                raise ProtocolError(
                    f"{where}: inputs disagree on the batch (first) dimension: "
                    f"{ {n: a.shape[0] for n, a in feeds.items()} }"
                )

    def wanted_outputs(self, model: ServedModel, names: Iterable[Any]) -> list[str]:
        wanted: list[str] = []
        for name in names:
            if name not in model.output_names:
                raise ProtocolError(
                    f"model {model.name!r}: unknown output {name!r}; the model's outputs are {model.output_names}"
                )
            if name not in wanted:
                wanted.append(name)
        return wanted or list(model.output_names)

    # ------------------------------------------------------------------ running

    def run_sync(self, model: ServedModel, feeds: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        """Run in the calling thread (through the batcher when it is on)."""
        t0 = time.perf_counter_ns()
        if model.batcher is not None:
            outputs = model.batcher.submit(feeds).result()
            outputs = {k: outputs[k] for k in wanted}
        else:
            outputs = model.run(feeds, wanted)
        self.record_run(model, feeds, time.perf_counter_ns() - t0)
        return outputs

    def record_run(self, model: ServedModel, feeds: Mapping[str, np.ndarray], ns: int) -> None:
        rows = 1
        if model.batchable and feeds:
            rows = int(next(iter(feeds.values())).shape[0])
        with self._lock:
            st = self.stats[model.name]
            st.inference_count += rows
            if model.batcher is None:
                st.execution_count += 1
            st.durations["compute_infer"].add(ns)
            st.last_inference = int(time.time() * 1000)

    def record_request(self, label: str, status: int, seconds: float, decode_ns: int = 0, encode_ns: int = 0) -> None:
        self.metrics.requests.labels(label).inc()
        self.metrics.latency.labels(label).observe(seconds)
        if status >= 400:
            self.metrics.errors.labels(label, str(status)).inc()
        st = self.stats.get(label)
        if st is None:
            return
        with self._lock:
            st.durations["success" if status < 400 else "fail"].add(int(seconds * 1e9))
            if decode_ns:
                st.durations["compute_input"].add(decode_ns)
            if encode_ns:
                st.durations["compute_output"].add(encode_ns)

    # ---------------------------------------------------------------- metadata

    def statistics(self, name: str | None, version: str | None = None) -> dict[str, Any]:
        names = [self.find(name, version).name] if name else sorted(self.repo.models)
        with self._lock:
            return {"model_stats": [self.stats[n].as_dict(n) for n in names]}

    def config(self, model: ServedModel) -> dict[str, Any]:
        """The model's configuration in Triton's JSON form (``model_configuration`` extension)."""
        batching = model.batcher is not None
        max_batch = model.batcher.max_batch if batching else 0

        def tensors(specs) -> list[dict[str, Any]]:
            out = []
            for t in specs:
                dims = list(t.shape[1:] if batching else t.shape)
                entry: dict[str, Any] = {"name": t.name, "data_type": DATATYPE_TO_TRITON[t.datatype]}
                if dims:
                    entry["dims"] = dims
                else:
                    entry["dims"] = [1]
                    entry["reshape"] = {"shape": []}
                out.append(entry)
            return out

        cfg: dict[str, Any] = {
            "name": model.name,
            "platform": "onnxruntime_onnx",
            "backend": "onnxruntime",
            "max_batch_size": max_batch,
            "input": tensors(model.inputs),
            "output": tensors(model.outputs),
        }
        if batching:
            cfg["dynamic_batching"] = {"max_queue_delay_microseconds": int(self.batch_timeout_ms * 1000)}
        return cfg


def runtime_error(model: str, exc: BaseException) -> ProtocolError:
    """An onnxruntime (or unforeseen) failure as a one-line protocol error."""
    kind = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
    if kind in ("InvalidArgument", "InvalidGraph", "NotImplemented") or isinstance(exc, ValueError):
        return ProtocolError(f"model {model!r}: onnxruntime refused the inputs: {text}", 400)
    return ProtocolError(f"model {model!r}: inference failed ({kind}): {text}", 500)


def numpy_dtype(datatype: str) -> np.dtype:
    return DATATYPE_TO_NUMPY[datatype]
