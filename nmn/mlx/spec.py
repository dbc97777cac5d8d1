"""Neutral layer spec for MLX: ``to_spec(layer)`` and ``from_spec(kind, config, params)``.

The spec's kinds and canonical names are described in ``tests/conformance/__init__.py``.

Canonical (ONNX) layouts <-> the MLX layouts of ``nmn.mlx``:

| kind | canonical | MLX |
|---|---|---|
| YatNMN | ``weight (O, I)`` | ``kernel (O, I)`` |
| YatConv | ``weight (M, C/G, *k)`` | ``kernel (M, *k, C/G)`` |
| YatConvTranspose | ``weight (C, M/G, *k)`` | ``kernel (M, *k, C/G)`` (group g: ``[g M/G + m', t, c']``) |
| attention | ``q/k/v/out_weight (out, in)``, ``*_bias`` | ``query/key/value/out_proj.weight``, ``.bias`` |
| YatEmbed | ``embedding (V, F)`` | ``embedding (V, F)`` |

>>> from typing import Any

import numpy as np
>>> config = {"in_features": 3, "out_features": 2, "use_bias": False}
>>> layer = from_spec("YatNMN", config, {"weight": np.ones((2, 3), np.float32), "alpha": np.ones(1, np.float32)})
>>> kind, config, params = to_spec(layer)
>>> kind, config["out_features"], sorted(params)
('YatNMN', 2, ['alpha', 'weight'])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nmn.core import layouts
from nmn.core.conv import refuse_input_dilations
from nmn.core.options import performer_spec_options
from nmn.core.spec import fold_cancelled_alpha
from nmn.mlx._ops import mx, nn
from nmn.mlx.attention import RF_KEYWORDS, RF_PARAMS, MultiHeadYatAttention, RotaryYatAttention
from nmn.mlx.conv import YatConv1D, YatConv2D, YatConv3D, _YatConvND
from nmn.mlx.conv_transpose import (
    YatConvTranspose1D,
    YatConvTranspose2D,
    YatConvTranspose3D,
    _YatConvTransposeND,
)
from nmn.mlx.dense import YatNMN
from nmn.mlx.embed import YatEmbed

__all__ = ["to_spec", "from_spec", "canonical_to_mlx", "mlx_to_canonical", "KINDS"]

KINDS = ("YatNMN", "YatConv", "YatConvTranspose", "MultiHeadYatAttention", "RotaryYatAttention", "YatEmbed")
_CONV = {1: YatConv1D, 2: YatConv2D, 3: YatConv3D}
_CONV_T = {1: YatConvTranspose1D, 2: YatConvTranspose2D, 3: YatConvTranspose3D}
_RF_NAMES = RF_PARAMS["maclaurin"] + RF_PARAMS["radial"]  # the frozen MAY / RAY projections (spec names too)
_ATTN_NAMES = {"q": "query_proj", "k": "key_proj", "v": "value_proj", "out": "out_proj"}
_YAT_KEYS = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")


def _np(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32) if a.dtype != mx.float32 else a, dtype=np.float32)


_LAYOUT_KINDS = {"YatNMN": "dense", "YatConv": "conv", "YatConvTranspose": "conv_transpose"}


def mlx_to_canonical(kind: str, name: str, value: np.ndarray, groups: int = 1) -> np.ndarray:
    """One parameter from the MLX layout to the canonical one (numpy in, numpy out; :mod:`nmn.core.layouts`)."""
    value = np.asarray(value)
    if name != "weight" or kind not in _LAYOUT_KINDS:
        return value
    return layouts.to_canonical("mlx", _LAYOUT_KINDS[kind], value, groups=groups)


def canonical_to_mlx(kind: str, name: str, value: np.ndarray, groups: int = 1) -> np.ndarray:
    """One parameter from the canonical layout to the MLX one (numpy in, numpy out; :mod:`nmn.core.layouts`)."""
    value = np.asarray(value)
    if name != "weight" or kind not in _LAYOUT_KINDS:
        return value
    return layouts.to_host("mlx", _LAYOUT_KINDS[kind], value, groups=groups)


def _yat_params(layer: nn.Module, kind: str, groups: int = 1) -> dict[str, np.ndarray]:
    params = {"weight": mlx_to_canonical(kind, "weight", _np(layer["kernel"]), groups)}
    for key in ("bias", "alpha", "epsilon_param"):
        if key in layer:
            params[key] = _np(layer[key])
    return params


def to_spec(layer: nn.Module) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """``(kind, config, params)`` of an ``nmn.mlx`` layer; params canonical float32 numpy by canonical name.

    A layer whose stored arrays are not the ones its forward uses (a reparametrised bias, a masked kernel) has
    ``_export_params()``; its entries replace the stored ones, by canonical name (canonical layout) or by MLX
    name (``"kernel"``, ``"query_proj.weight"``; MLX layout, converted as the stored one would be).
    """
    kind, config, params = _describe(layer)
    hook = getattr(layer, "_export_params", None)
    if callable(hook):
        host = {f"{sub}.{leaf}": f"{short}_{leaf}" for short, sub in _ATTN_NAMES.items() for leaf in ("weight", "bias")}
        groups = layer.groups if kind == "YatConvTranspose" else 1  # as _yat_params reads the stored kernel
        for key, value in hook().items():
            value = _np(value) if isinstance(value, mx.array) else np.asarray(value, np.float32)
            if key == "kernel" and kind in _LAYOUT_KINDS:
                key, value = "weight", mlx_to_canonical(kind, "weight", value, groups)
            elif key not in params and key in host:
                key = host[key]
            params[key] = np.asarray(value, np.float32)
    return kind, config, params


def _describe(layer: nn.Module) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    if isinstance(layer, YatNMN):
        return "YatNMN", layer.spec_config(), _yat_params(layer, "YatNMN")
    if isinstance(layer, _YatConvND):
        return "YatConv", layer.spec_config(), _yat_params(layer, "YatConv")
    if isinstance(layer, _YatConvTransposeND):
        return "YatConvTranspose", layer.spec_config(), _yat_params(layer, "YatConvTranspose", layer.groups)
    if isinstance(layer, MultiHeadYatAttention):
        kind = "RotaryYatAttention" if isinstance(layer, RotaryYatAttention) else "MultiHeadYatAttention"
        params = {}
        for short, sub in _ATTN_NAMES.items():
            if sub in layer:
                params[f"{short}_weight"] = _np(layer[sub]["weight"])
                if "bias" in layer[sub]:
                    params[f"{short}_bias"] = _np(layer[sub]["bias"])
        for key in ("alpha", "proj", *_RF_NAMES):
            if key in layer:
                params[key] = _np(layer[key])
        return kind, layer.get_config(), params
    if isinstance(layer, YatEmbed):
        params = {"embedding": _np(layer["embedding"])}
        if "alpha" in layer:
            params["alpha"] = _np(layer["alpha"])
        config = {k: v for k, v in layer.get_config().items() if k != "weight_normalized"}  # init-only
        return "YatEmbed", config, params
    raise TypeError(f"to_spec: {type(layer).__name__} is not an nmn.mlx Yat layer")


def _performer(config: dict[str, Any], params: dict[str, Any] | None) -> dict[str, Any]:
    """The performer keywords of a neutral ``MultiHeadYatAttention`` config; a config without ``performer_kind``
    is the SLAY performer (files written before the MAY / RAY kinds)."""
    c, params = config, params or {}
    kind = c.get("performer_kind", "slay") if c.get("use_performer", False) else "slay"
    out = performer_spec_options(c)
    if kind == "maclaurin":
        held = params.get("may_omega")
        nmax = c.get("performer_nmax")  # absent: the file's omega says it (None means 40)
        out["performer_nmax"] = int(np.shape(held)[1]) if "performer_nmax" not in c and held is not None else nmax
        if "num_features" not in c and held is not None:
            out["num_features"] = int(np.shape(held)[0])
    elif kind == "radial":
        out["performer_nmax"] = None
    if kind != "slay":
        out.update(_pick(c, RF_KEYWORDS))
    return out


def _pick(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: config[k] for k in keys if k in config}


def _refuse(kind: str, config: dict[str, Any], key: str) -> None:
    if config.get(key):
        raise ValueError(f"from_spec: {kind} with {key}=True is not supported (no such option in the nmn domain)")


def _assign(module: nn.Module, name: str, value: np.ndarray, dtype: mx.Dtype) -> None:
    arr = mx.array(np.ascontiguousarray(value, dtype=np.float32))
    module[name] = arr.astype(dtype) if dtype != mx.float32 else arr


def _check_params(
    kind: str, layer: nn.Module, params: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]
) -> None:
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(f"from_spec: {kind} expects params {sorted(expected)}, missing {missing}, unexpected {extra}")
    for name, value in params.items():
        want = expected[name]
        if tuple(np.shape(value)) != tuple(want):
            raise ValueError(
                f"from_spec: {kind} param {name!r} has shape {tuple(np.shape(value))}, expected {tuple(want)}"
            )


def from_spec(
    kind: str, config: dict[str, Any], params: dict[str, np.ndarray], *, dtype: mx.Dtype = mx.float32
) -> nn.Module:
    """Build an ``nmn.mlx`` layer from a neutral spec, holding ``params`` (canonical layout) in ``dtype``."""
    params = {k: np.asarray(v) for k, v in params.items()}
    config, params = fold_cancelled_alpha(kind, dict(config), params)
    if kind == "YatNMN":
        layer = YatNMN(
            config["out_features"],
            in_features=config["in_features"],
            dtype=dtype,
            **_pick(config, _YAT_KEYS + ("spherical", "weight_normalized", "lazy")),
        )
        return _load_yat(kind, layer, params, dtype)
    if kind == "YatConv":
        _refuse(kind, config, "spherical")
        refuse_input_dilations(kind, config, "MLX")
        cls = _CONV[int(config["rank"])]
        padding = config.get("padding", "valid")
        padding = padding if isinstance(padding, str) else [tuple(p) for p in padding]
        layer = cls(
            config["out_channels"],
            tuple(config["kernel_size"]),
            in_channels=config["in_channels"],
            strides=_ints(config.get("strides", 1)),
            padding=padding,
            dilation_rate=_ints(config.get("dilations", 1)),
            groups=config.get("groups", 1),
            padding_mode=config.get("padding_mode", "zeros"),
            dtype=dtype,
            **_pick(config, _YAT_KEYS + ("weight_normalized",)),
        )
        return _load_yat(kind, layer, params, dtype)
    if kind == "YatConvTranspose":
        _refuse(kind, config, "spherical")
        cls = _CONV_T[int(config["rank"])]
        padding = config.get("padding", "valid")
        padding = padding if isinstance(padding, str) else [tuple(p) for p in padding]
        layer = cls(
            config["out_channels"],
            tuple(config["kernel_size"]),
            in_channels=config["in_channels"],
            strides=_ints(config.get("strides", 1)),
            padding=padding,
            dilation_rate=_ints(config.get("dilations", 1)),
            output_padding=_ints(config.get("output_padding", 0)),
            groups=config.get("groups", 1),
            dtype=dtype,
            **_pick(config, _YAT_KEYS + ("weight_normalized",)),
        )
        return _load_yat(kind, layer, params, dtype, groups=layer.groups)
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        keys = (
            "use_bias",
            "use_alpha",
            "constant_alpha",
            "epsilon",
            "spherical",
            "normalization",
            "power",
            "use_out_proj",
            "causal",
            "use_performer",
            "num_features",
        )
        opts = _pick(config, keys)
        if kind == "MultiHeadYatAttention":
            opts.update(_performer(config, params))
        if kind == "RotaryYatAttention":
            opts.update(_pick(config, ("max_seq_len", "theta", "rope_style")))
            layer = RotaryYatAttention(config["embed_dim"], config["num_heads"], dtype=dtype, **opts)
        else:
            layer = MultiHeadYatAttention(config["embed_dim"], config["num_heads"], dtype=dtype, **opts)
        expected = {}
        for short, sub in _ATTN_NAMES.items():
            if sub in layer:
                expected[f"{short}_weight"] = layer[sub]["weight"].shape
                if "bias" in layer[sub]:
                    expected[f"{short}_bias"] = layer[sub]["bias"].shape
        for key in ("alpha", "proj", *_RF_NAMES):
            if key in layer:
                expected[key] = layer[key].shape
        _check_params(kind, layer, params, expected)
        for name, value in params.items():
            short, _, leaf = name.partition("_")
            if short in _ATTN_NAMES and leaf in ("weight", "bias"):
                _assign(layer[_ATTN_NAMES[short]], leaf, value, dtype)
            else:
                _assign(layer, name, value, dtype)
        return layer
    if kind == "YatEmbed":
        layer = YatEmbed(
            config["num_embeddings"],
            config["features"],
            dtype=dtype,
            **_pick(config, ("use_alpha", "constant_alpha", "epsilon", "spherical")),
        )
        expected = {k: layer[k].shape for k in ("embedding", "alpha") if k in layer}
        _check_params(kind, layer, params, expected)
        for name, value in params.items():
            _assign(layer, name, value, dtype)
        return layer
    raise ValueError(f"from_spec: unknown kind {kind!r}; expected one of {list(KINDS)}")


def _ints(v: int | list[int] | tuple[int, ...]) -> int | tuple[int, ...]:
    return v if isinstance(v, int) else tuple(int(i) for i in v)


def _load_yat(
    kind: str, layer: nn.Module, params: dict[str, np.ndarray], dtype: mx.Dtype, groups: int = 1
) -> nn.Module:
    expected = {"weight": mlx_to_canonical(kind, "weight", np.zeros(layer["kernel"].shape, np.float32), groups).shape}
    expected.update({k: layer[k].shape for k in ("bias", "alpha", "epsilon_param") if k in layer})
    _check_params(kind, layer, params, expected)
    for name, value in params.items():
        target = "kernel" if name == "weight" else name
        _assign(layer, target, canonical_to_mlx(kind, name, value, groups), dtype)
    return layer
