"""PyTorch <-> ONNX: export any ``nn.Module`` built from nmn and standard layers, load any nmn ONNX file.

Export route: ``torch.fx`` symbolic tracing with nmn layers (and standard ``torch.nn`` layers) as leaves, then a
walk of the traced graph that executes each node eagerly (for shapes and the check) and emits it through the
framework-neutral :class:`~nmn.interchange.graph.GraphBuilder`. This differs from docs/design.md §N5's route A
(dynamo + a ``torch.library`` op) on purpose: with one neutral emitter for all six frameworks, the same model
gives the same ONNX whichever framework it came from, which is what makes export(load(f)) bit-identical and the
any-to-any matrix cheap. The cost: models whose ``forward`` has data-dependent Python control flow cannot be
traced by fx; the error says so.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from nmn.interchange._export_common import (
    as_list,
    checked_export,
    eval_mode,
    outputs_list,
)
from nmn.interchange.graph import check_against
from nmn.interchange.interpret import check_supported, execute, replay
from nmn.interchange.reader import OnnxGraph, read_model

try:
    import torch
    import torch.nn as nn
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError('nmn.interchange.torch_io needs PyTorch: pip install "nmn[torch]>=1.0"') from err

from nmn.interchange.torch_io.walker import _Exporter, _np
from nmn.interchange.torch_io.ops import PRIMS


# ---------------------------------------------------------------------------------------------------------- API
def export(
    model: nn.Module,
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    rtol: float = 1e-5,
    inline: bool = False,
) -> onnx.ModelProto:
    """Export a PyTorch model of nmn and standard layers to ONNX, checked in onnxruntime before writing.

    Args:
        model: an ``nn.Module`` (put it in ``eval()`` mode for BatchNorm / Dropout), or a model returned by
            :func:`load` (written back with the file's names and the current weights).
        example_inputs: a tensor or a tuple of tensors (numpy arrays are taken as tensors); the first dimension becomes the symbolic ``batch``.
        path: where to write the file (atomically; nothing is written if any check fails).
        input_names, output_names: graph names (default: the ``forward`` argument names, ``output``).
        rtol: the onnxruntime check's tolerance, relative to each output's largest magnitude.
        inline: also write ``<path stem>.inlined.onnx`` with the functions inlined.

    Returns:
        the ``onnx.ModelProto``.

    Example:
        >>> import torch, nmn.torch as nt
        >>> from nmn.interchange import torch_io
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), nt.YatNMN(12, 5), torch.nn.Linear(5, 2))
        >>> model = torch_io.export(net, torch.randn(3, 3, 4))
        >>> [n.op_type for n in model.graph.node]
        ['Flatten', 'YatDense', 'Gemm']
    """
    # numpy examples (what every other exporter takes) become tensors; the trace and the check need tensors
    inputs = [
        torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x for x in as_list(example_inputs)
    ]

    def build():
        if isinstance(model, OnnxModule):
            proto = model._replay()
            with torch.no_grad():
                out = model(*inputs)
            return proto, [_np(o) for o in outputs_list(out)]
        return _Exporter(model, inputs).run(input_names, output_names)

    return checked_export(model, inputs, path, build=build, to_numpy=_np, rtol=rtol, inline=inline, check=check_against)


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
        if op in ("YatMultiHeadAttention", "YatPerformerMultiHeadAttention"):
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            return layer(args[0], args[1], args[2], mask=mask)
        if op == "RotaryYatMultiHeadAttention":
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            return layer(args[0], mask=mask)
        return layer(args[0])

    def forward(self, *inputs):
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


def load(source: str | os.PathLike | onnx.ModelProto) -> OnnxModule:
    """Load an nmn ONNX file (from any framework) as a trainable PyTorch module.

    Example:
        >>> import torch, nmn.torch as nt
        >>> from nmn.interchange import torch_io
        >>> net = torch.nn.Sequential(nt.YatNMN(4, 3), torch.nn.Linear(3, 2))
        >>> loaded = torch_io.load(torch_io.export(net, torch.randn(2, 4)))
        >>> x = torch.randn(5, 4)
        >>> bool(torch.allclose(loaded(x), net(x), atol=1e-6))
        True
    """
    return OnnxModule(read_model(source))


def predict(model: nn.Module, inputs: list) -> list[np.ndarray]:
    """Eager inference on numpy inputs (eval mode, no grad); returns numpy outputs."""
    with eval_mode(model), torch.no_grad():
        out = model(*[PRIMS.asarray(x) for x in inputs])
    return [
        _np(o.float()) if isinstance(o, torch.Tensor) and o.dtype == torch.bfloat16 else _np(o)
        for o in outputs_list(out)
    ]
