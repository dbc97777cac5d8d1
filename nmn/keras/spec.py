"""Keras layers <-> the neutral layer description (docs/CONTRACT.md): ``to_spec`` and ``from_spec``.

Canonical params are float32 numpy arrays in the ONNX layout: dense ``weight (O, I)`` (Keras ``kernel (I, O)``),
conv ``weight (M, C/G, *k)`` (Keras ``(*k, C/G, M)``), transposed conv ``weight (C, M/G, *k)`` (Keras
``(*k, M/G, C)``), attention projections ``(out, in)`` (Keras ``(in, out)``).

>>> from nmn.keras import YatNMN
>>> kind, config, params = to_spec(from_spec("YatNMN", {"in_features": 3, "out_features": 2},
...                                          {"weight": np.ones((2, 3), np.float32)}))
>>> kind, config["out_features"], sorted(params)
('YatNMN', 2, ['alpha', 'bias', 'weight'])
"""

from __future__ import annotations

import keras
import numpy as np

from nmn.core.options import resolve_alpha
from nmn.keras.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.keras.conv import YatConv1D, YatConv2D, YatConv3D, _YatConvNd
from nmn.keras.conv_transpose import (YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D,
                                      _YatConvTransposeNd)
from nmn.keras.dense import YatNMN
from nmn.keras.embed import YatEmbed

__all__ = ["to_spec", "from_spec", "KINDS"]

CONV = {1: YatConv1D, 2: YatConv2D, 3: YatConv3D}
CONV_TRANSPOSE = {1: YatConvTranspose1D, 2: YatConvTranspose2D, 3: YatConvTranspose3D}
KINDS = ("YatNMN", "YatConv", "YatConvTranspose", "MultiHeadYatAttention", "RotaryYatAttention", "YatEmbed")


def _np(v):
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float32).copy()


def _alpha_value(layer):
    spec = resolve_alpha(layer.use_alpha, layer.constant_alpha)
    return None if spec.learnable or (layer.constant_alpha is None or layer.constant_alpha is False) else spec.value


def _yat_config(layer):
    return {"use_bias": layer.use_bias, "constant_bias": None if layer.constant_bias is None else float(
        layer.constant_bias), "use_alpha": layer.use_alpha, "constant_alpha": _alpha_value(layer),
            "epsilon": layer.epsilon, "learnable_epsilon": layer.learnable_epsilon}


def _tail_params(layer, params):
    if layer.bias is not None:
        params["bias"] = _np(layer.bias)
    if layer.alpha is not None:
        params["alpha"] = _np(layer.alpha)
    if layer.epsilon_param is not None:
        params["epsilon_param"] = _np(layer.epsilon_param)
    return params


def _padding(padding):
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def to_spec(layer):
    """``(kind, config, params)`` of a built nmn.keras layer (params canonical float32 numpy)."""
    if not layer.built:
        raise ValueError(f"to_spec: {type(layer).__name__} {layer.name!r} is not built yet (call it once)")
    if isinstance(layer, YatNMN):
        config = {"in_features": int(layer.kernel.shape[0]), "out_features": layer.units, **_yat_config(layer),
                  "spherical": layer.spherical, "weight_normalized": layer.weight_normalized, "lazy": layer.lazy}
        return "YatNMN", config, _tail_params(layer, {"weight": _np(layer.kernel).T.copy()})
    if isinstance(layer, _YatConvNd):
        r = layer.rank
        w = _np(layer.kernel)
        config = {"rank": r, "in_channels": int(w.shape[-2]) * layer.groups, "out_channels": layer.filters,
                  "kernel_size": list(layer.kernel_size), "strides": list(layer.strides),
                  "dilations": list(layer.dilation_rate), "groups": layer.groups, "padding": _padding(layer.padding),
                  "padding_mode": layer.padding_mode, **_yat_config(layer), "spherical": False,
                  "weight_normalized": layer.weight_normalized}
        weight = np.ascontiguousarray(np.transpose(w, (r + 1, r, *range(r))))
        return "YatConv", config, _tail_params(layer, {"weight": weight})
    if isinstance(layer, _YatConvTransposeNd):
        r = layer.rank
        w = _np(layer.kernel)
        config = {"rank": r, "in_channels": int(w.shape[-1]), "out_channels": layer.filters,
                  "kernel_size": list(layer.kernel_size), "strides": list(layer.strides),
                  "dilations": list(layer.dilation_rate), "groups": layer.groups, "padding": _padding(layer.padding),
                  "output_padding": list(layer.output_padding or (0,) * r), **_yat_config(layer),
                  "spherical": False, "weight_normalized": False}
        weight = np.ascontiguousarray(np.transpose(w, (r + 1, r, *range(r))))
        return "YatConvTranspose", config, _tail_params(layer, {"weight": weight})
    if isinstance(layer, MultiHeadYatAttention):
        kind = "RotaryYatAttention" if isinstance(layer, RotaryYatAttention) else "MultiHeadYatAttention"
        config = {"embed_dim": layer.embed_dim, "num_heads": layer.num_heads, "use_bias": layer.use_bias,
                  "use_alpha": layer.use_alpha, "constant_alpha": _alpha_value(layer), "epsilon": layer.epsilon,
                  "spherical": layer.spherical, "normalization": layer.normalization, "power": layer.power,
                  "use_out_proj": layer.use_out_proj, "causal": layer.causal, "use_performer": layer.use_performer,
                  "num_features": layer.num_features}
        if kind == "RotaryYatAttention":
            config.update(max_seq_len=layer.max_seq_len, theta=layer.theta, rope_style=layer.rope_style)
        params = {}
        for p in ("q", "k", "v", "out"):
            kernel = getattr(layer, f"{p}_kernel")
            if kernel is None:
                continue
            params[f"{p}_weight"] = _np(kernel).T.copy()
            bias = getattr(layer, f"{p}_bias")
            if bias is not None:
                params[f"{p}_bias"] = _np(bias)
        if layer.alpha is not None:
            params["alpha"] = _np(layer.alpha)
        if layer.proj is not None:
            params["proj"] = _np(layer.proj)
        return kind, config, params
    if isinstance(layer, YatEmbed):
        config = {"num_embeddings": layer.num_embeddings, "features": layer.features, "use_alpha": layer.use_alpha,
                  "constant_alpha": _alpha_value(layer), "epsilon": layer.epsilon, "spherical": layer.spherical}
        params = {"embedding": _np(layer.embedding)}
        if layer.alpha is not None:
            params["alpha"] = _np(layer.alpha)
        return "YatEmbed", config, params
    raise TypeError(f"to_spec: {type(layer).__name__} is not an nmn.keras Yat layer")


