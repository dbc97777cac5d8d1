"""Functional Yat ops for MLX: the native contraction (matmul / conv / conv-transpose) + :mod:`nmn.core.yat`.

Data is channels-last (``N *S C``) and kernels are in the MLX layouts: dense ``(O, I)``, conv ``(M, *k, C/G)``,
conv-transpose ``(M, *k, C/G)`` (for ``groups=1`` this is ``mlx.nn.ConvTranspose``'s ``(M, *k, C)``). The Yat
arithmetic runs in float32 (float16 / bfloat16 inputs are upcast) and the result is cast to the promoted dtype.

>>> import mlx.core as mx
>>> y = yat_dense(mx.ones((2, 3)), mx.ones((4, 3)), epsilon=1.0)
>>> y.shape, round(y[0, 0].item(), 3)
((2, 4), 9.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nmn.core import yat
from nmn.core.conv import yat_conv_tail
from nmn.core.options import DEFAULT_EPSILON
from nmn.mlx._ops import F, cast_like, mx, result_dtype, to_f32

#: A bias / alpha term: an array (a parameter), a plain number (a constant) or ``None`` (absent).
Term = mx.array | float | None

__all__ = [
    "yat_dense",
    "yat_conv",
    "yat_conv_transpose",
    "yat_attention",
    "yat_attention_weights",
    "yat_performer_attention",
    "yat_embed_attend",
    "precompute_freqs_cis",
    "apply_rotary_emb",
    "pad_spatial",
]


def _out(y: mx.array, x: mx.array, *params: object) -> mx.array:
    dtype = result_dtype(x, *[p for p in params if hasattr(p, "dtype")])
    return y if y.dtype == dtype else y.astype(dtype)


def yat_dense(
    x: mx.array,
    kernel: mx.array,
    bias: Term = None,
    alpha: Term = None,
    epsilon: float | mx.array = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    weight_normalized: bool = False,
) -> mx.array:
    """Yat dense product ``alpha (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + eps)``.

    Args:
        x: input ``(..., I)``.
        kernel: ``(O, I)`` (rows are the neurons, as ``mlx.nn.Linear.weight``).
        bias: ``(O,)`` array, a float, or ``None`` (default, no bias).
        alpha: ``(1,)`` array, a float, or ``None`` (default, alpha = 1).
        epsilon: float or ``(1,)`` array (the effective epsilon), default 1e-5.
        spherical: unit-normalise ``x`` and the rows, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-normalise the rows, ``|w|^2 := 1`` (default False).

    Shape: ``(..., I) -> (..., O)``.
    """
    y = yat.yat_dense(
        F,
        to_f32(x),
        to_f32(kernel).T,
        _f32(bias),
        _f32(alpha),
        _f32(epsilon),
        spherical=spherical,
        weight_normalized=weight_normalized,
    )
    return _out(y, x, kernel)


def _f32(v: Term) -> Term:
    return to_f32(v) if hasattr(v, "dtype") else v


def _wrap_pad(x: mx.array, axis: int, lo: int, hi: int) -> mx.array:
    n = x.shape[axis]
    parts = []
    if lo:
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(n - lo, n)
        parts.append(x[tuple(idx)])
    parts.append(x)
    if hi:
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(0, hi)
        parts.append(x[tuple(idx)])
    return mx.concatenate(parts, axis=axis) if len(parts) > 1 else x


def pad_spatial(x: mx.array, pads: Sequence[tuple[int, int]], padding_mode: str = "zeros") -> mx.array:
    """Pad the spatial axes of a channels-last ``x`` with ``pads = [(lo, hi), ...]`` in ``padding_mode``.

    Modes as torch names them: ``'zeros'``, ``'reflect'`` (edge excluded), ``'replicate'``, ``'circular'``.

    >>> import mlx.core as mx
    >>> pad_spatial(mx.array([[[1.0], [2.0], [3.0]]]), [(1, 2)], "circular")[0, :, 0].tolist()
    [3.0, 1.0, 2.0, 3.0, 1.0, 2.0]
    """
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    widths = [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)]
    if padding_mode == "zeros":
        return mx.pad(x, widths)
    if padding_mode == "reflect":
        return mx.pad(x, widths, mode="reflect")
    if padding_mode == "replicate":
        return mx.pad(x, widths, mode="edge")
    if padding_mode == "circular":
        for axis, (lo, hi) in enumerate(pads, start=1):
            x = _wrap_pad(x, axis, lo, hi)
        return x
    raise ValueError(f"padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got {padding_mode!r}")


def _conv(x: mx.array, w: mx.array, groups: int = 1, **kw: object) -> mx.array:
    """``mx.conv_general``; MLX only groups 1-D / 2-D convolutions, so 3-D groups run one conv per group."""
    if groups == 1 or w.ndim <= 4:
        return mx.conv_general(x, w, groups=groups, **kw)
    cg, mg = x.shape[-1] // groups, w.shape[0] // groups
    return mx.concatenate(
        [mx.conv_general(x[..., g * cg : (g + 1) * cg], w[g * mg : (g + 1) * mg], **kw) for g in range(groups)], axis=-1
    )


def _group_energy(x2: mx.array, groups: int) -> mx.array:
    """Sum ``x^2`` over the channels of each group: ``(N, *S, C) -> (N, *S, G)``."""
    if groups == 1:
        return mx.sum(x2, axis=-1, keepdims=True)
    c = x2.shape[-1]
    return mx.sum(mx.reshape(x2, (*x2.shape[:-1], groups, c // groups)), axis=-1)


def _energy_conv(
    x2: mx.array, kernel_shape: Sequence[int], groups: int, out_channels: int, **conv_kwargs: object
) -> mx.array:
    """Patch energy per output channel: a box filter over the group sums, repeated over the group's filters."""
    ones = mx.ones((groups, *kernel_shape, 1), dtype=x2.dtype)
    e = _conv(_group_energy(x2, groups), ones, groups=groups, **conv_kwargs)
    per_group = out_channels // groups
    if groups > 1 and per_group > 1:
        e = mx.repeat(e, per_group, axis=-1)
    return e


