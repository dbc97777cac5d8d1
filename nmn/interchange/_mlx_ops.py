"""MLX implementations of the standard ONNX ops a loaded nmn file may contain (the loader's op table).

Data arrives in the file's layout (ONNX is channels-first); convolutions and pools move the channels to the end
for MLX and back. Weights are in the file's (canonical ONNX) layout.
"""

from __future__ import annotations

import numpy as np

import mlx.core as mx
import mlx.nn as nn

from nmn.core.conv import transpose_as_conv_pads
from nmn.interchange._optable import (
    OPERATOR_OPS,
    axes as _axes,
    check_auto_pad,
    check_plain_pool,
    flatten_shape,
    gemm as _gemm,
    ints as _shape_arg,
    pad_pairs as _pads,
    pad_value,
    pairs,
    reduce_op as _reduce,
    reshape_dims,
)
from nmn.mlx.functional import _conv as grouped_conv


def last_axis_channels(x):
    """``(N, C, *S) -> (N, *S, C)``."""
    return mx.moveaxis(x, 1, -1)


def first_axis_channels(x):
    """``(N, *S, C) -> (N, C, *S)``."""
    return mx.moveaxis(x, -1, 1)


def _conv(args, a):
    x, w = args[0], args[1]
    rank = w.ndim - 2
    check_auto_pad(a, "Conv", "MLX")
    pairs = _pads(a, rank)
    y = grouped_conv(last_axis_channels(x), mx.moveaxis(w, 1, -1), groups=int(a.get("group", 1)),
                     stride=list(a.get("strides") or [1] * rank),
                     padding=([p[0] for p in pairs], [p[1] for p in pairs]),
                     kernel_dilation=list(a.get("dilations") or [1] * rank))
    if len(args) > 2 and args[2] is not None:
        y = y + args[2]
    return first_axis_channels(y)


def _conv_transpose(args, a):
    x, w = args[0], args[1]
    rank = w.ndim - 2
    g = int(a.get("group", 1))
    c, mg, *k = w.shape
    wm = mx.reshape(mx.moveaxis(mx.reshape(w, (g, c // g, mg, *k)), 1, -1), (g * mg, *k, c // g))
    strides = list(a.get("strides") or [1] * rank)
    dil = list(a.get("dilations") or [1] * rank)
    outpad = list(a.get("output_padding") or [0] * rank)
    lo, hi, crop = [], [], []
    for s0, s1 in transpose_as_conv_pads(_pads(a, rank), k, dil, outpad):
        lo.append(max(s0, 0))
        hi.append(max(s1, 0))
        crop.append((max(-s0, 0), max(-s1, 0)))
    y = grouped_conv(last_axis_channels(x), wm, groups=g, stride=1, padding=(lo, hi), kernel_dilation=dil, input_dilation=strides,
                     flip=True)
    if any(cc != (0, 0) for cc in crop):
        y = y[(slice(None),) + tuple(slice(c0, y.shape[i + 1] - c1) for i, (c0, c1) in enumerate(crop))]
    if len(args) > 2 and args[2] is not None:
        y = y + args[2]
    return first_axis_channels(y)


def _pool(args, a, kind):
    x = last_axis_channels(args[0])
    rank = x.ndim - 2
    k = list(a["kernel_shape"])
    s = list(a.get("strides") or [1] * rank)
    pairs = _pads(a, rank)
    check_plain_pool(a, "MLX")
    cls = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d,
           ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d, ("avg", 3): nn.AvgPool3d}[(kind, rank)]
    widths = [(0, 0)] + pairs + [(0, 0)]
    pool = cls(k, s, 0)
    if kind == "max":
        xp = mx.pad(x, widths, constant_values=-mx.inf) if any(p != (0, 0) for p in pairs) else x
        return first_axis_channels(pool(xp))
    if not any(p != (0, 0) for p in pairs) or a.get("count_include_pad", 0):
        return first_axis_channels(pool(mx.pad(x, widths) if any(p != (0, 0) for p in pairs) else x))
    ones = mx.pad(mx.ones((1, *x.shape[1:-1], 1), dtype=x.dtype), widths)
    return first_axis_channels(pool(mx.pad(x, widths)) / pool(ones))


def _reshape(args, a):
    x, shape = args
    return mx.reshape(x, reshape_dims(x.shape, _shape_arg(shape)))


def _batch_norm(args, a):
    x, scale, bias, mean, var = args
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda t: mx.reshape(t, shape)  # noqa: E731
    return (x - r(mean)) * mx.rsqrt(r(var) + a.get("epsilon", 1e-5)) * r(scale) + r(bias)


def _layer_norm(args, a):
    if a.get("axis", -1) not in (-1,):
        raise ValueError("LayerNormalization over more than the last axis is not supported by the MLX loader")
    return mx.fast.layer_norm(args[0], args[1], args[2] if len(args) > 2 else None, a.get("epsilon", 1e-5))


def _gather(args, a):
    table, ids = args
    ids = ids if isinstance(ids, mx.array) else mx.array(np.asarray(ids))
    return mx.take(table, ids, axis=int(a.get("axis", 0)))


def _pad(args, a):
    x, pads = args[0], _shape_arg(args[1])
    if a.get("mode", "constant") != "constant":
        raise ValueError(f"Pad mode {a['mode']!r} is not supported by the MLX loader")
    return mx.pad(x, pairs(pads, x.ndim), constant_values=pad_value(args))


TABLE = {
    **OPERATOR_OPS,
    "Gemm": _gemm,
    "Neg": lambda x, a: -x[0],
    "Sqrt": lambda x, a: mx.sqrt(x[0]),
    "Relu": lambda x, a: nn.relu(x[0]),
    "Sigmoid": lambda x, a: mx.sigmoid(x[0]),
    "Tanh": lambda x, a: mx.tanh(x[0]),
    "Erf": lambda x, a: mx.erf(x[0]),
    "Softplus": lambda x, a: mx.logaddexp(x[0], 0.0),
    "Softmax": lambda x, a: mx.softmax(x[0], axis=a.get("axis", -1), precise=True),
    "LogSoftmax": lambda x, a: x[0] - mx.logsumexp(x[0], axis=a.get("axis", -1), keepdims=True),
    "Flatten": lambda x, a: mx.reshape(x[0], flatten_shape(x[0].shape, a.get("axis", 1))),
    "Reshape": _reshape,
    "Transpose": lambda x, a: mx.transpose(x[0], a.get("perm") or list(range(x[0].ndim))[::-1]),
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": lambda x, a: _pool(x, a, "max"),
    "AveragePool": lambda x, a: _pool(x, a, "avg"),
    "GlobalAveragePool": lambda x, a: mx.mean(x[0], axis=tuple(range(2, x[0].ndim)), keepdims=True),
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Gather": _gather,
    "Concat": lambda x, a: mx.concatenate(list(x), axis=a["axis"]),
    "ReduceMean": _reduce(mx.mean),
    "ReduceSum": _reduce(mx.sum),
    "Squeeze": lambda x, a: mx.squeeze(x[0], axis=_axes(x, a)) if _axes(x, a) else mx.squeeze(x[0]),
    "Unsqueeze": lambda x, a: mx.expand_dims(x[0], _axes(x, a)),
    "Pad": _pad,
}


