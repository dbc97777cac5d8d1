"""Keras 3 <-> ONNX: export a functional or sequential model of nmn and standard Keras layers, load any nmn file.

**Export** walks the functional layer graph that ``model.get_config()`` describes (every layer call with its
inputs), runs each call eagerly on the example inputs (for shapes and the final check) and emits each layer
through the framework-neutral :class:`~nmn.interchange.graph.GraphBuilder`: one ``nmn::`` node per Yat layer,
standard ONNX ops for the standard layers. The walk sees layers, not backend ops, so the file is the same on the
TensorFlow, JAX and PyTorch backends (docs/design.md §N7; ``model.export(format="onnx")`` would decompose
the Yat layers). Data stays channels-last at the graph inputs, with ``Transpose`` nodes around each convolution;
initializers are named by the Keras weight paths (``<layer>.<weight>``).

Supported layers: every ``nmn.keras`` layer (``YatEmbed`` lookup and ``attend``; the squashers ``Softermax``,
``SofterSigmoid``, ``SoftTanh``, which the functional ``softermax`` & co. add when called on ``keras.Input``
tensors, one ``nmn::`` node each), ``Dense`` (with its
activation), ``Conv1D/2D/3D``, ``Conv1D/2D/3DTranspose`` (no ``output_padding``), ``Flatten``, ``Reshape``,
``Activation``/``ReLU``/``Softmax``, ``LayerNormalization`` (last axis), ``BatchNormalization`` (inference),
``Dropout`` (identity), ``Embedding``, ``MaxPooling*``/``AveragePooling*``/``GlobalAveragePooling*``,
``Add``/``Subtract``/``Multiply``/``Concatenate``, ``InputLayer``; several inputs and outputs. Anything else
raises :class:`~nmn.interchange.graph.ExportError` naming every unsupported layer; so does a subclassed
``keras.Model`` (its ``call`` is Python, not a layer graph: build it functionally).

**Load** turns a file into a ``keras.Model``: each ``nmn`` node becomes the ``nmn.keras`` layer holding the
file's weights (convolutions ``channels_first``, the file's layout), each standard node an :class:`OnnxOp`
layer (registered as serializable, so the model saves to ``.keras`` and loads back) whose tensors are Keras
weights. It trains with ``model.fit``; ``export(load(f))`` writes the file's initializers back bit for bit.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx

try:
    import keras
    from keras import ops
except ImportError as err:  # pragma: no cover
    raise ImportError('nmn.interchange.keras_io needs Keras 3: pip install "nmn[keras]>=1.0"') from err

import nmn.keras as nk
from nmn.core.conv import conv_pads
from nmn.interchange import emit
from nmn.interchange._export_common import write
from nmn.interchange.keras_io.holder import TABLE, OnnxOp, load, predict  # the load half
from nmn.interchange._tfkeras_common import HOST_NAMES
from nmn.interchange.graph import ExportError, GraphBuilder, check_against
from nmn.keras import spec as kspec

__all__ = ["export", "load", "predict", "OnnxOp", "TABLE"]

L = keras.layers
_YAT = (
    nk.YatNMN,
    nk.YatConv1D,
    nk.YatConv2D,
    nk.YatConv3D,
    nk.YatConvTranspose1D,
    nk.YatConvTranspose2D,
    nk.YatConvTranspose3D,
    nk.MultiHeadYatAttention,
    nk.YatEmbed,
)


_SQUASH = (nk.Softermax, nk.SofterSigmoid, nk.SoftTanh)
_SQUASH_KINDS = dict(zip(_SQUASH, ("softermax", "softer_sigmoid", "soft_tanh")))


def _np(t) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(t))


def _host_shape(value) -> list:
    return [None, *value.shape[1:]]


# ======================================================================================================= export
def export(
    model, example_inputs: Any, path: str | os.PathLike | None = None, *, rtol: float = 1e-5, inline: bool = False
) -> onnx.ModelProto:
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
    if type(model).__name__ == "_GraphModel":  # a loaded graph whose shapes depend on input values
        raise ExportError(
            f"{model.name}: this model was loaded from a file whose shapes depend on input values (it runs its "
            "nodes per call, with no Keras layer graph to walk); export the original file's model instead"
        )
    sequential = isinstance(model, keras.Sequential)
    if not sequential and not _functional(model):
        raise ExportError(
            f"{model.name}: a subclassed keras.Model ({type(model).__name__}) has no layer graph to walk; build "
            "it as keras.Model(inputs, outputs) or keras.Sequential (the same layers, called on keras.Input)"
        )
    config = model.get_config()
    if sequential or "input_layers" not in config:
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


def _functional(model) -> bool:
    try:
        return isinstance(model, keras.Model) and "input_layers" in model.get_config()
    except NotImplementedError:  # a subclassed model without get_config
        return False


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
    if isinstance(v, dict) and v.get("class_name") == "__tensor__":  # a constant tensor passed to a layer call
        return np.asarray(v["config"]["value"], v["config"]["dtype"])
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
        raise ExportError(
            f"{model.name}: {len(unsupported)} layer(s) have no ONNX emitter: " + ", ".join(dict.fromkeys(unsupported))
        )
    pending = list(calls)
    while pending:
        progress = False
        for call in list(pending):
            layer, index, args, kwargs = call
            needed = []
            _map([args, kwargs], needed.append)
            if any(h not in env for h in needed):
                continue
            names = _constants(b, layer, _map(args, lambda h: env[h][0]))
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
            raise ExportError(
                f"{model.name}: could not order the layer graph (waiting: {[c[0].name for c in pending]})"
            )
    expected = []
    out_names = getattr(model, "_nmn_output_names", None)
    for i, ref in enumerate(out_refs):
        value, eager = env[tuple(ref)]
        default = "output" if len(out_refs) == 1 else f"output_{i}"
        b.output(value, out_names[i] if out_names else default)
        expected.append(_np(eager))
    return expected


def _constants(b, layer, names):
    """Value names for a call's arguments: a constant tensor argument (a loaded model's node that computes
    from weights alone, folded by the loader) becomes an ONNX constant."""
    if isinstance(names, np.ndarray):
        return b.constant(f"{layer.name}.const", names)
    if isinstance(names, (list, tuple)):
        return [_constants(b, layer, n) for n in names]
    return names


_OPERATIONS = {
    "Add": "Add",
    "Subtract": "Sub",
    "Multiply": "Mul",
    "Divide": "Div",
    "TrueDivide": "Div",
    "Matmul": "MatMul",
}


def _supported(layer) -> bool:
    if not isinstance(layer, keras.layers.Layer):
        return type(layer).__name__ in _OPERATIONS
    return isinstance(layer, (*_YAT, *_SQUASH, OnnxOp, *_STANDARD))


def _first(names):
    return names[0] if isinstance(names, list) else names


def _emit(b, layer, names, values, kw_names, kw_values, outs):
    if not isinstance(layer, keras.layers.Layer):  # a keras.ops call on symbolic tensors (``h + f(h)``)
        ins = [
            n if isinstance(n, str) else b.constant(f"{layer.name}.const", np.asarray(n, np.float32)) for n in names[:2]
        ]
        return b.node(_OPERATIONS[type(layer).__name__], ins, name=layer.name)
    if isinstance(layer, OnnxOp):
        return layer._emit(b, names[0], values[0])
    if isinstance(layer, _YAT):
        return _emit_yat(b, layer, names, values, kw_names, kw_values)
    if isinstance(layer, _SQUASH):
        kind = next(k for cls, k in _SQUASH_KINDS.items() if isinstance(layer, cls))
        config = {"n": layer.n, "epsilon": layer.epsilon, "axis": layer.axis} if kind == "softermax" else {"n": layer.n}
        return emit.yat_layer(b, layer.name, kind, config, {}, [_first(names)])
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
            call["mask_rank"] = len(kw_values["attention_mask"].shape)
        if kind == "MultiHeadYatAttention":
            key = names[1] if len(names) > 1 else kw_names.get("key")
            value = names[2] if len(names) > 2 else kw_names.get("value")
            ins = [names[0], key or names[0], value or key or names[0]]
    if kind == "YatEmbed" and kw_values.get("method") == "attend":
        call["method"] = "attend"
    name = getattr(layer, "_nmn_name", layer.name)
    return emit.yat_layer(
        b,
        name,
        kind,
        config,
        params,
        ins,
        in_shape=shape,
        channels_last=channels_last,
        call=call,
        param_names=param_names,
        trainable=trainable,
        host=host,
    )


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
        return emit.layer_norm(
            b,
            layer.name,
            x,
            _np(layer.gamma) if layer.scale else None,
            _np(layer.beta) if layer.center else None,
            layer.epsilon,
            param_names={"weight": "gamma", "bias": "beta"},
        )
    if isinstance(layer, L.BatchNormalization):
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
    if isinstance(layer, L.Embedding):
        return emit.embedding(b, layer.name, x, _np(layer.embeddings), param_names={"weight": "embeddings"})
    if cls.startswith(("MaxPooling", "AveragePooling")):
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
    if cls.startswith("GlobalAveragePooling") or cls.startswith("GlobalMaxPooling"):
        cl = layer.data_format == "channels_last"
        axes = list(range(1, len(v.shape) - 1)) if cl else list(range(2, len(v.shape)))
        op = "ReduceMean" if "Average" in cls else "ReduceMax"
        keep = int(bool(layer.keepdims))
        return b.node(
            op, [x, b.constant(f"{layer.name}.axes", np.array(axes, np.int64))], {"keepdims": keep}, name=layer.name
        )
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply)):
        op = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul"}[cls]
        y = names[0][0]
        for other in names[0][1:]:
            y = b.node(op, [y, other], name=layer.name)
        return y
    if isinstance(layer, L.Concatenate):
        return b.node("Concat", list(names[0]), {"axis": int(layer.axis)}, name=layer.name)
    raise ExportError(f"{layer.name}: {cls} has no ONNX emitter")


_STANDARD = (
    L.Dense,
    L.Conv1D,
    L.Conv2D,
    L.Conv3D,
    L.Conv1DTranspose,
    L.Conv2DTranspose,
    L.Conv3DTranspose,
    L.Flatten,
    L.Reshape,
    L.Activation,
    L.ReLU,
    L.Softmax,
    L.Dropout,
    L.LayerNormalization,
    L.BatchNormalization,
    L.Embedding,
    L.MaxPooling1D,
    L.MaxPooling2D,
    L.MaxPooling3D,
    L.AveragePooling1D,
    L.AveragePooling2D,
    L.AveragePooling3D,
    L.GlobalAveragePooling1D,
    L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D,
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.GlobalMaxPooling3D,
    L.Add,
    L.Subtract,
    L.Multiply,
    L.Concatenate,
)
