"""Standard Keras layers in the Keras export walk: one emitter per layer class, filed in :data:`LAYERS` (the walk
files nmn's layers and :class:`~nmn.interchange.keras_io.holder.OnnxOp` in the same table), found by the layer's
nearest registered class."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from nmn.core.conv import conv_pads
from nmn.interchange import emit
from nmn.interchange.graph import ExportError
from nmn.interchange.registry import Registry

L = keras.layers
LAYERS = Registry("keras layers")  # layer class -> emitter(b, layer, names, values, kw_names, kw_values)


def _np(t) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(t))


def _host_shape(value) -> list:
    return [None, *value.shape[1:]]


def _first(names):
    return names[0] if isinstance(names, list) else names


_ACTIVATIONS = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softplus": "softplus",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "gelu": "gelu",
    "silu": "silu",
    "swish": "silu",
    "linear": "identity",
}


def _activation_name(layer, fn) -> str:
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
    if name not in _ACTIVATIONS:
        raise ExportError(f"{layer.name}: activation {name!r} has no ONNX emitter (supported: {sorted(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _act(b, layer, x, fn, axis=-1):
    kind = _activation_name(layer, fn)
    if kind == "gelu" and getattr(layer, "approximate", False):
        kind = "gelu_tanh"
    return emit.activation(b, kind, x, axis=axis, name=f"{layer.name}.activation")


def _spatial_rank(layer) -> int:
    return len(layer.kernel_size) if hasattr(layer, "kernel_size") else len(layer.pool_size)


@LAYERS.register(L.Dense)
def _dense(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    w = _np(layer.kernel).T.copy()
    bias = _np(layer.bias) if layer.use_bias else None
    y = emit.linear(b, layer.name, x, w, bias, rank=len(v.shape), param_names={"weight": "kernel"})
    return _act(b, layer, y, layer.get_config()["activation"])


@LAYERS.register(L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
def _conv(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    cls = type(layer).__name__
    transpose = cls.endswith("Transpose")
    rank = _spatial_rank(layer)
    k = _np(layer.kernel)
    if transpose:
        if layer.output_padding is not None:
            raise ExportError(f"{layer.name}: {cls} with output_padding has no ONNX emitter")
        weight = np.transpose(k, (rank + 1, rank, *range(rank))).copy()
        groups = 1
    else:
        weight = np.transpose(k, (rank + 1, rank, *range(rank))).copy()
        groups = int(layer.groups)
    cf = layer.data_format == "channels_first"
    y = emit.conv(
        b,
        layer.name,
        x,
        weight,
        _np(layer.bias) if layer.use_bias else None,
        in_shape=_host_shape(v),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        groups=groups,
        padding=layer.padding,
        channels_last=not cf,
        transpose=transpose,
        param_names={"weight": "kernel"},
    )
    return _act(b, layer, y, layer.get_config()["activation"])


@LAYERS.register(L.Flatten)
def _flatten(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    if layer.data_format == "channels_first" and len(v.shape) > 2:
        x = b.node("Transpose", [x], {"perm": [0, *range(2, len(v.shape)), 1]}, name=f"{layer.name}.to_last")
    return emit.flatten(b, x, name=layer.name)


@LAYERS.register(L.Reshape)
def _reshape(b, layer, names, values, kw_names=None, kw_values=None):
    x = _first(names)
    return emit.reshape(b, x, [0, *layer.target_shape], name=layer.name)


@LAYERS.register(L.Activation)
def _activation(b, layer, names, values, kw_names=None, kw_values=None):
    x = _first(names)
    return _act(b, layer, x, layer.get_config()["activation"])


@LAYERS.register(L.ReLU)
def _relu(b, layer, names, values, kw_names=None, kw_values=None):
    x = _first(names)
    cfg = layer.get_config()
    if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
        raise ExportError(f"{layer.name}: ReLU with max_value/negative_slope/threshold has no ONNX emitter")
    return emit.activation(b, "relu", x, name=layer.name)


@LAYERS.register(L.Softmax)
def _softmax(b, layer, names, values, kw_names=None, kw_values=None):
    x = _first(names)
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    return emit.activation(b, "softmax", x, axis=axis, name=layer.name)


@LAYERS.register(L.Dropout)
def _dropout(b, layer, names, values, kw_names=None, kw_values=None):
    x = _first(names)
    return x


@LAYERS.register(L.LayerNormalization)
def _layer_norm(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)
    if axis not in (-1, len(v.shape) - 1, [-1], [len(v.shape) - 1]):
        raise ExportError(f"{layer.name}: LayerNormalization over axis {layer.axis} (only the last axis)")
    return emit.layer_norm(
        b,
        layer.name,
        x,
        _np(layer.gamma) if layer.scale else None,
        _np(layer.beta) if layer.center else None,
        layer.epsilon,
        param_names={"weight": "gamma", "bias": "beta"},
    )


@LAYERS.register(L.BatchNormalization)
def _batch_norm(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    n = int(layer.moving_mean.shape[0])
    rank = len(v.shape) - 2
    axis = layer.axis % len(v.shape)
    if axis not in (1, len(v.shape) - 1):
        raise ExportError(f"{layer.name}: BatchNormalization over axis {layer.axis}")
    scale = _np(layer.gamma) if layer.scale else np.ones((n,), np.float32)
    beta = _np(layer.beta) if layer.center else np.zeros((n,), np.float32)
    return emit.batch_norm(
        b,
        layer.name,
        x,
        scale,
        beta,
        _np(layer.moving_mean),
        _np(layer.moving_variance),
        layer.epsilon,
        rank=rank,
        channels_last=axis == len(v.shape) - 1 and rank > 0,
        param_names={
            "weight": "gamma",
            "bias": "beta",
            "running_mean": "moving_mean",
            "running_var": "moving_variance",
        },
    )


@LAYERS.register(L.Embedding)
def _embedding(b, layer, names, values, kw_names=None, kw_values=None):
    x = _first(names)
    return emit.embedding(b, layer.name, x, _np(layer.embeddings), param_names={"weight": "embeddings"})


@LAYERS.register(
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D
)
def _pool(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    cls = type(layer).__name__
    rank = len(layer.pool_size)
    cl = layer.data_format == "channels_last"
    spatial = v.shape[1:-1] if cl else v.shape[2:]
    pads = conv_pads(layer.padding, spatial, layer.pool_size, layer.strides, (1,) * rank)
    return emit.pool(
        b,
        "max" if cls.startswith("Max") else "avg",
        x,
        kernel=list(layer.pool_size),
        strides=list(layer.strides),
        pads=pads,
        channels_last=cl,
        name=layer.name,
    )


@LAYERS.register(
    L.GlobalAveragePooling1D,
    L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D,
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.GlobalMaxPooling3D,
)
def _global_pool(b, layer, names, values, kw_names=None, kw_values=None):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    cls = type(layer).__name__
    cl = layer.data_format == "channels_last"
    axes = list(range(1, len(v.shape) - 1)) if cl else list(range(2, len(v.shape)))
    op = "ReduceMean" if "Average" in cls else "ReduceMax"
    keep = int(bool(layer.keepdims))
    return b.node(
        op, [x, b.constant(f"{layer.name}.axes", np.array(axes, np.int64))], {"keepdims": keep}, name=layer.name
    )


@LAYERS.register(L.Add, L.Subtract, L.Multiply)
def _merge(b, layer, names, values, kw_names=None, kw_values=None):
    cls = type(layer).__name__
    op = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul"}[cls]
    y = names[0][0]
    for other in names[0][1:]:
        y = b.node(op, [y, other], name=layer.name)
    return y


@LAYERS.register(L.Concatenate)
def _concatenate(b, layer, names, values, kw_names=None, kw_values=None):
    return b.node("Concat", list(names[0]), {"axis": int(layer.axis)}, name=layer.name)
