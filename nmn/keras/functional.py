"""Functional Yat ops on ``keras.ops`` (any Keras backend): the layers are thin wrappers around these.

Every function computes in float32 (docs/design.md §0.3) and casts the result to the promoted dtype of the input
and the weights. Host layouts: dense ``kernel (I, O)``, conv ``kernel (*k, C/groups, M)``, transposed conv
``kernel (*k, M/groups, C)``, data channels-last ``(N, *S, C)``; attention heads ``(B, L, H, D)``.

>>> import numpy as np
>>> y = yat_dense(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"))
>>> tuple(y.shape)
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keras import ops

from nmn.core import yat
from nmn.core.conv import patch_energy, transpose_as_conv_pads, yat_conv_tail
from nmn.core.options import DEFAULT_EPSILON
from nmn.keras._ops import F, Tensor, compute_dtype, pad_axis, pad_for_conv, upsample_axis

__all__ = [
    "yat_dense",
    "yat_conv",
    "yat_conv_transpose",
    "yat_attention",
    "rope",
    "performer_features",
    "linear_readout",
]


def _f32(v):
    """``None`` and Python numbers pass through; tensors become float32."""
    return v if v is None or isinstance(v, (int, float)) else ops.cast(v, "float32")


def _eps(epsilon):
    return epsilon if isinstance(epsilon, (int, float)) else ops.cast(epsilon, "float32")


def yat_dense(
    x: Tensor,
    kernel: Tensor,
    bias: Tensor | float | None = None,
    alpha: Tensor | float | None = None,
    epsilon: Tensor | float = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    weight_normalized: bool = False,
) -> Tensor:
    """``alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + eps)`` for ``x (..., I)``, ``kernel (I, O)``."""
    out_dtype = compute_dtype(x, kernel)
    y = yat.yat_dense(
        F,
        ops.cast(x, "float32"),
        ops.cast(kernel, "float32"),
        _f32(bias),
        _f32(alpha),
        _eps(epsilon),
        spherical=spherical,
        weight_normalized=weight_normalized,
    )
    return ops.cast(y, out_dtype)


def yat_conv(
    x: Tensor,
    kernel: Tensor,
    bias: Tensor | float | None = None,
    alpha: Tensor | float | None = None,
    epsilon: Tensor | float = DEFAULT_EPSILON,
    *,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]] | str,
    dilation_rate: Sequence[int],
    padding_mode: str = "zeros",
    weight_normalized: bool = False,
) -> Tensor:
    """Yat convolution of channels-last ``x (N, *S, C)`` with ``kernel (*k, C/G, M)``; ``pads`` (lo, hi) per axis.

    ``pads`` may also be the string ``'same'`` (native SAME_UPPER zero padding, used when the spatial size is
    only known at run time).
    """
    rank = len(kernel.shape) - 2
    out_dtype = compute_dtype(x, kernel)
    x = ops.cast(x, "float32")
    w = ops.cast(kernel, "float32")
    k_axes = tuple(range(rank + 1))
    if weight_normalized:
        w = yat.unit(F, w, k_axes)
        ww = 1.0
    else:
        ww = ops.sum(w * w, axis=k_axes)
    native, pad_energy = "same", None
    if pads != "same":
        x, same, pad_energy = pad_for_conv(x, pads, w.shape[:-2], strides, dilation_rate, padding_mode)
        native = "same" if same else "valid"
    cin_g, m = w.shape[-2], w.shape[-1]
    groups = x.shape[-1] // cin_g
    dot = ops.conv(x, w, strides=strides, padding=native, dilation_rate=dilation_rate)
    ones = ops.ones((*w.shape[:-1], groups), "float32")

    def energy_conv():  # a conv of x * x with ones: for spatial sizes known only at run time
        return ops.conv(x * x, ones, strides=strides, padding=native, dilation_rate=dilation_rate)

    if pads == "same":
        energy = energy_conv()
    else:
        energy = patch_energy(F, x, groups, w.shape[:-2], strides, dilation_rate, energy_conv, pad_energy)
    if groups > 1:
        energy = ops.repeat(energy, m // groups, axis=-1)
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _eps(epsilon))
    return ops.cast(y, out_dtype)


def yat_conv_transpose(
    x: Tensor,
    kernel: Tensor,
    bias: Tensor | float | None = None,
    alpha: Tensor | float | None = None,
    epsilon: Tensor | float = DEFAULT_EPSILON,
    *,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
    dilation_rate: Sequence[int],
    groups: int = 1,
) -> Tensor:
    """Yat transposed convolution (ONNX ``ConvTranspose`` geometry) of channels-last ``x (N, *S, C)``.

    ``kernel (*k, M/G, C)`` (Keras layout); ``pads`` are ONNX crops ``(lo, hi)`` per axis and ``output_padding``
    extra positions at the end. Computed as a stride-1 convolution of the zero-upsampled input with the
    spatially flipped kernel, so the same code serves every backend, groups and dilations included.
    """
    rank = len(kernel.shape) - 2
    out_dtype = compute_dtype(x, kernel)
    x = ops.cast(x, "float32")
    w = ops.cast(kernel, "float32")
    k = tuple(w.shape[:rank])
    mg, c = w.shape[-2], w.shape[-1]
    cg = c // groups
    w5 = ops.reshape(w, (*k, mg, groups, cg))
    ww = ops.reshape(ops.transpose(ops.sum(w5 * w5, axis=tuple(range(rank)) + (rank + 2,))), (-1,))
    perm = tuple(range(rank)) + (rank + 2, rank + 1, rank)
    wc = ops.reshape(ops.transpose(w5, perm), (*k, cg, groups * mg))
    wc = ops.flip(wc, axis=tuple(range(rank)))
    for i, (lo, hi) in enumerate(transpose_as_conv_pads(pads, k, dilation_rate, output_padding)):
        x = upsample_axis(x, 1 + i, strides[i])
        x = pad_axis(x, 1 + i, lo, hi)
    dot = ops.conv(x, wc, strides=1, padding="valid", dilation_rate=dilation_rate)
    ones = ops.ones((*k, cg, groups), "float32")
    energy = patch_energy(
        F,
        x,
        groups,
        k,
        (1,) * rank,
        dilation_rate,
        lambda: ops.conv(x * x, ones, strides=1, padding="valid", dilation_rate=dilation_rate),
    )
    if groups > 1:
        energy = ops.repeat(energy, mg, axis=-1)
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _eps(epsilon))
    return ops.cast(y, out_dtype)


def yat_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    alpha: Tensor | float | None = None,
    epsilon: Tensor | float = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Yat attention of ``(B, L, H, D)`` heads; ``mask`` bool broadcastable to ``(B, H, Lq, Lk)``, True = attend."""
    if mask is not None:
        mask = ops.cast(mask, "bool")
    return yat.yat_attention(
        F,
        q,
        k,
        v,
        mask,
        _f32(alpha),
        _eps(epsilon),
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
        dropout=dropout,
    )


