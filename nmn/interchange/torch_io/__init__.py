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
    import torch
    import torch.nn as nn
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError('nmn.interchange.torch_io needs PyTorch: pip install "nmn[torch]>=1.0"') from err

from nmn.interchange.torch_io.holder import OnnxModule
from nmn.interchange.torch_io.ops import PRIMS
from nmn.interchange.torch_io.trace import _np
from nmn.interchange.torch_io.walker import _Exporter


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


ENTRY_POINTS = {"torch": EntryPoints(export, load, predict)}
