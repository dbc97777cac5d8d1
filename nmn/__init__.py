"""nmn: Yat layers for six frameworks, defined once as ONNX functions.

``import nmn`` imports no deep-learning framework; pick one explicitly::

    >>> import nmn
    >>> isinstance(nmn.__version__, str)
    True

Framework namespaces: ``nmn.torch``, ``nmn.nnx``, ``nmn.linen``, ``nmn.keras``, ``nmn.tf``, ``nmn.mlx``.
Interchange (ONNX export and load): ``nmn.interchange``.
"""

from __future__ import annotations

__version__ = "1.0.0"

_FRAMEWORK_MODULES = {
    "torch": "torch",
    "nnx": "flax",
    "linen": "flax",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "onnxscript": "onnxscript",
}


def doctor() -> dict[str, str | None]:
    """Return ``{package: version or None}`` for every optional dependency; never raises.

    >>> sorted(doctor())[:3]
    ['flax', 'jax', 'keras']
    """
    from importlib import metadata

    result: dict[str, str | None] = {}
    for package in sorted(set(_FRAMEWORK_MODULES.values()) | {"jax"}):
        # TensorFlow's Linux CPU wheel is distributed as ``tensorflow-cpu``
        for dist in (package, "tensorflow-cpu") if package == "tensorflow" else (package,):
            try:
                result[package] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                result[package] = None
    return result
