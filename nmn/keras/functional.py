"""Functional Yat ops on ``keras.ops`` (any Keras backend): the layers are thin wrappers around these.

Every function computes in float32 (docs/design.md §0.3) and casts the result to the promoted dtype of the input
and the weights. On Keras' torch backend the plain dense product, the conv tails and attention run the torch
kernels of ``nmn.torch`` (:mod:`nmn._torch`, imported there only), which pass the same conformance cases. Host
layouts: dense ``kernel (I, O)``, conv ``kernel (*k, C/groups, M)``, transposed conv
``kernel (*k, M/groups, C)``, data channels-last ``(N, *S, C)``; attention heads ``(B, L, H, D)``.

>>> import numpy as np
>>> y = yat_dense(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"))
>>> tuple(y.shape)
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
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


def _torch_kernels(x) -> bool:
    """True when the torch kernels of :mod:`nmn._torch` (the ones ``nmn.torch`` runs) can take this call: Keras on
    the torch backend, and ``x`` a real tensor (not the ``meta`` placeholder Keras builds symbolic shapes with).

    The portable ``keras.ops`` formula runs eagerly on that backend, one kernel per op; the fused dense product
    and the tiled attention do the same math in fewer passes with analytic backward passes, and pass the same
    conformance cases (docs/design.md §A3). Keras MultiHeadYatAttention B8 L512 E256 on the CPU: 8.4x Keras'
    ``MultiHeadAttention`` forward with the formula (README, Speed).
    """
    if keras.backend.backend() != "torch":
        return False
    device = getattr(x, "device", None)
    return getattr(device, "type", "cpu") != "meta"


def _channel_energy(x, groups):
    """The ``(N, *S, groups)`` channel energy of channels-last ``x`` on the torch backend: torch's
    :func:`nmn._torch._fused.group_energy`, whose backward ``2 x g`` is one pass (passed to
    :func:`nmn.core.conv.patch_energy` there; elsewhere its portable ``channels_last_energy`` runs)."""
    from nmn._torch import _fused

    return _fused.group_energy(x, groups, axis=-1)


def _conv_tail(dot, energy, ww, bias, alpha, epsilon, groups):
    """The Yat tail of a (transposed) conv of channels-last ``dot (N, *S, M)`` with the patch energy ``energy
    (N, *S, groups)`` and the kernel energy ``ww`` (``(M,)``, or ``1.0`` for unit kernels).

    On the torch backend it is :func:`nmn._torch._fused.yat_dist_tail` (the conv tail of ``nmn.torch``: one
    ``max(energy + (|w|^2 + 2 b + eps) - 2 (dot + b), eps)``, an analytic backward, the group's energy broadcast
    rather than repeated); elsewhere :func:`nmn.core.conv.yat_conv_tail`.
    """
    m = dot.shape[-1]
    bias, alpha, eps = _f32(bias), _f32(alpha), _eps(epsilon)
    if not _torch_kernels(dot):
        if groups > 1:
            energy = ops.repeat(energy, m // groups, axis=-1)
        return yat_conv_tail(F, dot, energy, ww, bias, alpha, eps)
    from nmn._torch import _fused

    shape = tuple(dot.shape)
    num = dot if bias is None else dot + bias
    const = ops.convert_to_tensor(ww + (0.0 if bias is None else 2.0 * bias) + eps, "float32")
    if groups > 1:  # (N, *S, G, M/G) against the energy (N, *S, G, 1)
        num = num.reshape(*shape[:-1], groups, m // groups)
        energy = energy.unsqueeze(-1)
        const = const.reshape(groups, m // groups) if const.numel() == m else const
    # num is this function's own tensor (dot + b, or the conv's output): without autograd y is written over it
    return _fused.yat_dist_tail(num, energy, const, alpha, eps, consume=True).reshape(shape)


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
    """``alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + eps)`` for ``x (..., I)``, ``kernel (I, O)``.

    On the torch backend the plain product (neither ``spherical`` nor ``weight_normalized``) runs the fused
    kernel of ``nmn.torch`` (:func:`nmn._torch._fused.yat_dense`) on the kernel's own ``(I, O)`` memory.
    """
    out_dtype = compute_dtype(x, kernel)
    if not (spherical or weight_normalized) and _torch_kernels(x):
        from nmn._torch import _fused

        x32, k32 = ops.cast(x, "float32"), ops.cast(kernel, "float32")
        flat = x32.reshape(-1, x32.shape[-1])
        y = _fused.yat_dense(flat, k32.t(), _f32(bias), _f32(alpha), _eps(epsilon))
        return ops.cast(y.reshape(*x32.shape[:-1], k32.shape[-1]), out_dtype)
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
    cin_g = w.shape[-2]
    groups = x.shape[-1] // cin_g
    dot = ops.conv(x, w, strides=strides, padding=native, dilation_rate=dilation_rate)
    ones = ops.ones((*w.shape[:-1], groups), "float32")

    def energy_conv():  # a conv of x * x with ones: for spatial sizes known only at run time
        return ops.conv(x * x, ones, strides=strides, padding=native, dilation_rate=dilation_rate)

    if pads == "same":
        energy = energy_conv()
    else:
        energy = patch_energy(
            F, x, groups, w.shape[:-2], strides, dilation_rate, energy_conv, pad_energy,
            _channel_energy if _torch_kernels(x) else None,
        )  # fmt: skip
    y = _conv_tail(dot, energy, ww, bias, alpha, epsilon, groups)
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
        channel_energy=_channel_energy if _torch_kernels(x) else None,
    )
    y = _conv_tail(dot, energy, ww, bias, alpha, epsilon, groups)
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
    """Yat attention of ``(B, L, H, D)`` heads; ``mask`` bool broadcastable to ``(B, H, Lq, Lk)``, True = attend.

    On the torch backend, without dropout, the path of ``nmn.torch`` is chosen
    (:func:`nmn._torch._chunked.fast_attention`: query x key tiles with O(L) memory from ``H * Lq * Lk >= 2**17``
    scores per batch element, the fused Triton kernel on CUDA). Keras' dropout draws from its own seed generator,
    which a tile recomputed in the backward pass could not replay, so dropout keeps the formula.
    """
    if mask is not None:
        mask = ops.cast(mask, "bool")
    if dropout is None and _torch_kernels(q):
        from nmn._torch import _chunked

        q, k, v = (ops.convert_to_tensor(t) for t in (q, k, v))
        fast = _chunked.fast_attention(
            q, k, v, mask, _f32(alpha), epsilon, spherical=spherical, normalization=normalization, power=power,
            causal=causal, label="MultiHeadYatAttention",
        )  # fmt: skip
        if fast is not None:
            return fast
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
