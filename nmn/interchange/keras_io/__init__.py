"""Keras 3 <-> ONNX: export a functional or sequential model of nmn and standard Keras layers, load any nmn file.

**Export** walks the functional layer graph that ``model.get_config()`` describes (every layer call with its
inputs), runs each call eagerly on the example inputs (for shapes and the final check) and emits each layer
through the framework-neutral :class:`~nmn.interchange.graph.GraphBuilder`: one ``nmn::`` node per Yat layer,
standard ONNX ops for the standard layers. The walk sees layers, not backend ops, so the file is the same on the
TensorFlow, JAX and PyTorch backends (docs/design.md §N7; ``model.export(format="onnx")`` would decompose
the Yat layers). Data stays channels-last at the graph inputs, with ``Transpose`` nodes around each convolution;
initializers are named by the Keras weight paths (``<layer>.<weight>``).

Supported layers: every ``nmn.keras`` layer (``YatEmbed`` lookup and ``attend``; the squashers ``Softermax``,
``SofterSigmoid``, ``SoftTanh``, which the functional ``softermax`` & co. add when called on ``keras.Input``
tensors, one ``nmn::`` node each), ``Dense`` (with its
activation), ``Conv1D/2D/3D``, ``Conv1D/2D/3DTranspose`` (no ``output_padding``), ``Flatten``, ``Reshape``,
``Activation``/``ReLU``/``Softmax``, ``LayerNormalization`` (last axis), ``BatchNormalization`` (inference),
``Dropout`` (identity), ``Embedding``, ``MaxPooling*``/``AveragePooling*``/``GlobalAveragePooling*``,
``Add``/``Subtract``/``Multiply``/``Concatenate``, ``InputLayer``; several inputs and outputs. Anything else
raises :class:`~nmn.interchange.graph.ExportError` naming every unsupported layer; so does a subclassed
``keras.Model`` (its ``call`` is Python, not a layer graph: build it functionally).

**Load** turns a file into a ``keras.Model``: each ``nmn`` node becomes the ``nmn.keras`` layer holding the
file's weights (convolutions ``channels_first``, the file's layout), each standard node an :class:`OnnxOp`
layer (registered as serializable, so the model saves to ``.keras`` and loads back) whose tensors are Keras
weights. It trains with ``model.fit``; ``export(load(f))`` writes the file's initializers back bit for bit.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx

try:
    import keras
except ImportError as err:  # pragma: no cover
    raise ImportError('nmn.interchange.keras_io needs Keras 3: pip install "nmn[keras]>=1.0"') from err

from nmn.interchange._export_common import write
from nmn.interchange.graph import GraphBuilder, check_against
from nmn.interchange.keras_io.holder import TABLE, OnnxOp, load, predict  # the load half
from nmn.interchange.keras_io.layers import _np
from nmn.interchange.keras_io.walker import _walk
from nmn.interchange.registry import EntryPoints

__all__ = ["export", "load", "predict", "OnnxOp", "TABLE"]


# ======================================================================================================= export
def export(
    model: keras.Model,
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    rtol: float = 1e-5,
    inline: bool = False,
) -> onnx.ModelProto:
    """Export a Keras functional or sequential model (or a model returned by :func:`load`) to ONNX.

    Args:
        model: a built ``keras.Model`` (functional or ``Sequential``) of nmn.keras and standard layers.
        example_inputs: one array or a list (numpy or backend tensors); axis 0 becomes the symbolic ``batch``.
        path: where to write the file (atomically, only after the onnxruntime check passed).
        rtol: tolerance of the onnxruntime check, relative to each output's largest magnitude.
        inline: also write ``<stem>.inlined.onnx`` with the functions inlined.

    Returns:
        the ``onnx.ModelProto``.

    Example:
        >>> import keras, numpy as np, nmn.keras as nk
        >>> from nmn.interchange import keras_io
        >>> x = keras.Input((4,), name="x")
        >>> net = keras.Model(x, keras.layers.Dense(2, name="out")(nk.YatNMN(3, name="yat")(x)))
        >>> proto = keras_io.export(net, np.ones((2, 4), np.float32))
        >>> [n.op_type for n in proto.graph.node], sorted(t.name for t in proto.graph.initializer)[:3]
        (['YatDense', 'Gemm'], ['out.bias', 'out.kernel', 'yat.alpha'])
    """
    inputs = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    inputs = [_np(x) if not isinstance(x, np.ndarray) else x for x in inputs]
    b = GraphBuilder(source="keras", layout="channels_last")
    expected = _walk(model, inputs, b)
    proto = b.build()
    feeds = {vi.name: x for vi, x in zip(proto.graph.input, inputs)}
    check_against(proto, feeds, expected, rtol=rtol, what=model.name)
    write(proto, path, inline)
    return proto


ENTRY_POINTS = {"keras": EntryPoints(export, load, predict)}
