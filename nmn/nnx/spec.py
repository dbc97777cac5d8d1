"""Neutral layer description for NNX layers: ``to_spec(layer)`` and ``from_spec(kind, config, params)``.

Params are canonical (ONNX layout) float32 numpy arrays; see docs/design.md §S.

>>> from flax import nnx
>>> from nmn.nnx import YatNMN
>>> kind, config, params = to_spec(YatNMN(3, 2, rngs=nnx.Rngs(0)))
>>> kind, params["weight"].shape
('YatNMN', (2, 3))
>>> from_spec(kind, config, params).kernel.shape
(3, 2)
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike

from nmn._jax.geometry import padding_config, padding_from_config
from nmn._jax.layout import attention_config, attention_kwargs, embed_config, yat_kwargs
from nmn._jax.random_features import param_table, performer_kwargs
from nmn.core.spec import fold_cancelled_alpha
from nmn.nnx.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.nnx.conv import YatConv, YatConv1D, YatConv2D, YatConv3D
from nmn.nnx.conv_transpose import YatConvTranspose, YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.nnx.dense import YatNMN
from nmn.nnx.embed import YatEmbed

_CONV = {1: YatConv1D, 2: YatConv2D, 3: YatConv3D}
_CONVT = {1: YatConvTranspose1D, 2: YatConvTranspose2D, 3: YatConvTranspose3D}


def _attention_config(layer):
    name = type(layer).__name__
    if not (layer.qkv_features == layer.out_features == layer.in_kv_features == layer.in_features):
        raise ValueError(
            f"{name}: the neutral spec needs in_features == qkv_features == out_features == "
            f"in_kv_features, got {layer.in_features}, {layer.qkv_features}, {layer.out_features}, "
            f"{layer.in_kv_features}"
        )
    return attention_config(layer.opts, layer.in_features, layer.num_heads)


def layer_config(layer) -> tuple[str, dict]:
    """``(kind, config)`` of an nmn NNX layer."""
    if isinstance(layer, YatNMN):
        return "YatNMN", dict(
            in_features=layer.in_features,
            out_features=layer.out_features,
            **layer.opts.config(),
            spherical=layer.spherical,
            weight_normalized=layer.weight_normalized,
            lazy=layer.lazy,
        )
    if isinstance(layer, YatConv):
        return "YatConv", dict(
            rank=layer.rank,
            in_channels=layer.in_features,
            out_channels=layer.out_features,
            kernel_size=list(layer.kernel_size),
            strides=list(layer.strides),
            dilations=list(layer.kernel_dilation),
            groups=layer.feature_group_count,
            padding=padding_config(layer.padding),
            padding_mode=layer.padding_mode,
            **layer.opts.config(),
            spherical=False,
            weight_normalized=layer.weight_normalized,
            input_dilations=[int(d) for d in layer.input_dilation],
        )
    if isinstance(layer, YatConvTranspose):
        return "YatConvTranspose", dict(
            rank=layer.rank,
            in_channels=layer.in_features,
            out_channels=layer.out_features,
            kernel_size=list(layer.kernel_size),
            strides=list(layer.strides),
            dilations=list(layer.kernel_dilation),
            groups=layer.feature_group_count,
            padding=padding_config(layer.padding),
            output_padding=list(layer.output_padding),
            **layer.opts.config(),
            spherical=False,
            weight_normalized=layer.weight_normalized,
        )
    if isinstance(layer, RotaryYatAttention):
        return "RotaryYatAttention", dict(
            _attention_config(layer), max_seq_len=layer.max_seq_len, theta=layer.theta, rope_style=layer.rope_style
        )
    if isinstance(layer, MultiHeadYatAttention):
        config = _attention_config(layer)
        config.update(performer_nmax=layer.performer_nmax, performer_bias=layer.performer_bias)
        return "MultiHeadYatAttention", config
    if isinstance(layer, YatEmbed):
        return "YatEmbed", embed_config(layer.opts, layer.num_embeddings, layer.features, layer.spherical)
    raise TypeError(f"to_spec: {type(layer).__name__} is not an nmn.nnx layer")


def _variable(layer, path):
    obj = layer
    for part in path:
        obj = getattr(obj, part)
    return obj


def to_spec(layer: nnx.Module) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """``(kind, config, params)`` of an nmn NNX layer; params canonical float32 numpy arrays."""
    kind, config = layer_config(layer)
    table = param_table(kind, config)
    params = {
        name: np.asarray(to_c(np.asarray(_variable(layer, path)[...])), np.float32) for name, path, to_c, _ in table
    }
    hook = getattr(layer, "_export_params", None)
    return kind, config, export_overrides(hook() if callable(hook) else {}, params, table)


def export_overrides(effective: dict[str, Any], params: dict[str, np.ndarray], table: list) -> dict[str, np.ndarray]:
    """``params`` with a layer's ``_export_params()`` entries (``effective``) put in their place.

    A layer whose stored arrays are not the ones its forward uses (a reparametrised bias, a masked kernel)
    returns the effective ones either by canonical name (``"weight"``, canonical layout) or by host path
    (``"kernel"``, ``"query.kernel"``, Flax layout, converted as the stored one would be). Shared with Linen.
    """
    host = {".".join(path): (name, to_c) for name, path, to_c, _ in table}
    for key, value in effective.items():
        value = np.asarray(value)
        if key not in params and key in host:
            key, to_c = host[key]
            value = to_c(value)
        params[key] = np.asarray(value, np.float32)
    return params


def _check_unsupported(kind, config):
    if kind in ("YatConv", "YatConvTranspose") and config.get("spherical"):
        raise ValueError(f"{kind}: spherical=True is not defined for convolutions")
    if kind == "RotaryYatAttention" and config.get("use_performer"):
        raise ValueError("RotaryYatAttention: use_performer=True is not available with rotary embeddings")


def from_spec(
    kind: str,
    config: dict[str, Any],
    params: dict[str, np.ndarray],
    *,
    rngs: nnx.Rngs | None = None,
    param_dtype: DTypeLike = jnp.float32,
    **kwargs: Any,
) -> nnx.Module:
    """Build the NNX layer of a neutral spec holding ``params`` (canonical layout); ``kwargs`` go to the class."""
    _check_unsupported(kind, config)
    config, params = fold_cancelled_alpha(kind, config, params)
    rngs = nnx.Rngs(0) if rngs is None else rngs
    common = dict(param_dtype=param_dtype, rngs=rngs, **kwargs)
    c = config
    if kind == "YatNMN":
        layer = YatNMN(
            c["in_features"],
            c["out_features"],
            **yat_kwargs(c),
            spherical=c.get("spherical", False),
            weight_normalized=c.get("weight_normalized", False),
            lazy=c.get("lazy", False),
            **common,
        )
    elif kind == "YatConv":
        layer = _CONV[c["rank"]](
            c["in_channels"],
            c["out_channels"],
            tuple(c["kernel_size"]),
            tuple(c["strides"]),
            padding=padding_from_config(c["padding"]),
            padding_mode=c.get("padding_mode", "zeros"),
            kernel_dilation=tuple(c["dilations"]),
            feature_group_count=c.get("groups", 1),
            **yat_kwargs(c),
            weight_normalized=c.get("weight_normalized", False),
            input_dilation=tuple(c.get("input_dilations") or (1,) * c["rank"]),
            **common,
        )
    elif kind == "YatConvTranspose":
        layer = _CONVT[c["rank"]](
            c["in_channels"],
            c["out_channels"],
            tuple(c["kernel_size"]),
            tuple(c["strides"]),
            padding=padding_from_config(c["padding"]),
            output_padding=tuple(c.get("output_padding") or (0,) * c["rank"]),
            kernel_dilation=tuple(c["dilations"]),
            feature_group_count=c.get("groups", 1),
            **yat_kwargs(c),
            weight_normalized=c.get("weight_normalized", False),
            **common,
        )
    elif kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        opts = attention_kwargs(c)
        if kind == "RotaryYatAttention":
            layer = RotaryYatAttention(
                c["num_heads"],
                c["embed_dim"],
                max_seq_len=c["max_seq_len"],
                theta=c["theta"],
                rope_style=c["rope_style"],
                **opts,
                **common,
            )
        else:
            layer = MultiHeadYatAttention(
                c["num_heads"],
                c["embed_dim"],
                use_performer=c.get("use_performer", False),
                **performer_kwargs(c, params),
                **opts,
                **common,
            )
    elif kind == "YatEmbed":
        layer = YatEmbed(
            c["num_embeddings"],
            c["features"],
            use_alpha=c["use_alpha"],
            constant_alpha=c["constant_alpha"],
            epsilon=c["epsilon"],
            spherical=c["spherical"],
            **common,
        )
    else:
        raise ValueError(f"from_spec: unknown nmn layer kind {kind!r}")
    table = param_table(kind, config)
    missing = sorted({name for name, *_ in table} - set(params))
    if missing:
        raise ValueError(f"from_spec: {kind} needs params {missing}, got {sorted(params)}")
    for name, path, _, from_c in table:
        var = _variable(layer, path)
        value = jnp.asarray(from_c(np.asarray(params[name])), dtype=var[...].dtype)
        if value.shape != var.shape:
            raise ValueError(
                f"from_spec: {kind} param {name!r} has shape {np.shape(params[name])}, which does not "
                f"fit {'.'.join(path)} {tuple(var.shape)}"
            )
        var[...] = value
    return layer
