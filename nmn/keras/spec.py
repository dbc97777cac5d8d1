"""Keras layers <-> the neutral layer description (docs/design.md §S): ``to_spec`` and ``from_spec``.

Canonical params are float32 numpy arrays in the ONNX layout: dense ``weight (O, I)`` (Keras ``kernel (I, O)``),
conv ``weight (M, C/G, *k)`` (Keras ``(*k, C/G, M)``), transposed conv ``weight (C, M/G, *k)`` (Keras
``(*k, M/G, C)``), attention projections ``(out, in)`` (Keras ``(in, out)``).

>>> from nmn.keras import YatNMN
>>> kind, config, params = to_spec(from_spec("YatNMN", {"in_features": 3, "out_features": 2},
...                                          {"weight": np.ones((2, 3), np.float32)}))
>>> kind, config["out_features"], sorted(params)
('YatNMN', 2, ['alpha', 'bias', 'weight'])
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from nmn._tfkeras import spec as _spec
from nmn._tfkeras.spec import KINDS
from nmn.keras.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.keras.conv import YatConv1D, YatConv2D, YatConv3D, _YatConvNd
from nmn.keras.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D, _YatConvTransposeNd
from nmn.keras.dense import YatNMN
from nmn.keras.embed import YatEmbed

__all__ = ["to_spec", "from_spec", "KINDS"]

CONV = {1: YatConv1D, 2: YatConv2D, 3: YatConv3D}
CONV_TRANSPOSE = {1: YatConvTranspose1D, 2: YatConvTranspose2D, 3: YatConvTranspose3D}
_CLASSES = {
    "YatNMN": YatNMN,
    "YatConv": CONV,
    "YatConvTranspose": CONV_TRANSPOSE,
    "MultiHeadYatAttention": MultiHeadYatAttention,
    "RotaryYatAttention": RotaryYatAttention,
    "YatEmbed": YatEmbed,
}
_TYPES = {**_CLASSES, "YatConv": _YatConvNd, "YatConvTranspose": _YatConvTransposeNd}


def to_spec(layer: keras.layers.Layer) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """``(kind, config, params)`` of a built nmn.keras layer (params canonical float32 numpy)."""
    if not layer.built:
        raise ValueError(f"to_spec: {type(layer).__name__} {layer.name!r} is not built yet (call it once)")
    return _spec.describe(layer, "keras", _TYPES, "units")


def _build(layer, kind, widths):
    """Build for ``widths`` with zero initialisers (the values are overwritten at once; random init compiles per
    shape on JAX)."""
    if kind == "YatNMN":
        shapes = [(None, widths[0])]
    elif kind in ("YatConv", "YatConvTranspose"):
        shape = [None] * (layer.rank + 2)
        shape[-1 if layer.data_format == "channels_last" else 1] = widths[0]
        shapes = [tuple(shape)]
    elif kind == "RotaryYatAttention":
        shapes = [(None, None, widths[0])]
    elif kind == "MultiHeadYatAttention":
        shapes = [(None, None, w) for w in widths]
    else:
        shapes = [None]
    names = [n for n in ("kernel_initializer", "bias_initializer", "embeddings_initializer") if hasattr(layer, n)]
    saved = {n: getattr(layer, n) for n in names}
    try:
        for n in names:
            setattr(layer, n, keras.initializers.Zeros())
        layer.build(*shapes)
    finally:
        for n, v in saved.items():
            setattr(layer, n, v)


def from_spec(
    kind: str, config: dict[str, Any], params: dict[str, np.ndarray], **host_kwargs: Any
) -> keras.layers.Layer:
    """A built nmn.keras layer for ``(kind, config, params)``; ``host_kwargs`` go to the constructor
    (e.g. ``name``, ``data_format``)."""
    return _spec.from_spec(kind, config, params, host_kwargs, classes=_CLASSES, build=_build, framework="keras")
