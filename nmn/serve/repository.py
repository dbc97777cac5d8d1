"""The models a server holds: one validated file, one shared onnxruntime session each."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nmn.interchange.safe_load import DEFAULT_MAX_BYTES, UnsafeModelError, load_model_safely
from nmn.interchange.validate import ModelValidationError, validate_model

from ._protocol import ORT_TO_DATATYPE
from .batching import Batcher

PLATFORM = "onnxruntime_onnx"


class ModelLoadError(ValueError):
    """A model could not be served; the message names the file."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a symbolic or unknown dimension

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _specs(nodes, path: str, kind: str) -> list[TensorSpec]:
    out = []
    for n in nodes:
        datatype = ORT_TO_DATATYPE.get(n.type)
        if datatype is None:
            raise ModelLoadError(
                f"model file {path!r}: {kind} {n.name!r} has type {n.type}, which the Open "
                f"Inference Protocol cannot carry (supported: {sorted(ORT_TO_DATATYPE)})"
            )
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (n.shape or []))
        out.append(TensorSpec(n.name, datatype, shape))
    return out


class ServedModel:
    """One model: metadata, a shared session, and optionally a batcher."""

    def __init__(
        self,
        path: str,
        *,
        name: str | None = None,
        max_model_bytes: int = DEFAULT_MAX_BYTES,
        intra_op_threads: int | None = None,
        max_batch: int | None = None,
        batch_timeout_ms: float = 2.0,
        on_batch: Callable[[str, int, int], None] | None = None,
    ):
        import onnxruntime as ort

        self.path = path
        self.name = name or os.path.splitext(os.path.basename(path))[0]
        model = load_model_safely(path, max_bytes=max_model_bytes)
        try:
            # nmn's own rules (manifest, nmn v1 bodies and attributes, inputs and outputs); model-local helper
            # functions outside nmn v1 may be served
            validate_model(model, source=f"model file {path!r}", full_check=False, local_functions=True)
        except ModelValidationError as exc:
            raise UnsafeModelError(str(exc)) from None
        opts = ort.SessionOptions()
        if intra_op_threads:
            opts.intra_op_num_threads = int(intra_op_threads)
        still_external = any(
            t.data_location == 1
            for t in model.graph.initializer  # TensorProto.EXTERNAL
        )
        try:
            if still_external:
                # Too big for one protobuf: the references were validated above,
                # onnxruntime reads them relative to the (checked) file.
                self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            else:
                self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"model file {path!r}: onnxruntime cannot load it: {str(exc).strip()}") from None
        del model
        self.inputs = _specs(self.session.get_inputs(), path, "input")
        self.outputs = _specs(self.session.get_outputs(), path, "output")
        self.input_by_name = {t.name: t for t in self.inputs}
        self.output_names = [t.name for t in self.outputs]

        self.batchable = (
            bool(self.inputs)
            and all(len(t.shape) >= 1 and t.shape[0] == -1 for t in self.inputs)
            and all(not t.shape or t.shape[0] == -1 for t in self.outputs)
        )
        self.batcher: Batcher | None = None
        if max_batch and max_batch > 1 and self.batchable:
            cb = None
            if on_batch is not None:
                cb = lambda requests, rows: on_batch(self.name, requests, rows)
            self.batcher = Batcher(
                self._run_all,
                max_batch=max_batch,
                timeout_s=batch_timeout_ms / 1000.0,
                name=self.name,
                on_batch=cb,
            )

    # ------------------------------------------------------------------ running

    def _run_all(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(None, feeds)
        return dict(zip(self.output_names, values))

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run synchronously (in the caller's thread) and return {name: array}."""
        names = output_names or self.output_names
        values = self.session.run(names, feeds)
        return dict(zip(names, values))

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": PLATFORM,
            "inputs": [t.as_dict() for t in self.inputs],
            "outputs": [t.as_dict() for t in self.outputs],
        }

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


def model_files(path: str | os.PathLike) -> list[str]:
    """The .onnx files a PATH names: the file itself, or a folder's files (sorted)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".onnx") and not f.startswith("."))
        if not files:
            raise ModelLoadError(f"folder {path!r} holds no .onnx files")
        return files
    if not os.path.exists(path):
        raise ModelLoadError(f"model path {path!r} does not exist")
    if not path.endswith(".onnx"):
        raise ModelLoadError(f"model path {path!r} is neither a folder nor a .onnx file")
    return [path]


def _outside_link(folder: str, path: str) -> str | None:
    """Why ``path`` (an entry of ``folder``) is refused as a symbolic link leaving the folder, else ``None``."""
    if not os.path.islink(path):
        return None
    real_dir = os.path.realpath(folder)
    target = os.path.realpath(path)
    if os.path.commonpath([real_dir, target]) != real_dir:
        return (
            f"is a symbolic link to {os.readlink(path)!r}, outside the folder {folder!r}; "
            "links that leave the folder are refused"
        )
    return None


class Repository:
    """All models under a path, loaded and validated up front.

    On a folder, every good file is served and every refused one is kept in :attr:`refused` (model name ->
    one-line reason, also logged as a warning and listed by ``/v2/repository/index`` as ``UNAVAILABLE``);
    ``strict=True`` refuses the whole folder if any file is bad. A folder where no file is good, or a single
    bad file, raises :class:`ModelLoadError`.
    """

    def __init__(self, path: str | os.PathLike, *, strict: bool = False, **kwargs: Any):
        import logging

        log = logging.getLogger("nmn.serve")
        self.models: dict[str, ServedModel] = {}
        self.refused: dict[str, str] = {}
        path = os.fspath(path)
        folder = os.path.isdir(path)
        first: Exception | None = None
        try:
            for f in model_files(path):
                name = os.path.splitext(os.path.basename(f))[0]
                try:
                    reason = _outside_link(path, f) if folder else None
                    if reason is not None:
                        raise ModelLoadError(f"model file {f!r} {reason}")
                    m = ServedModel(f, **kwargs)
                except (ValueError, OSError) as exc:
                    if strict or not folder:
                        raise
                    first = first or exc
                    self.refused[name] = " ".join(str(exc).split())
                    log.warning("refused model %r: %s", name, self.refused[name])
                    continue
                self.models[m.name] = m
            if folder and not self.models:
                if len(self.refused) == 1:
                    raise first
                raise ModelLoadError(
                    f"folder {path!r}: no file could be served: "
                    + "; ".join(f"{n}: {r}" for n, r in self.refused.items())
                )
        except Exception:
            self.close()
            raise

    def index(self) -> list[dict[str, str]]:
        """The repository index: every served model ``READY``, every refused one ``UNAVAILABLE`` with its reason."""
        rows = [{"name": n, "version": "1", "state": "READY"} for n in self.models]
        rows += [{"name": n, "version": "1", "state": "UNAVAILABLE", "reason": r} for n, r in self.refused.items()]
        return sorted(rows, key=lambda r: r["name"])

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    def close(self) -> None:
        for m in self.models.values():
            m.close()
