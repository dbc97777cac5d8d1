"""The Yat math, written once against a small ops protocol ``F``.

Every framework adapter passes a namespace ``F`` with these members (all framework-native, all
differentiable): ``sum(x, axis, keepdims)``, ``sqrt``, ``relu``, ``softplus``, ``exp``, ``abs``, ``sign``,
``matmul(a, b)``, ``einsum(spec, *xs)``, ``where(cond, a, b)``, ``softmax(x, axis)``, ``cumsum(x, axis)``,
``tril(lq, lk)`` (a bool lower-triangular mask, offset so the last query sees the last key), ``logical_and``,
``full_like(x, value)``, ``to_f32(x)`` and ``cast_like(x, ref)``.
Tensors use Python operators (``+ - * /``), which all six frameworks overload. ``F`` may also offer
``yat_tail(dot, dist, bias, alpha, eps)``: a specialised implementation of :func:`yat_tail` (e.g. a fused
autograd function), which the dense and attention call sites use instead; it must pass the same conformance
cases (architecture.md, "A specialised fast path ... must pass the same conformance cases").

Only the contraction (matmul, conv, conv-transpose) is native per framework; the tail
``alpha * (dot + b)^2 / (relu(dist) + eps)`` is :func:`yat_tail`, here and nowhere else.
The ONNX functions in ``onnx_ops`` are the normative definition; these are the fast implementation, and the
conformance suite checks one against the other.
"""

from __future__ import annotations

import math

from nmn.core.options import NORM_GUARD, PERFORMER_DIV_EPSILON, SOFTERMAX_EPSILON

NEG_LARGE = -3.4028234663852886e38  # most negative finite float32: a fully masked row becomes uniform


def unit(F, v, axis):
    """``v / (|v| + 1e-8)`` along ``axis`` (the spherical / weight-normalised guard of yat-ops.md 0.2)."""
    return v / (F.sqrt(F.sum(v * v, axis, True)) + NORM_GUARD)


def yat_tail(F, dot, dist, bias, alpha, eps):
    """``alpha * (dot + bias)^2 / (relu(dist) + eps)``; ``bias``/``alpha`` may be ``None`` (absent)."""
    num = dot if bias is None else dot + bias
    y = num * num / (F.relu(dist) + eps)
    return y if alpha is None else y * alpha


def _tail(F):
    fast = getattr(F, "yat_tail", None)
    return fast if fast is not None else (lambda dot, dist, bias, alpha, eps: yat_tail(F, dot, dist, bias, alpha, eps))


def yat_dense(F, x, kernel, bias, alpha, eps, *, spherical=False, weight_normalized=False):
    """Yat dense product of ``x (..., I)`` with ``kernel (I, O)`` (columns are the neurons' weights)."""
    if weight_normalized or spherical:
        kernel = unit(F, kernel, 0)
    if spherical:
        x = unit(F, x, -1)
    dot = F.matmul(x, kernel)
    if spherical:
        dist = 2.0 - 2.0 * dot
    elif weight_normalized:
        dist = F.sum(x * x, -1, True) + 1.0 - 2.0 * dot
    else:
        dist = F.sum(x * x, -1, True) + F.sum(kernel * kernel, 0, False) - 2.0 * dot
    return _tail(F)(dot, dist, bias, alpha, eps)


def attention_scores(F, q, k, alpha, eps, *, spherical=False):
    """Raw Yat scores ``alpha (q.k)^2 / ((relu(|q-k|^2) + eps) sqrt(d))`` of (B, L, H, D) heads -> (B, H, Lq, Lk)."""
    if spherical:
        q = q / F.sqrt(F.sum(q * q, -1, True) + eps)
        k = k / F.sqrt(F.sum(k * k, -1, True) + eps)
    dot = F.einsum("bqhd,bkhd->bhqk", q, k)
    if spherical:
        dist = 2.0 - 2.0 * dot
    else:
        qq = F.einsum("bqhd,bqhd->bhq", q, q)[..., :, None]
        kk = F.einsum("bkhd,bkhd->bhk", k, k)[..., None, :]
        dist = qq + kk - 2.0 * dot
    scale = 1.0 / math.sqrt(q.shape[-1])
    return _tail(F)(dot, dist, None, alpha, eps) * scale


