"""TensorFlow loader: an ONNX file as a trainable ``tf.Module`` (the load half of :mod:`nmn.interchange.tf_io`).

``nmn`` nodes become ``nmn.tf`` layers holding the file's weights (convolutions ``channels_first``, the file's
layout), the other float tensors ``tf.Variable`` s; ``__call__`` is a ``tf.function`` with the file's input
signature, so it trains with ``tf.GradientTape`` and saves as a SavedModel.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import onnx
import tensorflow as tf

import nmn.tf as nt
from nmn.core.conv import transpose_as_conv_pads
from nmn.interchange._optable import OPERATOR_OPS, axes as onnx_axes, pad_pairs
from nmn.interchange._tfkeras_common import conv_transpose_attrs, pad_node, reduce_node
from nmn.interchange.interpret import check_supported, execute, replay
from nmn.interchange.reader import read_model
from nmn.tf import spec as tspec
from nmn.tf._ops import conv as _tf_conv, pad_axis, upsample_axis

__all__ = ["load", "predict", "OnnxModule", "TABLE"]

def _to_last(x):
    r = x.shape.rank
    return tf.transpose(x, (0, *range(2, r), 1))


def _to_first(x):
    r = x.shape.rank
    return tf.transpose(x, (0, r - 1, *range(1, r - 1)))


def _conv(x, a, w, bias):
    rank = w.shape.rank - 2
    g = int(a.get("group", 1))
    k = tf.transpose(w, (*range(2, rank + 2), 1, 0))
    h = _to_last(x)
    for i, (lo, hi) in enumerate(pad_pairs(a, rank)):
        h = pad_axis(h, 1 + i, lo, hi)
    y = _tf_conv(h, k, a.get("strides") or [1] * rank, a.get("dilations") or [1] * rank, g)
    return _to_first(y if bias is None else y + bias)


def _conv_transpose(x, a, w, bias):
    rank = w.shape.rank - 2
    g, strides, dil, pads, outpad = conv_transpose_attrs(a, rank)
    c, mg, *k = w.shape
    w5 = tf.reshape(w, (g, c // g, mg, *k))
    kc = tf.reshape(tf.transpose(w5, (*range(3, rank + 3), 1, 0, 2)), (*k, c // g, g * mg))
    kc = tf.reverse(kc, axis=list(range(rank)))
    h = _to_last(x)
    for i, (lo, hi) in enumerate(transpose_as_conv_pads(pads, k, dil, outpad)):
        h = upsample_axis(h, 1 + i, strides[i])
        h = pad_axis(h, 1 + i, lo, hi)
    y = _tf_conv(h, kc, [1] * rank, dil, g)
    return _to_first(y if bias is None else y + bias)


def _pool(x, a, kind):
    rank = len(a["kernel_shape"])
    h = _to_last(x)
    pads = pad_pairs(a, rank)
    strides = a.get("strides") or [1] * rank
    if kind == "max":
        widths = [[0, 0]] + [list(p) for p in pads] + [[0, 0]]
        if any(lo or hi for lo, hi in pads):
            h = tf.pad(h, widths, constant_values=float("-inf"))
        y = tf.nn.max_pool(h, a["kernel_shape"], strides, "VALID")
    else:
        widths = [[0, 0]] + [list(p) for p in pads] + [[0, 0]]
        s = tf.nn.avg_pool(tf.pad(h, widths), a["kernel_shape"], strides, "VALID")
        if any(lo or hi for lo, hi in pads) and not a.get("count_include_pad", 0):
            n = tf.nn.avg_pool(tf.pad(tf.ones_like(h[..., :1]), widths), a["kernel_shape"], strides, "VALID")
            s = s / n
        y = s
    return _to_first(y)


def _gemm(x, a):
    A, B = x[0], x[1]
    y = tf.matmul(A, B, transpose_a=bool(a.get("transA", 0)), transpose_b=bool(a.get("transB", 0)))
    y = y * a.get("alpha", 1.0) if a.get("alpha", 1.0) != 1.0 else y
    return y + x[2] * a.get("beta", 1.0) if len(x) > 2 and x[2] is not None else y


def _reshape(x, a):
    if isinstance(x[1], np.ndarray):
        shape = [int(s) for s in x[1].reshape(-1)]
        if not a.get("allowzero", 0):
            dyn = tf.shape(x[0])
            shape = [dyn[i] if s == 0 else s for i, s in enumerate(shape)]
        return tf.reshape(x[0], shape)
    shape = tf.cast(x[1], tf.int32)
    if not a.get("allowzero", 0):
        n = tf.size(shape)
        dyn = tf.concat([tf.shape(x[0]), tf.zeros([n], tf.int32)], 0)[:n]
        shape = tf.where(shape == 0, dyn, shape)
    return tf.reshape(x[0], shape)


def _layer_norm(x, a):
    axis = a.get("axis", -1)
    mean, var = tf.nn.moments(x[0], axes=[axis], keepdims=True)
    y = (x[0] - mean) / tf.sqrt(var + a.get("epsilon", 1e-5)) * x[1]
    return y + x[2] if len(x) > 2 and x[2] is not None else y


def _batch_norm(x, a):
    shape = (1, -1) + (1,) * (x[0].shape.rank - 2)
    scale, bias, mean, var = (tf.reshape(t, shape) for t in x[1:5])
    return (x[0] - mean) / tf.sqrt(var + a.get("epsilon", 1e-5)) * scale + bias


def _unsqueeze(x, axes):
    for ax in sorted(axes):
        x = tf.expand_dims(x, ax)
    return x


def _slice(x, a):
    data = x[0]
    starts, ends = np.asarray(x[1]).reshape(-1), np.asarray(x[2]).reshape(-1)
    axes = np.asarray(x[3]).reshape(-1) if len(x) > 3 and x[3] is not None else np.arange(len(starts))
    steps = np.asarray(x[4]).reshape(-1) if len(x) > 4 and x[4] is not None else np.ones(len(starts), np.int64)
    index = [slice(None)] * data.shape.rank
    big = np.iinfo(np.int64).max
    for s, e, ax, st in zip(starts, ends, axes, steps):
        index[int(ax)] = slice(int(s), None if abs(int(e)) >= big // 2 else int(e), int(st))
    return data[tuple(index)]


TABLE = {
    "Gemm": _gemm,
    "MatMul": lambda x, a: tf.matmul(x[0], x[1]),
    "Add": OPERATOR_OPS["Add"],
    "Sub": OPERATOR_OPS["Sub"],
    "Mul": OPERATOR_OPS["Mul"],
    "Div": OPERATOR_OPS["Div"],
    "Neg": lambda x, a: -x[0],
    "Pow": lambda x, a: tf.pow(x[0], x[1]),
    "Sqrt": lambda x, a: tf.sqrt(x[0]),
    "Reciprocal": lambda x, a: 1.0 / x[0],
    "Relu": lambda x, a: tf.nn.relu(x[0]),
    "Sigmoid": lambda x, a: tf.sigmoid(x[0]),
    "Tanh": lambda x, a: tf.tanh(x[0]),
    "Erf": lambda x, a: tf.math.erf(x[0]),
    "Softplus": lambda x, a: tf.nn.softplus(x[0]),
    "Softmax": lambda x, a: tf.nn.softmax(x[0], axis=a.get("axis", -1)),
    "LogSoftmax": lambda x, a: tf.nn.log_softmax(x[0], axis=a.get("axis", -1)),
    "Flatten": lambda x, a: tf.reshape(x[0], (-1, int(np.prod(x[0].shape[a.get("axis", 1):])))),
    "Reshape": _reshape,
    "Transpose": lambda x, a: tf.transpose(x[0], a.get("perm")),
    "Identity": OPERATOR_OPS["Identity"],
    "Dropout": OPERATOR_OPS["Dropout"],
    "Conv": lambda x, a: _conv(x[0], a, x[1], x[2] if len(x) > 2 else None),
    "ConvTranspose": lambda x, a: _conv_transpose(x[0], a, x[1], x[2] if len(x) > 2 else None),
    "MaxPool": lambda x, a: _pool(x[0], a, "max"),
    "AveragePool": lambda x, a: _pool(x[0], a, "avg"),
    "GlobalAveragePool": lambda x, a: tf.reduce_mean(x[0], axis=list(range(2, x[0].shape.rank)), keepdims=True),
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Gather": lambda x, a: tf.gather(x[0], x[1], axis=a.get("axis", 0)),
    "Concat": lambda x, a: tf.concat(list(x), axis=a["axis"]),
    "ReduceMean": reduce_node(tf.reduce_mean, list),
    "ReduceSum": reduce_node(tf.reduce_sum, list),
    "ReduceMax": reduce_node(tf.reduce_max, list),
    "Squeeze": lambda x, a: tf.squeeze(x[0], axis=onnx_axes(x, a)) if onnx_axes(x, a) else tf.squeeze(x[0]),
    "Unsqueeze": lambda x, a: _unsqueeze(x[0], onnx_axes(x, a)),
    "Pad": partial(pad_node, pad_axis=pad_axis),
    "Shape": lambda x, a: tf.shape(x[0], out_type=tf.int64),
    "Slice": _slice,
    "Cast": lambda x, a: tf.cast(x[0], tf.as_dtype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))),
    "Softermax": lambda x, a: nt.softermax(x[0], n=a.get("n", 1.0), epsilon=a.get("epsilon", 1e-12),
                                           axis=a.get("axis", -1)),
    "SofterSigmoid": lambda x, a: nt.softer_sigmoid(x[0], n=a.get("n", 1.0)),
    "SoftTanh": lambda x, a: nt.soft_tanh(x[0], n=a.get("n", 1.0)),
}


def _key(name: str) -> str:
    key = name.replace(".", "__").replace("/", "_")
    return "n" + key if not key or key[0] == "_" or key[0].isdigit() else key


class OnnxModule(tf.Module):
    """A ``tf.Module`` loaded from an nmn ONNX file.

    ``layers`` holds one ``nmn.tf`` layer per Yat layer of the file (keys are the file's layer names with ``.``
    written ``__``), ``params`` the file's other trainable tensors as ``tf.Variable`` s (in the file's ONNX
    layout); ``__call__`` is a ``tf.function`` with the file's input signature (symbolic batch), so
    ``tf.saved_model.save(module, path)`` works and the restored object is callable.
    """

    def __init__(self, graph, *, name="nmn_onnx"):
        super().__init__(name=name)
        self._graph = graph
        self.layers = {}
        for lname, spec in graph.layers.items():
            if spec.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
                continue
            kwargs = {"name": _key(lname)}
            if spec.kind in ("YatConv", "YatConvTranspose"):
                kwargs["data_format"] = "channels_first"
            config = dict(spec.config)
            if isinstance(config.get("padding"), list):
                config["padding"] = [tuple(p) for p in config["padding"]]
            layer = tspec.from_spec(spec.kind, config, spec.params, **kwargs)
            layer._nmn_param_names = {k: v[len(lname) + 1:] for k, v in spec.param_inits.items()
                                      if v.startswith(lname + ".")}
            for canonical, trainable in spec.trainable.items():
                if not trainable:
                    _freeze(layer, spec.kind, canonical)
            self.layers[_key(lname)] = layer
        self._owned = {init: (spec.name, spec.kind, key) for spec in graph.layers.values()
                       for key, init in spec.param_inits.items()}
        trainable = graph.trainable_initializers()
        used = {i for n in graph.nodes for i in n.inputs}
        self.params = {}
        consts = {}
        for iname, array in graph.initializers.items():
            if iname in self._owned or iname not in used:
                continue
            if iname in trainable and array.dtype.kind == "f":
                self.params[_key(iname)] = tf.Variable(array, name=_key(iname))
            else:
                consts[iname] = array
        self._consts = consts
        check_supported(graph, TABLE, "tf")
        signature = [tf.TensorSpec([None if (d is None or isinstance(d, str)) else d for d in shape],
                                   tf.as_dtype(np.dtype(dtype)), name=_key(n)) for n, shape, dtype in graph.inputs]
        self.__call__ = tf.function(self._run, input_signature=signature, autograph=False)

    def __call__(self, *inputs):  # replaced per instance by the tf.function built in __init__
        return self.__dict__["__call__"](*inputs)

    def _tensor(self, name):
        key = _key(name)
        if key in self.params:
            return self.params[key]
        if name in self._owned:
            layer_name, kind, canonical = self._owned[name]
            return _layer_tensor(self.layers[_key(layer_name)], kind, canonical)
        value = self._consts.get(name)
        return None if value is None else (tf.constant(value) if value.dtype.kind == "f" else value)

    def _yat(self, node, args):
        spec = self._graph.layers[self._graph.node_layer[node.name]]
        op = node.op
        if op in ("Softermax", "SofterSigmoid", "SoftTanh"):
            return TABLE[op](args, node.attrs)
        layer = self.layers[_key(spec.name)]
        if op == "YatEmbedAttend":
            return layer.attend(args[0])
        if op == "Gather":
            return layer(args[1])
        if "Attention" in op:
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            if spec.kind == "RotaryYatAttention":
                return layer(args[0], mask=mask)
            return layer(args[0], args[1], args[2], mask=mask)
        return layer(args[0])

    def _run(self, *inputs):
        outs = execute(self._graph, list(inputs), tensor=self._tensor, table=TABLE, yat=self._yat)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _replay(self) -> onnx.ModelProto:
        def param(name):
            t = self._tensor(name)
            if t is None:
                return self._graph.initializers[name]
            return np.asarray(t.numpy() if hasattr(t, "numpy") else t).astype(self._graph.initializers[name].dtype)

        def spec(layer_name):
            layer_spec = self._graph.layers[layer_name]
            if layer_spec.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
                return layer_spec.kind, layer_spec.config, {}
            return tspec.to_spec(self.layers[_key(layer_name)])

        return replay(self._graph, source="tf", param=param, yat_spec=spec).build()


def _layer_tensor(layer, kind, canonical):
    """A Yat layer's current parameter in the canonical (file) layout (differentiable)."""
    if canonical == "weight":
        k = layer.kernel
        r = k.shape.rank - 2
        if kind == "YatNMN":
            return tf.transpose(k)
        return tf.transpose(k, (r + 1, r, *range(r)))
    host = {"q_weight": "q_kernel", "k_weight": "k_kernel", "v_weight": "v_kernel", "out_weight": "out_kernel"}
    if canonical in host:
        return tf.transpose(getattr(layer, host[canonical]))
    return getattr(layer, canonical)


def _freeze(layer, kind, canonical):
    host = {"weight": "kernel"}.get(canonical, canonical)
    var = getattr(layer, host, None)
    if isinstance(var, tf.Variable) and var.trainable:
        setattr(layer, host, tf.Variable(var, trainable=False, name=var.name.split(":")[0].split("/")[-1]))


def load(source, **_options) -> OnnxModule:
    """Load an nmn ONNX file (from any nmn exporter) as a trainable ``tf.Module`` (:class:`OnnxModule`).

    Example:
        >>> import numpy as np, tensorflow as tf, nmn.tf as nt
        >>> from nmn.interchange import tf_io
        >>> layer = nt.YatNMN(3)
        >>> loaded = tf_io.load(tf_io.export(layer, np.ones((2, 4), np.float32)))
        >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
        >>> bool(np.allclose(loaded(x).numpy(), layer(x).numpy(), atol=1e-6))
        True
    """
    return OnnxModule(read_model(source))


def predict(model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inference on numpy inputs (an :class:`OnnxModule`, a native module or a restored SavedModel)."""
    out = model(*[tf.constant(np.asarray(x)) for x in inputs])
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o) for o in outs]