def _filter_norms(w: mx.array, weight_normalized: bool) -> tuple[mx.array, mx.array | float]:
    axes = tuple(range(1, w.ndim))
    if weight_normalized:
        return yat.unit(F, w, axes), 1.0
    return w, mx.sum(w * w, axis=axes)


def yat_conv(
    x: mx.array,
    kernel: mx.array,
    bias: Term = None,
    alpha: Term = None,
    epsilon: float | mx.array = DEFAULT_EPSILON,
    *,
    strides: int | Sequence[int] = 1,
    pads: Sequence[tuple[int, int]] | None = None,
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    weight_normalized: bool = False,
) -> mx.array:
    """Yat convolution of a channels-last ``x (N, *S, C)`` with ``kernel (M, *k, C/G)``.

    ``y = alpha (P.W_m + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 P.W_m) + eps)`` for every (padded) patch ``P``.

    Args:
        strides, dilations: int or one int per spatial axis (default 1).
        pads: explicit ``[(lo, hi), ...]`` per spatial axis (default no padding).
        groups: feature groups (default 1). padding_mode: ``'zeros'`` (default), ``'reflect'``,
            ``'replicate'`` or ``'circular'``. weight_normalized: unit-normalise each filter (default False).

    Shape: ``(N, *S, C) -> (N, *S', M)``.

    >>> import mlx.core as mx
    >>> yat_conv(mx.ones((1, 5, 5, 4)), mx.ones((6, 3, 3, 2)), groups=2, pads=[(1, 1), (1, 1)]).shape
    (1, 5, 5, 6)
    """
    rank = kernel.ndim - 2
    pads = [(0, 0)] * rank if pads is None else [tuple(p) for p in pads]
    strides = _tup(strides, rank)
    dilations = _tup(dilations, rank)
    xf = to_f32(x)
    w, ww = _filter_norms(to_f32(kernel), weight_normalized)
    if padding_mode == "zeros":
        conv_pad = ([p[0] for p in pads], [p[1] for p in pads])
    else:
        xf = pad_spatial(xf, pads, padding_mode)
        conv_pad = 0
    kw = dict(stride=strides, padding=conv_pad, kernel_dilation=dilations)
    dot = _conv(xf, w, groups=groups, **kw)
    energy = _energy_conv(xf * xf, w.shape[1:-1], groups, w.shape[0], **kw)
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _f32(epsilon))
    return _out(y, x, kernel)


