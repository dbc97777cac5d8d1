"""Flax-style convolution arguments -> nmn's normalised geometry (shared by ``nmn.nnx`` and ``nmn.linen``).

>>> conv_padding("CIRCULAR", "zeros", 1, (4,), (1,), "YatConv1D")
(((1, 2),), 'circular')
>>> conv_padding("SAME", "zeros", 2, (3, 3), (1, 1), "YatConv2D")
('same', 'zeros')
"""

from __future__ import annotations

from typing import Any

from nmn.core.conv import PADDING_MODES, as_tuple, normalize_padding
from nmn.core.options import check_positive_int


def kernel_tuple(kernel_size: Any, rank: int | None, layer: str) -> tuple[int, ...]:
    """``kernel_size`` as a tuple; an int means rank 1 for the rank-generic class (Flax's rule)."""
    if rank is None:
        rank = 1 if isinstance(kernel_size, int) else len(tuple(kernel_size))
        if rank not in (1, 2, 3):
            raise ValueError(f"{layer}: kernel_size must have 1, 2 or 3 entries, got {kernel_size!r}")
    return as_tuple(kernel_size, rank, "kernel_size", layer)


def conv_geometry(
    kernel_size: Any, strides: Any, kernel_dilation: Any, feature_group_count: Any, rank: int | None, layer: str
):
    """Validated ``(kernel_size, strides, kernel_dilation, groups)`` of a (transposed) conv layer; the rank is
    ``rank`` or, for the rank-generic class (``rank=None``), ``len(kernel_size)``."""
    ks = kernel_tuple(kernel_size, rank, layer)
    strides = as_tuple(strides, len(ks), "strides", layer)
    dil = as_tuple(kernel_dilation, len(ks), "kernel_dilation", layer)
    return ks, strides, dil, check_positive_int(feature_group_count, "feature_group_count", layer)


