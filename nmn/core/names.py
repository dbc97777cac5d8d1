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

#: Names every framework exports.
SHARED = LAYERS + tuple(ALIASES) + SQUASHERS + SQUASHER_LAYERS + SPEC + MODULES

#: Names only one host exports, because they are that host's idiom.
HOST_EXTRAS = {
    "torch": ("performer_projection",),
    "nnx": ("YatConv", "YatConvTranspose", "MultiHeadAttention", "Embed", "FrozenParam", "Buffer", "yat_attention"),
    "linen": ("MultiHeadAttention", "yat_attention"),
    "keras": (),
    "tf": (),
    "mlx": (),
}

#: Functional ops every framework's ``functional`` module offers (same math, host arrays).
FUNCTIONAL = ("yat_dense", "yat_conv", "yat_conv_transpose", "yat_attention", "yat_embed_attend")

_TAIL = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")
#: nmn 0.3's DropConnect (training-only; identity at inference and in every exported file)
_DROPCONNECT = ("use_dropconnect", "drop_rate")
_CONV = (*_TAIL, *_DROPCONNECT, "weight_normalized", "padding_mode")
_CONVT = (*_TAIL, *_DROPCONNECT)
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
)

#: The Yat keywords each layer kind accepts by name, with the same meaning and default in every framework.
YAT_KEYWORDS = {
    "YatNMN": frozenset((*_TAIL, *_DROPCONNECT, "spherical", "weight_normalized", "lazy", "positive_init")),
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
            "rngs",
            "decode",
            "deterministic",
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
            "freeze_kernel",
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
