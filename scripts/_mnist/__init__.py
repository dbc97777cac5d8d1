"""Private helpers of ``scripts/mnist_parity.py``: one small module per framework plus the shared pieces.

Every framework module defines the same three things, so the driver never branches on the framework:

``Trainer(hp)``
    builds the MLP ``Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10)`` and its AdamW; has
    ``param_count()``, ``train_epoch(x, y, batch_size, progress) -> mean train loss``, ``logits(x, batch_size)``
    and ``export(path, example)`` (through ``nmn.interchange``).
``load_logits(path, x, batch_size)``
    loads an nmn ONNX file (from any framework) with ``nmn.interchange.load`` and returns its logits.
``versions()``
    the library versions that matter for that framework.

Only numpy arrays cross the boundary: data ``(N, 28, 28) float32`` in [0, 1], labels ``(N,) int32``, logits
``(N, 10) float32``. Losses and accuracies are computed once, in :mod:`_mnist.common`, from the logits.
"""

from __future__ import annotations

import importlib
import os
import sys

# A run name is a framework, except Keras, which runs once per backend ("keras-jax", ...).
FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
RUN_NAMES = ("torch", "nnx", "linen", "keras-tensorflow", "keras-jax", "keras-torch", "tf", "mlx")
LABELS = {
    "torch": "PyTorch",
    "nnx": "Flax NNX",
    "linen": "Flax Linen",
    "keras-tensorflow": "Keras 3 (TensorFlow)",
    "keras-jax": "Keras 3 (JAX)",
    "keras-torch": "Keras 3 (PyTorch)",
    "tf": "TensorFlow",
    "mlx": "MLX (CPU)",
}
_MODULES = {
    "torch": "torch_fw",
    "nnx": "nnx_fw",
    "linen": "linen_fw",
    "keras": "keras_fw",
    "tf": "tf_fw",
    "mlx": "mlx_fw",
}


def split_run_name(name: str) -> tuple[str, str | None]:
    """``"keras-jax"`` -> ``("keras", "jax")``; ``"torch"`` -> ``("torch", None)``."""
    if name.startswith("keras"):
        return "keras", (name.split("-", 1)[1] if "-" in name else os.environ.get("KERAS_BACKEND", "tensorflow"))
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r}; expected one of {list(FRAMEWORKS)} or keras-<backend>")
    return name, None


def run_name(framework: str, keras_backend: str | None = None) -> str:
    if framework != "keras":
        return framework
    if keras_backend is None:
        keras_backend = (
            sys.modules["keras"].backend.backend()
            if "keras" in sys.modules
            else os.environ.get("KERAS_BACKEND", "tensorflow")
        )
    return f"keras-{keras_backend}"


def framework_module(framework: str, keras_backend: str | None = None):
    """Import the helper module of ``framework`` (for Keras, fix the backend first: once per process)."""
    if framework == "keras":
        if "keras" in sys.modules:  # already imported: its backend is fixed for this process
            current = sys.modules["keras"].backend.backend()
            if keras_backend and keras_backend != current:
                raise RuntimeError(
                    f"Keras is already imported with the {current!r} backend in this process; "
                    f"run the {keras_backend!r} backend in its own process"
                )
        else:
            os.environ["KERAS_BACKEND"] = keras_backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    return importlib.import_module(f"_mnist.{_MODULES[framework]}")
