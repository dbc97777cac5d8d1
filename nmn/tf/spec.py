"""TensorFlow modules <-> the neutral layer description (docs/design.md §S): ``to_spec`` and ``from_spec``.

Canonical params are float32 numpy arrays in the ONNX layout: dense ``weight (O, I)`` (TF ``kernel (I, O)``),
conv ``weight (M, C/G, *k)`` (TF ``(*k, C/G, M)``), transposed conv ``weight (C, M/G, *k)`` (TF
``(*k, M/G, C)``), attention projections ``(out, in)`` (TF ``(in, out)``).

>>> from nmn.tf import YatNMN
>>> kind, config, params = to_spec(from_spec("YatNMN", {"in_features": 3, "out_features": 2},
...                                          {"weight": np.ones((2, 3), np.float32)}))
>>> kind, config["out_features"], sorted(params)
('YatNMN', 2, ['alpha', 'bias', 'weight'])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from nmn._tfkeras import spec as _spec
from nmn._tfkeras.spec import KINDS
from nmn.tf.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.tf.conv import YatConv1D, YatConv2D, YatConv3D, _YatConvNd
from nmn.tf.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D, _YatConvTransposeNd
from nmn.tf.dense import YatNMN
from nmn.tf.embed import YatEmbed

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


def to_spec(layer: tf.Module) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """``(kind, config, params)`` of a built nmn.tf layer (params canonical float32 numpy)."""
    if not getattr(layer, "built", True):
        raise ValueError(f"to_spec: {type(layer).__name__} {layer.name!r} is not built yet (call it once)")
    return _spec.describe(layer, "tf", _TYPES, "features")


def _build(layer, kind, widths):
    """Create the variables for the input widths (``YatEmbed`` creates its table at construction)."""
    if kind != "YatEmbed":
        layer.build(*widths)


def from_spec(kind: str, config: dict[str, Any], params: dict[str, np.ndarray], **host_kwargs: Any) -> tf.Module:
    """A built nmn.tf layer for ``(kind, config, params)``; ``host_kwargs`` go to the constructor
    (e.g. ``name``, ``data_format``)."""
    return _spec.from_spec(kind, config, params, host_kwargs, classes=_CLASSES, build=_build, framework="tf")
