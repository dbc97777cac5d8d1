"""What ``keras_io`` and ``tf_io`` share and the other loaders do not: framework-free, numpy and nmn only.

Both hosts keep Yat kernels under the same attribute names and pad with the same ``pad_axis`` (torch padding
mode names); the ONNX attribute parsing every loader needs lives in :mod:`nmn.interchange._optable`, the save
step in :mod:`nmn.interchange._export_common`.

>>> import numpy as np
>>> pad_spec([None, np.array([0, 1, 0, 2])], {"mode": "edge"})
([(0, 0), (1, 2)], 'replicate')
>>> conv_transpose_attrs({"strides": [2]}, 1)
(1, [2], [1], [(0, 0)], [0])
"""

from __future__ import annotations

import numpy as np

from nmn.core.conv import PADDING_MODES, pairs_from_onnx
from nmn.interchange._optable import axes as onnx_axes, pad_pairs

HOST_NAMES = {"YatNMN": {"weight": "kernel"}, "YatConv": {"weight": "kernel"},
              "YatConvTranspose": {"weight": "kernel"},
              "MultiHeadYatAttention": {f"{p}_weight": f"{p}_kernel" for p in ("q", "k", "v", "out")},
              "RotaryYatAttention": {f"{p}_weight": f"{p}_kernel" for p in ("q", "k", "v", "out")},
              "YatEmbed": {}}
"""Canonical param name -> host attribute name, where they differ, per Yat kind (both hosts alike)."""

PAD_MODES = {onnx_mode: mode for mode, onnx_mode in PADDING_MODES.items()}
"""ONNX ``Pad`` modes -> the (torch) padding modes of ``pad_axis``."""


def pad_spec(x, a):
    """``(pads as (lo, hi) per axis, padding mode)`` of an ONNX ``Pad`` node's inputs and attributes."""
    pads = pairs_from_onnx([int(p) for p in np.asarray(x[1]).reshape(-1)])
    return pads, PAD_MODES[a.get("mode", "constant")]


def conv_transpose_attrs(a, rank):
    """``(group, strides, dilations, pads, output_padding)`` of an ONNX ``ConvTranspose`` node, with defaults."""
    return (int(a.get("group", 1)), a.get("strides") or [1] * rank, a.get("dilations") or [1] * rank,
            pad_pairs(a, rank), a.get("output_padding") or [0] * rank)


def pad_node(x, a, pad_axis):
    """An ONNX ``Pad`` node: ``x[0]`` padded axis by axis with the host's ``pad_axis(h, axis, lo, hi, mode)``."""
    pads, mode = pad_spec(x, a)
    h = x[0]
    for i, (lo, hi) in enumerate(pads):
        h = pad_axis(h, i, lo, hi, mode)
    return h


def reduce_node(fn, to_axis):
    """The table entry of an ONNX Reduce* node from the host's ``fn(x, axis=..., keepdims=...)``; ``to_axis``
    turns the axes list into the host's ``axis`` argument (an empty or absent list reduces everything, or is a
    no-op with ``noop_with_empty_axes``)."""
    def run(x, a):
        axes = onnx_axes(x, a)
        if not axes and a.get("noop_with_empty_axes", 0):
            return x[0]
        return fn(x[0], axis=to_axis(axes) if axes else None, keepdims=bool(a.get("keepdims", 1)))
    return run
