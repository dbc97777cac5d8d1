"""Flax (NNX and Linen) <-> ONNX: export a model built from nmn and standard Flax layers, load any nmn ONNX file.

**Export** traces the model with ``jax.make_jaxpr``; during the export every known layer call is a marked
region of the jaxpr (:mod:`nmn.interchange.jax_io.walker`), so

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

import nmn.linen as L
import nmn.nnx as N
from nmn._jax.geometry import conv_padding
from nmn._jax.layout import param_table
from nmn.interchange import emit
from nmn.interchange._export_common import write as _write
from nmn.interchange.jax_io.holder import (
    OnnxLinen,
    OnnxModel,
    _as_linen,
    _export_loaded,
    _export_loaded_linen,
)
from nmn.interchange.jax_io.walker import Call, JaxprWriter, recording
from nmn.interchange.graph import ExportError, GraphBuilder, check_against
from nmn.interchange.reader import read_model
from nmn.linen import spec as linen_spec
from nmn.nnx import spec as nnx_spec

__all__ = ["export", "load", "predict", "OnnxModel"]

_CONV_KINDS = ("YatConv", "YatConvTranspose")


def _nnx_classes():
    classes = [
        (N.YatNMN, "__call__"),
        (N.YatConv, "__call__"),
        (N.YatConvTranspose, "__call__"),
        (N.MultiHeadYatAttention, "__call__"),
        (N.RotaryYatAttention, "__call__"),
        (N.YatEmbed, "__call__"),
        (N.YatEmbed, "attend"),
    ]
    for cls in (nnx.Linear, nnx.Conv, nnx.ConvTranspose, nnx.LayerNorm, nnx.BatchNorm, nnx.Dropout, nnx.Embed):
        classes.append((cls, "__call__"))
    return classes


def _linen_classes():
    from nmn.linen.conv import _YatConvNd
    from nmn.linen.conv_transpose import _YatConvTransposeNd

    classes = [
        (L.YatNMN, "__call__"),
        (_YatConvNd, "__call__"),
        (_YatConvTransposeNd, "__call__"),
        (L.MultiHeadYatAttention, "__call__"),
        (L.RotaryYatAttention, "__call__"),
        (L.YatEmbed, "__call__"),
        (L.YatEmbed, "attend"),
    ]
    for cls in (nn.Dense, nn.Conv, nn.ConvTranspose, nn.LayerNorm, nn.BatchNorm, nn.Dropout, nn.Embed):
        classes.append((cls, "__call__"))
    return classes


_NMN_NNX = (N.YatNMN, N.YatConv, N.YatConvTranspose, N.MultiHeadYatAttention, N.YatEmbed)


# ------------------------------------------------------------------------------------------------- emitting
def _emit_yat(b, name, kind, config, params, call: Call, ins, avals):
    names = {canon: ".".join(str(p) for p in path) for canon, path, _, _ in param_table(kind, config)}
    trainable = {"weight": False} if kind == "YatNMN" and config.get("lazy") else {}
    opts: dict = {}
    if call.method == "attend":
        opts["method"] = "attend"
    if "mask" in call.arg_names:
        opts["mask"] = ins[call.arg_names.index("mask")]
        opts["mask_rank"] = len(avals[call.arg_names.index("mask")].shape)
    inputs = ins[:3] if kind == "MultiHeadYatAttention" else ins[:1]
    return emit.yat_layer(
        b,
        name,
        kind,
        config,
        params,
        inputs,
        in_shape=tuple(avals[0].shape),
        channels_last=kind in _CONV_KINDS,
        call=opts,
        param_names=names,
        trainable=trainable,
        host={"class": type(call.module).__name__},
    )


def _np(v):
    return None if v is None else np.asarray(v, np.float32)


def _flax_conv(
    b,
    name,
    cls_name,
    x,
    aval,
    kernel,
    bias,
    *,
    strides,
    padding,
    dilation,
    groups,
    input_dilation,
    transpose=False,
    transpose_kernel=False,
):
    rank = kernel.ndim - 2
    ks = kernel.shape[:rank]
    strides = (strides,) * rank if isinstance(strides, int) or strides is None else tuple(strides)
    strides = tuple(1 if s is None else s for s in strides) if strides else (1,) * rank
    dil = (dilation or 1,) * rank if isinstance(dilation, int) or dilation is None else tuple(dilation)
    if input_dilation not in (None, 1) and any(d != 1 for d in np.atleast_1d(input_dilation)):
        raise ExportError(f"{name}: {cls_name} with input_dilation is not exported")
    if transpose:
        if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID") or transpose_kernel:
            raise ExportError(
                f"{name}: {cls_name} is exported with padding 'SAME' or 'VALID' and "
                f"transpose_kernel=False only, got padding={padding!r}"
            )
        # Flax kernel (*k, C, M), unflipped correlation of the dilated input = ONNX W (C, M, *k) flipped
        weight = np.flip(kernel, axis=tuple(range(rank))).transpose(rank, rank + 1, *range(rank))
        return emit.conv(
            b,
            name,
            x,
            np.ascontiguousarray(weight),
            bias,
            in_shape=aval.shape,
            strides=strides,
            dilations=dil,
            groups=1,
            padding=padding.lower(),
            channels_last=True,
            transpose=True,
            param_names={"weight": "kernel", "bias": "bias"},
        )
    pad, mode = conv_padding(padding, "zeros", rank, ks, dil, name)
    if mode != "zeros":
        raise ExportError(f"{name}: {cls_name} with padding={padding!r} is not exported (use nmn's padding_mode)")
    weight = kernel.transpose(rank + 1, rank, *range(rank))
    return emit.conv(
        b,
        name,
        x,
        np.ascontiguousarray(weight),
        bias,
        in_shape=aval.shape,
        strides=strides,
        dilations=dil,
        groups=int(groups or 1),
        padding=pad,
        channels_last=True,
        param_names={"weight": "kernel", "bias": "bias"},
    )


def _emit_standard(b, name, m, call, ins, avals, get):
    """A standard Flax layer; ``get(collection, leaf)`` returns its variable (or None)."""
    x, aval = ins[0], avals[0]
    cls = type(m).__name__
    if cls in ("Linear", "Dense"):
        kernel = np.asarray(get("params", "kernel"), np.float32)
        return emit.linear(
            b,
            name,
            x,
            np.ascontiguousarray(kernel.T),
            _np(get("params", "bias")),
            rank=len(aval.shape),
            param_names={"weight": "kernel", "bias": "bias"},
        )
    if cls in ("Conv", "ConvTranspose"):
        kernel = np.asarray(get("params", "kernel"), np.float32)
        return _flax_conv(
            b,
            name,
            cls,
            x,
            aval,
            kernel,
            _np(get("params", "bias")),
            strides=m.strides,
            padding=m.padding,
            dilation=m.kernel_dilation,
            groups=getattr(m, "feature_group_count", 1),
            input_dilation=getattr(m, "input_dilation", 1),
            transpose=cls == "ConvTranspose",
            transpose_kernel=getattr(m, "transpose_kernel", False),
        )
    if cls == "LayerNorm":
        if m.reduction_axes not in (-1, (-1,)) or m.feature_axes not in (-1, (-1,)):
            raise ExportError(f"{name}: LayerNorm is exported over the last axis only")
        scale, bias = _np(get("params", "scale")), _np(get("params", "bias"))
        if scale is None:
            scale = np.ones((aval.shape[-1],), np.float32)
        return emit.layer_norm(b, name, x, scale, bias, m.epsilon, param_names={"weight": "scale", "bias": "bias"})
    if cls == "BatchNorm":
        if m.axis not in (-1,):
            raise ExportError(f"{name}: BatchNorm is exported over the last (channel) axis only")
        n = aval.shape[-1]
        scale = _np(get("params", "scale"))
        bias = _np(get("params", "bias"))
        return emit.batch_norm(
            b,
            name,
            x,
            np.ones((n,), np.float32) if scale is None else scale,
            np.zeros((n,), np.float32) if bias is None else bias,
            _np(get("batch_stats", "mean")),
            _np(get("batch_stats", "var")),
            m.epsilon,
            rank=len(aval.shape) - 2,
            channels_last=len(aval.shape) > 2,
            param_names={"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"},
        )
    if cls == "Dropout":
        return x
    if cls == "Embed":
        return emit.embedding(
            b, name, x, np.asarray(get("params", "embedding"), np.float32), param_names={"weight": "embedding"}
        )
    raise ExportError(f"{name}: no ONNX export for {cls}")


def _nnx_emitter(b, paths):
    def emit_layer(call: Call, ins, avals, out_aval):
        m = call.module
        name = paths.get(id(m)) or type(m).__name__
        if isinstance(m, _NMN_NNX):
            kind, config, params = nnx_spec.to_spec(m)
            return _emit_yat(b, name, kind, config, params, call, ins, avals)

        def get(collection, leaf):
            alias = {"mean": "mean", "var": "var"}.get(leaf, leaf)
            v = getattr(m, alias, None)
            return None if v is None or not hasattr(v, "shape") else np.asarray(v[...])

        return _emit_standard(b, name, m, call, ins, avals, get)

    return emit_layer


def _linen_emitter(b):
    nmn_types = (L.YatNMN, L.MultiHeadYatAttention, L.YatEmbed, L.YatConv1D.__mro__[1], L.YatConvTranspose1D.__mro__[1])

    def emit_layer(call: Call, ins, avals, out_aval):
        m = call.module
        after = call.extras.get("after") or {}
        name = ".".join(str(p) for p in after.get("path", ())) or type(m).__name__
        variables = after.get("variables", {})
        if isinstance(m, nmn_types):
            kind, config, params = linen_spec.to_spec(m, variables)
            return _emit_yat(b, name, kind, config, params, call, ins, avals)

        def get(collection, leaf):
            return variables.get(collection, {}).get(leaf)

        return _emit_standard(b, name, m, call, ins, avals, get)

    return emit_layer


def _module_paths(model) -> dict[int, str]:
    paths = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            parts = [str(p) for p in path if not str(p).startswith("_pytree")]
            paths.setdefault(id(node), ".".join(parts))
    return paths


def _set_eval(model):
    """Put an NNX model in inference mode; return a function restoring the flags it changed."""
    saved = []
    for _, node in nnx.iter_graph(model):
        for attr in ("deterministic", "use_running_average"):
            if isinstance(node, nnx.Module) and hasattr(node, attr):
                saved.append((node, attr, getattr(node, attr)))
    model.eval()

    def restore():
        for node, attr, value in saved:
            setattr(node, attr, value)

    return restore


# -------------------------------------------------------------------------------------------------- export
def export(
    model,
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
    param_dtype=jnp.float32,
    rngs: nnx.Rngs | None = None,
):
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


def predict(model, inputs: list, *, framework: str = "nnx") -> list[np.ndarray]:
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
