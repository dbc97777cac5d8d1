"""Load half of the JAX route: the NNX module (:class:`OnnxModel`) and the Linen module (:class:`OnnxLinen`)
that run a loaded nmn ONNX graph with JAX ops, and the write-back of a loaded model with the file's own names.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx

import nmn.linen as L
import nmn.nnx as N
from nmn._jax.random_features import param_table
from nmn.interchange._export_common import write as _write
from nmn.interchange.graph import check_against
from nmn.interchange.interpret import SQUASHER_OPS, check_supported, execute, replay, squash
from nmn.interchange.jax_io.ops import PRIMS
from nmn.interchange.reader import OnnxGraph
from nmn.linen import spec as linen_spec
from nmn.nnx import spec as nnx_spec

_SQUASH = ("softermax", "softer_sigmoid", "soft_tanh")


# ---------------------------------------------------------------------------------------------------- load
#: the attention nodes, called with (XQ, XK, XV, MASK, ...): quadratic, the SLAY / MAY / RAY performers, rotary
_ATTENTION_OPS = (
    "YatMultiHeadAttention",
    "YatPerformerMultiHeadAttention",
    "YatMaclaurinMultiHeadAttention",
    "YatRadialMultiHeadAttention",
    "RotaryYatMultiHeadAttention",
)


def _call_yat(functions, layer_of, graph, node, args):
    """Run one ``nmn`` node of a loaded graph with its Flax layer (NNX module or bound Linen submodule, by
    ``layer_of(layer name)``); squashers run with ``functions`` (``nmn.nnx`` or ``nmn.linen``). Conv data is
    channels-first in the graph and channels-last in the layer."""
    spec = graph.layers[graph.node_layer[node.name]]
    op = node.op
    if op in SQUASHER_OPS:
        return squash(functions, op, spec.config, args[0])
    layer = layer_of(spec.name)
    if op == "YatEmbedAttend":
        return layer.attend(args[0])
    if op == "Gather":
        return layer(jnp.asarray(args[1]).astype(jnp.int32))
    if op in _ATTENTION_OPS:
        mask = None if node.inputs[3] in graph.initializers else jnp.asarray(args[3]).astype(bool)
        if op == "RotaryYatMultiHeadAttention":
            return layer(args[0], mask=mask)
        return layer(args[0], args[1], args[2], mask=mask)
    if op in ("YatConv", "YatConvTranspose"):
        return jnp.moveaxis(layer(jnp.moveaxis(args[0], 1, -1)), -1, 1)
    return layer(args[0])


class _Static:
    """Holds a Python object as static NNX metadata, compared by identity."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _Static) and other.value is self.value


def _key(name: str) -> str:
    return name.replace(".", "__").replace("/", "__")


class OnnxModel(nnx.Module):
    """An NNX module loaded from an nmn ONNX file.

    ``yat[<layer>]`` holds one ``nmn.nnx`` layer per ``nmn`` node (keys: the file's layer names with ``.`` written
    ``__``); ``params[<tensor>]`` the file's other trainable tensors (``nnx.Param``, ONNX layout);
    ``constants[<tensor>]`` its non-trainable float tensors (``Buffer``: running statistics, constant biases).
    ``__call__`` takes the file's inputs in the file's layout (a Flax export takes channels-last data).
    """

    def __init__(self, graph: OnnxGraph, *, param_dtype: jnp.dtype | type = jnp.float32, rngs: nnx.Rngs | None = None):
        rngs = rngs or nnx.Rngs(0)
        self.graph = _Static(graph)
        yat = {}
        for name, spec in graph.layers.items():
            if spec.kind in _SQUASH:
                continue
            yat[_key(name)] = nnx_spec.from_spec(
                spec.kind, spec.config, spec.params, rngs=rngs, param_dtype=param_dtype
            )
        self.yat = nnx.Dict(yat)
        owned = {
            init: (spec.name, spec.kind, canon)
            for spec in graph.layers.values()
            for canon, init in spec.param_inits.items()
        }
        trainable = graph.trainable_initializers()
        used = {i for node in graph.nodes for i in node.inputs}
        params, consts, static = {}, {}, {}
        for name, array in graph.initializers.items():
            if name in owned or name not in used:
                continue
            if array.dtype.kind == "f" and name in trainable:
                params[_key(name)] = nnx.Param(jnp.asarray(array))
            elif array.dtype.kind == "f":
                consts[_key(name)] = N.Buffer(jnp.asarray(array))
            else:
                static[name] = array
        self.params = nnx.Dict(params)
        self.constants = nnx.Dict(consts)
        self.owned = _Static(owned)
        self.static = _Static(static)
        check_supported(graph, "nnx")

    def _tensor(self, name):
        key = _key(name)
        if key in self.params:
            return self.params[key][...]
        if key in self.constants:
            return self.constants[key][...]
        if name in self.owned.value:  # a Yat layer's tensor read by a standard node (a tied table)
            layer, kind, canon = self.owned.value[name]
            return _layer_tensor(self.yat[_key(layer)], kind, canon)
        return self.static.value.get(name)

    def _yat(self, node, args):
        return _call_yat(N, lambda name: self.yat[_key(name)], self.graph.value, node, args)

    def __call__(self, *inputs: jax.Array) -> jax.Array | tuple[jax.Array, ...]:
        outs = execute(
            self.graph.value, [jnp.asarray(x) for x in inputs], tensor=self._tensor, prims=PRIMS, yat=self._yat
        )
        return outs[0] if len(outs) == 1 else tuple(outs)


