"""Keras 3 loader: an ONNX file as a trainable ``keras.Model`` (the load half of :mod:`nmn.interchange.keras_io`).

Each ``nmn`` node becomes the ``nmn.keras`` layer holding the file's weights (convolutions ``channels_first``,
the file's layout), each standard node an :class:`OnnxOp` layer (registered as serializable, so the model saves
to ``.keras`` and loads back) whose tensors are Keras weights.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np

import keras
from keras import ops

import nmn.keras as nk
from nmn.core.conv import transpose_as_conv_pads
from nmn.interchange._optable import OPERATOR_OPS, axes as onnx_axes, pad_pairs
from nmn.interchange._tfkeras_common import conv_transpose_attrs, pad_node, reduce_node
from nmn.interchange.interpret import _skipped
from nmn.interchange.reader import UnsupportedModelError, read_model
from nmn.keras import spec as kspec
from nmn.keras._ops import pad_axis, upsample_axis

__all__ = ["load", "predict", "OnnxOp", "TABLE"]


def _np(t) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(t))

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
