"""MLX <-> ONNX: export an ``mlx.nn.Module`` built from nmn and standard layers, load any nmn ONNX file.

MLX has no ONNX path and no graph tracer at module granularity (``mx.export_function`` records primitives), so
export **traces by execution**: the example inputs are wrapped in :class:`Traced` values (an ONNX value name
plus the eager ``mx.array``), the model's own ``__call__`` runs on them, and every call of a known layer, of an
arithmetic operator or of a supported array method / activation function emits its ONNX through the
framework-neutral :class:`~nmn.interchange.graph.GraphBuilder` while computing the eager value next to it.

Model shapes the walk supports:

* any tree of ``mlx.nn.Module`` (``nn.Sequential``, lists of layers, your own modules) whose ``__call__``
  composes supported layers (your own parameter-free modules, e.g. a flatten, are traced through), also as DAGs (residual additions ``h + block(h)``, one output feeding several
  layers, several inputs, tuple outputs, a ``YatEmbed`` used for lookup and for ``attend``);
* layers: every ``nmn.mlx`` Yat layer (one ``nmn::`` node each), ``nn.Linear``, ``nn.Conv1d/2d/3d``,
  ``nn.ConvTranspose1d/2d/3d``, ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.BatchNorm`` (run in eval mode),
  ``nn.Dropout*`` (dropped), ``nn.Embedding``, ``nn.MaxPool1d/2d/3d``, ``nn.AvgPool1d/2d/3d``, ``nn.Identity``,
  and the activation modules ``nn.ReLU``, ``nn.ReLU6``, ``nn.GELU`` (exact or ``approx='tanh'``), ``nn.SiLU``,
  ``nn.Sigmoid``, ``nn.Tanh``, ``nn.Softplus``, ``nn.Softsign``, ``nn.LeakyReLU``, ``nn.ELU``, ``nn.CELU``,
  ``nn.SELU``, ``nn.Hardswish``, ``nn.HardTanh``, ``nn.Mish``, ``nn.LogSigmoid``, ``nn.Softmax``,
  ``nn.LogSoftmax``, ``nn.Softmin``;
* between layers: ``+ - * /`` and ``@`` (with arrays or Python numbers), ``x.reshape(...)``,
  ``x.flatten(1)``, ``x.transpose(...)``, ``x.mean(axis)``, ``x.sum(axis)``, ``x.shape``, the functional forms
  of those activations (``nn.relu``, ``nn.relu6``, ``nn.gelu``, ``nn.gelu_approx``, ``nn.silu``,
  ``nn.sigmoid``, ``nn.softplus``, ``nn.softsign``, ``nn.leaky_relu``, ``nn.elu``, ``nn.celu``, ``nn.selu``,
  ``nn.hardswish``, ``nn.hard_tanh``, ``nn.mish``, ``nn.log_sigmoid``, ``nn.tanh``, ``nn.log_softmax``,
  ``nn.softmin``), ``mx.tanh``, ``mx.sigmoid``, ``mx.softmax``, ``mx.mean``, ``mx.concatenate`` and the
  squashers ``nmn.mlx.softermax`` / ``softer_sigmoid`` / ``soft_tanh`` (looked up through their module at call
  time).

Anything else (other ``mx`` functions on intermediate values, indexing, Python control flow on values, unknown
layers) fails with an :class:`~nmn.interchange.graph.ExportError` that lists every unsupported layer or
operation. Data stays in MLX's layout: conv inputs are channels-last in the file, with ``Transpose`` nodes around
each convolution. Initializers are named by the MLX parameter paths (``layers.0.kernel``).

Load builds an :class:`OnnxModule`: the file's ``nmn`` nodes become ``nmn.mlx`` layers holding its weights, the
other tensors become parameters (trainable) or constants, and ``__call__`` runs the file's graph with MLX ops. It
trains with ``mlx.optimizers``, round-trips ``save_weights`` / ``load_weights``, and ``export`` writes it back
with the file's names and the current weights (bit for bit when untrained).
"""

from __future__ import annotations

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
from nmn.interchange.interpret import SQUASHER_OPS, check_supported, execute, replay, squash
from nmn.interchange.reader import OnnxGraph, read_model

try:
    import mlx.core as mx
    import mlx.nn as nn