def yat_conv_transpose(
    x: mx.array,
    kernel: mx.array,
    bias: Term = None,
    alpha: Term = None,
    epsilon: float | mx.array = DEFAULT_EPSILON,
    *,
    strides: int | Sequence[int] = 1,
    pads: Sequence[tuple[int, int]] | None = None,
    dilations: int | Sequence[int] = 1,
    output_padding: Sequence[int] | None = None,
    groups: int = 1,
    weight_normalized: bool = False,
) -> mx.array:
    """Yat transposed convolution of ``x (N, *S, C)`` with ``kernel (M, *k, C/G)`` (ONNX ``ConvTranspose`` maps).

    The dot map is ONNX / torch ``ConvTranspose`` (``pads`` crop the output, ``output_padding`` extends its high
    side); the distance is the one between each filter and the zero-stuffed, padded patch it meets
    (docs/design.md §4.1): ``E + |W_m|^2 - 2 d`` with ``E`` the transposed convolution of ``x^2`` with ones.

    Shape: ``(N, *S, C) -> (N, *S', M)`` with ``S' = (S - 1) s - lo - hi + d (k - 1) + 1 + output_padding``.

    >>> import mlx.core as mx
    >>> yat_conv_transpose(mx.ones((1, 3, 4)), mx.ones((6, 2, 2)), strides=2, groups=2).shape
    (1, 6, 6)
    """
    rank = kernel.ndim - 2
    ksize = kernel.shape[1:-1]
    pads = [(0, 0)] * rank if pads is None else [tuple(p) for p in pads]
    outpad = [0] * rank if output_padding is None else list(output_padding)
    strides = _tup(strides, rank)
    dilations = _tup(dilations, rank)
    lo, hi, crop = [], [], []
    for (p_lo, p_hi), k, d, op in zip(pads, ksize, dilations, outpad):
        a = (k - 1) * d - p_lo
        b = (k - 1) * d - p_hi + op
        lo.append(max(a, 0))
        hi.append(max(b, 0))
        crop.append((max(-a, 0), max(-b, 0)))
    xf = to_f32(x)
    w, ww = _filter_norms(to_f32(kernel), weight_normalized)
    kw = dict(stride=1, padding=(lo, hi), kernel_dilation=dilations, input_dilation=strides, flip=True)
    dot = _conv(xf, w, groups=groups, **kw)
    energy = _energy_conv(xf * xf, ksize, groups, w.shape[0], **kw)
    if any(c != (0, 0) for c in crop):
        idx = (slice(None),) + tuple(slice(c0, dot.shape[i + 1] - c1) for i, (c0, c1) in enumerate(crop))
        dot, energy = dot[idx], energy[idx]
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _f32(epsilon))
    return _out(y, x, kernel)


def _tup(v: int | Sequence[int], rank: int) -> tuple[int, ...]:
    return (int(v),) * rank if isinstance(v, int) else tuple(int(i) for i in v)


