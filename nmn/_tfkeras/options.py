"""Yat, conv and embedding options shared by ``nmn.keras`` and ``nmn.tf`` layers.

Every helper works on the layer's attributes only; tensor work goes through the ops namespace ``F`` the caller
passes (``nmn.keras._ops.F`` or ``nmn.tf._ops.F``).

>>> class Layer:
...     name = "d"
>>> layer = Layer()
>>> set_yat_options(layer, use_bias=True, use_alpha=False, constant_alpha=2.0)
>>> layer.yat.alpha.value, layer.yat.bias.mode, layer_label(layer)
(2.0, 'learnable', "Layer 'd'")
"""

from __future__ import annotations

from nmn.core.conv import as_tuple, normalize_padding, output_padding_tuple
from nmn.core.options import check_positive_int
from nmn.core.spec import YatSpec

DATA_FORMATS = ("channels_last", "channels_first")


def layer_label(layer):
    """``YatNMN 'name'`` for error messages."""
    return f"{type(layer).__name__} {layer.name!r}"


# ------------------------------------------------------------------------------------------------ Yat options
def set_yat_options(layer, **keywords):
    """Build the layer's :class:`~nmn.core.spec.YatSpec` (``layer.yat``) and expose its switches as attributes."""
    spec = layer.yat = YatSpec.build(type(layer).__name__, **keywords)
    layer.epsilon, layer.learnable_epsilon = spec.epsilon, spec.learnable_epsilon
    layer.use_bias, layer.constant_bias = spec.use_bias, spec.constant_bias
    layer.use_alpha, layer.constant_alpha = spec.use_alpha, spec.constant_alpha
    layer.bias = None
    layer.alpha = None
    layer.epsilon_param = None


def yat_options_config(layer):
    """The Yat keyword arguments as plain config."""
    return layer.yat.config()


def fixed_alpha(layer):
    """The constant alpha of a layer without an alpha parameter: a float, or ``None`` for 1."""
    return layer.yat.terms()[1] if not layer.yat.has_alpha else None


def eps_value(F, layer):
    """The effective epsilon: ``softplus(epsilon_param)`` when learnable, else the constant."""
    if layer.epsilon_param is not None:
        return F.softplus(F.to_f32(layer.epsilon_param))
    return layer.epsilon


def alpha_value(F, layer):
    """The alpha multiplier (a float32 tensor, a float, or ``None`` for 1) of a Yat layer or an attention."""
    spec = getattr(layer, "yat", None) or layer.attn
    return spec.alpha_term(None if layer.alpha is None else F.to_f32(layer.alpha))


def bias_value(F, layer):
    """The numerator bias (a float32 tensor, a float, or ``None``)."""
    if layer.bias is not None:
        return F.to_f32(layer.bias)
    return layer.yat.constant_bias


# ------------------------------------------------------------------------------------------------------- conv
def set_conv_geometry(layer, filters, kernel_size, strides, padding, dilation_rate, groups):
    """Validate and store ``filters``, ``kernel_size``, ``strides``, ``dilation_rate``, ``groups`` and
    ``padding`` of an N-d (transposed) convolution of rank ``layer.rank``."""
    cls = type(layer).__name__
    layer.filters = check_positive_int(filters, "filters", cls)
    layer.kernel_size = as_tuple(kernel_size, layer.rank, "kernel_size", cls)
    layer.strides = as_tuple(strides, layer.rank, "strides", cls)
    layer.dilation_rate = as_tuple(dilation_rate, layer.rank, "dilation_rate", cls)
    layer.groups = check_positive_int(groups, "groups", cls)
    if layer.filters % layer.groups:
        raise ValueError(f"{cls}: filters={filters} must be divisible by groups={groups}")
    layer.padding = normalize_padding(padding, layer.rank, cls)


def output_padding_of(layer, output_padding):
    """``output_padding`` of a transposed convolution as ``rank`` ints (or None), checked against the strides and
    dilations; also refuses ``padding='causal'``, which is not defined for transposed convolutions."""
    cls = type(layer).__name__
    if layer.padding == "causal":
        raise ValueError(f"{cls}: padding='causal' is not defined for transposed convolutions")
    if output_padding is None:
        return None
    return output_padding_tuple(output_padding, layer.rank, cls, strides=layer.strides, dilations=layer.dilation_rate)


def padding_config(padding):
    """A normalised padding as plain JSON: the mode string or a list of ``[lo, hi]`` lists."""
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def channels_last_perm(rank):
    """The transpose from ``(N, C, *S)`` to ``(N, *S, C)``."""
    return (0, *range(2, rank + 2), 1)


def channels_first_perm(rank):
    """The transpose from ``(N, *S, C)`` to ``(N, C, *S)``."""
    return (0, rank + 1, *range(1, rank + 1))


def check_conv_input(layer, shape, channels):
    """Raise a ``ValueError`` naming the layer and both shapes on a wrong rank or channel count; return the
    input's channels (``channels=None``: any known count)."""
    shape = tuple(shape)
    axis = -1 if layer.data_format == "channels_last" else 1
    want = ("N", *("S",) * layer.rank, channels) if axis == -1 else ("N", channels, *("S",) * layer.rank)
    if len(shape) != layer.rank + 2 or (channels is not None and shape[axis] != channels) or shape[axis] is None:
        raise ValueError(
            f"{layer_label(layer)}: expected a rank-{layer.rank + 2} {layer.data_format} input "
            f"{want}, got shape {shape}"
        )
    return shape[axis]


# ------------------------------------------------------------------------------------------------------ embed
def set_embed_options(
    layer, *, num_embeddings, features, use_alpha, constant_alpha, epsilon, spherical, weight_normalized
):
    """Validate and store the ``YatEmbed`` keyword arguments."""
    cls = type(layer).__name__
    layer.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", cls)
    layer.features = check_positive_int(features, "features", cls)
    spec = layer.yat = YatSpec.build_embed(cls, use_alpha=use_alpha, constant_alpha=constant_alpha, epsilon=epsilon)
    layer.use_alpha, layer.constant_alpha, layer.epsilon = spec.use_alpha, spec.constant_alpha, spec.epsilon
    layer.spherical = bool(spherical)
    layer.weight_normalized = bool(weight_normalized)