except ImportError as err:  # pragma: no cover - exercised only without mlx
    raise ImportError('nmn.interchange.mlx_io needs MLX: pip install "nmn[mlx]>=1.0"') from err

from nmn.interchange.mlx_io.walker import Traced, np_array, param_names, trace
from nmn.interchange.mlx_io.ops import PRIMS

__all__ = ["export", "load", "OnnxModule", "Traced"]


# ---------------------------------------------------------------------------------------------------------- API
def export(
    model,
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    rtol: float = 1e-5,
    inline: bool = False,
) -> onnx.ModelProto:
    """Export an MLX model of nmn and standard layers to ONNX, checked in onnxruntime before writing.

    Args:
        model: an ``mlx.nn.Module`` (run in eval mode during the export), a list of layers (a chain, exported
            as ``nn.Sequential``), or a model returned by :func:`load` (written back with the file's names and
            the current weights).
        example_inputs: an ``mx.array`` or a tuple of them; the first dimension becomes the symbolic ``batch``.
        path: where to write the file (atomically; nothing is written if any check fails).
        input_names, output_names: graph names (default: the ``__call__`` argument names, ``output``).
        rtol: the onnxruntime check's tolerance, relative to each output's largest magnitude.
        inline: also write ``<path stem>.inlined.onnx`` with the functions inlined.

    Returns:
        the ``onnx.ModelProto``.

    Example:
        >>> import mlx.core as mx, mlx.nn as nn, nmn.mlx as nm
        >>> from nmn.interchange import mlx_io
        >>> net = nn.Sequential(nm.YatNMN(5, in_features=4), nn.Linear(5, 2))
        >>> model = mlx_io.export(net, mx.random.normal((3, 4)))
        >>> [n.op_type for n in model.graph.node]
        ['YatDense', 'Gemm']
    """
    if isinstance(model, (list, tuple)):
        model = nn.Sequential(*model)  # a plain list of layers is a chain
    inputs = [x if isinstance(x, mx.array) else mx.array(np.asarray(x)) for x in as_list(example_inputs)]

    def build():
        if isinstance(model, OnnxModule):
            proto = model._replay()
            return proto, [np_array(o) for o in outputs_list(model(*inputs))]
        return trace(model, inputs, input_names, output_names)

    return checked_export(
        model, inputs, path, build=build, to_numpy=np.array, rtol=rtol, inline=inline, check=check_against
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

    def __init__(self, graph: OnnxGraph, *, dtype=None):
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
        if op in ("YatMultiHeadAttention", "YatPerformerMultiHeadAttention", "RotaryYatMultiHeadAttention"):
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            if mask is not None and not isinstance(mask, mx.array):
                mask = mx.array(np.asarray(mask))
            return layer(args[0], args[1], args[2], mask=mask)
        if op in ("YatConv", "YatConvTranspose"):
            return mx.moveaxis(layer(mx.moveaxis(args[0], 1, -1)), -1, 1)  # the file is channels-first
        return layer(args[0])

    def __call__(self, *inputs):
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


def load(source: str | os.PathLike | onnx.ModelProto, *, dtype=None) -> OnnxModule:
    """Load an nmn ONNX file (from any framework) as a trainable MLX module.

    Args:
        source: a path or an ``onnx.ModelProto`` (files are opened through the safe loader and validated).
        dtype: parameter dtype of the Yat layers (default float32).

    Example:
        >>> import mlx.core as mx, mlx.nn as nn, nmn.mlx as nm
        >>> from nmn.interchange import mlx_io
        >>> net = nn.Sequential(nm.YatNMN(3, in_features=4), nn.Linear(3, 2))
        >>> loaded = mlx_io.load(mlx_io.export(net, mx.random.normal((2, 4))))
        >>> x = mx.random.normal((5, 4))
        >>> bool(mx.allclose(loaded(x), net(x), atol=1e-6))
        True
    """
    return OnnxModule(read_model(source), dtype=dtype)


def predict(model, inputs: list) -> list[np.ndarray]:
    """Eager inference on numpy inputs (``model.eval()`` for the call); returns numpy outputs."""
    with eval_mode(model):
        out = model(*[PRIMS.asarray(np.asarray(x, order="C")) for x in inputs])
    return [PRIMS.const(o) if isinstance(o, mx.array) else np.asarray(o) for o in outputs_list(out)]
