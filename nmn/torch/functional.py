"""Functional Yat ops for PyTorch: the layers' math as plain functions of tensors.

Every function is a short call into :mod:`nmn.core.yat` (the shared math) around the native contraction
(``matmul``, ``conv``, ``conv_transpose``). Layouts are torch's, which are the canonical ONNX ones: dense
``weight (O, I)``, conv ``weight (M, C/groups, *k)`` on ``(N, C, *S)`` data, transposed conv
``weight (C, M/groups, *k)``, attention heads ``(B, L, H, D)``.

The Yat product: ``y = alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + epsilon)``.
``bias``/``alpha`` may be ``None`` (absent), a Python number (constant) or a tensor; ``epsilon`` a number or a
tensor (the effective epsilon, e.g. ``softplus`` of a learnable raw parameter). float16/bfloat16 inputs are
computed in float32 and the result is cast back to the promoted dtype of the inputs and parameters.

>>> import torch
>>> x, w = torch.ones(2, 3), torch.ones(4, 3)
>>> yat_dense(x, w, epsilon=1.0).shape
torch.Size([2, 4])
>>> float(yat_dense(x, w, epsilon=1.0)[0, 0])   # (3)^2 / (0 + 1)
9.0
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as _nnf

from nmn._torch import _chunked, _fused
from nmn.core import yat as _yat
from nmn.core.conv import PADDING_MODES, as_tuple, conv_pads, normalize_padding, transpose_geometry
from nmn.core.options import DEFAULT_EPSILON, NORMALIZATIONS, SOFTERMAX_EPSILON, check_choice, squash_power
from nmn.torch._ops import compute_dtype, ops_for

__all__ = [
    "yat_tail",
    "yat_dense",
    "yat_conv",
    "yat_conv_transpose",
    "yat_attention",
    "yat_embed_attend",
    "rope",
    "rope_tables",
    "performer_features",
    "linear_attention",
    "softermax",
    "softer_sigmoid",
    "soft_tanh",
]

_TORCH_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
_CONVS = {1: _nnf.conv1d, 2: _nnf.conv2d, 3: _nnf.conv3d}
_CONVS_T = {1: _nnf.conv_transpose1d, 2: _nnf.conv_transpose2d, 3: _nnf.conv_transpose3d}


def _as(value, dtype):
    """A tensor term cast to ``dtype``; numbers and ``None`` pass through."""
    return value.to(dtype) if isinstance(value, torch.Tensor) and value.dtype != dtype else value


def _channel(value, rank):
    """A per-channel ``(M,)`` tensor reshaped to broadcast over ``(N, M, *S)``; numbers pass through."""
    if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() > 1:
        return value.reshape(1, -1, *([1] * rank))
    return value


def _flat_unit(F, w):
    """Each filter (first axis) divided by its norm + 1e-8 (weight normalisation of a conv kernel)."""
    return _yat.unit(F, w.reshape(w.shape[0], -1), -1).reshape(w.shape)


def yat_tail(
    dot: torch.Tensor, dist: torch.Tensor, bias: Any = None, alpha: Any = None, eps: Any = DEFAULT_EPSILON
) -> torch.Tensor:
    """The Yat tail ``alpha (dot + bias)^2 / (relu(dist) + eps)`` (``nmn.core.yat.yat_tail``).

    When autograd records, a fused version with an analytic backward runs (``nmn._torch._fused``).

    >>> float(yat_tail(torch.tensor([2.0]), torch.tensor([1.0]), 1.0, 2.0, 1.0))
    9.0
    """
    return _fused.yat_tail(dot, dist, bias, alpha, eps)


def yat_dense(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Any = None,
    alpha: Any = None,
    epsilon: Any = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    weight_normalized: bool = False,
) -> torch.Tensor:
    """Yat dense product ``alpha * (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + epsilon)``.

    Args:
        x: input ``(..., I)``.
        weight: ``(O, I)``, one row per output unit.
        bias: ``(O,)`` tensor, a number (constant bias) or ``None`` (default, no bias).
        alpha: ``(1,)`` tensor, a number or ``None`` (default, alpha = 1).
        epsilon: number or tensor, default 1e-5.
        spherical: unit-normalise ``x`` and the rows of ``weight``, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-normalise the rows of ``weight`` (default False).

    Shape: ``(..., I) -> (..., O)``.

    >>> yat_dense(torch.zeros(2, 3), torch.ones(4, 3), bias=1.0).shape
    torch.Size([2, 4])
    """
    compute, result = compute_dtype(x, weight, bias, alpha)
    x, weight = x.to(compute), weight.to(compute)
    bias, alpha, epsilon = _as(bias, compute), _as(alpha, compute), _as(epsilon, compute)
    if not (spherical or weight_normalized):  # the fused path: fewer passes, analytic backward
        y = _fused.yat_dense(x.reshape(-1, x.shape[-1]), weight, bias, alpha, epsilon)
        return y.reshape(*x.shape[:-1], weight.shape[0]).to(result)
    y = _yat.yat_dense(
        ops_for(x), x, weight.t(), bias, alpha, epsilon, spherical=spherical, weight_normalized=weight_normalized
    )
    return y.to(result)


def _pad_pairs(x, pairs, mode):
    """Pad the spatial axes of ``x (N, C, *S)`` by ``(lo, hi)`` pairs (negative values crop)."""
    flat = []
    for lo, hi in reversed(pairs):
        flat += [lo, hi]
    if not any(flat):
        return x
    return _nnf.pad(x, flat, mode=_TORCH_PAD[mode])


def yat_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Any = None,
    alpha: Any = None,
    epsilon: Any = DEFAULT_EPSILON,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    weight_normalized: bool = False,
) -> torch.Tensor:
    """Yat convolution: the Yat product of every (padded) patch of ``x`` with each filter of ``weight``.

    ``y[n, m, p] = alpha * (<P, W_m> + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 <P, W_m>) + epsilon)``, with
    ``|P|^2`` the patch energy (a convolution of ``x * x`` with ones) and ``P`` restricted to ``m``'s group.

    Args:
        x: ``(N, C, *S)``; the rank is ``weight.dim() - 2``.
        weight: ``(M, C/groups, *k)``.
        bias, alpha, epsilon: as :func:`yat_dense` (bias ``(M,)``).
        stride, dilation: int or one per spatial axis (default 1).
        padding: ``'valid'``, ``'same'`` (ONNX SAME_UPPER), ``'causal'`` (1-D), an int, ints or ``(lo, hi)``
            pairs (default 0).
        groups: grouped convolution (default 1).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.
        weight_normalized: unit-normalise each filter, ``|W_m|^2 := 1`` (default False).

    Shape: ``(N, C, *S) -> (N, M, *S_out)``.

    >>> yat_conv(torch.ones(1, 2, 5, 5), torch.ones(3, 2, 3, 3), padding="same").shape
    torch.Size([1, 3, 5, 5])
    """
    rank = weight.dim() - 2
    name = "yat_conv"
    kernel = tuple(weight.shape[2:])
    strides = as_tuple(stride, rank, "stride", name)
    dilations = as_tuple(dilation, rank, "dilation", name)
    check_choice(padding_mode, tuple(PADDING_MODES), "padding_mode", name)
    pairs = conv_pads(normalize_padding(padding, rank, name), tuple(x.shape[2:]), kernel, strides, dilations)
    compute, result = compute_dtype(x, weight, bias, alpha)
    F = ops_for(x)
    x, weight = x.to(compute), weight.to(compute)
    if weight_normalized:
        weight = _flat_unit(F, weight)
    if padding_mode == "zeros" and all(lo == hi for lo, hi in pairs):
        native = [lo for lo, _ in pairs]
    else:
        x, native = _pad_pairs(x, pairs, padding_mode), 0
    # the conv adds the bias itself (num = dot + b); dist + eps = |P|^2 + (|W|^2 + 2b + eps) - 2 num (_fused)
    m = weight.shape[0]
    bias, alpha, epsilon = _as(bias, compute), _as(alpha, compute), _as(epsilon, compute)
    if bias is not None and not isinstance(bias, torch.Tensor):
        bias = torch.full((m,), float(bias), dtype=compute, device=x.device)
    elif bias is not None:
        bias = bias.reshape(-1).expand(m)
    num = _CONVS[rank](x, weight, bias, strides, native, dilations, groups)
    energy = _window_sum(_group_energy(x, groups), kernel, strides, native, dilations)
    const = (
        torch.ones(m, dtype=compute, device=x.device) if weight_normalized else _fused.sqnorm(weight.reshape(m, -1), 1)
    ) + epsilon
    if bias is not None:
        const = const + 2.0 * bias
    grouped = (num.shape[0], groups, m // groups, *num.shape[2:])
    y = _fused.yat_dist_tail(
        num.reshape(grouped),
        energy.unsqueeze(2),
        const.reshape(1, groups, -1, *[1] * rank),
        alpha,
        epsilon,
        consume=True,  # num is this call's conv output
    )
    y = y.reshape(num.shape)
    return y.to(result)


_POOLS = {1: _nnf.avg_pool2d, 2: _nnf.avg_pool2d, 3: _nnf.avg_pool3d}


def _window_sum(xs, kernel, strides, native, dilations):
    """Sum of ``xs (N, G, *S)`` over every conv window (the patch energy), per channel.

    A sum-pool (``avg_pool`` with ``divisor_override=1``) where it applies, else a convolution with ones.
    """
    rank = len(kernel)
    pads = [native] * rank if isinstance(native, int) else list(native)
    if all(d == 1 for d in dilations) and all(2 * p <= k for p, k in zip(pads, kernel)):
        if rank == 1:  # avg_pool1d has no divisor_override: pool a (N, G, 1, L) view instead
            out = _nnf.avg_pool2d(xs.unsqueeze(2), (1, kernel[0]), (1, strides[0]), (0, pads[0]), divisor_override=1)
            return out.squeeze(2)
        return _POOLS[rank](xs, kernel, strides, pads, divisor_override=1)
    groups = xs.shape[1]
    ones = torch.ones((groups, 1, *kernel), dtype=xs.dtype, device=xs.device)
    return _CONVS[rank](xs, ones, None, strides, native, dilations, groups)


def _group_energy(x, groups):
    """``sum of x^2`` over each group's input channels: ``(N, groups, *S)`` (the patch energy's channel sum)."""
    return _fused.group_energy(x, groups)


def yat_conv_transpose(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Any = None,
    alpha: Any = None,
    epsilon: Any = DEFAULT_EPSILON,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> torch.Tensor:
    """Yat transposed convolution (ONNX/torch ``ConvTranspose`` geometry).

    ``dot = conv_transpose(x, W)``, ``E = conv_transpose(x * x, ones)``, ``K_m = |W_m|^2`` over all taps, then
    ``y = alpha * (dot + b)^2 / (relu(E + K - 2 dot) + epsilon)``.

    Args:
        x: ``(N, C, *S)``.
        weight: ``(C, M/groups, *k)``.
        bias, alpha, epsilon: as :func:`yat_dense` (bias ``(M,)``).
        stride, dilation: int or one per axis (default 1).
        padding: int, ints or ``(lo, hi)`` pairs cropped from the output (torch/ONNX meaning), ``'valid'``
            (``out = (in - 1) * stride + k_eff``) or ``'same'`` (``out = in * stride``); default 0.
        output_padding: extra size on the high side of each axis (default 0).
        groups: grouped transposed convolution (default 1).

    Shape: ``(N, C, *S) -> (N, M, *S_out)``, ``S_out = (S - 1) s - lo - hi + d (k - 1) + 1 + output_padding``.

    >>> yat_conv_transpose(torch.ones(1, 2, 3), torch.ones(2, 4, 3), stride=2).shape
    torch.Size([1, 4, 7])
    """
    rank = weight.dim() - 2
    name = "yat_conv_transpose"
    kernel = tuple(weight.shape[2:])
    strides = as_tuple(stride, rank, "stride", name)
    dilations = as_tuple(dilation, rank, "dilation", name)
    if isinstance(output_padding, int):
        output_padding = (output_padding,) * rank
    pad = normalize_padding(padding, rank, name)
    pairs, outpad = transpose_geometry(pad, kernel, strides, dilations, output_padding)
    compute, result = compute_dtype(x, weight, bias, alpha)
    x, weight = x.to(compute), weight.to(compute)
    conv_t = _CONVS_T[rank]
    c_in, m_per = weight.shape[0], weight.shape[1]
    ones = torch.ones((groups, 1, *kernel), dtype=compute, device=x.device)
    xx = _group_energy(x, groups)
    if all(lo == hi for lo, hi in pairs) and all(o < max(s, d) for o, s, d in zip(outpad, strides, dilations)):
        native = [lo for lo, _ in pairs]
        dot = conv_t(x, weight, None, strides, native, list(outpad), groups, dilations)
        energy = conv_t(xx, ones, None, strides, native, list(outpad), groups, dilations)
    else:  # asymmetric crop or large output padding: full map, then crop (lo, hi) and zero-extend by outpad
        crop = [(-lo, o - hi) for (lo, hi), o in zip(pairs, outpad)]
        dot = _pad_pairs(conv_t(x, weight, None, strides, 0, 0, groups, dilations), crop, "zeros")
        energy = _pad_pairs(conv_t(xx, ones, None, strides, 0, 0, groups, dilations), crop, "zeros")
    if groups > 1:
        energy = energy.repeat_interleave(m_per, dim=1)
    ww = weight.square().reshape(groups, c_in // groups, m_per, -1).sum((1, 3)).reshape(-1)
    dist = torch.add(energy, dot, alpha=-2.0).add_(ww.reshape(1, -1, *([1] * rank)))
    y = yat_tail(dot, dist, _channel(_as(bias, compute), rank), _as(alpha, compute), _as(epsilon, compute))
    return y.to(result)


def yat_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    alpha: Any = None,
    epsilon: float = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Yat attention of ``(B, L, H, D)`` heads.

    ``score = alpha (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + epsilon) sqrt(D))``, masked (bool, True = attend),
    normalised over the keys (``'softmax'``, ``'l1'`` or ``'softermax'`` with ``power``), then ``A . V``.
    Scores are computed in float32 (or wider).

    Args:
        q: ``(B, Lq, H, D)``; k: ``(B, Lk, H, D)``; v: ``(B, Lk, H, Dv)``.
        mask: bool, broadcastable to ``(B, H, Lq, Lk)``, or ``None`` (default).
        alpha, epsilon: score scale (default none) and epsilon (default 1e-5).
        spherical: ``q / sqrt(|q|^2 + eps)`` and likewise ``k``, distance ``2 - 2 s`` (default False).
        normalization: ``'softmax'`` (default), ``'l1'`` or ``'softermax'``; power: softermax exponent (1.0).
        causal: AND the mask with a lower-triangular one (default False).
        dropout_p, training: dropout on the attention weights when ``training`` (default 0.0, False).

    Shape: ``-> (B, Lq, H, Dv)``.

    >>> q = torch.ones(1, 3, 2, 4)
    >>> yat_attention(q, q, q, causal=True).shape
    torch.Size([1, 3, 2, 4])
    """
    check_choice(normalization, NORMALIZATIONS, "normalization", "yat_attention")
    dropout = None
    if dropout_p > 0.0 and training:

        def dropout(w):
            return _nnf.dropout(w, dropout_p, True)

    if alpha is not None and isinstance(alpha, torch.Tensor):
        alpha = alpha.float() if alpha.dtype in (torch.float16, torch.bfloat16) else alpha
    # the fused Triton kernel on CUDA, query x key tiles (O(L) memory) from H*Lq*Lk >= 2**17, else the reference
    fast = _chunked.fast_attention(
        q, k, v, mask, alpha, epsilon, spherical=spherical, normalization=normalization, power=power,
        causal=causal, dropout=dropout,
    )  # fmt: skip
    if fast is not None:
        return fast
    return _yat.yat_attention(
        ops_for(q),
        q,
        k,
        v,
        mask,
        alpha,
        epsilon,
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
        dropout=dropout,
    )