def conv_padding(padding: Any, padding_mode: str, rank: int, kernel_size, dilations, layer: str):
    """``(padding, padding_mode)`` in nmn's form from Flax's ``padding`` (SAME, VALID, CAUSAL, CIRCULAR, REFLECT,
    ints or ``(lo, hi)`` pairs) and nmn's ``padding_mode`` (zeros, reflect, replicate, circular).

    Flax's ``'CIRCULAR'`` and ``'REFLECT'`` pad ``floor((k_eff - 1) / 2)`` low and ``floor(k_eff / 2)`` high
    with that mode, whatever the stride; they become explicit pairs here.
    """
    mode = str(padding_mode).lower()
    if mode not in PADDING_MODES:
        raise ValueError(f"{layer}: padding_mode must be one of {list(PADDING_MODES)}, got {padding_mode!r}")
    if isinstance(padding, str) and padding.upper() in ("CIRCULAR", "REFLECT"):
        if mode != "zeros":
            raise ValueError(f"{layer}: padding={padding!r} already sets the mode; got padding_mode={padding_mode!r}")
        pairs = tuple(((k - 1) * d // 2, ((k - 1) * d + 1) // 2) for k, d in zip(kernel_size, dilations))
        return pairs, padding.lower()
    if isinstance(padding, str):
        padding = padding.lower()
    return normalize_padding(padding, rank, layer), mode


def input_dilation_tuple(input_dilation: Any, rank: int, padding: Any, layer: str) -> tuple[int, ...]:
    """Flax's ``input_dilation`` (``jax.lax.conv_general_dilated``'s ``lhs_dilation``) as ``rank`` ints >= 1.

    ``d - 1`` zeros go between neighbouring input samples (``n -> (n - 1) d + 1``) before the padding. Flax's
    ``lax.conv_general_dilated`` refuses string padding with an input dilation (which size would ``'SAME'`` keep?),
    so a dilation above 1 takes explicit padding (an int, ints or ``(lo, hi)`` pairs) or ``'VALID'`` (zero pads).

    >>> input_dilation_tuple(2, 1, [(1, 1)], "YatConv1D"), input_dilation_tuple(None, 2, "SAME", "YatConv2D")
    ((2,), (1, 1))
    >>> input_dilation_tuple(2, 1, "SAME", "YatConv1D")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: YatConv1D: input_dilation=(2,) needs explicit padding (an int, ints or (lo, hi) pairs) or 'VALID' ...
    """
    dil = (1,) * rank if input_dilation is None else as_tuple(input_dilation, rank, "input_dilation", layer)
    if any(d != 1 for d in dil) and isinstance(padding, str) and padding.upper() != "VALID":
        raise ValueError(
            f"{layer}: input_dilation={dil} needs explicit padding (an int, ints or (lo, hi) pairs) or 'VALID' "
            f"(Flax's convolution takes explicit pads only with an input dilation); got padding={padding!r}"
        )
    return dil


def dilate_input(x, input_dilation):
    """``x (N, *S, C)`` with ``d - 1`` zeros inserted between neighbouring samples of each spatial axis.

    >>> import jax.numpy as jnp
    >>> dilate_input(jnp.array([[[1.0], [2.0]]]), (3,))[0, :, 0].tolist()
    [1.0, 0.0, 0.0, 2.0]
    """
    if all(d == 1 for d in input_dilation):
        return x
    from jax import lax

    zero = lax.convert_element_type(0, x.dtype)
    return lax.pad(x, zero, [(0, 0, 0), *((0, 0, d - 1) for d in input_dilation), (0, 0, 0)])


_CONV_GENERAL_DILATED = (
    "the Yat convolution computes its dot map and its patch energy with jax.lax.conv_general_dilated, and its "
    "nmn ONNX function (nmn::YatConv / nmn::YatConvTranspose) defines both; a replacement convolution would "
    "compute a map no exported file reproduces"
)


def check_conv_general_dilated(value: Any, layer: str) -> None:
    """Flax's ``conv_general_dilated`` hook: only ``None`` or ``jax.lax.conv_general_dilated`` itself."""
    from jax import lax

    if value is not None and value is not lax.conv_general_dilated:
        raise ValueError(
            f"{layer}: conv_general_dilated={value!r} (nmn 0.3) is not supported (accepted: None, "
            f"lax.conv_general_dilated): {_CONV_GENERAL_DILATED}"
        )


def precision_name(precision: Any, layer: str) -> str | None:
    """Flax's ``precision`` (None, a ``jax.lax.Precision``, its name, or a pair of equal ones) as the name
    ``jax.default_matmul_precision`` takes (it sets the precision of ``lax.conv_general_dilated`` too).

    >>> from jax import lax
    >>> precision_name(lax.Precision.HIGHEST, "YatConv"), precision_name(None, "YatConv")
    ('highest', None)
    """
    if precision is None:
        return None
    if isinstance(precision, (tuple, list)):
        if len(precision) != 2 or precision[0] != precision[1]:
            raise ValueError(
                f"{layer}: precision must be None, a jax.lax.Precision or a pair of equal ones (the dot map and "
                f"the patch energy run at one precision), got {precision!r}"
            )
        precision = precision[0]
    from jax import lax

    try:
        return lax.Precision(precision).name.lower()
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"{layer}: precision must be None, a jax.lax.Precision or its name, got {precision!r}"
        ) from None


def precision_scope(name: str | None):
    """``jax.default_matmul_precision(name)``, or a no-op context for ``None``."""
    import contextlib

    import jax

    return contextlib.nullcontext() if name is None else jax.default_matmul_precision(name)


def transpose_padding(padding: Any, rank: int, layer: str):
    """Transposed-conv padding: ``'same'``, ``'valid'``, or ONNX cropping pairs (an int crops both sides)."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("same", "valid"):
            raise ValueError(f"{layer}: padding must be 'SAME', 'VALID', an int or (lo, hi) pairs, got {padding!r}")
        return p
    return normalize_padding(padding, rank, layer)


def padding_config(padding):
    """JSON form of a normalised padding for the neutral spec: a string or ``[[lo, hi], ...]``."""
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def padding_from_config(padding):
    """Inverse of :func:`padding_config`."""
    return padding if isinstance(padding, str) else tuple(tuple(int(v) for v in p) for p in padding)
