"""ONNX interchange: export a model of any of the six frameworks, load an nmn ONNX file into any of them.

The one place that sees both ONNX and the frameworks (each imported lazily).

    >>> from nmn.interchange import FRAMEWORKS
    >>> FRAMEWORKS
    ('torch', 'nnx', 'linen', 'keras', 'tf', 'mlx')
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from nmn.interchange.graph import ExportError, GraphBuilder, check_against, manifest_of, run_onnx, save_model
from nmn.interchange.reader import UnsupportedModelError, read_model
from nmn.interchange.registry import EntryPoints
from nmn.interchange.validate import ModelValidationError, load_model_safely, validate_model

FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
_MODULES = {
    "torch": "torch_io",
    "nnx": "jax_io",
    "linen": "jax_io",
    "keras": "keras_io",
    "tf": "tf_io",
    "mlx": "mlx_io",
}
_EXTRAS = {"torch": "torch", "nnx": "jax", "linen": "jax", "keras": "keras", "tf": "tf", "mlx": "mlx"}


if TYPE_CHECKING:
    import onnx


def _io(framework: str) -> ModuleType:
    if framework not in _MODULES:
        raise ValueError(f"unknown framework {framework!r}; expected one of {list(FRAMEWORKS)}")
    try:
        return importlib.import_module(f"nmn.interchange.{_MODULES[framework]}")
    except ImportError as err:
        raise ImportError(
            f'{framework} interchange is unavailable ({err}); pip install "nmn[{_EXTRAS[framework]}]>=1.0"'
        ) from err


def detect_framework(model: Any) -> str:
    """Name the framework of a model object from its class's module (no framework is imported here)."""
    for cls in type(model).__mro__:
        mod = cls.__module__ or ""
        if mod.startswith(("torch.nn", "nmn.interchange.torch_io")):
            return "torch"
        if mod.startswith("flax.nnx") or mod.startswith("flax.experimental.nnx"):
            return "nnx"
        if mod.startswith("flax.linen"):
            return "linen"
        if mod.startswith("keras"):
            return "keras"
        if mod.startswith("mlx.nn"):
            return "mlx"
        if mod.startswith("tensorflow"):
            return "tf"
    raise ValueError(f"cannot tell which framework {type(model).__name__} belongs to; pass framework=")


def _entry(framework: str) -> EntryPoints:
    return _io(framework).ENTRY_POINTS[framework]


def export(
    model: Any,
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    framework: str | None = None,
    **options: Any,
) -> onnx.ModelProto:
    """Export ``model`` to ONNX (checked in onnxruntime before anything is written); see each framework's
    ``nmn.interchange.<framework>_io.export`` for its options (Linen needs ``variables=``)."""
    fw = framework or detect_framework(model)
    return _entry(fw).export(model, example_inputs, path, **options)


def load(source: str | os.PathLike | onnx.ModelProto, framework: str, **options: Any) -> Any:
    """Load an nmn ONNX file (path or ``ModelProto``) as a trainable model of ``framework``."""
    return _entry(framework).load(source, **options)


__all__ = [
    "FRAMEWORKS",
    "ExportError",
    "GraphBuilder",
    "ModelValidationError",
    "UnsupportedModelError",
    "check_against",
    "detect_framework",
    "export",
    "load",
    "load_model_safely",
    "manifest_of",
    "read_model",
    "run_onnx",
    "save_model",
    "validate_model",
]


def predict(model: Any, framework: str, inputs: list) -> list[np.ndarray]:
    """Run a (loaded or native) model of ``framework`` on numpy inputs in inference mode; numpy outputs.

    A small convenience for comparisons across frameworks (the demo, the interchange matrix, ``nmn convert``).
    """
    outs = _entry(framework).predict(model, [np.asarray(x) for x in inputs])
    return [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


__all__.append("predict")
