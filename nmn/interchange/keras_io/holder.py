"""Keras 3 loader: an ONNX file as a trainable ``keras.Model`` (the load half of :mod:`nmn.interchange.keras_io`).

Each ``nmn`` node becomes the ``nmn.keras`` layer holding the file's weights (convolutions ``channels_first``,
the file's layout), each standard node an :class:`OnnxOp` layer (registered as serializable, so the model saves
to ``.keras`` and loads back) whose tensors are Keras weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import onnx
from keras import ops

from nmn.interchange.interpret import SQUASHER_OPS, _skipped, check_supported, squash
from nmn.interchange.keras_io.ops import PRIMS, host_dtype, to_host
from nmn.interchange.reader import UnsupportedModelError, read_model
from nmn.interchange.stdops import SUPPORTED, StdOpError, run_node, value_inputs

__all__ = ["load", "predict", "OnnxOp", "TABLE"]


def _np(t) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(t))


TABLE = SUPPORTED
"""The standard ops this loader runs (the shared list of :mod:`nmn.interchange.stdops`)."""


@keras.saving.register_keras_serializable(package="nmn")
class OnnxOp(keras.layers.Layer):
    """One standard ONNX node as a Keras layer (used by :func:`load`): op type, attributes and its tensors.

    ``slots`` describes the node's inputs in order: ``["x", i]`` is the i-th dynamic input of the call,
    ``["w", name]`` a Keras weight holding the file's initializer ``name`` (trainable floats), ``["c", name,
    values, dtype]`` a small constant kept in the config, ``["n"]`` an empty (omitted) input.
    """

    def __init__(
        self,
        op: str,
        attrs: dict | None = None,
        slots: list | None = None,
        domain: str = "",
        weight_shapes: dict | None = None,
        opset: int = 18,
        n_outputs: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if op not in TABLE and op not in SQUASHER_OPS:
            raise ValueError(f"OnnxOp: ONNX op {op!r} is not supported by the Keras loader")
        self.op, self.attrs, self.slots, self.domain = op, dict(attrs or {}), [list(s) for s in slots or []], domain
        self.opset, self.n_outputs = int(opset), int(n_outputs)
        self.weight_shapes = {k: list(v) for k, v in (weight_shapes or {}).items()}
        self._tensors = {}
        for slot in self.slots:
            if slot[0] == "w":
                name = slot[1]
                self._tensors[name] = self.add_weight(
                    name=_safe(name),
                    shape=tuple(self.weight_shapes[name][0]),
                    initializer="zeros",
                    trainable=bool(self.weight_shapes[name][1]),
                    dtype=self.weight_shapes[name][2],
                )

    def _args(self, inputs):
        inputs = (
            list(inputs) if isinstance(inputs, (list, tuple)) or type(inputs).__name__ == "TrackedList" else [inputs]
        )
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

    def call(self, inputs: Any) -> Any:
        args = self._args(inputs)
        if self.op in SQUASHER_OPS:
            import nmn.keras as nk  # here, not at import: nmn.keras imports this module's package

            return squash(nk, self.op, _plain(self.attrs), args[0])
        try:
            outs = run_node(PRIMS, self.op, args, _plain(self.attrs), opset=self.opset, n_outputs=self.n_outputs)
        except StdOpError as err:
            # Keras re-raises an error from a layer call with its call context in a multi-line message, unless
            # the error says that context is already in it (keras/src/utils/traceback_utils.py,
            # ``_keras_call_info_injected``): mark nmn's one-line refusal so it reaches the user as it is
            err._keras_call_info_injected = True
            raise
        outs = [PRIMS.asarray(o) if isinstance(o, np.ndarray) else o for o in outs]
        return outs[0] if self.n_outputs == 1 else tuple(outs)

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

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "op": self.op,
            "attrs": self.attrs,
            "slots": self.slots,
            "domain": self.domain,
            "weight_shapes": self.weight_shapes,
            "opset": self.opset,
            "n_outputs": self.n_outputs,
        }


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


def load(source: str | os.PathLike | onnx.ModelProto, **_options: Any) -> keras.Model:
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
    check_supported(graph, "keras")
    if not graph.inputs:
        raise UnsupportedModelError("cannot load into keras: the graph has no inputs (a keras.Model needs one)")
    env = {}
    inputs = []
    # shapes computed from input values (a graph input read as axes/pads/shape) or from unknown sizes: a model
    # whose call runs the graph, eagerly, where those values are known; otherwise a functional model
    dynamic = bool(value_inputs(graph.nodes, {n for n, _, _ in graph.inputs})) or any(
        n.op in ("Shape", "Size")
        and any(d is None or isinstance(d, str) for d in graph.shapes.get(n.inputs[0]) or [None])
        for n in graph.nodes
    )
    plan = []
    for name, shape, dtype in graph.inputs:
        if dynamic:
            env[name] = _Pending(name)
            continue
        static = all(isinstance(d, int) and d > 0 for d in shape)  # a fixed batch stays fixed (static shapes)
        dims = tuple(None if d is None or isinstance(d, str) else d for d in shape)
        t = (
            keras.Input(batch_shape=dims, dtype=host_dtype(dtype), name=_safe(name))
            if static
            else keras.Input(shape=dims[1:], dtype=host_dtype(dtype), name=_safe(name))
        )
        env[name] = t
        inputs.append(t)
    yat_layers = {}
    for node in graph.nodes:
        if _skipped(graph, node):
            continue
        if node.name in graph.node_layer:
            spec = graph.layers[graph.node_layer[node.name]]
            layer = yat_layers.get(spec.name)
            if layer is None and node.op not in SQUASHER_OPS:
                layer = _yat_from_spec(spec)
                yat_layers[spec.name] = layer
            if dynamic:
                plan.append(("yat", layer, spec, node))
                env[node.outputs[0]] = _Pending(node.outputs[0])
            else:
                env[node.outputs[0]] = _call_yat(layer, spec, node, env, graph)
            continue
        dyn, dyn_names, slots, shapes = [], [], [], {}
        values = [None if not i else env[i] if i in env else graph.initializers[i] for i in node.inputs]
        if all(v is None or isinstance(v, np.ndarray) for v in values) and not any(
            i in trainable_inits for i in node.inputs
        ):
            # every input known: fold the node now (shape arithmetic, constants)
            outs = run_node(PRIMS, node.op, values, node.attrs, opset=graph.opset, n_outputs=len(node.outputs))
            for o, v in zip(node.outputs, outs):
                if o:
                    env[o] = v
            continue
        for i, v in zip(node.inputs, values):
            if not i:
                slots.append(["n"])
            elif not isinstance(v, np.ndarray):
                slots.append(["x", len(dyn)])
                dyn.append(v)
                dyn_names.append(i)
            else:
                array = v
                if array.dtype.kind == "f" and (i in trainable_inits or array.size > 64):
                    slots.append(["w", i])
                    shapes[i] = [list(array.shape), bool(i in trainable_inits), str(array.dtype)]
                else:
                    slots.append(["c", i, array.tolist(), str(array.dtype)])
        attrs = {k: _jsonable_attr(v) for k, v in node.attrs.items()}
        layer = OnnxOp(
            node.op,
            attrs,
            slots,
            node.domain,
            shapes,
            opset=graph.opset,
            n_outputs=len(node.outputs),
            name=_safe(node.name),
        )
        for slot in slots:
            if slot[0] == "w":
                layer._tensors[slot[1]].assign(values[node.inputs.index(slot[1])])
        if dynamic:
            plan.append(("op", layer, dyn_names, node))
            for o in node.outputs:
                env[o] = _Pending(o)
            continue
        out = _call_op(layer, dyn, node.op)
        outs = out if len(node.outputs) > 1 else [out]
        for o, v in zip(node.outputs, outs):
            if o:
                env[o] = v
    if dynamic:
        consts = {k: v for k, v in env.items() if isinstance(v, np.ndarray)}
        return _GraphModel(graph, plan, consts)
    for o in graph.outputs:
        if o not in env:
            env[o] = graph.initializers[o]
        if isinstance(env[o], np.ndarray):  # a constant output: a layer that returns it
            array = env[o]
            env[o] = OnnxOp(
                "Identity", {}, [["c", o, array.tolist(), str(array.dtype)]], "", {}, name=_safe(o) + "_constant"
            )(list(inputs))
    outs = [env[o] for o in graph.outputs]
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outs[0] if len(outs) == 1 else outs, name="nmn_onnx")
    object.__setattr__(model, "_nmn_output_names", list(graph.outputs))
    return model


def _call_op(layer, args, op):
    try:
        return layer(args)
    except StdOpError as err:  # Keras adds its call context (and colours) to the message: keep nmn's one line
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
        one_line = StdOpError(next((line for line in lines if line.startswith(op + ":")), lines[0]))
        one_line._keras_call_info_injected = True  # an enclosing model's call keeps it as it is (see OnnxOp.call)
        raise one_line from None


class _Pending:
    """A value of a dynamic graph that exists only when the model is called."""

    def __init__(self, name):
        self.name = name


class _GraphModel(keras.Model):
    """A loaded graph whose shapes depend on input values: ``call`` runs its layers in graph order (eagerly)."""

    def __init__(self, graph, plan, consts):
        super().__init__(name="nmn_onnx")
        object.__setattr__(self, "_nmn_graph", graph)
        object.__setattr__(self, "_nmn_plan", plan)
        object.__setattr__(self, "_nmn_consts", consts)
        object.__setattr__(self, "_nmn_output_names", list(graph.outputs))
        self.graph_layers = [step[1] for step in plan if step[1] is not None]

    def call(self, inputs, training=None):
        graph = self._nmn_graph
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        env = dict(self._nmn_consts)
        env.update({name: x for (name, _, _), x in zip(graph.inputs, inputs)})
        for kind, layer, a, node in self._nmn_plan:
            if kind == "yat":
                env[node.outputs[0]] = _call_yat(layer, a, node, env, graph)
                continue
            out = _call_op(layer, [env[n] for n in a], node.op)
            for o, v in zip(node.outputs, out if len(node.outputs) > 1 else [out]):
                if o:
                    env[o] = v
        outs = [env[o] if o in env else graph.initializers[o] for o in graph.outputs]
        outs = [PRIMS.asarray(o) if isinstance(o, np.ndarray) else o for o in outs]
        return outs[0] if len(outs) == 1 else outs


def _yat_from_spec(spec):
    kwargs = {"name": _safe(spec.name)}
    if spec.kind in ("YatConv", "YatConvTranspose"):
        kwargs["data_format"] = "channels_first"
    config = dict(spec.config)
    if spec.kind == "YatConv" and isinstance(config.get("padding"), list):
        config["padding"] = [tuple(p) for p in config["padding"]]
    from nmn.keras import spec as kspec  # here, not at import: nmn.keras imports this module's package

    layer = kspec.from_spec(spec.kind, config, spec.params, **kwargs)
    names = {k: v[len(spec.name) + 1 :] for k, v in spec.param_inits.items() if v.startswith(spec.name + ".")}
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
    if op in SQUASHER_OPS:
        return OnnxOp(op, {**spec.config, **node.attrs}, [["x", 0]], node.domain, name=_safe(node.name))([args[0]])
    return layer(args[0])


def predict(model: keras.Model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inference on numpy inputs; returns numpy outputs (``uint64`` ones as ``int64`` on the torch backend)."""
    xs = [to_host(x) for x in inputs]
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [_np(o) for o in outs]
