"""Functional Yat ops on TensorFlow: the ``nmn.tf`` modules are thin wrappers around these.

Every function computes in float32 (docs/design.md §0.3) and casts the result to the wider of the input's and the
weights' dtypes. Layouts: dense ``kernel (I, O)``, conv ``kernel (*k, C/groups, M)``, transposed conv
``kernel (*k, M/groups, C)``, data channels-last ``(N, *S, C)``; attention heads ``(B, L, H, D)``.

>>> import tensorflow as tf
>>> tuple(yat_dense(tf.ones((2, 3)), tf.ones((3, 4))).shape)
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from nmn.core import yat
from nmn.core.conv import patch_energy, transpose_as_conv_pads, yat_conv_tail
from nmn.core.options import DEFAULT_EPSILON
from nmn.tf._ops import F, TensorLike, conv, pad_axis, pad_for_conv, result_dtype, upsample_axis

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
    return v if v is None or isinstance(v, (int, float)) else tf.cast(v, tf.float32)


def yat_dense(
    x: TensorLike,
    kernel: TensorLike,
    bias: TensorLike | float | None = None,
    alpha: TensorLike | float | None = None,
    epsilon: TensorLike | float = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    weight_normalized: bool = False,
) -> tf.Tensor:
    """``alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + eps)`` for ``x (..., I)``, ``kernel (I, O)``."""
    x = tf.convert_to_tensor(x)
    out_dtype = result_dtype(x, kernel)
    y = yat.yat_dense(
        F,
        tf.cast(x, tf.float32),
        tf.cast(kernel, tf.float32),
        _f32(bias),
        _f32(alpha),
        _f32(epsilon),
        spherical=spherical,
        weight_normalized=weight_normalized,
    )
    return tf.cast(y, out_dtype)


def yat_conv(
    x: TensorLike,
    kernel: TensorLike,
    bias: TensorLike | float | None = None,
    alpha: TensorLike | float | None = None,
    epsilon: TensorLike | float = DEFAULT_EPSILON,
    *,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilations: Sequence[int],
    groups: int = 1,
    padding_mode: str = "zeros",
    weight_normalized: bool = False,
) -> tf.Tensor:
    """Yat convolution of channels-last ``x (N, *S, C)`` with ``kernel (*k, C/G, M)``; ``pads`` (lo, hi) per axis."""
    rank = len(kernel.shape) - 2
    out_dtype = result_dtype(x, kernel)
    x = tf.cast(x, tf.float32)
    w = tf.cast(kernel, tf.float32)
    k_axes = list(range(rank + 1))
    if weight_normalized:
        w = yat.unit(F, w, k_axes)
        ww = 1.0
    else:
        ww = tf.reduce_sum(w * w, axis=k_axes)
    x, same, pad_energy = pad_for_conv(x, pads, w.shape[:-2], strides, dilations, padding_mode)
    native = "SAME" if same else "VALID"
    m = w.shape[-1]
    dot = conv(x, w, strides, dilations, groups, native)
    ones = tf.ones((*w.shape[:-1], groups), tf.float32)
    energy = patch_energy(
        F,
        x,
        groups,
        w.shape[:-2],
        strides,
        dilations,
        lambda: conv(x * x, ones, strides, dilations, groups, native),
        pad_energy,
    )
    if groups > 1:
        energy = tf.repeat(energy, m // groups, axis=-1)
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _f32(epsilon))
    return tf.cast(y, out_dtype)


def yat_conv_transpose(
    x: TensorLike,
    kernel: TensorLike,
    bias: TensorLike | float | None = None,
    alpha: TensorLike | float | None = None,
    epsilon: TensorLike | float = DEFAULT_EPSILON,
    *,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
    dilations: Sequence[int],
    groups: int = 1,
) -> tf.Tensor:
    """Yat transposed convolution (ONNX ``ConvTranspose`` geometry) of channels-last ``x (N, *S, C)``.

    ``kernel (*k, M/G, C)`` (``tf.nn.conv_transpose`` layout); ``pads`` are ONNX crops ``(lo, hi)`` per axis and
    ``output_padding`` extra positions at the end.
    """
    rank = len(kernel.shape) - 2
    out_dtype = result_dtype(x, kernel)
    x = tf.cast(x, tf.float32)
    w = tf.cast(kernel, tf.float32)
    k = tuple(w.shape[:rank])
    mg, c = w.shape[-2], w.shape[-1]
    cg = c // groups
    w5 = tf.reshape(w, (*k, mg, groups, cg))
    ww = tf.reshape(tf.transpose(tf.reduce_sum(w5 * w5, axis=list(range(rank)) + [rank + 2])), (-1,))
    perm = list(range(rank)) + [rank + 2, rank + 1, rank]
    wc = tf.reshape(tf.transpose(w5, perm), (*k, cg, groups * mg))
    wc = tf.reverse(wc, axis=list(range(rank)))
    for i, (lo, hi) in enumerate(transpose_as_conv_pads(pads, k, dilations, output_padding)):
        x = upsample_axis(x, 1 + i, strides[i])
        x = pad_axis(x, 1 + i, lo, hi)
    ones1 = (1,) * rank
    dot = conv(x, wc, ones1, dilations, groups)
    ones = tf.ones((*k, cg, groups), tf.float32)
    energy = patch_energy(F, x, groups, k, ones1, dilations, lambda: conv(x * x, ones, ones1, dilations, groups))
    if groups > 1:
        energy = tf.repeat(energy, mg, axis=-1)
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _f32(epsilon))
    return tf.cast(y, out_dtype)


def yat_attention(
    q: TensorLike,
    k: TensorLike,
    v: TensorLike,
    mask: TensorLike | None = None,
    alpha: TensorLike | float | None = None,
    epsilon: TensorLike | float = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> tf.Tensor:
    """Yat attention of ``(B, L, H, D)`` heads; ``mask`` bool broadcastable to ``(B, H, Lq, Lk)``, True = attend."""
    if mask is not None:
        mask = tf.cast(mask, tf.bool)
    return yat.yat_attention(
        F,
        q,
        k,
        v,
        mask,
        _f32(alpha),
        _f32(epsilon),
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
        dropout=dropout,
    )


def rope(x: TensorLike, cos: TensorLike, sin: TensorLike, *, interleaved: bool = True) -> tf.Tensor:
    """Rotate ``x (B, L, H, D)`` by tables ``cos, sin (L, D/2)``."""
    return yat.rope(F, x, cos, sin, interleaved=interleaved)


def performer_features(
    x: TensorLike,
    proj: TensorLike,
    epsilon: TensorLike | float = DEFAULT_EPSILON,
    *,
    degree: int | None = None,
    bias: float = 0.0,
) -> tf.Tensor:
    """Spherical Yat random features of ``x (B, L, H, D)`` with ``proj (m, D)`` -> ``(B, L, H, 1 + D + m)``.

    ``E[phi(q) . phi(k)]`` is the degree-K Maclaurin truncation of ``(t + b)^2 / (2 + epsilon - 2t)``
    (``t = q_hat . k_hat``, ``K = degree``, default :func:`nmn.core.yat.performer_degree` of ``m`` and ``D``;
    ``b = bias``), the bias-aware spherical Yat score (:func:`nmn.core.yat.performer_features`).
    """
    return yat.performer_features(F, x, proj, _f32(epsilon), degree=degree, bias=bias)


def linear_readout(qf: TensorLike, kf: TensorLike, v: TensorLike, *, causal: bool = False) -> tf.Tensor:
    """Linear-time readout ``qf (kf^T v) / (qf . sum kf)`` of performer features."""
    return yat.linear_readout(F, qf, kf, v, causal=causal)
