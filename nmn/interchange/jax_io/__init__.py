"""Flax (NNX and Linen) <-> ONNX: export a model built from nmn and standard Flax layers, load any nmn ONNX file.

**Export** traces the model with ``jax.make_jaxpr``; during the export every known layer call is a marked
region of the jaxpr (:mod:`nmn.interchange.jax_io.record`; the walk is :mod:`nmn.interchange.jax_io.walker`), so

* each nmn layer becomes exactly one ``nmn::`` node (through its neutral spec and
  :func:`nmn.interchange.emit.yat_layer`), each standard layer its ONNX op: ``nnx.Linear`` / ``nn.Dense``,
  ``Conv``, ``ConvTranspose`` (``'SAME'``/``'VALID'``), ``LayerNorm``, ``BatchNorm`` (running statistics),
  ``Dropout`` (the identity), ``Embed``; a call of ``nmn.nnx``/``nmn.linen`` ``softermax``, ``softer_sigmoid``,
  ``soft_tanh`` becomes one ``nmn::`` node too (found by the named scope those functions open);
* the code between layers is translated primitive by primitive: residual additions and other arithmetic,
  activations (``jax.nn.relu``/``gelu``/``silu``/``sigmoid``/``softplus``/``softmax``, ``jnp.tanh``...),
  reshapes/flatten, transposes, reductions (mean/sum/max), ``nnx.max_pool``/``avg_pool`` (``lax.reduce_window``),
  concatenation; any other primitive is listed in one :class:`ExportError`;
* graphs are DAGs (residuals, one value feeding several layers, several inputs and outputs); the batch axis is
  symbolic; conv data stays channels-last (NHWC) at the graph inputs, with ``Transpose`` nodes around each
  convolution; initializers are named by parameter paths (``layers.0.kernel``, ``block.query.kernel``); the
  layer manifest goes into ``metadata_props``; the file is checked in onnxruntime against the model before
  anything is written.

NNX models are exported in eval mode (dropout off, BatchNorm on running statistics; the flags are restored).
Linen models are exported with ``variables=`` (``module.apply(variables, *inputs)``).

**Load** gives an :class:`OnnxModel` (an ``nnx.Module``): its ``nmn`` nodes are ``nmn.nnx`` layers holding the
file's weights, its other trainable tensors ``nnx.Param``s in the file's (ONNX) layout, and ``__call__`` runs the
file's graph with JAX ops. It trains with optax / ``nnx.Optimizer``, works under ``nnx.jit``, and ``export``
writes it back with the file's names (bit for bit when untrained). ``framework='linen'`` returns
``(module, variables)`` of a Linen module that runs the same graph.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

try:
    import jax
    import jax.numpy as jnp
    from flax import linen as nn
    from flax import nnx
except ImportError as err:  # pragma: no cover - exercised only without jax
    raise ImportError('nmn.interchange.jax_io needs JAX and Flax: pip install "nmn[jax]>=1.0"') from err

from nmn.interchange._export_common import write as _write
from nmn.interchange.graph import ExportError, GraphBuilder, check_against
from nmn.interchange.jax_io.holder import (
    OnnxLinen,
    OnnxModel,
    _as_linen,
    _export_loaded,
    _export_loaded_linen,
)
from nmn.interchange.jax_io.layers import (
    _linen_classes,
    _linen_emitter,
    _module_paths,
    _nnx_classes,
    _nnx_emitter,
    _set_eval,
)
from nmn.interchange.jax_io.record import recording
from nmn.interchange.jax_io.walker import JaxprWriter
from nmn.interchange.reader import read_model
from nmn.interchange.registry import EntryPoints

__all__ = [
    "export",
    "load",
    "predict",
    "OnnxModel",
    "export_nnx",
    "export_linen",
    "load_nnx",
    "load_linen",
    "predict_nnx",
    "predict_linen",
]


# -------------------------------------------------------------------------------------------------- export
def export(
    model: nnx.Module | nn.Module,
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    framework: str | None = None,
    variables: Any = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    rtol: float = 1e-5,
    inline: bool = False,
) -> onnx.ModelProto:
    """Export a Flax model (NNX module, or Linen module with ``variables``) to ONNX, checked in onnxruntime.

    Args:
        model: an ``nnx.Module`` (an :class:`OnnxModel` is written back with the file's names), or a Linen
            ``nn.Module`` together with ``variables``.
        example_inputs: an array or a tuple of arrays (the first axis becomes the symbolic ``batch``).
        path: where to write the file (atomically; nothing is written if a check fails).
        framework: ``'nnx'`` or ``'linen'`` (default: ``'linen'`` when ``variables`` is given).
        input_names, output_names: graph names (default ``input``/``input_<i>``, ``output``/``output_<i>``).
        rtol: tolerance of the onnxruntime check, relative to each output's largest magnitude.
        inline: also write ``<stem>.inlined.onnx`` with the ``nmn`` functions inlined.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> import nmn.nnx as N
        >>> net = nnx.Sequential(N.YatNMN(4, 5, rngs=nnx.Rngs(0)), nnx.Linear(5, 2, rngs=nnx.Rngs(1)))
        >>> proto = export(net, jnp.ones((3, 4)))
        >>> [n.op_type for n in proto.graph.node]
        ['YatDense', 'Gemm']
    """
    linen = framework == "linen" or (framework is None and variables is not None)
    inputs = list(example_inputs) if isinstance(example_inputs, (tuple, list)) else [example_inputs]
    inputs = [np.asarray(x) for x in inputs]
    if isinstance(model, OnnxModel):
        return _export_loaded(model, inputs, path, rtol=rtol, inline=inline)
    if isinstance(model, OnnxLinen):
        return _export_loaded_linen(model, variables, inputs, path, rtol=rtol, inline=inline)
    if linen:
        if variables is None:
            raise ExportError("a Linen model is exported with its variables: export(module, x, variables=...)")

        def fn(*xs):
            return model.apply(variables, *xs)

        classes, restore = _linen_classes(), (lambda: None)
    else:

        def fn(*xs):
            return model(*xs)

        classes, restore = _nnx_classes(), _set_eval(model)
    try:
        expected = jax.tree.leaves(fn(*[jnp.asarray(x) for x in inputs]))
        with recording(classes) as rec:
            closed = jax.make_jaxpr(fn)(*[jnp.asarray(x) for x in inputs])
    finally:
        restore()
    b = GraphBuilder(source="linen" if linen else "nnx", layout="channels_last")
    names = list(input_names or (["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]))
    values = [b.input(n, (None, *x.shape[1:]), x.dtype) for n, x in zip(names, inputs)]
    writer = JaxprWriter(b, rec.calls, _linen_emitter(b) if linen else _nnx_emitter(b, _module_paths(model)))
    outs = writer.run(closed.jaxpr, closed.consts, values)
    if writer.unsupported:
        raise ExportError(
            f"{type(model).__name__}: cannot export {len(set(writer.unsupported))} operation(s): "
            + ", ".join(sorted(set(writer.unsupported)))
        )
    onames = list(output_names or (["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]))
    for value, name in zip(outs, onames):
        b.output(value, name)
    proto = b.build()
    feeds = {n: x for n, x in zip(names, inputs)}
    check_against(proto, feeds, [np.asarray(e) for e in expected], rtol=rtol, what=type(model).__name__)
    _write(proto, path, inline)
    return proto


def load(
    source: str | os.PathLike | onnx.ModelProto,
    *,
    framework: str = "nnx",
    param_dtype: jnp.dtype | type = jnp.float32,
    rngs: nnx.Rngs | None = None,
) -> OnnxModel | tuple[nn.Module, Any]:
    """Load an nmn ONNX file (from any framework) as a trainable Flax model.

    Returns an :class:`OnnxModel` (``framework='nnx'``), or ``(module, variables)`` of a Linen module
    (``framework='linen'``) whose ``apply(variables, *inputs)`` runs the same graph.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> import nmn.nnx as N
        >>> net = nnx.Sequential(N.YatNMN(4, 3, rngs=nnx.Rngs(0)), nnx.Linear(3, 2, rngs=nnx.Rngs(1)))
        >>> loaded = load(export(net, jnp.ones((2, 4))))
        >>> x = jnp.ones((5, 4))
        >>> bool(jnp.allclose(loaded(x), net(x), atol=1e-6))
        True
    """
    model = OnnxModel(read_model(source), param_dtype=param_dtype, rngs=rngs)
    if framework == "nnx":
        return model
    if framework != "linen":
        raise ValueError(f"framework must be 'nnx' or 'linen', got {framework!r}")
    return _as_linen(model)


def predict(model: nnx.Module | tuple[nn.Module, Any], inputs: list, *, framework: str = "nnx") -> list[np.ndarray]:
    """Inference on numpy inputs: an NNX model (eval mode for the call) or a Linen ``(module, variables)``."""
    xs = [jnp.asarray(x) for x in inputs]
    if framework == "linen" or isinstance(model, tuple):
        module, variables = model
        out = module.apply(variables, *xs)
    else:
        restore = _set_eval(model)
        try:
            out = model(*xs)
        finally:
            restore()
    return [np.asarray(o) for o in (out if isinstance(out, (tuple, list)) else (out,))]


# ------------------------------------------------------------------------------------------- per-framework entries
def export_nnx(
    model: nnx.Module, example_inputs: Any, path: str | os.PathLike | None = None, **options: Any
) -> onnx.ModelProto:
    """:func:`export` of an NNX model (``framework='nnx'``)."""
    return export(model, example_inputs, path, framework="nnx", **options)


def export_linen(
    model: Any, example_inputs: Any, path: str | os.PathLike | None = None, **options: Any
) -> onnx.ModelProto:
    """:func:`export` of a Linen module; pass its ``variables=``."""
    return export(model, example_inputs, path, framework="linen", **options)


def load_nnx(source: str | os.PathLike | onnx.ModelProto, **options: Any) -> OnnxModel:
    """:func:`load` as an NNX :class:`OnnxModel`."""
    return load(source, framework="nnx", **options)


def load_linen(source: str | os.PathLike | onnx.ModelProto, **options: Any) -> tuple[nn.Module, Any]:
    """:func:`load` as a Linen ``(module, variables)``."""
    return load(source, framework="linen", **options)


def predict_nnx(model: nnx.Module, inputs: list) -> list[np.ndarray]:
    """:func:`predict` of an NNX model."""
    return predict(model, inputs, framework="nnx")


def predict_linen(model: tuple[nn.Module, Any], inputs: list) -> list[np.ndarray]:
    """:func:`predict` of a Linen ``(module, variables)``."""
    return predict(model, inputs, framework="linen")


ENTRY_POINTS = {
    "nnx": EntryPoints(export_nnx, load_nnx, predict_nnx),
    "linen": EntryPoints(export_linen, load_linen, predict_linen),
}
