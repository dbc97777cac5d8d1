"""Keras 3 <-> ONNX: export a functional or sequential model of nmn and standard Keras layers, load any nmn file.

**Export** walks the functional layer graph that ``model.get_config()`` describes (every layer call with its
inputs), runs each call eagerly on the example inputs (for shapes and the final check) and emits each layer
through the framework-neutral :class:`~nmn.interchange.graph.GraphBuilder`: one ``nmn::`` node per Yat layer,
standard ONNX ops for the standard layers. The walk sees layers, not backend ops, so the file is the same on the
TensorFlow, JAX and PyTorch backends (onnx-notes.md section 7; ``model.export(format="onnx")`` would decompose
the Yat layers). Data stays channels-last at the graph inputs, with ``Transpose`` nodes around each convolution;
initializers are named by the Keras weight paths (``<layer>.<weight>``).

Supported layers: every ``nmn.keras`` layer (``YatEmbed`` lookup and ``attend``), ``Dense`` (with its
activation), ``Conv1D/2D/3D``, ``Conv1D/2D/3DTranspose`` (no ``output_padding``), ``Flatten``, ``Reshape``,
``Activation``/``ReLU``/``Softmax``, ``LayerNormalization`` (last axis), ``BatchNormalization`` (inference),
``Dropout`` (identity), ``Embedding``, ``MaxPooling*``/``AveragePooling*``/``GlobalAveragePooling*``,
``Add``/``Subtract``/``Multiply``/``Concatenate``, ``InputLayer``; several inputs and outputs. Anything else
raises :class:`~nmn.interchange.graph.ExportError` naming every unsupported layer.

**Load** turns a file into a ``keras.Model``: each ``nmn`` node becomes the ``nmn.keras`` layer holding the
file's weights (convolutions ``channels_first``, the file's layout), each standard node an :class:`OnnxOp`
layer (registered as serializable, so the model saves to ``.keras`` and loads back) whose tensors are Keras
weights. It trains with ``model.fit``; ``export(load(f))`` writes the file's initializers back bit for bit.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Sequence

import numpy as np
import onnx

try:
    import keras
    from keras import ops
except ImportError as err:  # pragma: no cover
    raise ImportError('nmn.interchange.keras_io needs Keras 3: pip install "nmn[keras]"') from err

import nmn.keras as nk
from nmn.core.conv import conv_pads
from nmn.interchange import emit
from nmn.interchange._export_common import write
from nmn.core.conv import transpose_as_conv_pads
from nmn.interchange._optable import OPERATOR_OPS, axes as onnx_axes, pad_pairs
from nmn.interchange._tfkeras_common import HOST_NAMES, conv_transpose_attrs, pad_node, reduce_node
from nmn.interchange.graph import ExportError, GraphBuilder, check_against
from nmn.interchange.interpret import _skipped
from nmn.interchange.reader import UnsupportedModelError, read_model
from nmn.keras import spec as kspec
from nmn.keras._ops import pad_axis, upsample_axis

__all__ = ["export", "load", "predict", "OnnxOp", "TABLE"]

L = keras.layers
_YAT = (nk.YatNMN, nk.YatConv1D, nk.YatConv2D, nk.YatConv3D, nk.YatConvTranspose1D, nk.YatConvTranspose2D,
        nk.YatConvTranspose3D, nk.MultiHeadYatAttention, nk.YatEmbed)


def _np(t) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(t))


def _host_shape(value) -> list:
    return [None, *value.shape[1:]]


# ======================================================================================================= export
def export(model, example_inputs: Any, path: str | os.PathLike | None = None, *, rtol: float = 1e-5,
           inline: bool = False) -> onnx.ModelProto:
    """Export a Keras functional or sequential model (or a model returned by :func:`load`) to ONNX.

    Args:
        model: a built ``keras.Model`` (functional or ``Sequential``) of nmn.keras and standard layers.
        example_inputs: one array or a list (numpy or backend tensors); axis 0 becomes the symbolic ``batch``.
        path: where to write the file (atomically, only after the onnxruntime check passed).
        rtol: tolerance of the onnxruntime check, relative to each output's largest magnitude.
        inline: also write ``<stem>.inlined.onnx`` with the functions inlined.

    Returns:
        the ``onnx.ModelProto``.

    Example:
        >>> import keras, numpy as np, nmn.keras as nk
        >>> from nmn.interchange import keras_io
        >>> x = keras.Input((4,), name="x")
        >>> net = keras.Model(x, keras.layers.Dense(2, name="out")(nk.YatNMN(3, name="yat")(x)))
        >>> proto = keras_io.export(net, np.ones((2, 4), np.float32))
        >>> [n.op_type for n in proto.graph.node], sorted(t.name for t in proto.graph.initializer)[:3]
        (['YatDense', 'Gemm'], ['out.bias', 'out.kernel', 'yat.alpha'])
    """
    inputs = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    inputs = [_np(x) if not isinstance(x, np.ndarray) else x for x in inputs]
    b = GraphBuilder(source="keras", layout="channels_last")
    expected = _walk(model, inputs, b)
    proto = b.build()
    feeds = {vi.name: x for vi, x in zip(proto.graph.input, inputs)}
    check_against(proto, feeds, expected, rtol=rtol, what=model.name)
    write(proto, path, inline)
    return proto


def _calls(model) -> tuple[list, list, list]:
    """``(input names, [(layer, node_index, args, kwargs)], output refs)`` of a functional or sequential model."""
    config = model.get_config()
    if isinstance(model, keras.Sequential) or "input_layers" not in config:
        layers = [layer for layer in model.layers if not isinstance(layer, L.InputLayer)]
        first = next((e for e in config.get("layers", []) if e.get("class_name") == "InputLayer"), None)
        name = first["config"]["name"] if first else "input"
        calls, prev = [], (name, 0, 0)
        for layer in layers:
            calls.append((layer, 0, [_ref(prev)], {}))
            prev = (layer.name, 0, 0)
        return [name], calls, [prev]
    inputs = [entry[0] for entry in _triples(config["input_layers"])]
    operations = {op.name: op for op in model.operations}
    calls = []
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            continue
        layer = operations[entry["name"]]
        for i, node in enumerate(entry["inbound_nodes"]):
            calls.append((layer, i, node["args"], node["kwargs"]))
    return inputs, calls, _triples(config["output_layers"])


def _triples(refs) -> list:
    if refs and isinstance(refs[0], str):
        return [tuple(refs)]
    return [tuple(r) for r in refs]


def _ref(history):
    return {"class_name": "__keras_tensor__", "config": {"keras_history": list(history)}}


def _is_ref(v):
    return isinstance(v, dict) and v.get("class_name") == "__keras_tensor__"


def _map(v, fn):
    if _is_ref(v):
        return fn(tuple(v["config"]["keras_history"]))
    if isinstance(v, (list, tuple)):
        return [_map(x, fn) for x in v]
    if isinstance(v, dict):
        return {k: _map(x, fn) for k, x in v.items()}
    return v


def _walk(model, inputs: list[np.ndarray], b: GraphBuilder) -> list[np.ndarray]:
    in_names, calls, out_refs = _calls(model)
    if len(in_names) != len(inputs):
        raise ExportError(f"{model.name}: the model takes {len(in_names)} input(s) {in_names}, got {len(inputs)}")
    env: dict[tuple, tuple[str, Any]] = {}
    for name, x in zip(in_names, inputs):
        env[(name, 0, 0)] = (b.input(name, _host_shape(x), x.dtype), ops.convert_to_tensor(x))
    unsupported = [f"{layer.name} ({type(layer).__name__})" for layer, *_ in calls if not _supported(layer)]
    if unsupported:
        raise ExportError(f"{model.name}: {len(unsupported)} layer(s) have no ONNX emitter: "
                          + ", ".join(dict.fromkeys(unsupported)))
    pending = list(calls)
    while pending:
        progress = False
        for call in list(pending):
            layer, index, args, kwargs = call
            needed = []
            _map([args, kwargs], lambda h: needed.append(h))
            if any(h not in env for h in needed):
                continue
            names = _map(args, lambda h: env[h][0])
            values = _map(args, lambda h: env[h][1])
            kw_names = _map(kwargs, lambda h: env[h][0])
            kw_values = _map(kwargs, lambda h: env[h][1])
            out = layer(*values, **kw_values)
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            emitted = _emit(b, layer, names, values, kw_names, kw_values, outs)
            emitted = emitted if isinstance(emitted, list) else [emitted]
            for i, (o, v) in enumerate(zip(emitted, outs)):
                env[(layer.name, index, i)] = (o, v)
            pending.remove(call)
            progress = True
        if not progress:
            raise ExportError(f"{model.name}: could not order the layer graph (waiting: "
                              f"{[c[0].name for c in pending]})")
    expected = []
    out_names = getattr(model, "_nmn_output_names", None)
    for i, ref in enumerate(out_refs):
        value, eager = env[tuple(ref)]
        default = "output" if len(out_refs) == 1 else f"output_{i}"
        b.output(value, out_names[i] if out_names else default)
        expected.append(_np(eager))
    return expected


_OPERATIONS = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Divide": "Div", "TrueDivide": "Div",
               "Matmul": "MatMul"}


def _supported(layer) -> bool:
    if not isinstance(layer, keras.layers.Layer):
        return type(layer).__name__ in _OPERATIONS
    return isinstance(layer, (*_YAT, OnnxOp, *_STANDARD))


def _first(names):
    return names[0] if isinstance(names, list) else names


def _emit(b, layer, names, values, kw_names, kw_values, outs):
    if not isinstance(layer, keras.layers.Layer):  # a keras.ops call on symbolic tensors (``h + f(h)``)
        ins = [n if isinstance(n, str) else b.constant(f"{layer.name}.const", np.asarray(n, np.float32))
               for n in names[:2]]
        return b.node(_OPERATIONS[type(layer).__name__], ins, name=layer.name)
    if isinstance(layer, OnnxOp):
        return layer._emit(b, names[0], values[0])
    if isinstance(layer, _YAT):
        return _emit_yat(b, layer, names, values, kw_names, kw_values)
    return _emit_standard(b, layer, names, values)


def _emit_yat(b, layer, names, values, kw_names, kw_values):
    kind, config, params = kspec.to_spec(layer)
    host = {"framework": "keras", "class": type(layer).__name__, "keras_backend": keras.backend.backend()}
    param_names = dict(HOST_NAMES[kind])
    param_names.update(getattr(layer, "_nmn_param_names", {}))
    trainable = {}
    if kind == "YatNMN" and layer.lazy:
        trainable["weight"] = False
    call, ins, shape, channels_last = {}, [names[0]], _host_shape(values[0]), False
    if kind in ("YatConv", "YatConvTranspose"):
        channels_last = layer.data_format == "channels_last"
        host["data_format"] = layer.data_format
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        mask = kw_names.get("attention_mask")
        if mask is not None:
            call["mask"] = mask
        if kind == "MultiHeadYatAttention":
            key = names[1] if len(names) > 1 else kw_names.get("key")
            value = names[2] if len(names) > 2 else kw_names.get("value")
            ins = [names[0], key or names[0], value or key or names[0]]
    if kind == "YatEmbed" and kw_values.get("method") == "attend":
        call["method"] = "attend"
    name = getattr(layer, "_nmn_name", layer.name)
    return emit.yat_layer(b, name, kind, config, params, ins, in_shape=shape, channels_last=channels_last,
                          call=call, param_names=param_names, trainable=trainable, host=host)


_ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softplus": "softplus", "softmax": "softmax",
                "log_softmax": "log_softmax", "gelu": "gelu", "silu": "silu", "swish": "silu", "linear": "identity"}


def _activation_name(layer, fn) -> str:
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
    if name not in _ACTIVATIONS:
        raise ExportError(f"{layer.name}: activation {name!r} has no ONNX emitter "
                          f"(supported: {sorted(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _act(b, layer, x, fn, axis=-1):
    kind = _activation_name(layer, fn)
    if kind == "gelu" and getattr(layer, "approximate", False):
        kind = "gelu_tanh"
    return emit.activation(b, kind, x, axis=axis, name=f"{layer.name}.activation")


def _spatial_rank(layer) -> int:
    return len(layer.kernel_size) if hasattr(layer, "kernel_size") else len(layer.pool_size)


def _emit_standard(b, layer, names, values):
    x, v = _first(names), (values[0] if isinstance(values, list) and values else values)
    cls = type(layer).__name__
    if isinstance(layer, L.Dense):
        w = _np(layer.kernel).T.copy()
        bias = _np(layer.bias) if layer.use_bias else None
        y = emit.linear(b, layer.name, x, w, bias, rank=len(v.shape), param_names={"weight": "kernel"})
        return _act(b, layer, y, layer.get_config()["activation"])
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)) or cls.endswith("Transpose"):
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
        y = emit.conv(b, layer.name, x, weight, _np(layer.bias) if layer.use_bias else None, in_shape=_host_shape(v),
                      strides=list(layer.strides), dilations=list(layer.dilation_rate), groups=groups,
                      padding=layer.padding, channels_last=not cf, transpose=transpose,
                      param_names={"weight": "kernel"})
        return _act(b, layer, y, layer.get_config()["activation"])
    if isinstance(layer, L.Flatten):
        if layer.data_format == "channels_first" and len(v.shape) > 2:
            x = b.node("Transpose", [x], {"perm": [0, *range(2, len(v.shape)), 1]}, name=f"{layer.name}.to_last")
        return emit.flatten(b, x, name=layer.name)
    if isinstance(layer, L.Reshape):
        return emit.reshape(b, x, [0, *layer.target_shape], name=layer.name)
    if isinstance(layer, L.Activation):
        return _act(b, layer, x, layer.get_config()["activation"])
    if isinstance(layer, L.ReLU):
        cfg = layer.get_config()
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            raise ExportError(f"{layer.name}: ReLU with max_value/negative_slope/threshold has no ONNX emitter")
        return emit.activation(b, "relu", x, name=layer.name)
    if isinstance(layer, L.Softmax):
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        return emit.activation(b, "softmax", x, axis=axis, name=layer.name)
    if isinstance(layer, L.Dropout):
        return x
    if isinstance(layer, L.LayerNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)
        if axis not in (-1, len(v.shape) - 1, [-1], [len(v.shape) - 1]):
            raise ExportError(f"{layer.name}: LayerNormalization over axis {layer.axis} (only the last axis)")
        return emit.layer_norm(b, layer.name, x, _np(layer.gamma) if layer.scale else None,
                               _np(layer.beta) if layer.center else None, layer.epsilon,
                               param_names={"weight": "gamma", "bias": "beta"})
    if isinstance(layer, L.BatchNormalization):
        n = int(layer.moving_mean.shape[0])
        rank = len(v.shape) - 2
        axis = layer.axis % len(v.shape)
        if axis not in (1, len(v.shape) - 1):
            raise ExportError(f"{layer.name}: BatchNormalization over axis {layer.axis}")
        scale = _np(layer.gamma) if layer.scale else np.ones((n,), np.float32)
        beta = _np(layer.beta) if layer.center else np.zeros((n,), np.float32)
        return emit.batch_norm(b, layer.name, x, scale, beta, _np(layer.moving_mean), _np(layer.moving_variance),
                               layer.epsilon, rank=rank, channels_last=axis == len(v.shape) - 1 and rank > 0,
                               param_names={"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                                            "running_var": "moving_variance"})
    if isinstance(layer, L.Embedding):
        return emit.embedding(b, layer.name, x, _np(layer.embeddings), param_names={"weight": "embeddings"})
    if cls.startswith(("MaxPooling", "AveragePooling")):
        rank = len(layer.pool_size)
        cl = layer.data_format == "channels_last"
        spatial = v.shape[1:-1] if cl else v.shape[2:]
        pads = conv_pads(layer.padding, spatial, layer.pool_size, layer.strides, (1,) * rank)
        return emit.pool(b, "max" if cls.startswith("Max") else "avg", x, kernel=list(layer.pool_size),
                         strides=list(layer.strides), pads=pads, channels_last=cl, name=layer.name)
    if cls.startswith("GlobalAveragePooling") or cls.startswith("GlobalMaxPooling"):
        cl = layer.data_format == "channels_last"
        axes = list(range(1, len(v.shape) - 1)) if cl else list(range(2, len(v.shape)))
        op = "ReduceMean" if "Average" in cls else "ReduceMax"
        keep = int(bool(layer.keepdims))
        return b.node(op, [x, b.constant(f"{layer.name}.axes", np.array(axes, np.int64))], {"keepdims": keep},
                      name=layer.name)
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply)):
        op = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul"}[cls]
        y = names[0][0]
        for other in names[0][1:]:
            y = b.node(op, [y, other], name=layer.name)
        return y
    if isinstance(layer, L.Concatenate):
        return b.node("Concat", list(names[0]), {"axis": int(layer.axis)}, name=layer.name)
    raise ExportError(f"{layer.name}: {cls} has no ONNX emitter")


_STANDARD = (L.Dense, L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose,
             L.Flatten, L.Reshape, L.Activation, L.ReLU, L.Softmax, L.Dropout, L.LayerNormalization,
             L.BatchNormalization, L.Embedding, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
             L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D, L.GlobalAveragePooling1D,
             L.GlobalAveragePooling2D, L.GlobalAveragePooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D,
             L.GlobalMaxPooling3D, L.Add, L.Subtract, L.Multiply, L.Concatenate)


# ======================================================================================================= load
def _to_last(x):
    r = len(x.shape)
    return ops.transpose(x, (0, *range(2, r), 1))


def _to_first(x):
    r = len(x.shape)
    return ops.transpose(x, (0, r - 1, *range(1, r - 1)))


def _conv(x, a, w, bias):
    """ONNX Conv (channels-first data, weight (M, C/G, *k)) on keras.ops: explicit pads, VALID conv."""
    rank = len(w.shape) - 2
    k = ops.transpose(w, (*range(2, rank + 2), 1, 0))
    h = _to_last(x)
    for i, (lo, hi) in enumerate(pad_pairs(a, rank)):
        h = pad_axis(h, 1 + i, lo, hi)
    y = ops.conv(h, k, strides=a.get("strides") or 1, padding="valid", dilation_rate=a.get("dilations") or 1)
    if bias is not None:
        y = y + bias
    return _to_first(y)


def _conv_transpose(x, a, w, bias):
    """ONNX ConvTranspose (weight (C, M/G, *k)): zero-upsampling + flipped-kernel VALID conv."""
    rank = len(w.shape) - 2
    g, strides, dil, pads, outpad = conv_transpose_attrs(a, rank)
    c, mg, *k = w.shape
    w5 = ops.reshape(w, (g, c // g, mg, *k))
    kc = ops.reshape(ops.transpose(w5, (*range(3, rank + 3), 1, 0, 2)), (*k, c // g, g * mg))
    kc = ops.flip(kc, axis=tuple(range(rank)))
    h = _to_last(x)
    for i, (lo, hi) in enumerate(transpose_as_conv_pads(pads, k, dil, outpad)):
        h = upsample_axis(h, 1 + i, strides[i])
        h = pad_axis(h, 1 + i, lo, hi)
    y = ops.conv(h, kc, strides=1, padding="valid", dilation_rate=dil)
    if bias is not None:
        y = y + bias
    return _to_first(y)


def _pool(x, a, kind):
    rank = len(a["kernel_shape"])
    h = _to_last(x)
    pads = pad_pairs(a, rank)
    strides = tuple(a.get("strides") or [1] * rank)
    a = dict(a, kernel_shape=tuple(a["kernel_shape"]))
    if kind == "max":
        for i, (lo, hi) in enumerate(pads):
            if lo or hi:
                widths = [(0, 0)] * (rank + 2)
                widths[1 + i] = (lo, hi)
                h = ops.pad(h, widths, constant_values=float("-inf"))
        y = ops.max_pool(h, a["kernel_shape"], strides, padding="valid")
    else:
        if any(lo or hi for lo, hi in pads):
            ones = ops.ones_like(h[..., :1])
            hp, op = h, ones
            for i, (lo, hi) in enumerate(pads):
                hp, op = pad_axis(hp, 1 + i, lo, hi), pad_axis(op, 1 + i, lo, hi)
            s = ops.average_pool(hp, a["kernel_shape"], strides, padding="valid")
            n = ops.average_pool(op, a["kernel_shape"], strides, padding="valid")
            y = s / n if not a.get("count_include_pad", 0) else s
        else:
            y = ops.average_pool(h, a["kernel_shape"], strides, padding="valid")
    return _to_first(y)


def _gemm(x, a):
    A, B = x[0], x[1]
    if a.get("transA", 0):
        A = ops.transpose(A)
    if a.get("transB", 0):
        B = ops.transpose(B)
    y = ops.matmul(A, B) * a.get("alpha", 1.0)
    if len(x) > 2 and x[2] is not None:
        y = y + x[2] * a.get("beta", 1.0)
    return y


def _reshape(x, a):
    shape = [int(s) for s in np.asarray(x[1]).reshape(-1)]
    dyn = ops.shape(x[0])
    shape = [dyn[i] if s == 0 and not a.get("allowzero", 0) else s for i, s in enumerate(shape)]
    return ops.reshape(x[0], shape)


def _layer_norm(x, a):
    axis = a.get("axis", -1)
    mean = ops.mean(x[0], axis=axis, keepdims=True)
    var = ops.mean(ops.square(x[0] - mean), axis=axis, keepdims=True)
    y = (x[0] - mean) / ops.sqrt(var + a.get("epsilon", 1e-5)) * x[1]
    return y + x[2] if len(x) > 2 and x[2] is not None else y


def _batch_norm(x, a):
    shape = (1, -1) + (1,) * (len(x[0].shape) - 2)
    scale, bias, mean, var = (ops.reshape(t, shape) for t in x[1:5])
    return (x[0] - mean) / ops.sqrt(var + a.get("epsilon", 1e-5)) * scale + bias


def _gelu_erf(x, a):
    return x[0] * 0.5 * (1.0 + ops.erf(x[0] / np.sqrt(2.0).astype(np.float32)))


TABLE = {
    "Gemm": _gemm,
    "MatMul": lambda x, a: ops.matmul(x[0], x[1]),
    "Add": OPERATOR_OPS["Add"],
    "Sub": OPERATOR_OPS["Sub"],
    "Mul": OPERATOR_OPS["Mul"],
    "Div": OPERATOR_OPS["Div"],
    "Neg": lambda x, a: -x[0],
    "Pow": lambda x, a: ops.power(x[0], x[1]),
    "Sqrt": lambda x, a: ops.sqrt(x[0]),
    "Reciprocal": lambda x, a: 1.0 / x[0],
    "Relu": lambda x, a: ops.relu(x[0]),
    "Sigmoid": lambda x, a: ops.sigmoid(x[0]),
    "Tanh": lambda x, a: ops.tanh(x[0]),
    "Erf": lambda x, a: ops.erf(x[0]),
    "Softplus": lambda x, a: ops.softplus(x[0]),
    "Softmax": lambda x, a: ops.softmax(x[0], axis=a.get("axis", -1)),
    "LogSoftmax": lambda x, a: ops.log_softmax(x[0], axis=a.get("axis", -1)),
    "Flatten": lambda x, a: ops.reshape(x[0], (-1, int(np.prod(x[0].shape[a.get("axis", 1):])))),
    "Reshape": _reshape,
    "Transpose": lambda x, a: ops.transpose(x[0], a.get("perm")),
    "Identity": OPERATOR_OPS["Identity"],
    "Dropout": OPERATOR_OPS["Dropout"],
    "Conv": lambda x, a: _conv(x[0], a, x[1], x[2] if len(x) > 2 else None),
    "ConvTranspose": lambda x, a: _conv_transpose(x[0], a, x[1], x[2] if len(x) > 2 else None),
    "MaxPool": lambda x, a: _pool(x[0], a, "max"),
    "AveragePool": lambda x, a: _pool(x[0], a, "avg"),
    "GlobalAveragePool": lambda x, a: ops.mean(x[0], axis=tuple(range(2, len(x[0].shape))), keepdims=True),
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Gather": lambda x, a: ops.take(x[0], ops.cast(x[1], "int32"), axis=a.get("axis", 0)),
    "Concat": lambda x, a: ops.concatenate(list(x), axis=a["axis"]),
    "ReduceMean": reduce_node(ops.mean, tuple),
    "ReduceSum": reduce_node(ops.sum, tuple),
    "ReduceMax": reduce_node(ops.max, tuple),
    "Squeeze": lambda x, a: ops.squeeze(x[0], axis=tuple(onnx_axes(x, a))) if onnx_axes(x, a) else ops.squeeze(x[0]),
    "Unsqueeze": lambda x, a: _unsqueeze(x[0], onnx_axes(x, a)),
    "Pad": partial(pad_node, pad_axis=pad_axis),
    "Softermax": lambda x, a: nk.softermax(x[0], n=a.get("n", 1.0), epsilon=a.get("epsilon", 1e-12),
                                           axis=a.get("axis", -1)),
    "SofterSigmoid": lambda x, a: nk.softer_sigmoid(x[0], n=a.get("n", 1.0)),
    "SoftTanh": lambda x, a: nk.soft_tanh(x[0], n=a.get("n", 1.0)),
}


def _unsqueeze(x, axes):
    for ax in sorted(axes):
        x = ops.expand_dims(x, ax)
    return x


@keras.saving.register_keras_serializable(package="nmn")
class OnnxOp(keras.layers.Layer):
    """One standard ONNX node as a Keras layer (used by :func:`load`): op type, attributes and its tensors.

    ``slots`` describes the node's inputs in order: ``["x", i]`` is the i-th dynamic input of the call,
    ``["w", name]`` a Keras weight holding the file's initializer ``name`` (trainable floats), ``["c", name,
    values, dtype]`` a small constant kept in the config, ``["n"]`` an empty (omitted) input.
    """

    def __init__(self, op, attrs=None, slots=None, domain="", weight_shapes=None, **kwargs):
        super().__init__(**kwargs)
        if op not in TABLE:
            raise ValueError(f"OnnxOp: ONNX op {op!r} is not supported by the Keras loader")
        self.op, self.attrs, self.slots, self.domain = op, dict(attrs or {}), [list(s) for s in slots or []], domain
        self.weight_shapes = {k: list(v) for k, v in (weight_shapes or {}).items()}
        self._tensors = {}
        for slot in self.slots:
            if slot[0] == "w":
                name = slot[1]
                self._tensors[name] = self.add_weight(name=_safe(name), shape=tuple(self.weight_shapes[name][0]),
                                                      initializer="zeros",
                                                      trainable=bool(self.weight_shapes[name][1]),
                                                      dtype=self.weight_shapes[name][2])

    def _args(self, inputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) or type(inputs).__name__ == "TrackedList" \
            else [inputs]
        args = []
        for slot in _plain(self.slots):
            if slot[0] == "x":
                args.append(inputs[slot[1]])
            elif slot[0] == "w":
                args.append(self._tensors[slot[1]])
            elif slot[0] == "c":
                args.append(np.asarray(slot[2], slot[3]))
            else:
                args.append(None)
        return args

    def call(self, inputs):
        args = self._args(inputs)
        args = [ops.convert_to_tensor(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
        return TABLE[self.op](args, _plain(self.attrs))

    def _emit(self, b, names, values):
        names = names if isinstance(names, (list, tuple)) else [names]
        ins = []
        for slot in _plain(self.slots):
            if slot[0] == "x":
                ins.append(names[slot[1]])
            elif slot[0] == "w":
                ins.append(b.initializer(slot[1], _np(self._tensors[slot[1]]).astype(self.weight_shapes[slot[1]][2])))
            elif slot[0] == "c":
                ins.append(b.initializer(slot[1], np.asarray(slot[2], slot[3])))
            else:
                ins.append("")
        return b.node(self.op, ins, _plain(self.attrs), domain=self.domain, name=self.name)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "attrs": self.attrs, "slots": self.slots,
                "domain": self.domain, "weight_shapes": self.weight_shapes}


def _safe(name: str) -> str:
    """A Keras layer / weight name for a file name (no ``/``, ``:`` or ``.``: the torch backend refuses dots)."""
    return name.replace("/", "_").replace(":", "_").replace(".", "_")


def _plain(v):
    """Keras wraps list/dict attributes in tracked containers; give the op table plain Python values."""
    if isinstance(v, dict) or type(v).__name__ == "TrackedDict":
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) or type(v).__name__ in ("TrackedList", "ListWrapper"):
        return [_plain(x) for x in v]
    return v


def _jsonable_attr(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [_jsonable_attr(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def load(source, **_options) -> keras.Model:
    """Load an nmn ONNX file (from any nmn exporter) as a trainable ``keras.Model``.

    ``nmn`` nodes become ``nmn.keras`` layers (named by the file's layer names, convolutions
    ``channels_first``), standard nodes :class:`OnnxOp` layers. The model takes the file's inputs in the file's
    layout and saves to ``.keras``.

    Example:
        >>> import keras, numpy as np, nmn.keras as nk
        >>> from nmn.interchange import keras_io
        >>> x = keras.Input((4,), name="x")
        >>> net = keras.Model(x, keras.layers.Dense(2, name="out")(nk.YatNMN(3, name="yat")(x)))
        >>> loaded = keras_io.load(keras_io.export(net, np.ones((2, 4), np.float32)))
        >>> v = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
        >>> bool(np.allclose(keras.ops.convert_to_numpy(loaded(v)), keras.ops.convert_to_numpy(net(v)), atol=1e-6))
        True
    """
    graph = read_model(source)
    trainable_inits = graph.trainable_initializers()
    missing = sorted({f"{n.domain or 'ai.onnx'}::{n.op} (node {n.name!r})" for n in graph.nodes
                      if n.name not in graph.node_layer and not _skipped(graph, n) and n.op not in TABLE})
    if missing:
        raise UnsupportedModelError(f"cannot load into keras: {len(missing)} unsupported node(s):\n  - "
                                    + "\n  - ".join(missing))
    env = {}
    inputs = []
    for name, shape, dtype in graph.inputs:
        t = keras.Input(shape=tuple(None if d is None or isinstance(d, str) else d for d in shape[1:]),
                        dtype=str(np.dtype(dtype)), name=_safe(name))
        env[name] = t
        inputs.append(t)
    yat_layers = {}
    for node in graph.nodes:
        if _skipped(graph, node):
            continue
        if node.name in graph.node_layer:
            spec = graph.layers[graph.node_layer[node.name]]
            layer = yat_layers.get(spec.name)
            if layer is None:
                layer = _yat_from_spec(spec)
                yat_layers[spec.name] = layer
            env[node.outputs[0]] = _call_yat(layer, spec, node, env, graph)
            continue
        dyn, slots, shapes = [], [], {}
        for i in node.inputs:
            if not i:
                slots.append(["n"])
            elif i in env:
                slots.append(["x", len(dyn)])
                dyn.append(env[i])
            else:
                array = graph.initializers[i]
                if array.dtype.kind == "f" and (i in trainable_inits or array.size > 64):
                    slots.append(["w", i])
                    shapes[i] = [list(array.shape), bool(i in trainable_inits), str(array.dtype)]
                else:
                    slots.append(["c", i, array.tolist(), str(array.dtype)])
        attrs = {k: _jsonable_attr(v) for k, v in node.attrs.items()}
        layer = OnnxOp(node.op, attrs, slots, node.domain, shapes, name=_safe(node.name))
        for slot in slots:
            if slot[0] == "w":
                layer._tensors[slot[1]].assign(graph.initializers[slot[1]])
        out = layer(dyn)
        env[node.outputs[0]] = out
    outs = [env[o] for o in graph.outputs]
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outs[0] if len(outs) == 1 else outs,
                        name="nmn_onnx")
    object.__setattr__(model, "_nmn_output_names", list(graph.outputs))
    return model


def _yat_from_spec(spec):
    kwargs = {"name": _safe(spec.name)}
    if spec.kind in ("YatConv", "YatConvTranspose"):
        kwargs["data_format"] = "channels_first"
    config = dict(spec.config)
    if spec.kind == "YatConv" and isinstance(config.get("padding"), list):
        config["padding"] = [tuple(p) for p in config["padding"]]
    layer = kspec.from_spec(spec.kind, config, spec.params, **kwargs)
    names = {k: v[len(spec.name) + 1:] for k, v in spec.param_inits.items() if v.startswith(spec.name + ".")}
    object.__setattr__(layer, "_nmn_param_names", names)
    object.__setattr__(layer, "_nmn_name", spec.name)
    return layer


def _call_yat(layer, spec, node, env, graph):
    args = [env.get(i) for i in node.inputs]
    op = node.op
    if op == "Gather":
        return layer(args[1])
    if op == "YatEmbedAttend":
        return layer.attend(args[0])
    if "Attention" in op:
        mask = None if node.inputs[3] in graph.initializers else args[3]
        if spec.kind == "RotaryYatAttention":
            return layer(args[0], attention_mask=mask)
        return layer(args[0], args[1], args[2], attention_mask=mask)
    if op in ("Softermax", "SofterSigmoid", "SoftTanh"):
        return OnnxOp(op, node.attrs, [["x", 0]], node.domain, name=_safe(node.name))([args[0]])
    return layer(args[0])


def predict(model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inference on numpy inputs; returns numpy outputs."""
    out = model([np.asarray(x) for x in inputs] if len(inputs) > 1 else np.asarray(inputs[0]), training=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [_np(o) for o in outs]