def rope(x: Tensor, cos: Tensor, sin: Tensor, *, interleaved: bool = True) -> Tensor:
    """Rotate ``x (B, L, H, D)`` by tables ``cos, sin (L, D/2)``."""
    return yat.rope(F, x, cos, sin, interleaved=interleaved)


def performer_features(
    x: Tensor, proj: Tensor, epsilon: Tensor | float = DEFAULT_EPSILON, *, degree: int | None = None, bias: float = 0.0
) -> Tensor:
    """Spherical Yat random features of ``x (B, L, H, D)`` with ``proj (m, D)`` -> ``(B, L, H, 1 + D + m)``.

    ``E[phi(q) . phi(k)]`` is the degree-K Maclaurin truncation of ``(t + b)^2 / (2 + epsilon - 2t)``
    (``t = q_hat . k_hat``, ``K = degree``, default :func:`nmn.core.yat.performer_degree` of ``m`` and ``D``;
    ``b = bias``), the bias-aware spherical Yat score (:func:`nmn.core.yat.performer_features`).
    """
    return yat.performer_features(F, x, proj, _eps(epsilon), degree=degree, bias=bias)


def linear_readout(qf: Tensor, kf: Tensor, v: Tensor, *, causal: bool = False) -> Tensor:
    """Linear-time readout ``qf (kf^T v) / (qf . sum kf)`` of performer features."""
    return yat.linear_readout(F, qf, kf, v, causal=causal)
