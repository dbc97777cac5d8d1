"""What the JAX export walk writes for a layer region: nmn's NNX/Linen layers through their neutral spec, standard
Flax layers through the emitter registered for their class name in :data:`LAYERS` (one table serves NNX and Linen,
whose standard layers share names); plus the layer classes the recording marks and the eval-mode switch."""

from __future__ import annotations

import numpy as np
from flax import linen as nn
from flax import nnx

import nmn.linen as L
import nmn.nnx as N
from nmn._jax.geometry import conv_padding
from nmn._jax.random_features import param_table
from nmn.interchange import emit
from nmn.interchange.graph import ExportError
from nmn.interchange.jax_io.record import Call
from nmn.interchange.registry import Registry
from nmn.linen import spec as linen_spec
from nmn.nnx import spec as nnx_spec

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


LAYERS = Registry("flax layers")  # class name (NNX and Linen alike) -> emitter(b, name, m, x, aval, get)


def _emit_standard(b, name, m, call, ins, avals, get):
    """A standard Flax layer, through the emitter registered for its class name; ``get(collection, leaf)`` returns
    its variable (or None)."""
    cls = type(m).__name__
    fn = LAYERS.get(cls)
    if fn is None:
        raise ExportError(f"{name}: no ONNX export for {cls}")
    return fn(b, name, m, ins[0], avals[0], get)


@LAYERS.register("Linear", "Dense")
def _linear(b, name, m, x, aval, get):
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


@LAYERS.register("Conv", "ConvTranspose")
def _conv(b, name, m, x, aval, get):
    cls = type(m).__name__
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


@LAYERS.register("LayerNorm")
def _layer_norm(b, name, m, x, aval, get):
    if m.reduction_axes not in (-1, (-1,)) or m.feature_axes not in (-1, (-1,)):
        raise ExportError(f"{name}: LayerNorm is exported over the last axis only")
    scale, bias = _np(get("params", "scale")), _np(get("params", "bias"))
    if scale is None:
        scale = np.ones((aval.shape[-1],), np.float32)
    return emit.layer_norm(b, name, x, scale, bias, m.epsilon, param_names={"weight": "scale", "bias": "bias"})


@LAYERS.register("BatchNorm")
def _batch_norm(b, name, m, x, aval, get):
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


@LAYERS.register("Dropout")
def _dropout(b, name, m, x, aval, get):
    return x


@LAYERS.register("Embed")
def _embed(b, name, m, x, aval, get):
    table = np.asarray(get("params", "embedding"), np.float32)
    return emit.embedding(b, name, x, table, param_names={"weight": "embedding"})


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
