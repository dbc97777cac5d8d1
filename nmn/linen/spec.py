"""Neutral layer description for Linen layers: ``to_spec(module, variables)`` and ``from_spec(...)``.

A Linen module holds no arrays, so ``to_spec`` takes the module and its variables, and ``from_spec`` returns
``(module, variables)``. Params are canonical (ONNX layout) float32 numpy arrays; see docs/design.md §S.

>>> import jax, jax.numpy as jnp
>>> from nmn.linen import YatNMN
>>> layer = YatNMN(features=2)
>>> kind, config, params = to_spec(layer, layer.init(jax.random.key(0), jnp.ones((1, 3))))
>>> kind, config["in_features"], params["weight"].shape
('YatNMN', 3, (2, 3))
>>> module, variables = from_spec(kind, config, params)
>>> variables["params"]["kernel"].shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.core import meta, unfreeze
from jax.typing import DTypeLike

from nmn._jax.geometry import input_dilation_tuple, padding_config, padding_from_config
from nmn._jax.layout import attention_config, attention_kwargs, embed_config, yat_kwargs
from nmn._jax.random_features import RF_PARAMS, param_table, performer_kwargs
from nmn.core.options import check_performer
from nmn.core.spec import fold_cancelled_alpha
from nmn.linen._ops import CONSTANTS, FROZEN
from nmn.linen.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.linen.conv import YatConv1D, YatConv2D, YatConv3D, _YatConvNd
from nmn.linen.conv_transpose import (
    YatConvTranspose1D,
    YatConvTranspose2D,
    YatConvTranspose3D,
    _YatConvTransposeNd,
)
from nmn.linen.dense import YatNMN
from nmn.linen.embed import YatEmbed
from nmn.nnx.spec import export_overrides

_CONV = {1: YatConv1D, 2: YatConv2D, 3: YatConv3D}
_CONVT = {1: YatConvTranspose1D, 2: YatConvTranspose2D, 3: YatConvTranspose3D}
_COLLECTIONS = ("params", FROZEN, CONSTANTS)


def find(variables, path):
    """The array at ``path`` in the first of the ``params``/``frozen``/``constants`` collections holding it."""
    for collection in _COLLECTIONS:
        node = variables.get(collection, {})
        for part in path:
            node = node.get(part) if hasattr(node, "get") else None
            if node is None:
                break
        if node is not None:
            return collection, meta.unbox(node)
    raise KeyError(f"no variable {'/'.join(path)} in collections {sorted(variables)}")


def _attention_config(module, variables):
    name = type(module).__name__
    e = find(variables, ("query", "kernel"))[1].shape[0]
    qkv = module.qkv_features or e
    out = module.out_features or e
    if qkv != e or out != e:
        raise ValueError(
            f"{name}: the neutral spec needs qkv_features == out_features == input features, got {qkv}, {out}, {e}"
        )
    return attention_config(module.yat_options(), e, module.num_heads)


def layer_config(module, variables) -> tuple[str, dict]:
    """``(kind, config)`` of an nmn Linen module with its variables."""
    if isinstance(module, YatNMN):
        kernel = find(variables, ("kernel",))[1]
        return "YatNMN", dict(
            in_features=int(kernel.shape[0]),
            out_features=module.features,
            **module.yat_options().config(),
            spherical=module.spherical,
            weight_normalized=module.weight_normalized,
            lazy=module.lazy,
        )
    if isinstance(module, _YatConvNd):
        ks, strides, dil, groups, padding, mode, opts = module.geometry()
        kernel = find(variables, ("kernel",))[1]
        return "YatConv", dict(
            rank=len(ks),
            in_channels=int(kernel.shape[-2]) * groups,
            out_channels=module.features,
            kernel_size=list(ks),
            strides=list(strides),
            dilations=list(dil),
            groups=groups,
            padding=padding_config(padding),
            padding_mode=mode,
            **opts.config(),
            spherical=False,
            weight_normalized=module.weight_normalized,
            input_dilations=list(input_dilation_tuple(module.input_dilation, len(ks), padding, type(module).__name__)),
        )
    if isinstance(module, _YatConvTransposeNd):
        ks, strides, dil, groups, padding, outpad, opts = module.geometry()
        kernel = find(variables, ("kernel",))[1]
        return "YatConvTranspose", dict(
            rank=len(ks),
            in_channels=int(kernel.shape[-2]),
            out_channels=module.features,
            kernel_size=list(ks),
            strides=list(strides),
            dilations=list(dil),
            groups=groups,
            padding=padding_config(padding),
            output_padding=list(outpad),
            **opts.config(),
            spherical=False,
            weight_normalized=module.weight_normalized,
        )
    if isinstance(module, RotaryYatAttention):
        return "RotaryYatAttention", dict(
            _attention_config(module, variables),
            max_seq_len=module.max_seq_len,
            theta=float(module.theta),
            rope_style=module.rope_style,
        )
    if isinstance(module, MultiHeadYatAttention):
        config = _attention_config(module, variables)
        if config.get("use_performer") and config.get("performer_kind") in RF_PARAMS:
            nmax, bias = module.performer_nmax, module.yat_options().performer_bias  # MAY: None means 40
        else:
            nmax, bias = check_performer(module.performer_nmax, module.performer_bias, type(module).__name__)
        config.update(performer_nmax=nmax, performer_bias=bias)
        return "MultiHeadYatAttention", config
    if isinstance(module, YatEmbed):
        opts = module.yat_options()
        return "YatEmbed", embed_config(opts, module.num_embeddings, module.features, module.spherical)
    raise TypeError(f"to_spec: {type(module).__name__} is not an nmn.linen layer")


def to_spec(module: nn.Module, variables: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """``(kind, config, params)`` of an nmn Linen module and its variables; params canonical float32 numpy."""
    kind, config = layer_config(module, variables)
    table = param_table(kind, config)
    params = {name: np.asarray(to_c(np.asarray(find(variables, path)[1])), np.float32) for name, path, to_c, _ in table}
    if callable(getattr(module, "_export_params", None)):
        # the effective arrays of a reparametrised module, computed from its variables (nmn.nnx.spec's rule)
        params = export_overrides(module.bind(dict(variables))._export_params(), params, table)
    return kind, config, params


def module_from_config(kind: str, config: dict, *, spec_params: dict | None = None, **kwargs):
    """The Linen module (no variables) of a spec ``kind`` and ``config`` (``spec_params``: the spec's params, which
    give a MAY config without ``performer_nmax`` its degree)."""
    c = config
    if kind in ("YatConv", "YatConvTranspose") and c.get("spherical"):
        raise ValueError(f"{kind}: spherical=True is not defined for convolutions")
    yat = yat_kwargs(c)
    if kind == "YatNMN":
        return YatNMN(
            c["out_features"],
            **yat,
            spherical=c.get("spherical", False),
            weight_normalized=c.get("weight_normalized", False),
            lazy=c.get("lazy", False),
            **kwargs,
        )
    if kind == "YatConv":
        return _CONV[c["rank"]](
            c["out_channels"],
            tuple(c["kernel_size"]),
            tuple(c["strides"]),
            padding=padding_from_config(c["padding"]),
            padding_mode=c.get("padding_mode", "zeros"),
            kernel_dilation=tuple(c["dilations"]),
            feature_group_count=c.get("groups", 1),
            **yat,
            weight_normalized=c.get("weight_normalized", False),
            input_dilation=tuple(c.get("input_dilations") or (1,) * c["rank"]),
            **kwargs,
        )
    if kind == "YatConvTranspose":
        return _CONVT[c["rank"]](
            c["out_channels"],
            tuple(c["kernel_size"]),
            tuple(c["strides"]),
            padding=padding_from_config(c["padding"]),
            output_padding=tuple(c.get("output_padding") or (0,) * c["rank"]),
            kernel_dilation=tuple(c["dilations"]),
            feature_group_count=c.get("groups", 1),
            **yat,
            weight_normalized=c.get("weight_normalized", False),
            **kwargs,
        )
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        opts = attention_kwargs(c)
        if kind == "RotaryYatAttention":
            if c.get("use_performer"):
                raise ValueError("RotaryYatAttention: use_performer=True is not available with rotary embeddings")
            return RotaryYatAttention(
                c["num_heads"],
                max_seq_len=c["max_seq_len"],
                theta=c["theta"],
                rope_style=c["rope_style"],
                **opts,
                **kwargs,
            )
        return MultiHeadYatAttention(
            c["num_heads"],
            use_performer=c.get("use_performer", False),
            **performer_kwargs(c, spec_params),
            **opts,
            **kwargs,
        )
    if kind == "YatEmbed":
        return YatEmbed(
            c["num_embeddings"],
            c["features"],
            use_alpha=c["use_alpha"],
            constant_alpha=c["constant_alpha"],
            epsilon=c["epsilon"],
            spherical=c["spherical"],
            **kwargs,
        )
    raise ValueError(f"from_spec: unknown nmn layer kind {kind!r}")


def _collection_of(kind, config, name):
    if name == "proj" or name in RF_PARAMS["maclaurin"] or name in RF_PARAMS["radial"]:
        return CONSTANTS
    if name == "weight" and kind == "YatNMN" and config.get("lazy"):
        return FROZEN
    return "params"


def from_spec(
    kind: str,
    config: dict[str, Any],
    params: dict[str, np.ndarray],
    *,
    param_dtype: DTypeLike = jnp.float32,
    **kwargs: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, variables)`` for a neutral spec holding ``params`` (canonical layout)."""
    config, params = fold_cancelled_alpha(kind, config, params)
    module = module_from_config(kind, config, spec_params=params, param_dtype=param_dtype, **kwargs)
    table = param_table(kind, config)
    missing = sorted({name for name, *_ in table} - set(params))
    if missing:
        raise ValueError(f"from_spec: {kind} needs params {missing}, got {sorted(params)}")
    variables: dict = {}
    for name, path, _, from_c in table:
        node = variables.setdefault(_collection_of(kind, config, name), {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = jnp.asarray(from_c(np.asarray(params[name])), dtype=param_dtype)
    return module, unfreeze(variables)
