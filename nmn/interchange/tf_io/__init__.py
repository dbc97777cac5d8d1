"""TensorFlow <-> ONNX: export a ``tf.Module`` built from ``nmn.tf`` layers and TF ops, load any nmn file.

**Export** traces the module's ``__call__`` into a ``tf.function`` graph (batch dimension ``None``) while
recording every call of an ``nmn.tf`` layer, then walks the graph backwards from its outputs: a recorded Yat call
becomes one ``nmn::`` node (its internal TF ops are never visited), every other TF op is converted to ONNX
(``MatMul``, ``AddV2``, ``Mean``, ``Reshape`` with a computed shape, pooling, ...). Initializers are named by the
module attribute paths (``fc1.kernel``, ``out.bias``); data stays channels-last with ``Transpose`` nodes around
each convolution. Unknown TF ops are all listed in one :class:`~nmn.interchange.graph.ExportError`.

**Load** builds an :class:`OnnxModule` (a ``tf.Module``): ``nmn`` nodes become ``nmn.tf`` layers holding the
file's weights (convolutions ``channels_first``, the file's layout), the other float tensors ``tf.Variable`` s;
its ``__call__`` is a ``tf.function`` with the file's input signature, so it trains with ``tf.GradientTape`` and
saves as a SavedModel. ``export(load(f))`` writes the file's initializers back bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

try:
    import tensorflow as tf
except ImportError as err:  # pragma: no cover
    raise ImportError('nmn.interchange.tf_io needs TensorFlow: pip install "nmn[tf]>=1.0"') from err

from nmn.interchange._export_common import write
from nmn.interchange.graph import ExportError, GraphBuilder, check_against
from nmn.interchange.registry import EntryPoints
from nmn.interchange.tf_io.holder import TABLE, OnnxModule, load, predict  # the load half
from nmn.interchange.tf_io.walker import _paths, _recording, _Walker

__all__ = ["export", "load", "predict", "OnnxModule", "TABLE"]


def export(
    model: tf.Module | Callable[..., Any],
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    rtol: float = 1e-5,
    input_names: Sequence[str] | None = None,
    inline: bool = False,
) -> onnx.ModelProto:
    """Export a ``tf.Module`` of ``nmn.tf`` layers and TF ops (or a model from :func:`load`) to ONNX.

    Args:
        model: a callable ``tf.Module`` (its ``__call__`` is traced with the batch dimension left ``None``) or a
            single ``nmn.tf`` layer.
        example_inputs: a tensor or a list of them (numpy or ``tf``).
        path: where to write the file (atomically, after the onnxruntime check passed).
        rtol: tolerance of the onnxruntime check. input_names: graph input names (default ``x``, ``x1``...).
        inline: also write ``<stem>.inlined.onnx`` with the functions inlined.

    Example:
        >>> import numpy as np, tensorflow as tf, nmn.tf as nt
        >>> from nmn.interchange import tf_io
        >>> layer = nt.YatNMN(3)
        >>> proto = tf_io.export(layer, np.ones((2, 4), np.float32))
        >>> [n.op_type for n in proto.graph.node]
        ['YatDense']
    """
    inputs = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    inputs = [np.asarray(x) for x in inputs]
    expected_out = model(*[tf.constant(x) for x in inputs])
    outs = expected_out if isinstance(expected_out, (list, tuple)) else [expected_out]
    expected = [np.asarray(o) for o in outs]
    if isinstance(model, OnnxModule):
        proto = model._replay()
    else:
        proto = _trace(model, inputs, input_names)
    feeds = {vi.name: x for vi, x in zip(proto.graph.input, inputs)}
    check_against(proto, feeds, expected, rtol=rtol, what=getattr(model, "name", type(model).__name__))
    write(proto, path, inline)
    return proto


def _trace(model, inputs, input_names):
    names = list(input_names or (["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]))
    specs = [tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype)) for x in inputs]
    calls: dict = {}
    with _recording(calls):
        concrete = tf.function(lambda *xs: model(*xs)).get_concrete_function(*specs)
    paths = _paths(model) if isinstance(model, tf.Module) else {}
    b = GraphBuilder(source="tf", layout="channels_last")
    walker = _Walker(b, concrete, model, paths, calls.get("list", []))
    for name, placeholder, x in zip(names, concrete.inputs, inputs):
        walker.values[placeholder.ref()] = b.input(name, [None, *x.shape[1:]], x.dtype)
    outs = [walker.value(t) for t in concrete.outputs]
    if walker.unsupported:
        raise ExportError(
            f"{getattr(model, 'name', type(model).__name__)}: {len(walker.unsupported)} TF op(s) "
            f"have no ONNX converter: " + ", ".join(sorted(walker.unsupported))
        )
    for i, o in enumerate(outs):
        b.output(o, "output" if len(outs) == 1 else f"output_{i}")
    return b.build()


ENTRY_POINTS = {"tf": EntryPoints(export, load, predict)}
