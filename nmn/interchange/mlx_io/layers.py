"""What the MLX exporter writes for a traced layer or function call: one emitter per layer class in :data:`MODULES`
(found by the layer's nearest registered class; nmn's Yat layers through their neutral spec) and one per function
name in :data:`FUNCTIONS`, plus the helpers they share with the tracer."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.interchange import emit
from nmn.interchange._export_common import activation as emit_activation
from nmn.interchange._export_common import rms_norm
from nmn.interchange.graph import ExportError
from nmn.interchange.registry import Registry


def _is_traced(v) -> bool:  # the tracer's Traced values (defined in the walker, which imports this module)
    return type(v).__name__ == "Traced"


MODULES = Registry("mlx modules")  # layer class -> emitter(tracer, module, name, x, args, kwargs, value)
FUNCTIONS = Registry("mlx functions")  # function name -> emitter(tracer, name, x, value, args, kwargs)


def np_array(a) -> np.ndarray:
    """An ``mx.array`` as numpy (float16 / bfloat16 as float32)."""
    a = a.astype(mx.float32) if a.dtype in (mx.float16, mx.bfloat16) else a
    return np.array(a)


def _np_param(module, key):
    return np_array(module[key]) if key in module else None


def _yat_types():
    import nmn.mlx as nm
    from nmn.mlx.conv import _YatConvND
    from nmn.mlx.conv_transpose import _YatConvTransposeND

    return (nm.YatNMN, _YatConvND, _YatConvTransposeND, nm.MultiHeadYatAttention, nm.RotaryYatAttention, nm.YatEmbed)


# mlx.nn activation modules / functions -> activation kinds of _export_common.activation (emit.ACTIVATIONS and
# the extras); the parameters of the parametrised ones are read by _activation_params
_ACTIVATION_MODULES = {
    nn.ReLU: "relu",
    nn.SiLU: "silu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Softplus: "softplus",
    nn.ReLU6: "relu6",
    nn.SELU: "selu",
    nn.Hardswish: "hard_swish",
    nn.Mish: "mish",
    nn.Softsign: "softsign",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.CELU: "celu",
    nn.HardTanh: "clip",
    nn.LogSigmoid: "log_sigmoid",
    nn.Softmin: "softmin",
}
_FN_ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_approx": "gelu_tanh",
    "silu": "silu",
    "sigmoid": "sigmoid",
    "softplus": "softplus",
    "tanh": "tanh",
    "relu6": "relu6",
    "selu": "selu",
    "hardswish": "hard_swish",
    "mish": "mish",
    "softsign": "softsign",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
    "celu": "celu",
    "hard_tanh": "clip",
    "log_sigmoid": "log_sigmoid",
}


def _activation_params(kind, m=None, args=(), kwargs=None) -> dict:
    """The ``alpha`` / ``min`` / ``max`` of a parametrised activation, from its module or its call's arguments
    (mlx's defaults: leaky_relu 0.01, elu/celu 1.0, hard_tanh [-1, 1]; the HardTanh module has no options)."""
    kwargs = kwargs or {}
    extra = list(args[1:])

    def arg(key, pos, default):
        return kwargs.get(key, extra[pos] if len(extra) > pos else default)

    if kind == "leaky_relu":
        return {"alpha": float(m._negative_slope) if m is not None else float(arg("negative_slope", 0, 0.01))}
    if kind in ("elu", "celu"):
        return {"alpha": float(m._alpha) if m is not None else float(arg("alpha", 0, 1.0))}
    if kind == "clip":
        if m is not None:
            return {"min": -1.0, "max": 1.0}
        return {"min": float(arg("min_val", 0, -1.0)), "max": float(arg("max_val", 1, 1.0))}
    return {}


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_DROPOUT = (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.Identity)


def param_names(kind):
    """Canonical -> MLX parameter names of a Yat layer kind (``weight`` -> ``kernel``, ``q_weight`` -> ...)."""
    if kind in ("YatNMN", "YatConv", "YatConvTranspose"):
        return {"weight": "kernel"}
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        return {
            f"{s}_{leaf}": f"{sub}.{leaf}"
            for s, sub in (("q", "query_proj"), ("k", "key_proj"), ("v", "value_proj"), ("out", "out_proj"))
            for leaf in ("weight", "bias")
        }
    return {}


def _trainable(m, kind):
    """``{canonical param name: trainable}`` of a Yat layer (frozen: a lazy kernel, the performer ``proj``)."""
    from mlx.utils import tree_flatten

    trainable = {k for k, _ in tree_flatten(m.trainable_parameters())}
    inverse = {v: k for k, v in param_names(kind).items()}
    return {inverse.get(path, path): path in trainable for path, _ in tree_flatten(m.parameters())}


def _tuple(v, rank):
    return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * rank


def _yat_module(tr, m, name, x, args, kwargs, value):
    import nmn.mlx.spec as mspec

    b = tr.b
    kind, config, params = mspec.to_spec(m)
    ins, call = [x.name], {}
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        given = dict(zip(["queries", "keys", "values", "mask"], args))
        given.update(kwargs)
        ins = [given[k].name if _is_traced(given.get(k)) else "" for k in ("queries", "keys", "values")]
        mask = given.get("mask")
        if _is_traced(mask):
            call["mask"] = mask.name
            call["mask_rank"] = len(mask.shape)
        elif mask is not None:
            call["mask"] = b.constant(f"{name}.mask", np.array(mask).astype(bool))
            call["mask_rank"] = np.ndim(np.array(mask))
        if kind == "RotaryYatAttention" and m._cache_max is not None:
            raise ExportError(f"{name}: RotaryYatAttention with an active KV cache (call reset_cache())")
    trainable = _trainable(m, kind)
    return emit.yat_layer(
        b,
        name,
        kind,
        config,
        params,
        ins,
        in_shape=tuple(x.shape),
        channels_last=kind in ("YatConv", "YatConvTranspose"),
        call=call,
        param_names=param_names(kind),
        trainable=trainable,
    )


@MODULES.register(nn.Linear)
def _linear(tr, m, name, x, args, kwargs, value):
    b = tr.b
    return emit.linear(b, name, x.name, np_array(m.weight), _np_param(m, "bias"), rank=x.ndim)


@MODULES.register(*_CONV)
def _conv(tr, m, name, x, args, kwargs, value):
    b = tr.b
    rank = m.weight.ndim - 2
    weight = np.moveaxis(np_array(m.weight), -1, 1)
    return emit.conv(
        b,
        name,
        x.name,
        weight,
        _np_param(m, "bias"),
        in_shape=tuple(x.shape),
        strides=_tuple(m.stride, rank),
        dilations=_tuple(m.dilation, rank),
        groups=int(getattr(m, "groups", 1)),
        padding=[(p, p) for p in _tuple(m.padding, rank)],
        channels_last=True,
    )


@MODULES.register(*_CONV_T)
def _conv_transpose(tr, m, name, x, args, kwargs, value):
    b = tr.b
    rank = m.weight.ndim - 2
    w = np_array(m.weight)  # (M, *k, C)
    weight = np.transpose(w, (w.ndim - 1, 0, *range(1, w.ndim - 1)))  # (C, M, *k)
    return emit.conv(
        b,
        name,
        x.name,
        weight,
        _np_param(m, "bias"),
        in_shape=tuple(x.shape),
        strides=_tuple(m.stride, rank),
        dilations=_tuple(m.dilation, rank),
        groups=1,
        padding=[(p, p) for p in _tuple(m.padding, rank)],
        channels_last=True,
        transpose=True,
        output_padding=list(_tuple(m.output_padding, rank)),
    )


@MODULES.register(*_ACTIVATION_MODULES)
def _activation(tr, m, name, x, args, kwargs, value):
    b = tr.b
    kind = next(_ACTIVATION_MODULES[c] for c in type(m).__mro__ if c in _ACTIVATION_MODULES)
    return emit_activation(b, kind, x.name, name=name, **_activation_params(kind, m))


@MODULES.register(nn.GELU)
def _gelu(tr, m, name, x, args, kwargs, value):
    b = tr.b
    approx = getattr(m, "_approx", "none")
    if approx not in ("none", "precise", "tanh"):
        raise ExportError(f"{name}: GELU(approx={approx!r}) (only 'none' or 'tanh')")
    return emit.activation(b, "gelu" if approx == "none" else "gelu_tanh", x.name, name=name)


@MODULES.register(nn.Softmax, nn.LogSoftmax)
def _softmax(tr, m, name, x, args, kwargs, value):
    b = tr.b
    return emit.activation(b, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", x.name, name=name)


@MODULES.register(*_DROPOUT)
def _dropout(tr, m, name, x, args, kwargs, value):
    return x.name


@MODULES.register(nn.LayerNorm)
def _layer_norm(tr, m, name, x, args, kwargs, value):
    b = tr.b
    return emit.layer_norm(b, name, x.name, _np_param(m, "weight"), _np_param(m, "bias"), m.eps)


@MODULES.register(nn.RMSNorm)
def _rms_norm(tr, m, name, x, args, kwargs, value):
    b = tr.b
    return rms_norm(b, name, x.name, _np_param(m, "weight"), m.eps)


@MODULES.register(nn.BatchNorm)
def _batch_norm(tr, m, name, x, args, kwargs, value):
    b = tr.b
    if "running_mean" not in m:
        raise ExportError(f"{name}: BatchNorm(track_running_stats=False) has no inference statistics")
    n = m.num_features
    scale = _np_param(m, "weight")
    shift = _np_param(m, "bias")
    scale = np.ones(n, np.float32) if scale is None else scale
    shift = np.zeros(n, np.float32) if shift is None else shift
    return emit.batch_norm(
        b,
        name,
        x.name,
        scale,
        shift,
        np_array(m.running_mean),
        np_array(m.running_var),
        m.eps,
        rank=x.ndim - 2,
        channels_last=True,
    )


@MODULES.register(nn.Embedding)
def _embedding(tr, m, name, x, args, kwargs, value):
    b = tr.b
    return emit.embedding(b, name, x.name, np_array(m.weight))


@MODULES.register(*_POOL)
def _pool_module(tr, m, name, x, args, kwargs, value):
    return _pool(tr, m, name, x)


def _pool(tr, m, name, x):
    b = tr.b
    rank = x.ndim - 2
    k, s = list(m["_kernel_size"]), list(m["_stride"])
    pads = [tuple(p) for p in m["_padding"]]
    kind = "max" if type(m).__name__.startswith("Max") else "avg"
    if kind == "max" or not any(p != (0, 0) for p in pads):
        return emit.pool(b, kind, x.name, kernel=k, strides=s, pads=pads, channels_last=True, name=name)
    # mlx's average pooling counts the zero padding: pad explicitly, then pool without pads
    first = b.node("Transpose", [x.name], {"perm": [0, rank + 1, *range(1, rank + 1)]}, name=f"{name}.to_first")
    widths = b.constant(
        f"{name}.pads", np.array([0, 0] + [p[0] for p in pads] + [0, 0] + [p[1] for p in pads], np.int64)
    )
    padded = b.node("Pad", [first, widths], {"mode": "constant"}, name=f"{name}.pad")
    y = b.node("AveragePool", [padded], {"kernel_shape": k, "strides": s, "pads": [0] * (2 * rank)}, name=name)
    return b.node("Transpose", [y], {"perm": [0, *range(2, rank + 2), 1]}, name=f"{name}.to_last")


@FUNCTIONS.register(*_FN_ACTIVATIONS)
def _fn_activation(tr, fname, x, value, args, kwargs):
    kind = _FN_ACTIVATIONS[fname]
    return tr.activation(kind, x, value, **_activation_params(kind, None, args, kwargs))


@FUNCTIONS.register("softmax", "log_softmax", "softmin")
def _fn_softmax(tr, fname, x, value, args, kwargs):
    axis = kwargs.get("axis", args[1] if len(args) > 1 else -1)
    if not isinstance(axis, int):
        raise ExportError(f"{fname} over axes {axis!r}: only one axis is supported")
    return tr.activation(fname, x, value, axis=axis)


@FUNCTIONS.register("mean")
def _fn_mean(tr, fname, x, value, args, kwargs):
    return tr.reduce(
        "ReduceMean",
        x,
        kwargs.get("axis", args[1] if len(args) > 1 else None),
        kwargs.get("keepdims", args[2] if len(args) > 2 else False),
    )


@FUNCTIONS.register("concatenate")
def _fn_concatenate(tr, fname, x, value, args, kwargs):
    axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
    names = [tr.operand(v, tr.fresh("concat.const"))[0] for v in x]
    return tr.wrap(tr.b.node("Concat", names, {"axis": int(axis)}, name=tr.fresh("concat")), value)


@FUNCTIONS.register("softermax", "softer_sigmoid", "soft_tanh")
def _fn_squasher(tr, fname, x, value, args, kwargs):
    names = ["n", "epsilon", "axis"] if fname == "softermax" else ["n"]
    cfg = {"n": 1.0, "epsilon": SOFTERMAX_EPSILON, "axis": -1} if fname == "softermax" else {"n": 1.0}
    cfg.update(dict(zip(names, args[1:])))
    cfg.update(kwargs)
    if fname != "softermax":  # ``sharpness`` is the seed README's alias of ``n``
        cfg = {"n": float(squash_power(cfg.get("n", 1.0), cfg.get("sharpness"), fname))}
    out = emit.yat_layer(tr.b, tr.fresh(fname), fname, cfg, {}, [x.name])
    return tr.wrap(out, value)
