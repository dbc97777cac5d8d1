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
from nmn.interchange.reader import read_model
from nmn.interchange.registry import EntryPoints

try:
    import mlx.core as mx
    import mlx.nn as nn
except ImportError as err:  # pragma: no cover - exercised only without mlx
    raise ImportError('nmn.interchange.mlx_io needs MLX: pip install "nmn[mlx]>=1.0"') from err

from nmn.interchange.mlx_io.holder import OnnxModule
from nmn.interchange.mlx_io.ops import PRIMS
from nmn.interchange.mlx_io.walker import Traced, np_array, trace

__all__ = ["export", "load", "OnnxModule", "Traced"]


# ---------------------------------------------------------------------------------------------------------- API
def export(
    model: nn.Module | list | tuple,
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


def load(source: str | os.PathLike | onnx.ModelProto, *, dtype: mx.Dtype | None = None) -> OnnxModule:
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


def predict(model: nn.Module, inputs: list) -> list[np.ndarray]:
    """Eager inference on numpy inputs (``model.eval()`` for the call); returns numpy outputs."""
    with eval_mode(model):
        out = model(*[PRIMS.asarray(np.asarray(x, order="C")) for x in inputs])
    return [PRIMS.const(o) if isinstance(o, mx.array) else np.asarray(o) for o in outputs_list(out)]


ENTRY_POINTS = {"mlx": EntryPoints(export, load, predict)}
