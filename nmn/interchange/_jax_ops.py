"""JAX implementations of the standard ONNX ops a loaded nmn file may contain (the loader's op table).

Data arrives in the file's layout (ONNX: channels-first); weights in the canonical ONNX layout. Every op is a
``fn(args, attrs)`` on ``jax.Array``s, differentiable and jit-compatible (shapes come from static attributes
or constant initializers, which the loader keeps as numpy).
"""

from __future__ import annotations

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax
from onnx import helper

from nmn.core.conv import transpose_as_conv_pads
from nmn.interchange._optable import (
    OPERATOR_OPS,
    axes as _neutral_axes,
    check_auto_pad,
    check_plain_pool,
    flatten_shape,
    gemm as _gemm,
    ints as _ints,
    pad_pairs as _pads,
    pad_value,
    pairs,
    reduce_op,
    reshape_dims,
)

_SPATIAL = "DHW"


def _dn(rank):
    s = _SPATIAL[-rank:] if rank <= 3 else None
    return ("NC" + s, "OI" + s, "NC" + s)


def _check_auto_pad(a, op):
    check_auto_pad(a, op, "JAX")


def _conv(args, a):
    _check_auto_pad(a, "Conv")
    x, w = args[0], args[1]
    rank = w.ndim - 2
    y = lax.conv_general_dilated(x, w, tuple(a.get("strides") or [1] * rank), _pads(a, rank),
                                 rhs_dilation=tuple(a.get("dilations") or [1] * rank), dimension_numbers=_dn(rank),
                                 feature_group_count=int(a.get("group", 1)))
    if len(args) > 2 and args[2] is not None:
        y = y + args[2].reshape((1, -1) + (1,) * rank)
    return y


def _conv_transpose(args, a):
    _check_auto_pad(a, "ConvTranspose")
    x, w = args[0], args[1]
    rank = w.ndim - 2
    g = int(a.get("group", 1))
    c, mg, *k = w.shape
    wf = w.reshape(g, c // g, mg, *k).swapaxes(1, 2).reshape(g * mg, c // g, *k)
    wf = jnp.flip(wf, axis=tuple(range(2, rank + 2)))
    strides = tuple(a.get("strides") or [1] * rank)
    dil = tuple(a.get("dilations") or [1] * rank)
    outpad = list(a.get("output_padding") or [0] * rank)
    pads = transpose_as_conv_pads(_pads(a, rank), k, dil, outpad)
    y = lax.conv_general_dilated(x, wf, (1,) * rank, pads, lhs_dilation=strides, rhs_dilation=dil,
                                 dimension_numbers=_dn(rank), feature_group_count=g)
    if len(args) > 2 and args[2] is not None:
        y = y + args[2].reshape((1, -1) + (1,) * rank)
    return y


def _pool(args, a, kind):
    _check_auto_pad(a, kind)
    x = args[0]
    rank = x.ndim - 2
    check_plain_pool(a, "JAX")
    window = (1, 1, *a["kernel_shape"])
    strides = (1, 1, *(a.get("strides") or [1] * rank))
    pads = [(0, 0), (0, 0), *_pads(a, rank)]
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, pads)
    total = lax.reduce_window(x, 0.0, lax.add, window, strides, pads)
    if a.get("count_include_pad", 0) or all(p == (0, 0) for p in pads):
        return total / float(np.prod(a["kernel_shape"]))
    ones = jnp.ones((1, 1, *x.shape[2:]), x.dtype)
    return total / lax.reduce_window(ones, 0.0, lax.add, window, strides, pads)


def _reshape(args, a):
    x, shape = args
    return jnp.reshape(x, reshape_dims(x.shape, _ints(shape)))


def _batch_norm(args, a):
    x, scale, bias, mean, var = args
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) * lax.rsqrt(var.reshape(shape) + a.get("epsilon", 1e-5)) * \
        scale.reshape(shape) + bias.reshape(shape)


def _layer_norm(args, a):
    axis = int(a.get("axis", -1))
    x = args[0]
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    y = (x - mean) * lax.rsqrt(var + a.get("epsilon", 1e-5)) * args[1]
    return y + args[2] if len(args) > 2 and args[2] is not None else y


def _axes(args, a):
    axes = _neutral_axes(args, a)
    return None if axes is None else tuple(axes)


def _reduce(fn):
    return reduce_op(fn, _axes)


def _pad(args, a):
    x, pads = args[0], _ints(args[1])
    mode = a.get("mode", "constant")
    widths = pairs(pads, x.ndim)
    if mode != "constant":
        return jnp.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])
    return jnp.pad(x, widths, constant_values=pad_value(args))


def _expand(args, a):
    x, shape = args
    return jnp.broadcast_to(x, np.broadcast_shapes(tuple(x.shape), tuple(_ints(shape))))


def _cast(args, a):
    return jnp.asarray(args[0]).astype(helper.tensor_dtype_to_np_dtype(int(a["to"])))


def _gather(args, a):
    table, ids = args
    return jnp.take(table, jnp.asarray(ids).astype(jnp.int32), axis=int(a.get("axis", 0)))


TABLE = {
    **OPERATOR_OPS,
    "Gemm": _gemm,
    "Max": lambda x, a: jnp.maximum(x[0], x[1]),
    "Min": lambda x, a: jnp.minimum(x[0], x[1]),
    "Neg": lambda x, a: -x[0],
    "Abs": lambda x, a: jnp.abs(x[0]),
    "Sign": lambda x, a: jnp.sign(x[0]),
    "Sqrt": lambda x, a: jnp.sqrt(x[0]),
    "Reciprocal": lambda x, a: 1.0 / x[0],
    "Exp": lambda x, a: jnp.exp(x[0]),
    "Log": lambda x, a: jnp.log(x[0]),
    "Relu": lambda x, a: jax.nn.relu(x[0]),
    "Sigmoid": lambda x, a: jax.nn.sigmoid(x[0]),
    "Tanh": lambda x, a: jnp.tanh(x[0]),
    "Erf": lambda x, a: lax.erf(x[0]),
    "Softplus": lambda x, a: jax.nn.softplus(x[0]),
    "Softmax": lambda x, a: jax.nn.softmax(x[0], axis=a.get("axis", -1)),
    "LogSoftmax": lambda x, a: jax.nn.log_softmax(x[0], axis=a.get("axis", -1)),
    "Flatten": lambda x, a: jnp.reshape(x[0], flatten_shape(x[0].shape, a.get("axis", 1))),
    "Reshape": _reshape,
    "Transpose": lambda x, a: jnp.transpose(x[0], a.get("perm") or list(range(x[0].ndim))[::-1]),
    "Cast": _cast,
    "Where": lambda x, a: jnp.where(x[0], x[1], x[2]),
    "Expand": _expand,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": lambda x, a: _pool(x, a, "max"),
    "AveragePool": lambda x, a: _pool(x, a, "avg"),
    "GlobalAveragePool": lambda x, a: jnp.mean(x[0], axis=tuple(range(2, x[0].ndim)), keepdims=True),
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Gather": _gather,
    "Concat": lambda x, a: jnp.concatenate(list(x), axis=a["axis"]),
    "ReduceMean": _reduce(jnp.mean),
    "ReduceSum": _reduce(jnp.sum),
    "ReduceMax": _reduce(jnp.max),
    "ReduceMin": _reduce(jnp.min),
    "Squeeze": lambda x, a: jnp.squeeze(x[0], axis=_axes(x, a)) if _axes(x, a) else jnp.squeeze(x[0]),
    "Unsqueeze": lambda x, a: jnp.expand_dims(x[0], _axes(x, a)),
    "Pad": _pad,
}