def yat_embed_attend(
    query: torch.Tensor,
    embedding: torch.Tensor,
    alpha: Any = None,
    epsilon: Any = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
) -> torch.Tensor:
    """Yat logits of ``query (..., F)`` against every row of ``embedding (V, F)`` (no bias, no sqrt(d)).

    ``logit_v = alpha (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + epsilon)``.

    Shape: ``(..., F) -> (..., V)``.

    >>> yat_embed_attend(torch.ones(2, 3), torch.ones(5, 3)).shape
    torch.Size([2, 5])
    """
    return yat_dense(query, embedding, None, alpha, epsilon, spherical=spherical)


def rope_tables(
    head_dim: int,
    max_len: int,
    theta: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` tables ``(max_len, head_dim / 2)``, computed in float64 then cast.

    >>> rope_tables(4, 3)[0].shape
    torch.Size([3, 2])
    """
    cos, sin = _yat.rope_tables(head_dim, max_len, theta)
    as_t = lambda t: torch.tensor(t, dtype=torch.float64).reshape(max_len, head_dim // 2).to(device=device, dtype=dtype)
    return as_t(cos), as_t(sin)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, interleaved: bool = True) -> torch.Tensor:
    """Rotate ``x (B, L, H, D)`` with tables ``cos, sin (L, D/2)`` already sliced to its positions.

    Interleaved pairs ``(x[2i], x[2i+1])`` by default; ``interleaved=False`` rotates ``(x[i], x[i + D/2])``.

    >>> c, s = rope_tables(4, 3)
    >>> rope(torch.ones(1, 3, 1, 4), c, s).shape
    torch.Size([1, 3, 1, 4])
    """
    return _yat.rope(ops_for(x), x, cos.to(x.dtype), sin.to(x.dtype), interleaved=interleaved)


def performer_features(
    x: torch.Tensor,
    proj: torch.Tensor,
    epsilon: float = DEFAULT_EPSILON,
    *,
    degree: int | None = None,
    bias: float = 0.0,
) -> torch.Tensor:
    """Spherical Yat random features (:func:`nmn.core.yat.performer_features`): ``1 + D + m`` per row.

    ``degree``: the Maclaurin degree K (default: :func:`nmn.core.yat.performer_degree` of ``m`` and ``D``);
    ``bias``: b of the estimated score ``(t + b)^2 / (2 + epsilon - 2t)``.
    Shape: ``x (B, L, H, D)``, ``proj (m, D)`` -> ``(B, L, H, 1 + D + m)``.

    >>> performer_features(torch.ones(1, 2, 1, 4), torch.ones(3, 4)).shape
    torch.Size([1, 2, 1, 8])
    """
    return _yat.performer_features(ops_for(x), x, proj.to(x.dtype), epsilon, degree=degree, bias=bias)


def linear_attention(qf: torch.Tensor, kf: torch.Tensor, v: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """Linear readout ``qf (kf^T v) / (qf . sum kf)`` (causal by prefix sums) of ``(B, L, H, m)`` features.

    >>> f = torch.ones(1, 2, 1, 3)
    >>> linear_attention(f, f, torch.ones(1, 2, 1, 4)).shape
    torch.Size([1, 2, 1, 4])
    """
    return _yat.linear_readout(ops_for(qf), qf, kf, v, causal=causal)


def _check_n(n, name):
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
        raise ValueError(f"{name}: n must be a number > 0, got {n!r}")
    return float(n)


def _squash(fn, x, *args):
    compute, result = compute_dtype(x)
    return fn(ops_for(x), x.to(compute), *args).to(result)


def softermax(x: torch.Tensor, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, dim: int = -1) -> torch.Tensor:
    """Softermax ``x^n / (epsilon + sum x^n)`` along ``dim`` (for ``x >= 0``).

    Args: n (default 1.0, > 0), epsilon (default 1e-12), dim (default -1).

    >>> softermax(torch.tensor([1.0, 3.0])).tolist()
    [0.25, 0.75]
    """
    return _squash(_yat.softermax, x, _check_n(n, "softermax"), float(epsilon), dim)


def softer_sigmoid(x: torch.Tensor, n: float = 1.0, *, sharpness: float | None = None) -> torch.Tensor:
    """Softer sigmoid ``x^n / (1 + x^n)`` (for ``x >= 0``; n default 1.0, > 0; ``sharpness`` is its alias).

    >>> softer_sigmoid(torch.tensor([1.0])).tolist()
    [0.5]
    """
    return _squash(_yat.softer_sigmoid, x, _check_n(squash_power(n, sharpness, "softer_sigmoid"), "softer_sigmoid"))


def soft_tanh(x: torch.Tensor, n: float = 1.0, *, sharpness: float | None = None) -> torch.Tensor:
    """Soft tanh ``(x^n - 1) / (x^n + 1)`` (for ``x >= 0``; n default 1.0, > 0; ``sharpness`` is its alias).

    >>> soft_tanh(torch.tensor([1.0])).tolist()
    [0.0]
    """
    return _squash(_yat.soft_tanh, x, _check_n(squash_power(n, sharpness, "soft_tanh"), "soft_tanh"))
