"""Neutral layer description (docs/design.md §S): ``to_spec(layer)`` and ``from_spec(kind, config, params)``.

Torch layouts are the canonical ONNX ones, so parameters move as they are; only the names differ
(``q_proj.weight`` <-> ``q_weight``, ``weight`` <-> ``embedding`` for YatEmbed).

>>> layer = from_spec(*to_spec(YatNMN(3, 2)))
>>> type(layer).__name__, layer.weight.shape
('YatNMN', torch.Size([2, 3]))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nmn.core.conv import refuse_input_dilations
from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_THETA,
    performer_spec_options,
)
from nmn.core.spec import fold_cancelled_alpha
from nmn.torch.attention import RF_BUFFERS, RF_KEYWORDS, MultiHeadYatAttention, RotaryYatAttention
from nmn.torch.conv import YatConv1D, YatConv2D, YatConv3D, _YatConvNd
from nmn.torch.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D, _YatConvTransposeNd
from nmn.torch.dense import YatNMN
from nmn.torch.embed import YatEmbed
from nmn.torch.squashers import Softermax, SofterSigmoid, SoftTanh

__all__ = ["to_spec", "from_spec", "param_paths", "KINDS"]

_CONV = {1: YatConv1D, 2: YatConv2D, 3: YatConv3D}
_CONV_T = {1: YatConvTranspose1D, 2: YatConvTranspose2D, 3: YatConvTranspose3D}
KINDS = (
    "YatNMN",
    "YatConv",
    "YatConvTranspose",
    "MultiHeadYatAttention",
    "RotaryYatAttention",
    "YatEmbed",
    "softermax",
    "softer_sigmoid",
    "soft_tanh",
)


def kind_of(layer: nn.Module) -> str:
    """The neutral ``kind`` of an nmn.torch layer (``ValueError`` for anything else)."""
    for cls, kind in (
        (YatNMN, "YatNMN"),
        (_YatConvNd, "YatConv"),
        (_YatConvTransposeNd, "YatConvTranspose"),
        (RotaryYatAttention, "RotaryYatAttention"),
        (MultiHeadYatAttention, "MultiHeadYatAttention"),
        (YatEmbed, "YatEmbed"),
        (Softermax, "softermax"),
        (SofterSigmoid, "softer_sigmoid"),
        (SoftTanh, "soft_tanh"),
    ):
        if isinstance(layer, cls):
            return kind
    raise ValueError(f"to_spec: {type(layer).__name__} is not an nmn.torch layer; expected one of {list(KINDS)}")


def param_paths(layer: nn.Module) -> dict[str, str]:
    """``{canonical name: attribute path in the layer}`` for every parameter/buffer the spec carries."""
    kind = kind_of(layer)
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        paths = {}
        for p in ("q", "k", "v", "out"):
            lin = getattr(layer, f"{p}_proj")
            if lin is None:
                continue
            paths[f"{p}_weight"] = f"{p}_proj.weight"
            if lin.bias is not None:
                paths[f"{p}_bias"] = f"{p}_proj.bias"
        if layer.alpha is not None:
            paths["alpha"] = "alpha"
        if getattr(layer, "proj", None) is not None:
            paths["proj"] = "proj"
        if kind == "MultiHeadYatAttention" and layer.use_performer:  # the frozen MAY / RAY projections
            paths.update({name: name for name in RF_BUFFERS.get(layer.performer_kind, ())})
        return paths
    if kind == "YatEmbed":
        return {"embedding": "weight", **({"alpha": "alpha"} if layer.alpha is not None else {})}
    if kind in ("softermax", "softer_sigmoid", "soft_tanh"):
        return {}
    return {name: name for name in ("weight", "bias", "alpha", "epsilon_param") if getattr(layer, name) is not None}


def _get(layer, path):
    for part in path.split("."):
        layer = getattr(layer, part)
    return layer


def _pairs(padding):
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def to_spec(layer: nn.Module) -> tuple[str, dict, dict[str, np.ndarray]]:
    """``(kind, config, params)``: plain-JSON config and canonical float32 numpy params of an nmn.torch layer."""
    kind = kind_of(layer)
    if kind == "YatNMN":
        config = dict(
            in_features=layer.in_features,
            out_features=layer.out_features,
            **layer.yat_config(),
            spherical=layer.spherical,
            weight_normalized=layer.weight_normalized,
            lazy=layer.lazy,
        )
    elif kind == "YatConv":
        config = dict(
            rank=layer._rank,
            in_channels=layer.in_channels,
            out_channels=layer.out_channels,
            kernel_size=list(layer.kernel_size),
            strides=list(layer.stride),
            dilations=list(layer.dilation),
            groups=layer.groups,
            padding=_pairs(layer.padding),
            padding_mode=layer.padding_mode,
            **layer.yat_config(),
            spherical=False,
            weight_normalized=layer.weight_normalized,
        )
    elif kind == "YatConvTranspose":
        config = dict(
            rank=layer._rank,
            in_channels=layer.in_channels,
            out_channels=layer.out_channels,
            kernel_size=list(layer.kernel_size),
            strides=list(layer.stride),
            dilations=list(layer.dilation),
            groups=layer.groups,
            padding=_pairs(layer.padding),
            output_padding=list(layer.output_padding),
            **layer.yat_config(),
            spherical=False,
            weight_normalized=layer.weight_normalized,
        )
    elif kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        config = dict(embed_dim=layer.embed_dim, num_heads=layer.num_heads, **layer.attn.config())
        config.pop("dropout")
        if kind == "RotaryYatAttention":
            config.update(layer.rope.config())
        else:
            config.update(performer_nmax=layer.performer_nmax, performer_bias=layer.performer_bias)
            config.update({key: getattr(layer, key) for key in RF_KEYWORDS})
    elif kind == "YatEmbed":
        config = dict(
            num_embeddings=layer.num_embeddings,
            features=layer.embedding_dim,
            **layer.yat.config(),
            spherical=layer.spherical,
        )
    elif kind == "softermax":
        config = dict(n=layer.n, epsilon=layer.epsilon, axis=layer.dim)
    else:
        config = dict(n=layer.n)
    paths = param_paths(layer)
    params = {name: _get(layer, path).detach().cpu().float().numpy().copy() for name, path in paths.items()}
    return kind, config, _export_overrides(layer, params, {path: name for name, path in paths.items()})


def _export_overrides(layer, params, host_names):
    """``params`` with the entries of the layer's ``_export_params()`` (when it has one) put in their place.

    A layer whose stored tensors are not the ones its forward uses (a reparametrised bias, a masked kernel)
    returns the effective ones by canonical name (``"weight"``) or by attribute path (``"q_proj.weight"``);
    torch layouts are canonical, so they go in as float32 numpy unchanged.
    """
    hook = getattr(layer, "_export_params", None)
    if not callable(hook):
        return params
    for key, value in hook().items():
        name = key if key in params or key not in host_names else host_names[key]
        if torch.is_tensor(value):
            value = value.detach().cpu().float().numpy()
        params[name] = np.array(value, dtype=np.float32)
    return params


def _yat_kwargs(config, kind):
    return dict(
        use_bias=bool(config.get("use_bias", True)),
        constant_bias=config.get("constant_bias"),
        use_alpha=bool(config.get("use_alpha", True)),
        constant_alpha=config.get("constant_alpha"),
        epsilon=config.get("epsilon", DEFAULT_EPSILON),
        learnable_epsilon=bool(config.get("learnable_epsilon", False)),
    )


def _unsupported(kind, config, *keys):
    for key in keys:
        if config.get(key):
            raise ValueError(f"from_spec: {kind} with {key}=True has no nmn v1 function; torch does not build it")


def _padding(value):
    """Config padding (a string, an int, ints or [lo, hi] pairs) in the form the layers take."""
    if isinstance(value, (str, int)):
        return value
    return tuple(int(p) if isinstance(p, int) else tuple(int(v) for v in p) for p in value)


def _performer(config: dict, params: dict | None) -> dict:
    """The performer keywords of a neutral ``MultiHeadYatAttention`` config; a config without ``performer_kind``
    is the SLAY performer (files written before the MAY / RAY kinds)."""
    c, params = config, params or {}
    kind = c.get("performer_kind", "slay") if c.get("use_performer", False) else "slay"
    first = {"slay": "proj", "maclaurin": "may_omega", "radial": "ray_w1"}.get(kind)
    held = params.get(first)
    m = c.get("num_features") or (held.shape[0] if held is not None and kind != "radial" else PERFORMER_NUM_FEATURES)
    out = dict(num_features=int(m), **performer_spec_options(c))
    if kind == "maclaurin":
        nmax = c.get("performer_nmax")  # absent: the file's omega says it (None means 40)
        out["performer_nmax"] = int(held.shape[1]) if "performer_nmax" not in c and held is not None else nmax
    elif kind == "radial":
        out["performer_nmax"] = None
    if kind != "slay":
        out.update({key: c[key] for key in RF_KEYWORDS if key in c})
    return out


def from_spec(
    kind: str,
    config: dict,
    params: dict[str, Any] | None = None,
    *,
    device: torch.device | str | int | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Build the nmn.torch layer of a neutral spec and load ``params`` (canonical arrays) into it."""
    factory = {"device": device, "dtype": dtype}
    config, params = fold_cancelled_alpha(kind, config, params)
    c = config
    if kind == "YatNMN":
        layer = YatNMN(
            c["in_features"],
            c["out_features"],
            **_yat_kwargs(c, kind),
            spherical=c.get("spherical", False),
            weight_normalized=c.get("weight_normalized", False),
            lazy=c.get("lazy", False),
            **factory,
        )
    elif kind == "YatConv":
        _unsupported(kind, c, "spherical")
        refuse_input_dilations(kind, c, "torch")
        layer = _CONV[c["rank"]](
            c["in_channels"],
            c["out_channels"],
            tuple(c["kernel_size"]),
            stride=tuple(c.get("strides", 1)),
            padding=_padding(c.get("padding", "valid")),
            dilation=tuple(c.get("dilations", 1)),
            groups=c.get("groups", 1),
            padding_mode=c.get("padding_mode", "zeros"),
            **_yat_kwargs(c, kind),
            weight_normalized=c.get("weight_normalized", False),
            **factory,
        )
    elif kind == "YatConvTranspose":
        _unsupported(kind, c, "spherical")
        layer = _CONV_T[c["rank"]](
            c["in_channels"],
            c["out_channels"],
            tuple(c["kernel_size"]),
            stride=tuple(c.get("strides", 1)),
            padding=_padding(c.get("padding", "valid")),
            output_padding=tuple(c.get("output_padding") or (0,) * c["rank"]),
            groups=c.get("groups", 1),
            dilation=tuple(c.get("dilations", 1)),
            **_yat_kwargs(c, kind),
            weight_normalized=c.get("weight_normalized", False),
            **factory,
        )
    elif kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        common = dict(
            use_bias=c.get("use_bias", True),
            use_alpha=c.get("use_alpha", True),
            constant_alpha=c.get("constant_alpha"),
            epsilon=c.get("epsilon", DEFAULT_EPSILON),
            spherical=c.get("spherical", False),
            normalization=c.get("normalization", "softmax"),
            power=c.get("power", 1.0),
            use_out_proj=c.get("use_out_proj", True),
            causal=c.get("causal", False),
            **factory,
        )
        if kind == "RotaryYatAttention":
            layer = RotaryYatAttention(
                c["embed_dim"],
                c["num_heads"],
                c.get("max_seq_len", ROPE_MAX_SEQ_LEN),
                theta=c.get("theta", ROPE_THETA),
                rope_style=c.get("rope_style", "interleaved"),
                use_performer=c.get("use_performer", False),
                **common,
            )
        else:
            layer = MultiHeadYatAttention(
                c["embed_dim"], c["num_heads"], use_performer=c.get("use_performer", False), **_performer(c, params),
                **common,
            )  # fmt: skip
    elif kind == "YatEmbed":
        layer = YatEmbed(
            c["num_embeddings"],
            c["features"],
            use_alpha=c.get("use_alpha", True),
            constant_alpha=c.get("constant_alpha"),
            epsilon=c.get("epsilon", DEFAULT_EPSILON),
            spherical=c.get("spherical", False),
            **factory,
        )
    elif kind == "softermax":
        layer = Softermax(c.get("n", 1.0), c.get("epsilon", DEFAULTS["softermax_epsilon"]), c.get("axis", -1))
    elif kind == "softer_sigmoid":
        layer = SofterSigmoid(c.get("n", 1.0))
    elif kind == "soft_tanh":
        layer = SoftTanh(c.get("n", 1.0))
    else:
        raise ValueError(f"from_spec: unknown kind {kind!r}; expected one of {list(KINDS)}")
    if params is not None:
        load_params(layer, params)
    return layer


def load_params(layer: nn.Module, params: dict[str, Any]) -> nn.Module:
    """Copy canonical ``params`` into ``layer`` (exact names and shapes; ``ValueError`` listing every mismatch)."""
    paths = param_paths(layer)
    problems = [f"unexpected {k}" for k in params if k not in paths]
    problems += [f"missing {k}" for k in paths if k not in params]
    for name, path in paths.items():
        if name in params:
            target = _get(layer, path)
            value = np.asarray(params[name])
            if tuple(value.shape) != tuple(target.shape):
                problems.append(f"{name}: expected shape {tuple(target.shape)}, got {tuple(value.shape)}")
    if problems:
        raise ValueError(f"from_spec: {type(layer).__name__} params do not match: {'; '.join(problems)}")
    with torch.no_grad():
        for name, path in paths.items():
            target = _get(layer, path)
            target.copy_(torch.as_tensor(np.asarray(params[name])).to(dtype=target.dtype, device=target.device))
    return layer
