"""The public names and Yat keywords every framework namespace offers: one list, checked by a test.

``nmn.torch``, ``nmn.nnx``, ``nmn.linen``, ``nmn.keras``, ``nmn.tf`` and ``nmn.mlx`` each export exactly
:func:`public_names` of their framework in ``__all__``: the shared :data:`SHARED` names plus that host's
:data:`HOST_EXTRAS`. Constructor keywords follow :data:`YAT_KEYWORDS` per layer kind; the size and layout
arguments that follow each host's idiom are listed in :data:`HOST_SIZE_ARGS` and are the only keywords allowed
to differ. ``tests/test_public_surface.py`` holds every framework to this module.

>>> "YatConv2d" in public_names("keras") and "YatDense" in public_names("tf")
True
>>> ALIASES["YatConvTranspose1d"]
'YatConvTranspose1D'
>>> sorted(YAT_KEYWORDS["YatEmbed"])
['constant_alpha', 'epsilon', 'spherical', 'use_alpha', 'weight_normalized']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")

#: The layer classes, by their canonical name (upper-case ``D`` for the dimension).
LAYERS = (
    "YatNMN",
    "YatConv1D",
    "YatConv2D",
    "YatConv3D",
    "YatConvTranspose1D",
    "YatConvTranspose2D",
    "YatConvTranspose3D",
    "MultiHeadYatAttention",
    "RotaryYatAttention",
    "YatEmbed",
)

#: Other spellings (nmn 0.3 and PyTorch style) bound to the very same classes.
ALIASES = {
    "YatDense": "YatNMN",
    "YatConv1d": "YatConv1D",
    "YatConv2d": "YatConv2D",
    "YatConv3d": "YatConv3D",
    "YatConvTranspose1d": "YatConvTranspose1D",
    "YatConvTranspose2d": "YatConvTranspose2D",
    "YatConvTranspose3d": "YatConvTranspose3D",
}

SQUASHERS = ("softermax", "softer_sigmoid", "soft_tanh")
#: The squashers' module (layer) forms, which call the functional forms.
SQUASHER_LAYERS = ("Softermax", "SofterSigmoid", "SoftTanh")
SPEC = ("to_spec", "from_spec")
MODULES = ("functional",)

#: nmn 0.3's functional attention helpers, with nmn 0.3.5's signatures (``nmn/<framework>/attention_helpers.py``;
#: the Yat weights are the layers' own scores). nmn's own functional API is ``nmn.<framework>.functional``.
V03_HELPERS = (
    "make_attention_mask",
    "make_causal_mask",
    "combine_masks",
    "causal_attention_mask",
    "precompute_freqs_cis",
    "apply_rotary_emb",
    "normalize_qk",
    "yat_attention_weights",
    "yat_attention",
    "yat_attention_normalized",
    "rotary_yat_attention_weights",
    "rotary_yat_attention",
)

#: nmn 0.3's bias-aware random-feature attentions, MAY, RAY and the anchor/tensor-product features, with nmn
#: 0.3.5's signatures (``nmn/<framework>/random_features.py``; the maps are :mod:`nmn.core.random_features`, their
#: ONNX definitions ``nmn::YatMaclaurinFeatures``, ``nmn::YatRadialFeatures``, ``nmn::YatAnchorFeatures``).
RANDOM_FEATURE_HELPERS = (
    "maclaurin_coeffs",
    "create_maclaurin_projection",
    "maclaurin_features",
    "maclaurin_yat_attention",
    "create_radial_projection",
    "radial_features",
    "radial_yat_attention",
    "create_yat_tp_projection",
    "yat_tp_features",
    "yat_tp_attention",
    "spherical_kappa",
    "linear_attention",
    "linear_attention_readout",
)

#: Names every framework exports.
SHARED = LAYERS + tuple(ALIASES) + SQUASHERS + SQUASHER_LAYERS + SPEC + MODULES + V03_HELPERS + RANDOM_FEATURE_HELPERS

#: Names only one host exports, because they are that host's idiom (or only that host had them in nmn 0.3).
HOST_EXTRAS = {
    "torch": ("performer_projection",),
    "nnx": (
        "YatConv",
        "YatConvTranspose",
        "MultiHeadAttention",
        "Embed",
        "FrozenParam",
        "Buffer",
        "dot_product_attention",
        "dot_product_attention_weights",
        "canonicalize_padding",
        "default_kernel_init",
        "default_bias_init",
        "default_alpha_init",
        "ATTENTION_DEFAULT_CONSTANT_ALPHA",
        "CONV_DEFAULT_CONSTANT_ALPHA",
    ),
    "linen": ("MultiHeadAttention",),
    "keras": (),
    "tf": (),
    "mlx": ("fused_yat_score",),
}

#: Functional ops every framework's ``functional`` module offers (same math, host arrays).
FUNCTIONAL = ("yat_dense", "yat_conv", "yat_conv_transpose", "yat_attention", "yat_embed_attend")

_TAIL = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")
#: nmn 0.3's DropConnect (training-only; identity at inference and in every exported file)
_DROPCONNECT = ("use_dropconnect", "drop_rate")
#: nmn 0.3's bias reparametrisations (the file holds the effective bias) and the conv kernel mask (Flax's meaning)
_BIAS_OPTIONS = ("softplus_bias", "scalar_bias")
_CONV = (*_TAIL, *_DROPCONNECT, *_BIAS_OPTIONS, "mask", "weight_normalized", "padding_mode")
_CONVT = (*_TAIL, *_DROPCONNECT, *_BIAS_OPTIONS, "mask", "weight_normalized")
_ATTENTION = (
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
    "performer_nmax",
    "performer_bias",
    # nmn 0.3's MAY / RAY random-feature kinds and their sizes
    "performer_kind",
    "performer_sketch_m",
    "performer_num_radial",
    "performer_radial_dim",
)

#: The Yat keywords each layer kind accepts by name, with the same meaning and default in every framework.
YAT_KEYWORDS = {
    "YatNMN": frozenset(
        (
            *_TAIL,
            *_DROPCONNECT,
            *_BIAS_OPTIONS,
            "spherical",
            "weight_normalized",
            "lazy",
            "freeze_kernel",
            "positive_init",
        )
    ),
    **{f"YatConv{d}D": frozenset(_CONV) for d in (1, 2, 3)},
    **{f"YatConvTranspose{d}D": frozenset(_CONVT) for d in (1, 2, 3)},
    "MultiHeadYatAttention": frozenset(_ATTENTION),
    "RotaryYatAttention": frozenset((*_ATTENTION, "max_seq_len", "theta", "rope_style")),
    "YatEmbed": frozenset(("use_alpha", "constant_alpha", "epsilon", "spherical", "weight_normalized")),
}

#: Every keyword that names a Yat option somewhere (a layer accepting one not in its kind's set is drift).
ALL_YAT_KEYWORDS = frozenset().union(*YAT_KEYWORDS.values())

#: Size, layout, dtype and host-plumbing arguments that follow each host's idiom (allowed to differ).
HOST_SIZE_ARGS = {
    "torch": frozenset(
        (
            "in_features",
            "out_features",
            "in_channels",
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "groups",
            "output_padding",
            "bias",
            "alpha",
            "embed_dim",
            "num_heads",
            "dropout",
            "num_embeddings",
            "embedding_dim",
            "features",
            "device",
            "dtype",
            "padding_mode",
            "kernel_init",
            "bias_init",
            "alpha_init",
            "param_dtype",
        )
    ),  # torch's ConvTranspose takes padding_mode (only 'zeros')
    "nnx": frozenset(
        (
            "in_features",
            "out_features",
            "kernel_size",
            "strides",
            "padding",
            "kernel_dilation",
            "feature_group_count",
            "output_padding",
            "num_heads",
            "qkv_features",
            "in_kv_features",
            "dropout_rate",
            "num_embeddings",
            "features",
            "dtype",
            "param_dtype",
            "kernel_init",
            "bias_init",
            "embedding_init",
            "alpha_init",
            "precision",
            "dot_general",
            "promote_dtype",
            "compute_mode",
            "distance_floor",
            "fused",
            "input_dilation",
            "conv_general_dilated",
            "transpose_kernel",
            "positive_init",  # nmn 0.3's nnx conv keyword, kept in nnx (a Yat keyword of YatNMN everywhere)
            "rngs",
            "decode",
            "deterministic",
            # Flax's MultiHeadAttention keywords (nmn 0.3's nnx attention): dropout broadcast, the out projection's
            # initialisers; attention_fn and the dot_general hooks only at the values the ONNX function computes
            "broadcast_dropout",
            "out_kernel_init",
            "out_bias_init",
            "attention_fn",
            "qkv_dot_general",
            "out_dot_general",
            "qkv_dot_general_cls",
            "out_dot_general_cls",
            # nmn 0.3.5's nnx RotaryYatAttention: embed_dim (the name of in_features) and its rotary performer's
            # sizes, accepted only at their defaults (there is no rotary performer: nmn.core.options)
            "embed_dim",
            "num_anchor_features",
            "num_prf_features",
            "num_quad_nodes",
            "performer_num_features",
            "performer_normalize",
            "kwargs",
        )
    ),
    "linen": frozenset(
        (
            "features",
            "kernel_size",
            "strides",
            "padding",
            "kernel_dilation",
            "feature_group_count",
            "output_padding",
            "num_heads",
            "qkv_features",
            "out_features",
            "dropout_rate",
            "deterministic",
            "decode",
            "num_embeddings",
            "dtype",
            "param_dtype",
            "kernel_init",
            "bias_init",
            "embedding_init",
            "alpha_init",
            "precision",
            "dot_general",
            "dot_general_cls",
            "promote_dtype",
            "return_weights",
            "normalize_qk",  # nmn 0.3's Linen MultiHeadAttention field, refused when True (REFUSED_KEYWORDS)
            "input_dilation",
            "parent",
            "name",
        )
    ),
    "keras": frozenset(
        (
            "units",
            "features",
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "data_format",
            "dilation_rate",
            "groups",
            "output_padding",
            "embed_dim",
            "num_heads",
            "dropout",
            "seed",
            "num_embeddings",
            "kernel_initializer",
            "bias_initializer",
            "embeddings_initializer",
            "embedding_initializer",
            "kernel_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "bias_constraint",
            "kwargs",
        )
    ),
    "tf": frozenset(
        (
            "features",
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "data_format",
            "dilation_rate",
            "groups",
            "output_padding",
            "embed_dim",
            "num_heads",
            "dropout",
            "seed",
            "num_embeddings",
            "dtype",
            "name",
            "kwargs",
        )
    ),
    "mlx": frozenset(
        (
            "features",
            "in_features",
            "filters",
            "kernel_size",
            "in_channels",
            "strides",
            "padding",
            "dilation_rate",
            "groups",
            "output_padding",
            "embed_dim",
            "num_heads",
            "dropout",
            "num_embeddings",
            "fused",
            "dtype",
            "kwargs",
        )
    ),
}


def public_names(framework: str) -> tuple[str, ...]:
    """The exact ``__all__`` of ``nmn.<framework>``: the shared names, then that host's extras.

    Args:
        framework: one of :data:`FRAMEWORKS`.

    >>> public_names("tf")[:2]
    ('YatNMN', 'YatConv1D')
    >>> public_names("jax")
    Traceback (most recent call last):
    ...
    ValueError: nmn.core.names: framework must be one of ('torch', 'nnx', 'linen', 'keras', 'tf', 'mlx'), got 'jax'
    """
    if framework not in HOST_EXTRAS:
        raise ValueError(f"nmn.core.names: framework must be one of {FRAMEWORKS}, got {framework!r}")
    return SHARED + HOST_EXTRAS[framework]


def bind_aliases(namespace: dict) -> None:
    """Bind every :data:`ALIASES` name in a framework namespace to the class it spells.

    Args:
        namespace: a module's ``globals()`` that already holds every canonical layer name.

    >>> ns = {canonical: object() for canonical in ALIASES.values()}
    >>> bind_aliases(ns)
    >>> ns["YatConv2d"] is ns["YatConv2D"]
    True
    """
    for alias, canonical in ALIASES.items():
        namespace[alias] = namespace[canonical]


_KERNEL_BANK = (
    "nmn 0.3's kernel banks shared weights between layers through a process-global registry, which neither a "
    "saved model nor an ONNX file can express; reuse one layer object where weights should be shared"
)

#: nmn 0.3 keywords no layer carries over: why, and what to use instead.
REFUSED_EVERYWHERE = {
    "kernel_bank": _KERNEL_BANK,
    "kernel_bank_id": _KERNEL_BANK,
    "kernel_bank_size": _KERNEL_BANK,
    "tie_kernel_bank": _KERNEL_BANK,
    "learnable_epsilon": "epsilon is a fixed attribute or input of the layer's nmn ONNX function, so a trained "
    "epsilon would not survive export; pass epsilon=<float> instead",
}

#: nmn 0.3 keywords deliberately not carried over, per layer (beyond :data:`REFUSED_EVERYWHERE`): why, and what
#: to use instead.
REFUSED_KEYWORDS = {
    "YatNMN": {
        "return_weights": "returning (y, kernel) breaks Sequential containers and export; read the layer's kernel "
        "parameter instead",
    },
    **{
        kind: {
            "normalize_qk": "use spherical=True (nmn 0.3's normalize_qk used the Euclidean formula with a 1e-6 norm "
            "floor, which differs near q = k, so it is not an alias)",
            "use_softermax": "use normalization='softermax'",
            "use_dropconnect": "nmn 0.3's attention stored this option but never applied it; use dropout= on the "
            "attention weights, or DropConnect on the dense layers around it",
            "dropconnect_rate": "nmn 0.3's attention stored this option but never applied it; use dropout= on the "
            "attention weights, or DropConnect on the dense layers around it",
        }
        for kind in ("MultiHeadYatAttention", "RotaryYatAttention")
    },
    "YatEmbed": {
        "learnable_epsilon": "the embedding's epsilon is a fixed input of its ONNX function nmn::YatEmbedAttend, so "
        "a trained epsilon would not survive export; pass epsilon=<float> instead",
    },
}


_FLAX_CONTRACTION = (
    "a custom contraction (e.g. a quantised dot_general) is not the contraction of the layer's nmn ONNX function, "
    "so the exported file would compute something else than the trained model; leave it at lax.dot_general "
    "(precision= sets the contraction's precision), and quantise the exported ONNX file instead"
)

#: nmn 0.3 keywords accepted only at the value that keeps the layer's ONNX function (the old default, or the
#: value meaning the same): why another value is refused, and what to use instead. Checked by
#: :func:`nmn.core.layer_options.refuse_value`.
REFUSED_VALUES = {
    "dot_general": _FLAX_CONTRACTION,
    "dot_general_cls": _FLAX_CONTRACTION,
    "compute_mode": "nmn computes the Yat product in float32 as its ONNX function does (nmn 0.3's 'fp32'); 'mixed' "
    "and 'bf16' round the distance differently, so the exported file would differ from the trained model; use "
    "dtype= for the result dtype (compute_mode='fp32' is accepted)",
    "qkv_dot_general": _FLAX_CONTRACTION,
    "out_dot_general": _FLAX_CONTRACTION,
    "qkv_dot_general_cls": _FLAX_CONTRACTION,
    "out_dot_general_cls": _FLAX_CONTRACTION,
    "attention_fn": "another attention function is not the attention of the layer's nmn ONNX function "
    "(nmn::YatMultiHeadAttention), so the exported file would compute something else than the trained model; leave "
    "it at nmn's yat_attention (None), choose the Yat attention with normalization= / spherical= / use_performer=, "
    "or call your function on the projected heads outside the layer",
    "distance_floor": "the layer's nmn ONNX function clamps the squared distance at 0 (relu) before adding "
    "epsilon, so another floor would not survive export; raise epsilon= instead (distance_floor=0.0 is accepted)",
}


def refuse_keywords(layer: str, kwargs: dict, *, allow_others: bool = False) -> None:
    """Raise ``TypeError`` for nmn 0.3 keywords that are deliberately refused, saying why and what to use instead.

    Args:
        layer: the layer's class name (a key of :data:`REFUSED_KEYWORDS`).
        kwargs: the extra keywords the constructor received.
        allow_others: leave keywords that are not refused to the caller (Keras passes them to its base layer).

    >>> refuse_keywords("YatEmbed", {"learnable_epsilon": True})
    Traceback (most recent call last):
    ...
    TypeError: YatEmbed: learnable_epsilon= (nmn 0.3) is not supported: the embedding's epsilon is a fixed input \
of its ONNX function nmn::YatEmbedAttend, so a trained epsilon would not survive export; pass epsilon=<float> instead
    >>> refuse_keywords("YatEmbed", {"colour": 1})
    Traceback (most recent call last):
    ...
    TypeError: YatEmbed: unexpected keyword argument(s) ['colour']
    """
    refused = {**REFUSED_EVERYWHERE, **REFUSED_KEYWORDS.get(layer, {})}
    for key in kwargs:
        if key in refused:
            raise TypeError(f"{layer}: {key}= (nmn 0.3) is not supported: {refused[key]}")
    if kwargs and not allow_others:
        raise TypeError(f"{layer}: unexpected keyword argument(s) {sorted(kwargs)}")


_GOAT = (
    "GOAT (nmn 0.3.5's projection-free / value-only Yat attention, MLX only) has no ONNX function in the nmn "
    "domain and no layer in the other five frameworks, so a GOAT model could neither be exported nor move between "
    "frameworks; use MultiHeadYatAttention (normalization='l1' gives l1-normalised Yat weights)"
)
_PERFORMER = (
    "nmn 0.3.5's functional spherical Yat performer (a random projection passed by hand) is not carried over as "
    "functions: the performer is an option of the layer, MultiHeadYatAttention(use_performer=True, "
    "num_features=...), whose projection is a parameter of the layer and of its exported ONNX file"
)

#: nmn 0.3 public names deliberately not carried over, per framework: why, and what to use instead. Each
#: ``nmn.<framework>`` module's ``__getattr__`` (:func:`module_getattr`) raises ``AttributeError`` with the reason.
#: (The MAY / RAY / tensor-product attentions are carried over: :data:`RANDOM_FEATURE_HELPERS`.)
REFUSED_NAMES = {
    "torch": {},
    "nnx": {
        "yat_performer_attention": _PERFORMER,
        "yat_performer_feature_map": _PERFORMER,
        "create_yat_projection": _PERFORMER,
        "rotary_yat_performer_attention": "RotaryYatAttention has no performer in nmn (its ONNX function "
        "nmn::RotaryYatAttention has none); use MultiHeadYatAttention(use_performer=True, num_features=...) with "
        "apply_rotary_emb on the queries and keys, or the exact rotary_yat_attention",
        "conv_dimension_numbers": "it was an internal helper of nmn 0.3.5's convolutions (channels-last input, "
        "(spatial..., in, out) kernel); use jax.lax.conv_dimension_numbers(lhs_shape, rhs_shape, "
        "('NHWC', 'HWIO', 'NHWC')) (or the 1-D / 3-D layout names)",
    },
    "linen": {},
    "keras": {},
    "tf": {},
    "mlx": {
        "GoatYatAttention": _GOAT,
        "goat_yat_attention": _GOAT,
        "goat_yat_attention_weights": _GOAT,
        "is_gpu_available": "it probed the GPU for nmn 0.3.5's hand-written Metal kernel, which nmn does not ship "
        "(fused_yat_score and YatNMN run MLX's own ops on any device); use mlx.core.metal.is_available()",
    },
}


def refused_name_error(framework: str, name: str) -> AttributeError:
    """The ``AttributeError`` for ``nmn.<framework>.<name>``: the reason from :data:`REFUSED_NAMES` when nmn 0.3
    had the name, else Python's plain "has no attribute".

    Args:
        framework: one of :data:`FRAMEWORKS`.
        name: the attribute asked for.

    >>> print(refused_name_error("mlx", "is_gpu_available"))  # doctest: +ELLIPSIS
    nmn.mlx.is_gpu_available (nmn 0.3) is not carried over: it probed the GPU ...
    >>> print(refused_name_error("torch", "colour"))
    module 'nmn.torch' has no attribute 'colour'
    """
    why = REFUSED_NAMES.get(framework, {}).get(name)
    if why is None:
        return AttributeError(f"module 'nmn.{framework}' has no attribute {name!r}")
    return AttributeError(f"nmn.{framework}.{name} (nmn 0.3) is not carried over: {why}")


def module_getattr(framework: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``nmn.<framework>`` that raises :func:`refused_name_error`.

    Args:
        framework: one of :data:`FRAMEWORKS`.

    >>> getattr_ = module_getattr("nnx")
    >>> getattr_("conv_dimension_numbers")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AttributeError: nmn.nnx.conv_dimension_numbers (nmn 0.3) is not carried over: it was an internal helper ...
    """
    if framework not in REFUSED_NAMES:
        raise ValueError(f"nmn.core.names: framework must be one of {FRAMEWORKS}, got {framework!r}")

    def __getattr__(name: str) -> Any:
        raise refused_name_error(framework, name)

    return __getattr__