def normalize_scores(F, scores, mask, eps, *, normalization="softmax", power=1.0):
    """Turn scores into weights over the key axis; ``mask`` is bool (True = attend) or ``None``."""
    if normalization == "softmax":
        if mask is not None:
            scores = F.where(mask, scores, F.full_like(scores, NEG_LARGE))
        return F.softmax(scores, -1)
    if normalization == "softermax":
        scores = scores**power
    zeros = F.full_like(scores, 0.0)
    if mask is not None:
        scores = F.where(mask, scores, zeros)
    floor = eps if normalization == "l1" else SOFTERMAX_EPSILON
    weights = scores / (F.sum(scores, -1, True) + floor)
    if mask is None:
        return weights
    # a fully masked row attends uniformly, as softmax does (yat-ops.md Part 1, decision 5)
    attended = F.sum(F.where(mask, F.full_like(scores, 1.0), zeros), -1, True)
    uniform = F.full_like(scores, 1.0 / scores.shape[-1])
    return F.where(attended == F.full_like(attended, 0.0), uniform, weights)


def combine_causal(F, mask, lq, lk):
    """AND a (broadcastable) bool mask with the lower-triangular causal mask of shape (lq, lk)."""
    causal = F.tril(lq, lk)
    return causal if mask is None else F.logical_and(mask, causal)


def yat_attention(
    F, q, k, v, mask, alpha, eps, *, spherical=False, normalization="softmax", power=1.0, causal=False, dropout=None
):
    """Yat attention of (B, L, H, D) heads: scores -> x alpha -> mask -> normalise -> (dropout) -> A.V."""
    q32, k32 = F.to_f32(q), F.to_f32(k)
    scores = attention_scores(F, q32, k32, alpha, eps, spherical=spherical)
    if causal:
        mask = combine_causal(F, mask, q.shape[1], k.shape[1])
    weights = normalize_scores(F, scores, mask, eps, normalization=normalization, power=power)
    if dropout is not None:
        weights = dropout(weights)
    weights = F.cast_like(weights, v)
    return F.einsum("bhqk,bkhd->bqhd", weights, v)


def rope(F, x, cos, sin, *, interleaved=True):
    """Rotate ``x (B, L, H, D)`` with tables ``cos, sin (L, D/2)`` already sliced to its positions."""
    cos = cos[None, :, None, :]
    sin = sin[None, :, None, :]
    half = x.shape[-1] // 2
    if interleaved:
        pairs = F.reshape(x, (*x.shape[:-1], half, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        out = F.stack([a * cos - b * sin, a * sin + b * cos], -1)
        return F.reshape(out, x.shape)
    a, b = x[..., :half], x[..., half:]
    return F.concat([a * cos - b * sin, a * sin + b * cos], -1)


def rope_tables(head_dim, max_len, theta):
    """Float64 ``(cos, sin)`` tables ``(max_len, head_dim / 2)`` as nested lists (no numpy in core)."""
    inv = [theta ** (-2.0 * i / head_dim) for i in range(head_dim // 2)]
    cos = [[math.cos(t * f) for f in inv] for t in range(max_len)]
    sin = [[math.sin(t * f) for f in inv] for t in range(max_len)]
    return cos, sin


def performer_features(F, x, proj, eps):
    """Spherical FAVOR+-style features ``(|u| + eps) exp(u - 1/2) / sqrt(m)``, ``u = proj x_hat / sqrt(d)``."""
    d = x.shape[-1]
    m = proj.shape[0]
    x_hat = x / F.sqrt(F.sum(x * x, -1, True) + eps)
    u = F.einsum("blhd,md->blhm", x_hat, proj) / math.sqrt(d)
    return (F.abs(u) + eps) * F.exp(u - 0.5) / math.sqrt(m)


def linear_readout(F, qf, kf, v, *, causal=False):
    """``O = qf (kf^T v) / (qf . sum kf)`` with a sign-preserving 1e-6 shift; causal by prefix sums."""
    if causal:
        kv = F.cumsum(F.einsum("blhm,blhd->blhmd", kf, v), 1)
        num = F.einsum("blhm,blhmd->blhd", qf, kv)
        den = F.einsum("blhm,blhm->blh", qf, F.cumsum(kf, 1))
    else:
        kv = F.einsum("blhm,blhd->bhmd", kf, v)
        num = F.einsum("blhm,bhmd->blhd", qf, kv)
        den = F.einsum("blhm,bhm->blh", qf, F.sum(kf, 1, False))
    zero = F.full_like(den, 0.0)
    shift = F.sign(den) * PERFORMER_DIV_EPSILON + F.where(den == zero, F.full_like(den, PERFORMER_DIV_EPSILON), zero)
    return num / (den + shift)[..., None]


def softermax(F, x, n, epsilon, axis):
    """``x^n / (epsilon + sum x^n)`` along ``axis``."""
    p = x**n
    return p / (epsilon + F.sum(p, axis, True))


def softer_sigmoid(F, x, n):
    """``x^n / (1 + x^n)``."""
    p = x**n
    return p / (1.0 + p)


def soft_tanh(F, x, n):
    """``(x^n - 1) / (x^n + 1)``."""
    p = x**n
    return (p - 1.0) / (p + 1.0)
