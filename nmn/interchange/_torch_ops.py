"""The ONNX op table of :mod:`nmn.interchange.torch_io`'s loader: each standard ONNX op as torch code."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

from nmn.interchange._optable import (
    OPERATOR_OPS,
    axes,
    flatten_shape,
    gemm as _gemm,
    pad_pairs as _pads,
    reshape_dims,
)


def _torch_dtype(a: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(a))


def _conv(args, a):
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    rank = w.dim() - 2
    pairs = _pads(a, rank)
    if any(lo != hi for lo, hi in pairs):
        x = TF.pad(x, [p for lo_hi in reversed(pairs) for p in lo_hi])
        padding = 0
    else:
        padding = [lo for lo, _ in pairs]
    fn = (TF.conv1d, TF.conv2d, TF.conv3d)[rank - 1]
    return fn(x, w, bias, stride=a.get("strides") or 1, padding=padding, dilation=a.get("dilations") or 1,
              groups=a.get("group", 1))


def _conv_transpose(args, a):
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    rank = w.dim() - 2
    pairs = _pads(a, rank)
    fn = (TF.conv_transpose1d, TF.conv_transpose2d, TF.conv_transpose3d)[rank - 1]
    y = fn(x, w, bias, stride=a.get("strides") or 1, padding=0, output_padding=a.get("output_padding") or 0,
           groups=a.get("group", 1), dilation=a.get("dilations") or 1)
    index = [slice(None), slice(None)] + [slice(lo, y.shape[2 + i] - hi) for i, (lo, hi) in enumerate(pairs)]
    return y[tuple(index)]


def _pool(args, a, kind):
    x = args[0]
    rank = x.dim() - 2
    pairs = _pads(a, rank)
    k, s = a["kernel_shape"], a.get("strides") or [1] * rank
    if any(lo != hi for lo, hi in pairs):
        raise ValueError(f"asymmetric pool padding {pairs} is not supported in the torch loader")
    pad = [lo for lo, _ in pairs]
    if kind == "max":
        return (TF.max_pool1d, TF.max_pool2d, TF.max_pool3d)[rank - 1](x, k, s, pad)
    return (TF.avg_pool1d, TF.avg_pool2d, TF.avg_pool3d)[rank - 1](x, k, s, pad,
                                                                   count_include_pad=bool(a.get("count_include_pad", 0)))


def _reshape(args, a):
    x, shape = args
    return x.reshape(reshape_dims(x.shape, shape.tolist()))


def _batch_norm(args, a):
    x, scale, bias, mean, var = args
    return TF.batch_norm(x, mean, var, scale, bias, training=False, eps=a.get("epsilon", 1e-5))


def _axes(args, a):
    return axes(args, a, lambda v: [int(i) for i in v.tolist()])


TABLE = {
    **OPERATOR_OPS,
    "Gemm": _gemm,
    "Sqrt": lambda x, a: torch.sqrt(x[0]),
    "Relu": lambda x, a: torch.relu(x[0]),
    "Sigmoid": lambda x, a: torch.sigmoid(x[0]),
    "Tanh": lambda x, a: torch.tanh(x[0]),
    "Erf": lambda x, a: torch.erf(x[0]),
    "Softplus": lambda x, a: TF.softplus(x[0]),
    "Softmax": lambda x, a: torch.softmax(x[0], a.get("axis", -1)),
    "LogSoftmax": lambda x, a: torch.log_softmax(x[0], a.get("axis", -1)),
    "Flatten": lambda x, a: x[0].reshape(flatten_shape(x[0].shape, a.get("axis", 1))),
    "Reshape": _reshape,
    "Transpose": lambda x, a: x[0].permute(*a["perm"]),
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": lambda x, a: _pool(x, a, "max"),
    "AveragePool": lambda x, a: _pool(x, a, "avg"),
    "GlobalAveragePool": lambda x, a: x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True),
    "LayerNormalization": lambda x, a: TF.layer_norm(x[0], x[0].shape[-1:], x[1], x[2] if len(x) > 2 else None,
                                                     a.get("epsilon", 1e-5)),
    "BatchNormalization": _batch_norm,
    "Gather": lambda x, a: torch.index_select(x[0], a.get("axis", 0), x[1].reshape(-1)).reshape(
        *x[1].shape, *x[0].shape[1:]) if a.get("axis", 0) == 0 else torch.index_select(x[0], a["axis"], x[1]),
    "Concat": lambda x, a: torch.cat(x, a["axis"]),
    "ReduceMean": lambda x, a: x[0].mean(dim=_axes(x, a), keepdim=bool(a.get("keepdims", 1))),
    "Squeeze": lambda x, a: x[0].squeeze(_axes(x, a)[0]) if _axes(x, a) else x[0].squeeze(),
    "Unsqueeze": lambda x, a: x[0].unsqueeze(_axes(x, a)[0]),
}