_YAT_KEYS = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")


def _pick(config, keys):
    return {k: config[k] for k in keys if k in config}


def _assign(layer, values):
    """Assign canonical-converted host arrays to the layer's weights by attribute name."""
    for attr, value in values.items():
        var = getattr(layer, attr)
        if var is None:
            raise ValueError(f"from_spec: {type(layer).__name__} has no parameter {attr!r} for this config")
        value = np.asarray(value, np.float32)
        if tuple(var.shape) != value.shape:
            raise ValueError(f"from_spec: {type(layer).__name__}.{attr} expects shape {tuple(var.shape)}, got "
                             f"{value.shape}")
        var.assign(value)


def _build(layer, *shapes):
    """Build with zero initialisers (the values are overwritten at once; random init compiles per shape on JAX)."""
    names = [n for n in ("kernel_initializer", "bias_initializer", "embeddings_initializer") if hasattr(layer, n)]
    saved = {n: getattr(layer, n) for n in names}
    try:
        for n in names:
            setattr(layer, n, keras.initializers.Zeros())
        layer.build(*shapes)
    finally:
        for n, v in saved.items():
            setattr(layer, n, v)


def _tail(params):
    return {k: params[k] for k in ("bias", "alpha", "epsilon_param") if k in params}


def from_spec(kind, config, params, **host_kwargs):
    """A built nmn.keras layer for ``(kind, config, params)``; ``host_kwargs`` go to the constructor
    (e.g. ``name``, ``data_format``)."""
    params = {k: np.asarray(v) for k, v in params.items()}
    if kind == "YatNMN":
        layer = YatNMN(config["out_features"], **_pick(config, _YAT_KEYS + ("spherical", "weight_normalized", "lazy")),
                       **host_kwargs)
        _build(layer, (None, config["in_features"]))
        _assign(layer, {"kernel": params["weight"].T, **_tail(params)})
        return layer
    if kind in ("YatConv", "YatConvTranspose"):
        r = config["rank"]
        keys = _YAT_KEYS + (("weight_normalized", "padding_mode") if kind == "YatConv" else ())
        kwargs = dict(_pick(config, keys), strides=tuple(config["strides"]), dilation_rate=tuple(config["dilations"]),
                      groups=config["groups"], padding=config["padding"])
        if kind == "YatConvTranspose":
            outpad = config.get("output_padding")
            kwargs["output_padding"] = None if outpad is None or not any(outpad) else tuple(outpad)
        cls = (CONV if kind == "YatConv" else CONV_TRANSPOSE)[r]
        layer = cls(config["out_channels"], tuple(config["kernel_size"]), **kwargs, **host_kwargs)
        shape = [None] * (r + 2)
        shape[-1 if layer.data_format == "channels_last" else 1] = config["in_channels"]
        _build(layer, tuple(shape))
        weight = np.transpose(params["weight"], (*range(2, r + 2), 1, 0))
        _assign(layer, {"kernel": weight, **_tail(params)})
        return layer
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        keys = ("use_bias", "use_alpha", "constant_alpha", "epsilon", "spherical", "normalization", "power",
                "use_out_proj", "causal")
        kwargs = _pick(config, keys)
        if kind == "RotaryYatAttention":
            kwargs.update(_pick(config, ("max_seq_len", "theta", "rope_style")))
            layer = RotaryYatAttention(config["embed_dim"], config["num_heads"], **kwargs, **host_kwargs)
        else:
            kwargs.update(_pick(config, ("use_performer", "num_features")))
            layer = MultiHeadYatAttention(config["embed_dim"], config["num_heads"], **kwargs, **host_kwargs)
        e = config["embed_dim"]
        shapes = {p: params[f"{p}_weight"].shape[1] if f"{p}_weight" in params else e for p in "qkv"}
        if kind == "RotaryYatAttention":
            _build(layer, (None, None, shapes["q"]))
        else:
            _build(layer, (None, None, shapes["q"]), (None, None, shapes["k"]), (None, None, shapes["v"]))
        values = {}
        for p in ("q", "k", "v", "out"):
            if f"{p}_weight" in params:
                values[f"{p}_kernel"] = params[f"{p}_weight"].T
            if f"{p}_bias" in params:
                values[f"{p}_bias"] = params[f"{p}_bias"]
        for p in ("alpha", "proj"):
            if p in params:
                values[p] = params[p]
        _assign(layer, values)
        return layer
    if kind == "YatEmbed":
        layer = YatEmbed(config["num_embeddings"], config["features"],
                         **_pick(config, ("use_alpha", "constant_alpha", "epsilon", "spherical")), **host_kwargs)
        _build(layer, None)
        _assign(layer, {"embedding": params["embedding"], **({"alpha": params["alpha"]} if "alpha" in params else {})})
        return layer
    raise ValueError(f"from_spec: unknown kind {kind!r}; expected one of {list(KINDS)}")
