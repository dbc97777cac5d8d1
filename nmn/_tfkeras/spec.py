"""The neutral layer description (docs/design.md §S) of ``nmn.keras`` and ``nmn.tf`` layers, written once.

Both packages' layers carry the same attributes in the same host layouts (``nmn.core.layouts``: dense
``kernel (I, O)``, conv ``(*k, C/G, M)``, transposed conv ``(*k, M/G, C)``, attention projections ``(in, out)``),
so the config extraction, the layout conversion and the constructor arguments live here. Each package's
``spec.py`` keeps only what is native: which class is which kind, and how a layer is built.

>>> import numpy as np
>>> constructor_kwargs("YatConvTranspose", {"rank": 1, "strides": [2], "dilations": [1], "groups": 1,
...                                         "padding": "valid", "output_padding": [0], "epsilon": 1e-5})
{'epsilon': 1e-05, 'strides': (2,), 'dilation_rate': (1,), 'groups': 1, 'padding': 'valid', 'output_padding': None}
>>> host_values("YatNMN", {"weight": np.zeros((2, 3)), "bias": np.zeros(2)}, "keras")["kernel"].shape
(3, 2)
"""

from __future__ import annotations

import numpy as np

from nmn._tfkeras.attention import ALL_RF_PARAMS, RF_KEYWORDS, random_feature_kind
from nmn._tfkeras.options import padding_config
from nmn.core.conv import refuse_input_dilations, transpose_geometry
from nmn.core.layouts import to_canonical, to_host
from nmn.core.options import performer_spec_options
from nmn.core.spec import fold_cancelled_alpha

KINDS = ("YatNMN", "YatConv", "YatConvTranspose", "MultiHeadYatAttention", "RotaryYatAttention", "YatEmbed")
_YAT_KEYS = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")
_ATTENTION_KEYS = (
    "use_bias",
    "use_alpha",
    "constant_alpha",
    "epsilon",
    "spherical",
    "normalization",
    "power",
    "use_out_proj",
    "causal",
)
_LAYOUT = {"YatNMN": "dense", "YatConv": "conv", "YatConvTranspose": "conv_transpose"}


# --------------------------------------------------------------------------------------------------- to_spec
def np32(v):
    """A float32 numpy copy of a variable or tensor."""
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float32).copy()


def _canonical(framework, kind, kernel):
    return np.ascontiguousarray(to_canonical(framework, _LAYOUT[kind], np32(kernel)))


def _yat_config(layer):
    return layer.yat.config()


def _tail_params(layer, params):
    if layer.bias is not None:
        params["bias"] = np32(layer.bias)
    if layer.alpha is not None:
        params["alpha"] = np32(layer.alpha)
    if layer.epsilon_param is not None:
        params["epsilon_param"] = np32(layer.epsilon_param)
    return params


def dense_spec(layer, framework, out_features):
    """``("YatNMN", config, params)`` of a built Yat dense layer with ``out_features`` units."""
    config = {
        "in_features": int(layer.kernel.shape[0]),
        "out_features": out_features,
        **_yat_config(layer),
        "spherical": layer.spherical,
        "weight_normalized": layer.weight_normalized,
        "lazy": layer.lazy,
    }
    return "YatNMN", config, _tail_params(layer, {"weight": _canonical(framework, "YatNMN", layer.kernel)})


def conv_spec(layer, framework):
    """``("YatConv", config, params)`` of a built N-d Yat convolution."""
    config = {
        "rank": layer.rank,
        "in_channels": int(layer.kernel.shape[-2]) * layer.groups,
        "out_channels": layer.filters,
        "kernel_size": list(layer.kernel_size),
        "strides": list(layer.strides),
        "dilations": list(layer.dilation_rate),
        "groups": layer.groups,
        "padding": padding_config(layer.padding),
        "padding_mode": layer.padding_mode,
        **_yat_config(layer),
        "spherical": False,
        "weight_normalized": layer.weight_normalized,
    }
    return "YatConv", config, _tail_params(layer, {"weight": _canonical(framework, "YatConv", layer.kernel)})


