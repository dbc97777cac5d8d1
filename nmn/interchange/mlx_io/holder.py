"""The loaded-model holder of :mod:`nmn.interchange.mlx_io`: :class:`OnnxModule`, an ``mlx.nn.Module`` whose
``layers`` are ``nmn.mlx`` layers and ``params`` the file's other trainable tensors, and whose ``__call__`` runs the
file's graph with MLX primitives."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import onnx

from nmn.interchange.interpret import SQUASHER_OPS, check_supported, execute, replay, squash
from nmn.interchange.mlx_io.ops import PRIMS
from nmn.interchange.mlx_io.walker import param_names
from nmn.interchange.reader import OnnxGraph

#: the attention nodes, called with (XQ, XK, XV, MASK, ...): quadratic, the SLAY / MAY / RAY performers, rotary
_MHA_NODES = (
    "YatMultiHeadAttention",
    "YatPerformerMultiHeadAttention",
    "YatMaclaurinMultiHeadAttention",
    "YatRadialMultiHeadAttention",
    "RotaryYatMultiHeadAttention",
)


def _key(name: str) -> str:
    key = name.replace(".", "__")
    return "n" + key if not key or key[0] == "_" or key[0].isdigit() else key


def _mx(array: np.ndarray):
    return mx.array(np.asarray(array, order="C"))  # keeps 0-d (ascontiguousarray makes it 1-d)


class OnnxModule(nn.Module):
    """An MLX module loaded from an nmn ONNX file.

    ``layers`` holds one ``nmn.mlx`` layer per ``nmn`` node (keys are the file's layer names with ``.`` written
    ``__``), ``params`` the file's other trainable tensors (Linear / Conv / norm weights, in the file's ONNX
    layout); constants (shapes, running statistics, constant biases) are kept outside the parameters.
    ``__call__`` takes the file's inputs in the file's layout (a file exported from MLX takes channels-last data).
    Standard ops run with their inference semantics (a ``BatchNormalization`` uses the file's running statistics,
    also in training mode; ``Dropout`` is the identity).
    """

    def __init__(self, graph: OnnxGraph, *, dtype: mx.Dtype | None = None):
        super().__init__()
        import nmn.mlx.spec as mspec

        object.__setattr__(self, "_graph", graph)
        self.layers = {}
        for name, spec in graph.layers.items():
            if spec.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
                continue
            opts = {} if dtype is None else {"dtype": dtype}
            self.layers[_key(name)] = mspec.from_spec(spec.kind, spec.config, spec.params, **opts)
            for canonical, trainable in spec.trainable.items():
                if not trainable:
                    _freeze(self.layers[_key(name)], spec.kind, canonical)
        owned = {
            init: (spec.name, spec.kind, key)
            for spec in graph.layers.values()
            for key, init in spec.param_inits.items()
        }
        object.__setattr__(self, "_owned", owned)
        trainable = graph.trainable_initializers()
        used = {i for n in graph.nodes for i in n.inputs}
        self.params = {}
        consts = {}
        for name, array in graph.initializers.items():
            if name in owned or name not in used:
                continue
            if name in trainable and array.dtype.kind == "f":
                self.params[_key(name)] = _mx(array)
            else:
                consts[name] = array if array.dtype.kind in "iub" else _mx(array)
        object.__setattr__(self, "_consts", consts)
        check_supported(graph, "mlx")

    def _tensor(self, name: str):
        key = _key(name)
        if key in self["params"]:
            return self["params"][key]
        if name in self._owned:  # a Yat layer's tensor also read by a standard node (a tied embedding table)
            layer_name, kind, canonical = self._owned[name]
            return _layer_tensor(self["layers"][_key(layer_name)], kind, canonical)
        return self._consts.get(name)

    def _yat(self, node, args):
        import nmn.mlx as nm

        spec = self._graph.layers[self._graph.node_layer[node.name]]
        op = node.op
        if op in SQUASHER_OPS:
            return squash(nm, op, spec.config, args[0])
        layer = self["layers"][_key(spec.name)]
        if op == "YatEmbedAttend":
            return layer.attend(args[0])
        if op == "Gather":
            ids = args[1] if isinstance(args[1], mx.array) else mx.array(np.asarray(args[1]))
            return layer(ids)
        if op in _MHA_NODES:
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            if mask is not None and not isinstance(mask, mx.array):
                mask = mx.array(np.asarray(mask))
            return layer(args[0], args[1], args[2], mask=mask)
        if op in ("YatConv", "YatConvTranspose"):
            return mx.moveaxis(layer(mx.moveaxis(args[0], 1, -1)), -1, 1)  # the file is channels-first
        return layer(args[0])

    def __call__(self, *inputs: mx.array) -> mx.array | tuple[mx.array, ...]:
        inputs = [x if isinstance(x, mx.array) else PRIMS.asarray(x) for x in inputs]
        outs = execute(self._graph, list(inputs), tensor=self._tensor, prims=PRIMS, yat=self._yat)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _replay(self) -> onnx.ModelProto:
        import nmn.mlx.spec as mspec

        def param(name):
            t = self._tensor(name)
            if t is None:
                return self._graph.initializers[name]
            if isinstance(t, np.ndarray):
                return t
            return np.array(t).astype(self._graph.initializers[name].dtype, copy=False)

        def spec(layer_name):
            layer_spec = self._graph.layers[layer_name]
            if layer_spec.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
                return layer_spec.kind, layer_spec.config, {}
            return mspec.to_spec(self["layers"][_key(layer_name)])

        return replay(self._graph, source="mlx", param=param, yat_spec=spec).build()


def _layer_tensor(layer, kind, canonical):
    """A Yat layer's current parameter in the canonical (file) layout, as a differentiable ``mx.array``."""
    if canonical == "weight":
        kernel = layer["kernel"]
        if kind == "YatConv":
            return mx.moveaxis(kernel, -1, 1)
        if kind == "YatConvTranspose":
            g = layer.groups
            m, *k, cg = kernel.shape
            return mx.reshape(mx.moveaxis(mx.reshape(kernel, (g, m // g, *k, cg)), -1, 1), (g * cg, m // g, *k))
        return kernel
    sub = param_names(kind).get(canonical)
    if sub:
        module, leaf = sub.split(".")
        return layer[module][leaf]
    return layer[canonical]


def _freeze(layer, kind, canonical):
    if kind in ("YatNMN", "YatConv", "YatConvTranspose"):
        host = {"weight": "kernel"}.get(canonical, canonical)
        if host in layer:
            layer.freeze(keys=[host], recurse=False)
        return
    sub = param_names(kind).get(canonical)
    if sub:
        module, leaf = sub.split(".")
        if module in layer and leaf in layer[module]:
            layer[module].freeze(keys=[leaf], recurse=False)
    elif canonical in layer:
        layer.freeze(keys=[canonical], recurse=False)
