"""The loaded-model holder of :mod:`nmn.interchange.torch_io`: :class:`OnnxModule`, an ``nn.Module`` whose
parameters and buffers are the file's tensors and whose ``forward`` runs the file's graph with torch primitives."""

from __future__ import annotations

import operator

import numpy as np
import onnx
import torch
import torch.nn as nn

from nmn.interchange.interpret import check_supported, execute, replay
from nmn.interchange.reader import OnnxGraph
from nmn.interchange.torch_io.ops import PRIMS
from nmn.interchange.torch_io.trace import _np

#: the nodes of a MultiHeadYatAttention (quadratic, and the SLAY / MAY / RAY performers): (XQ, XK, XV, MASK, ...)
_MHA_NODES = (
    "YatMultiHeadAttention",
    "YatPerformerMultiHeadAttention",
    "YatMaclaurinMultiHeadAttention",
    "YatRadialMultiHeadAttention",
)


def _key(name: str) -> str:
    return name.replace(".", "__")


class OnnxModule(nn.Module):
    """A PyTorch module loaded from an nmn ONNX file: Yat nodes are nmn.torch layers, the other tensors are
    parameters (trainable) or buffers (constants), and ``forward`` runs the file's graph with torch ops.

    ``export`` writes it back with the file's names and the current weights.
    """

    def __init__(self, graph: OnnxGraph):
        super().__init__()
        import nmn.torch.spec as tspec

        self._graph = graph
        self._layer_paths: dict[str, str] = {}
        self._tensor_paths: dict[str, tuple[nn.Module, str]] = {}
        for name, spec in graph.layers.items():
            layer = tspec.from_spec(spec.kind, spec.config, spec.params)
            for key, trainable in spec.trainable.items():  # frozen parameters stay frozen
                path = tspec.param_paths(layer).get(key)
                value = operator.attrgetter(path)(layer) if path else None
                if isinstance(value, nn.Parameter) and not trainable:
                    value.requires_grad_(False)
            self._layer_paths[name] = self._attach_module(name, layer)
        owned = {init for spec in graph.layers.values() for init in spec.param_inits.values()}
        trainable = graph.trainable_initializers()
        used = {i for n in graph.nodes for i in n.inputs}
        for name, array in graph.initializers.items():
            if name in owned or name not in used:
                continue
            tensor = torch.from_numpy(np.array(array, order="C"))  # a copy; keeps 0-d (ascontiguousarray makes it 1-d)
            is_param = name in trainable and tensor.is_floating_point()
            self._tensor_paths[name] = self._attach_tensor(name, nn.Parameter(tensor) if is_param else tensor)
        check_supported(graph, "torch")

    # Module and tensor names follow the file's dotted names, so state_dict keys are the initializer names
    # (a name that cannot be a torch attribute path falls back to a flat, sanitised name).
    def _container(self, parts):
        node = self
        for part in parts:
            child = node._modules.get(part)
            if child is None:
                child = nn.Module()
                node.add_module(part, child)
            node = child
        return node

    def _attach_module(self, name: str, layer: nn.Module) -> str:
        parts = name.split(".")
        try:
            parent = self._container(parts[:-1])
            if parts[-1] in parent._modules or parts[-1] in parent._parameters or hasattr(parent, parts[-1]):
                raise KeyError(name)
            parent.add_module(parts[-1], layer)
            return name
        except (KeyError, TypeError):
            flat = "nmn_" + _key(name)
            self.add_module(flat, layer)
            return flat

    def _attach_tensor(self, name: str, value) -> tuple[nn.Module, str]:
        parts = name.split(".")
        try:
            parent = self._container(parts[:-1])
            leaf = parts[-1]
            if not leaf or leaf in parent._modules or hasattr(parent, leaf):
                raise KeyError(name)
        except (KeyError, TypeError):
            parent, leaf = self, "nmn_" + _key(name)
        if isinstance(value, nn.Parameter):
            parent.register_parameter(leaf, value)
        else:
            parent.register_buffer(leaf, value)
        return parent, leaf

    def layer(self, name: str) -> nn.Module:
        """The nmn.torch layer of the file's Yat layer ``name``."""
        return self.get_submodule(self._layer_paths[name])

    def _tensor(self, name: str):
        entry = self._tensor_paths.get(name)
        return None if entry is None else getattr(entry[0], entry[1])

    def _yat(self, node, args):
        layer = self.layer(self._graph.node_layer[node.name])
        op = node.op
        if op == "YatEmbedAttend":
            return layer.attend(args[0])
        if op == "Gather":
            return layer(args[1])
        if op in _MHA_NODES:
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            return layer(args[0], args[1], args[2], mask=mask)
        if op == "RotaryYatMultiHeadAttention":
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            return layer(args[0], mask=mask)
        return layer(args[0])

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs = execute(self._graph, list(inputs), tensor=self._tensor, prims=PRIMS, yat=self._yat)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _replay(self) -> onnx.ModelProto:
        import nmn.torch.spec as tspec

        def param(name):
            t = self._tensor(name)
            return _np(t) if t is not None else self._graph.initializers[name]

        def spec(layer_name):
            return tspec.to_spec(self.layer(layer_name))

        return replay(self._graph, source="torch", param=param, yat_spec=spec).build()
