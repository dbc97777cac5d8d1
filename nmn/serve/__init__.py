"""Serve nmn ONNX models over the Open Inference Protocol (KServe v2 REST and gRPC).

Plain onnxruntime runs every nmn file (the ``nmn`` functions travel inside
it); this package puts it behind the protocol that Triton, KServe and
MLServer clients already speak (JSON and binary tensors, compression, gRPC,
Triton's model config and statistics; see docs/serving.md)::

    $ nmn serve models/ --port 8000 --grpc-port 8001     # or: python -m nmn.serve models/
    $ curl localhost:8000/v2/models/mlp
    $ nmn predict http://127.0.0.1:8000 --model mlp --input x.npy

From Python::

    from nmn.serve import Client
    import numpy as np
    Client("http://127.0.0.1:8000").infer("mlp", {"x": np.zeros((1, 4), np.float32)})
    # {'y': array([[...]], dtype=float32)}

The server imports starlette, uvicorn and prometheus-client (and grpcio with
``--grpc-port``); the safe loader
(:mod:`nmn.interchange.safe_load`) needs only onnx, so names are imported lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Client",
    "ServeError",
    "UnsafeModelError",
    "create_app",
    "load_model_safely",
    "serve",
    "write_triton_repo",
]

_LAZY = {
    "Client": "client",
    "ServeError": "client",
    "create_app": "app",
    "serve": "app",
    "load_model_safely": "nmn.interchange.safe_load",
    "UnsafeModelError": "nmn.interchange.safe_load",
    "write_triton_repo": "triton",
}
# the import names of the serve extra's packages (google: protobuf)
_SERVE_PACKAGES = {"starlette", "uvicorn", "httpx", "prometheus_client", "grpc", "google"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nmn.serve' has no attribute {name!r}")
    from importlib import import_module

    try:
        value = getattr(import_module(module if "." in module else f".{module}", __name__), name)
    except ImportError as err:  # a package of the serve extra is missing: say which extra installs it
        missing = (err.name or "").split(".")[0]
        if missing not in _SERVE_PACKAGES:
            raise
        raise ImportError(
            f'nmn.serve.{name} needs {missing}, from the serve extra: pip install "nmn[serve]>=1.0"', name=err.name
        ) from err
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
