"""What ``keras_io`` and ``tf_io`` share: framework-free helpers of export and load (numpy and onnx only).

Both hosts keep Yat kernels under the same attribute names and read the same ONNX attributes for standard ops;
the native tensor work stays in each module.

>>> import numpy as np
>>> pad_spec([None, np.array([0, 1, 0, 2])], {"mode": "edge"})
([(0, 0), (1, 2)], 'replicate')
>>> conv_transpose_attrs({"strides": [2]}, 1)
(1, [2], [1], [(0, 0)], [0])
"""

from __future__ import annotations

import os

import numpy as np

from nmn.core.conv import pairs_from_onnx
from nmn.interchange.graph import save_model

HOST_NAMES = {"YatNMN": {"weight": "kernel"}, "YatConv": {"weight": "kernel"},
              "YatConvTranspose": {"weight": "kernel"},
              "MultiHeadYatAttention": {f"{p}_weight": f"{p}_kernel" for p in ("q", "k", "v", "out")},
              "RotaryYatAttention": {f"{p}_weight": f"{p}_kernel" for p in ("q", "k", "v", "out")},
              "YatEmbed": {}}
"""Canonical param name -> host attribute name, where they differ, per Yat kind (both hosts alike)."""

PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
"""ONNX ``Pad`` modes -> the padding modes of :func:`nmn._tfkeras.padding.pad_axis`."""


def write(proto, path, inline):
    """Save ``proto`` at ``path`` (nothing when ``path`` is None); with ``inline``, also the inlined copy."""
    if path is None:
        return
    save_model(proto, path)
    if inline:
        from nmn.interchange.graph import inline_copy

        p = os.fspath(path)
        save_model(inline_copy(proto), p[:-5] + ".inlined.onnx" if p.endswith(".onnx") else p + ".inlined")


def onnx_axes(x, a):
    """The ``axes`` of a reduction, Squeeze or Unsqueeze: the second input (opset 13+) or the attribute."""
    if len(x) > 1 and x[1] is not None:
        return [int(v) for v in np.asarray(x[1]).reshape(-1)]
    return a.get("axes")


def pad_spec(x, a):
    """``(pads as (lo, hi) per axis, padding mode)`` of an ONNX ``Pad`` node's inputs and attributes."""
    pads = pairs_from_onnx([int(p) for p in np.asarray(x[1]).reshape(-1)])
    return pads, PAD_MODES[a.get("mode", "constant")]


def spatial_pads(a, rank):
    """The ``pads`` attribute of a Conv / pool node as ``(lo, hi)`` per spatial axis (default none)."""
    return pairs_from_onnx(a.get("pads") or [0] * (2 * rank))


def conv_transpose_attrs(a, rank):
    """``(group, strides, dilations, pads, output_padding)`` of an ONNX ``ConvTranspose`` node, with defaults."""
    return (int(a.get("group", 1)), a.get("strides") or [1] * rank, a.get("dilations") or [1] * rank,
            spatial_pads(a, rank), a.get("output_padding") or [0] * rank)
