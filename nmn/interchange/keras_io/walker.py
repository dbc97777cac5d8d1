"""Export walk of :mod:`nmn.interchange.keras_io`: the functional layer graph of ``model.get_config()``, each call
run eagerly (for shapes and the final check) and written by the emitter registered for its layer class in
:data:`~nmn.interchange.keras_io.layers.LAYERS` (nmn layers and :class:`OnnxOp` here, standard Keras layers in
:mod:`~nmn.interchange.keras_io.layers`)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

import nmn.keras as nk
from nmn.interchange import emit
from nmn.interchange._tfkeras_common import HOST_NAMES
from nmn.interchange.graph import ExportError, GraphBuilder
from nmn.interchange.keras_io.holder import OnnxOp
from nmn.interchange.keras_io.layers import LAYERS, _first, _host_shape, _np
from nmn.keras import spec as kspec

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
    return LAYERS.for_type(type(layer)) is not None


def _emit(b, layer, names, values, kw_names, kw_values, outs):
    if not isinstance(layer, keras.layers.Layer):  # a keras.ops call on symbolic tensors (``h + f(h)``)
        ins = [
            n if isinstance(n, str) else b.constant(f"{layer.name}.const", np.asarray(n, np.float32)) for n in names[:2]
        ]
        return b.node(_OPERATIONS[type(layer).__name__], ins, name=layer.name)
    return LAYERS.for_type(type(layer))(b, layer, names, values, kw_names, kw_values)


@LAYERS.register(OnnxOp)
def _emit_onnx_op(b, layer, names, values, kw_names, kw_values):
    return layer._emit(b, names[0], values[0])


@LAYERS.register(*_SQUASH)
def _emit_squasher(b, layer, names, values, kw_names, kw_values):
    kind = next(k for cls, k in _SQUASH_KINDS.items() if isinstance(layer, cls))
    config = {"n": layer.n, "epsilon": layer.epsilon, "axis": layer.axis} if kind == "softermax" else {"n": layer.n}
    return emit.yat_layer(b, layer.name, kind, config, {}, [_first(names)])


@LAYERS.register(*_YAT)
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