def yat_attention_weights(
    q: mx.array,
    k: mx.array,
    mask: mx.array | None = None,
    alpha: Term = None,
    epsilon: float | mx.array = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
) -> mx.array:
    """Attention weights ``(B, H, Lq, Lk)`` of ``(B, L, H, D)`` heads: Yat scores -> mask -> normalise.

    ``score = alpha (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + eps) sqrt(D))``; ``mask`` is bool, True = attend.
    """
    scores = yat.attention_scores(F, to_f32(q), to_f32(k), _f32(alpha), _f32(epsilon), spherical=spherical)
    if causal:
        mask = yat.combine_causal(F, mask, q.shape[1], k.shape[1])
    return yat.normalize_scores(F, scores, mask, _f32(epsilon), normalization=normalization, power=power)


def yat_attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    mask: mx.array | None = None,
    alpha: Term = None,
    epsilon: float | mx.array = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout: Callable[[mx.array], mx.array] | None = None,
) -> mx.array:
    """Yat attention of ``(B, L, H, D)`` heads (docs/design.md §5.1); returns ``(B, Lq, H, Dv)``.

    >>> import mlx.core as mx
    >>> yat_attention(mx.ones((1, 2, 1, 4)), mx.ones((1, 3, 1, 4)), mx.ones((1, 3, 1, 4))).shape
    (1, 2, 1, 4)
    """
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


def yat_performer_attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    proj: mx.array,
    alpha: Term = None,
    epsilon: float = DEFAULT_EPSILON,
    *,
    causal: bool = False,
    degree: int | None = None,
    bias: float = 0.0,
) -> mx.array:
    """Linear-time spherical Yat-Performer on ``(B, L, H, D)`` heads with a fixed projection ``proj (m, D)``.

    ``O = alpha phi(q) (phi(k)^T v) / (alpha phi(q) . sum phi(k))`` (sign-preserving 1e-6 shift of the
    denominator), ``phi`` the spherical Yat random features of :func:`nmn.core.yat.performer_features`
    (``1 + D + m`` per row), whose inner products estimate the degree-K Maclaurin truncation of the spherical
    Yat score ``(t + b)^2 / (2 + eps - 2t)`` (``t = q_hat . k_hat``; ``K = degree``, default
    :func:`nmn.core.yat.performer_degree` of ``m`` and ``D``; ``b = bias``); alpha cancels in the ratio.
    ``causal`` uses prefix sums. Cost O(L m (D + K)). Shape: ``(B, L, H, D) -> (B, L, H, Dv)``.
    """
    qf = yat.performer_features(F, to_f32(q), to_f32(proj), epsilon, degree=degree, bias=bias)
    if alpha is not None:
        qf = qf * _f32(alpha)
    kf = yat.performer_features(F, to_f32(k), to_f32(proj), epsilon, degree=degree, bias=bias)
    return cast_like(yat.linear_readout(F, qf, kf, to_f32(v), causal=causal), v)


def yat_embed_attend(
    q: mx.array, embedding: mx.array, alpha: Term = None, epsilon: float = DEFAULT_EPSILON, *, spherical: bool = False
) -> mx.array:
    """Yat logits of queries ``(..., F)`` against every embedding row ``(V, F)``: ``(..., V)``, no bias."""
    return yat_dense(q, embedding, None, alpha, epsilon, spherical=spherical)


def precompute_freqs_cis(
    head_dim: int, max_seq_len: int, theta: float = 10000.0, dtype: mx.Dtype | None = mx.float32
) -> tuple[mx.array, mx.array]:
    """RoPE tables ``(cos, sin)`` of shape ``(max_seq_len, head_dim / 2)`` (float64 math, stored in ``dtype``,
    default float32; ``None`` also means float32)."""
    cos, sin = yat.rope_tables(head_dim, max_seq_len, theta)
    dtype = mx.float32 if dtype is None else dtype
    return mx.array(cos, dtype=dtype), mx.array(sin, dtype=dtype)


def apply_rotary_emb(x: mx.array, cos: mx.array, sin: mx.array, *, interleaved: bool = True) -> mx.array:
    """Rotate ``x (B, L, H, D)`` by tables already sliced to its positions ``(L, D/2)``."""
    return cast_like(yat.rope(F, to_f32(x), cos, sin, interleaved=interleaved), x)