def conv_transpose_spec(layer, framework):
    """``("YatConvTranspose", config, params)`` of a built N-d Yat transposed convolution."""
    r = layer.rank
    padding, outpad = padding_config(layer.padding), list(layer.output_padding or (0,) * r)
    pads, extra = layer._geometry  # the Keras meaning of padding/output_padding (nmn._tfkeras.conv_transpose)
    if isinstance(layer.padding, str) and transpose_geometry(
        layer.padding, layer.kernel_size, layer.strides, layer.dilation_rate, layer.output_padding
    ) != ([tuple(p) for p in pads], list(extra)):
        padding, outpad = [list(p) for p in pads], list(extra)  # write the resolved crops: the same in every loader
    config = {
        "rank": r,
        "in_channels": int(layer.kernel.shape[-1]),
        "out_channels": layer.filters,
        "kernel_size": list(layer.kernel_size),
        "strides": list(layer.strides),
        "dilations": list(layer.dilation_rate),
        "groups": layer.groups,
        "padding": padding,
        "output_padding": outpad,
        **_yat_config(layer),
        "spherical": False,
        "weight_normalized": layer.weight_normalized,
    }
    weight = _canonical(framework, "YatConvTranspose", layer.kernel)
    return "YatConvTranspose", config, _tail_params(layer, {"weight": weight})


def attention_spec(layer, framework, rotary):
    """``(kind, config, params)`` of a built ``MultiHeadYatAttention`` (``rotary``: a ``RotaryYatAttention``)."""
    kind = "RotaryYatAttention" if rotary else "MultiHeadYatAttention"
    config = {"embed_dim": layer.embed_dim, "num_heads": layer.num_heads, **layer.attn.config()}
    config.pop("dropout")
    if rotary:
        config.update(layer.rope.config())
    else:
        config.update(performer_nmax=layer.performer_nmax, performer_bias=layer.performer_bias)
        config.update({k: getattr(layer, k) for k in RF_KEYWORDS})
    params = {}
    for p in ("q", "k", "v", "out"):
        kernel = getattr(layer, f"{p}_kernel")
        if kernel is None:
            continue
        params[f"{p}_weight"] = _canonical(framework, "YatNMN", kernel)
        bias = getattr(layer, f"{p}_bias")
        if bias is not None:
            params[f"{p}_bias"] = np32(bias)
    if layer.alpha is not None:
        params["alpha"] = np32(layer.alpha)
    if layer.proj is not None:
        params["proj"] = np32(layer.proj)
    if not rotary and random_feature_kind(layer) is not None:
        params.update({name: np32(getattr(layer, name)) for name in ALL_RF_PARAMS if getattr(layer, name) is not None})
    return kind, config, params


def embed_spec(layer):
    """``("YatEmbed", config, params)`` of a ``YatEmbed``."""
    config = {
        "num_embeddings": layer.num_embeddings,
        "features": layer.features,
        **layer.yat.config(),
        "spherical": layer.spherical,
    }
    params = {"embedding": np32(layer.embedding)}
    if layer.alpha is not None:
        params["alpha"] = np32(layer.alpha)
    return "YatEmbed", config, params


def describe(layer, framework, types, out_features):
    """``(kind, config, params)`` of a built layer: ``types`` maps each kind to the host class (the private N-d
    base for the convolutions); ``out_features`` names the dense layer's width attribute.

    A layer whose stored variables are not the ones its forward uses (a reparametrised bias, a masked kernel)
    has ``_export_params()``; its entries replace the stored ones, by canonical name (canonical layout) or by
    attribute name (``"kernel"``, ``"q_kernel"``; host layout, converted as the stored one would be).
    """
    kind, config, params = _describe(layer, framework, types, out_features)
    hook = getattr(layer, "_export_params", None)
    if callable(hook):
        for key, value in hook().items():
            value = np32(value)
            if key == "kernel" and kind in _LAYOUT:
                key, value = "weight", _canonical(framework, kind, value)
            elif key.endswith("_kernel") and key not in params:
                key, value = key[: -len("kernel")] + "weight", _canonical(framework, "YatNMN", value)
            params[key] = value
    return kind, config, params


def _describe(layer, framework, types, out_features):
    if isinstance(layer, types["YatNMN"]):
        return dense_spec(layer, framework, getattr(layer, out_features))
    if isinstance(layer, types["YatConv"]):
        return conv_spec(layer, framework)
    if isinstance(layer, types["YatConvTranspose"]):
        return conv_transpose_spec(layer, framework)
    if isinstance(layer, types["MultiHeadYatAttention"]):
        return attention_spec(layer, framework, isinstance(layer, types["RotaryYatAttention"]))
    if isinstance(layer, types["YatEmbed"]):
        return embed_spec(layer)
    raise TypeError(f"to_spec: {type(layer).__name__} is not an nmn.{framework} Yat layer")


# ------------------------------------------------------------------------------------------------- from_spec
def _pick(config, keys):
    return {k: config[k] for k in keys if k in config}