def _layer_tensor(layer, kind, canon):
    for name, path, to_c, _ in param_table(*nnx_spec.layer_config(layer)):
        if name == canon:
            obj = layer
            for part in path:
                obj = getattr(obj, part)
            return to_c(obj[...])
    raise KeyError(canon)


def _feeds(proto, inputs):
    """Inputs cast to the file's input types (JAX holds int64 ids as int32)."""
    from onnx import helper

    return {
        vi.name: np.asarray(x).astype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type), copy=False)
        for vi, x in zip(proto.graph.input, inputs)
    }


def _export_loaded(model: OnnxModel, inputs, path, *, rtol, inline):
    graph = model.graph.value

    def param(name):
        t = model._tensor(name)
        original = graph.initializers[name]
        return original if t is None else np.asarray(t).astype(original.dtype, copy=False)

    def spec(layer_name):
        layer_spec = graph.layers[layer_name]
        if layer_spec.kind in _SQUASH:
            return layer_spec.kind, layer_spec.config, {}
        return nnx_spec.to_spec(model.yat[_key(layer_name)])

    proto = replay(graph, source="nnx", param=param, yat_spec=spec).build()
    out = model(*[jnp.asarray(x) for x in inputs])
    expected = [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]
    feeds = _feeds(proto, inputs)
    check_against(proto, feeds, expected, rtol=rtol, what="OnnxModel")
    _write(proto, path, inline)
    return proto


class OnnxLinen(nn.Module):
    """A Linen module running a loaded ONNX graph; its variables come from :func:`load` (``framework='linen'``).

    ``params``: ``{<yat layer>: that layer's params, <tensor>: array}``; ``constants``: non-trainable tensors
    (and a performer's projection under its layer); a lazy kernel under ``frozen``.
    """

    graph: Any

    @nn.compact
    def __call__(self, *inputs):
        graph = self.graph.value
        modules = {}
        for name, spec in graph.layers.items():
            if spec.kind not in _SQUASH:
                modules[name] = linen_spec.module_from_config(
                    spec.kind, spec.config, spec_params=spec.params, name=_key(name)
                )
        owned = {init for spec in graph.layers.values() for init in spec.param_inits.values()}

        def tensor(name):
            key = _key(name)
            if self.has_variable("params", key):
                return self.get_variable("params", key)
            if self.has_variable("constants", key):
                return self.get_variable("constants", key)
            if name in owned:  # read by its own Yat node, which uses its layer's variables instead
                return None
            return graph.initializers.get(name)

        def yat(node, args):
            return _call_yat(L, modules.__getitem__, graph, node, args)

        outs = execute(graph, [jnp.asarray(x) for x in inputs], tensor=tensor, prims=PRIMS, yat=yat)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _as_linen(model: OnnxModel):
    graph = model.graph.value
    variables: dict = {"params": {}, "constants": {}}
    for name, spec in graph.layers.items():
        if spec.kind in _SQUASH:
            continue
        _, layer_vars = linen_spec.from_spec(spec.kind, spec.config, spec.params)
        for collection, tree in layer_vars.items():
            variables.setdefault(collection, {})[_key(name)] = tree
    for key, var in model.params.items():
        variables["params"][key] = var[...]
    for key, var in model.constants.items():
        variables["constants"][key] = var[...]
    return OnnxLinen(graph=model.graph), variables


def _export_loaded_linen(module: OnnxLinen, variables, inputs, path, *, rtol, inline):
    graph = module.graph.value

    def param(name):
        key = _key(name)
        for collection in ("params", "constants"):
            if key in variables.get(collection, {}):
                return np.asarray(variables[collection][key]).astype(graph.initializers[name].dtype, copy=False)
        return graph.initializers[name]

    def spec(layer_name):
        layer_spec = graph.layers[layer_name]
        if layer_spec.kind in _SQUASH:
            return layer_spec.kind, layer_spec.config, {}
        key = _key(layer_name)
        sub = {c: tree[key] for c, tree in variables.items() if isinstance(tree, dict) and key in tree}
        module = linen_spec.module_from_config(layer_spec.kind, layer_spec.config, spec_params=layer_spec.params)
        return linen_spec.to_spec(module, sub)

    proto = replay(graph, source="linen", param=param, yat_spec=spec).build()
    out = module.apply(variables, *[jnp.asarray(x) for x in inputs])
    expected = [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]
    feeds = _feeds(proto, inputs)
    check_against(proto, feeds, expected, rtol=rtol, what="OnnxLinen")
    _write(proto, path, inline)
    return proto
