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

_SPATIAL = "DHW"


def _dn(rank):
    s = _SPATIAL[-rank:] if rank <= 3 else None
    return ("NC" + s, "OI" + s, "NC" + s)


def _pads(a, rank):
    pads = a.get("pads") or [0] * (2 * rank)
    return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]


def _check_auto_pad(a, op):
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise ValueError(f"{op} with auto_pad={a['auto_pad']!r} is not supported by the JAX loader")


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
    pads = [((kk - 1) * d - lo, (kk - 1) * d - hi + op) for (lo, hi), kk, d, op in zip(_pads(a, rank), k, dil, outpad)]
    y = lax.conv_general_dilated(x, wf, (1,) * rank, pads, lhs_dilation=strides, rhs_dilation=dil,
                                 dimension_numbers=_dn(rank), feature_group_count=g)
    if len(args) > 2 and args[2] is not None:
        y = y + args[2].reshape((1, -1) + (1,) * rank)
    return y


def _pool(args, a, kind):
    _check_auto_pad(a, kind)
    x = args[0]
    rank = x.ndim - 2
    if a.get("ceil_mode", 0) or any(d != 1 for d in (a.get("dilations") or [1])):
        raise ValueError("pooling with ceil_mode or dilations is not supported by the JAX loader")
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


def _ints(v):
    return [int(i) for i in np.asarray(v).reshape(-1).tolist()]


def _reshape(args, a):
    x, shape = args
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(_ints(shape))]
    return jnp.reshape(x, dims)


def _gemm(args, a):
    x, w = args[0], args[1]
    x = x.T if a.get("transA", 0) else x
    w = w.T if a.get("transB", 0) else w
    y = x @ w
    if a.get("alpha", 1.0) != 1.0:
        y = y * a["alpha"]
    if len(args) > 2 and args[2] is not None:
        y = y + (args[2] * a.get("beta", 1.0) if a.get("beta", 1.0) != 1.0 else args[2])
    return y


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
    if len(args) > 1 and args[1] is not None:
        return tuple(_ints(args[1]))
    return tuple(a["axes"]) if a.get("axes") is not None else None


def _reduce(fn):
    def run(args, a):
        axes = _axes(args, a)
        if axes is None and a.get("noop_with_empty_axes", 0):
            return args[0]
        return fn(args[0], axis=axes, keepdims=bool(a.get("keepdims", 1)))
    return run


def _pad(args, a):
    x, pads = args[0], _ints(args[1])
    mode = a.get("mode", "constant")
    r = x.ndim
    widths = [(pads[i], pads[i + r]) for i in range(r)]
    if mode != "constant":
        return jnp.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])
    value = float(np.asarray(args[2]).reshape(-1)[0]) if len(args) > 2 and args[2] is not None else 0.0
    return jnp.pad(x, widths, constant_values=value)


def _expand(args, a):
    x, shape = args
    return jnp.broadcast_to(x, np.broadcast_shapes(tuple(x.shape), tuple(_ints(shape))))


def _cast(args, a):
    return jnp.asarray(args[0]).astype(helper.tensor_dtype_to_np_dtype(int(a["to"])))


def _gather(args, a):
    table, ids = args
    return jnp.take(table, jnp.asarray(ids).astype(jnp.int32), axis=int(a.get("axis", 0)))


TABLE = {
    "Gemm": _gemm,
    "MatMul": lambda x, a: x[0] @ x[1],
    "Add": lambda x, a: x[0] + x[1],
    "Sub": lambda x, a: x[0] - x[1],
    "Mul": lambda x, a: x[0] * x[1],
    "Div": lambda x, a: x[0] / x[1],
    "Max": lambda x, a: jnp.maximum(x[0], x[1]),
    "Min": lambda x, a: jnp.minimum(x[0], x[1]),
    "Neg": lambda x, a: -x[0],
    "Abs": lambda x, a: jnp.abs(x[0]),
    "Sign": lambda x, a: jnp.sign(x[0]),
    "Pow": lambda x, a: x[0] ** x[1],
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
    "Flatten": lambda x, a: jnp.reshape(x[0], (int(np.prod(x[0].shape[: a.get("axis", 1)])), -1)),
    "Reshape": _reshape,
    "Transpose": lambda x, a: jnp.transpose(x[0], a.get("perm") or list(range(x[0].ndim))[::-1]),
    "Identity": lambda x, a: x[0],
    "Dropout": lambda x, a: x[0],
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