def check_kind(kind):
    """Raise the ``from_spec`` error for an unknown ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"from_spec: unknown kind {kind!r}; expected one of {list(KINDS)}")


def constructor_args(kind, config):
    """The positional constructor arguments of the layer for ``(kind, config)``."""
    if kind == "YatNMN":
        return (config["out_features"],)
    if kind in ("YatConv", "YatConvTranspose"):
        return config["out_channels"], tuple(config["kernel_size"])
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        return config["embed_dim"], config["num_heads"]
    return config["num_embeddings"], config["features"]


def constructor_kwargs(kind, config):
    """The Yat keyword arguments of the layer for ``(kind, config)`` (host keywords are the caller's)."""
    if kind == "YatNMN":
        return _pick(config, _YAT_KEYS + ("spherical", "weight_normalized", "lazy"))
    if kind in ("YatConv", "YatConvTranspose"):
        keys = _YAT_KEYS + (("weight_normalized", "padding_mode") if kind == "YatConv" else ("weight_normalized",))
        kwargs = dict(
            _pick(config, keys),
            strides=tuple(config["strides"]),
            dilation_rate=tuple(config["dilations"]),
            groups=config["groups"],
            padding=config["padding"],
        )
        if kind == "YatConvTranspose":
            outpad = config.get("output_padding")
            kwargs["output_padding"] = None if outpad is None or not any(outpad) else tuple(outpad)
        return kwargs
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        kwargs = _pick(config, _ATTENTION_KEYS)
        extra = (
            ("max_seq_len", "theta", "rope_style")
            if kind == "RotaryYatAttention"
            else ("use_performer", "num_features")
        )
        kwargs.update(_pick(config, extra))
        if kind == "MultiHeadYatAttention":
            kwargs.update(performer_spec_options(config))
            kwargs.update(_pick(config, RF_KEYWORDS))  # a config without performer_kind is "slay" (older files)
        return kwargs
    return _pick(config, ("use_alpha", "constant_alpha", "epsilon", "spherical"))


def input_widths(kind, config, params):
    """The input feature widths a layer is built for: ``(in_features,)``, ``(in_channels,)``, the query, key
    and value widths of attention, or ``()`` for ``YatEmbed``."""
    if kind == "YatNMN":
        return (config["in_features"],)
    if kind in ("YatConv", "YatConvTranspose"):
        return (config["in_channels"],)
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        e = config["embed_dim"]
        return tuple(params[f"{p}_weight"].shape[1] if f"{p}_weight" in params else e for p in "qkv")
    return ()


def _tail(params):
    return {k: params[k] for k in ("bias", "alpha", "epsilon_param") if k in params}


def host_values(kind, params, framework):
    """Canonical ``params`` as host arrays by layer attribute name (``kernel``, ``q_kernel``, ``bias``, ...)."""
    if kind in _LAYOUT:
        return {"kernel": to_host(framework, _LAYOUT[kind], params["weight"]), **_tail(params)}
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        values = {}
        for p in ("q", "k", "v", "out"):
            if f"{p}_weight" in params:
                values[f"{p}_kernel"] = to_host(framework, "dense", params[f"{p}_weight"])
            if f"{p}_bias" in params:
                values[f"{p}_bias"] = params[f"{p}_bias"]
        for p in ("alpha", "proj", *ALL_RF_PARAMS):
            if p in params:
                values[p] = params[p]
        return values
    return {"embedding": params["embedding"], **({"alpha": params["alpha"]} if "alpha" in params else {})}


def assign(layer, values):
    """Assign host arrays to the layer's weights by attribute name, checking each shape."""
    for attr, value in values.items():
        var = getattr(layer, attr)
        if var is None:
            raise ValueError(f"from_spec: {type(layer).__name__} has no parameter {attr!r} for this config")
        value = np.asarray(value, np.float32)
        if tuple(var.shape) != value.shape:
            raise ValueError(
                f"from_spec: {type(layer).__name__}.{attr} expects shape {tuple(var.shape)}, got {value.shape}"
            )
        var.assign(value)


def from_spec(kind, config, params, host_kwargs, *, classes, build, framework):
    """A built layer for ``(kind, config, params)``.

    ``classes`` maps each kind to the host class (for the convolutions, a dict rank -> class);
    ``build(layer, kind, widths)`` builds it natively for :func:`input_widths`; the canonical params are then
    converted to ``framework``'s layout and assigned.
    """
    params = {k: np.asarray(v) for k, v in params.items()}
    check_kind(kind)
    config, params = fold_cancelled_alpha(kind, config, params)
    if kind == "YatConv":
        refuse_input_dilations(kind, config, framework)
    cls = classes[kind]
    if isinstance(cls, dict):
        cls = cls[config["rank"]]
    layer = cls(*constructor_args(kind, config), **constructor_kwargs(kind, config), **host_kwargs)
    build(layer, kind, input_widths(kind, config, params))
    assign(layer, host_values(kind, params, framework))
    return layer
