"""The Yat math, written once against a small ops protocol ``F``.

Every framework adapter passes a namespace ``F`` with these members (all framework-native, all
differentiable): ``sum(x, axis, keepdims)``, ``sqrt``, ``relu``, ``softplus``, ``exp``, ``cos``, ``abs``, ``sign``,
``matmul(a, b)``, ``einsum(spec, *xs)``, ``where(cond, a, b)``, ``softmax(x, axis)``, ``cumsum(x, axis)``,
``tril(lq, lk)`` (a bool lower-triangular mask, offset so the last query sees the last key), ``logical_and``,
``full_like(x, value)``, ``to_f32(x)`` and ``cast_like(x, ref)``.
Tensors use Python operators (``+ - * /``), which all six frameworks overload. ``F`` may also offer
``yat_tail(dot, dist, bias, alpha, eps)``: a specialised implementation of :func:`yat_tail` (e.g. a fused
autograd function), which the dense and attention call sites use instead; it must pass the same conformance
cases (docs/design.md §A3, "A specialised fast path ... must pass the same conformance cases").

Only the contraction (matmul, conv, conv-transpose) is native per framework; the tail
``alpha * (dot + b)^2 / (relu(dist) + eps)`` is :func:`yat_tail`, here and nowhere else.
The ONNX functions in ``onnx_ops`` are the normative definition; these are the fast implementation, and the
conformance suite checks one against the other.
"""

from __future__ import annotations

import math

from nmn.core.options import NORM_GUARD, PERFORMER_DEGREE_SPAN, PERFORMER_DIV_EPSILON, SOFTERMAX_EPSILON

NEG_LARGE = -3.4028234663852886e38  # most negative finite float32: a fully masked row becomes uniform


def unit(F, v, axis):
    """``v / (|v| + 1e-8)`` along ``axis`` (the spherical / weight-normalised guard of docs/design.md §0.2)."""
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
    # the 1/sqrt(d) scale rides on alpha (a scalar product, once) rather than on every score: one multiply per
    # score fewer in the fused score loop (nmn 0.3.5 saved the same multiply by folding it into the denominator)
    scale = 1.0 / math.sqrt(q.shape[-1])
    return _tail(F)(dot, dist, None, scale if alpha is None else alpha * scale, eps)


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
    # a fully masked row attends uniformly, as softmax does (docs/design.md §D5)
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


def _sqrt(F, v):
    """``sqrt`` of a Python number or of a framework tensor (a traced epsilon)."""
    return math.sqrt(v) if isinstance(v, (int, float)) else F.sqrt(v)


def harmonic_dimension(n, d):
    """``N_n``: the dimension of the degree-``n`` spherical harmonics on the sphere of R^d.

    >>> [harmonic_dimension(n, 16) for n in range(4)]
    [1, 16, 135, 800]
    """
    if n == 0:
        return 1
    return math.comb(n + d - 1, d - 1) - (math.comb(n + d - 3, d - 1) if n >= 2 else 0)


def performer_degree(m, d, nmax=None):
    """The Yat-Performer's degree ``K``: ``nmax`` when given, else the largest ``n`` with ``N_n <= 4 m``
    (``PERFORMER_DEGREE_SPAN``; at least 3, the degree that measured best where N_3 > 4 m), so ``K`` grows
    without bound with the number of features ``m``.

    >>> performer_degree(256, 16), performer_degree(4096, 16), performer_degree(256, 64), performer_degree(8, 16, 5)
    (3, 5, 3, 5)
    """
    if nmax is not None:
        return int(nmax)
    k = 3
    while k < 64 and harmonic_dimension(k + 1, d) <= PERFORMER_DEGREE_SPAN * m:
        k += 1
    return k


def maclaurin_coefficients(eps, bias, degree):
    """``a_0 .. a_K`` of ``s_b(t) = (t + b)^2 / (C - 2t)``, ``C = 2 + eps``: with ``beta_n = (2/C)^n / C``
    (the series of ``1 / (C - 2t)``), ``a_n = beta_(n-2) + 2 b beta_(n-1) + b^2 beta_n``, all >= 0 for b >= 0.

    >>> [round(a, 4) for a in maclaurin_coefficients(1e-5, 1.0, 3)]
    [0.5, 1.5, 2.0, 2.0]
    """
    c = 2.0 + eps
    beta = [1.0 / c]
    for _ in range(degree):
        beta.append(beta[-1] * (2.0 / c))
    a = []
    for n in range(degree + 1):
        v = bias * bias * beta[n]
        if n >= 1:
            v = v + 2.0 * bias * beta[n - 1]
        if n >= 2:
            v = v + beta[n - 2]
        a.append(v)
    return a


def _gegenbauer_step(k, d):
    """``(alpha_k, gamma_k)`` of ``t P_k = alpha_k P_(k+1) + gamma_k P_(k-1)`` (``P_k(1) = 1``, the D-sphere)."""
    if k == 0:
        return 1.0, 0.0
    return (k + d - 2) / (2 * k + d - 2), k / (2 * k + d - 2)


def gegenbauer_coefficients(a, d):
    """``b_0 .. b_K`` with ``sum_n a_n t^n = sum_k b_k P_k(t)`` (Horner in the Gegenbauer basis; b_k >= 0 when
    every a_n >= 0, since ``t P_k`` has non-negative coefficients).

    >>> [round(b, 4) for b in gegenbauer_coefficients([0.0, 0.0, 1.0], 16)]
    [0.0625, 0.0, 0.9375]
    """
    K = len(a) - 1
    vec = [0.0] * (K + 1)
    for n in range(K, -1, -1):
        new = [0.0] * (K + 1)
        for k in range(K - n):  # vec holds degrees 0 .. K - n - 1 here
            alpha, gamma = _gegenbauer_step(k, d)
            new[k + 1] = new[k + 1] + alpha * vec[k]
            if k >= 1:
                new[k - 1] = new[k - 1] + gamma * vec[k]
        new[0] = new[0] + a[n]
        vec = new
    return vec


def performer_coefficients(F, d, m, eps, degree=3, bias=0.0):
    """Weights ``c_0 .. c_K`` of the spherical Yat features of :func:`performer_features` (``K = degree``).

    The kernel is the degree-K Maclaurin truncation ``s_K(t) = sum_(n <= K) a_n t^n`` of the bias-aware
    spherical Yat score ``s_b(t) = (t + b)^2 / (2 + eps - 2t)`` (:func:`maclaurin_coefficients`), written in the
    Gegenbauer basis of the sphere in ``d`` dimensions, ``s_K = sum_k b_k P_k`` (:func:`gegenbauer_coefficients`,
    all ``b_k >= 0``). ``c_0 = sqrt(b_0)``, ``c_1 = sqrt(b_1)`` (the exact degree-0 and 1 features);
    ``c_n = sqrt(b_n N_n / (m + N_n))`` for n >= 2: ``sqrt(b_n N_n / m)`` per random feature times the shrinkage
    ``sqrt(g_n)``, ``g_n = m / (m + N_n)`` (``N_n``: :func:`harmonic_dimension`). The shrinkage is the one that
    minimises the mean squared error of ``g_n b_n P_n(t)`` over pairs uniform on the sphere
    (``E[P_n(t)^2] = 1 / N_n`` against an estimator variance of about ``1 / m``) and tends to 1 as ``m`` grows.
    ``degree=3, bias=0`` is the construction of the files written before these were attributes.

    >>> [round(c, 4) for c in performer_coefficients(None, 16, 256, 1e-5)]
    [0.1768, 0.2887, 0.4023, 0.5618]
    """
    b = gegenbauer_coefficients(maclaurin_coefficients(eps, bias, degree), d)
    coefs = [_sqrt(F, b[0]), _sqrt(F, b[1])]
    for n in range(2, degree + 1):
        nn = float(harmonic_dimension(n, d))
        coefs.append(_sqrt(F, b[n] * (nn / (m + nn))))
    return coefs


def performer_features(F, x, proj, eps, *, degree=None, bias=0.0):
    """Spherical Yat random features of ``x (B, L, H, D)`` with ``proj (m, D)`` -> ``(B, L, H, 1 + D + m)``.

    ``phi(x) = [c_0, c_1 x_hat, sum_(n=2..K) c_n P_n(u)]`` with ``x_hat = x / sqrt(|x|^2 + eps)``,
    ``u = x_hat . w_hat`` for the unit rows ``w_hat`` of ``proj``, the Gegenbauer polynomials of the D-sphere
    (``P_n(1) = 1``) by their three-term recurrence ``P_0 = 1``, ``P_1 = u``,
    ``P_(n+1) = ((2n + D - 2) u P_n - n P_(n-1)) / max(n + D - 2, 1)`` and the weights of
    :func:`performer_coefficients` (``K = degree``, default :func:`performer_degree` of ``m`` and ``D``;
    ``b = bias``).

    What it estimates: for rows uniform on the sphere (each row of nmn's orthogonal-block projection is),
    the Funk-Hecke formula ``E[P_n(w.x) P_k(w.y)] = [n = k] P_n(x.y) / N_n`` (the spherical analogue of the
    Hermite identity ``E[He_n(w.x) He_k(w.y)] = [n = k] n! (x.y)^n`` behind Kar & Karnick 2012, "Random feature
    maps for dot product kernels") gives ``E[phi(q) . phi(k)] = b_0 + b_1 t + sum_(n>=2) g_n b_n P_n(t)``,
    ``t = q_hat . k_hat``, ``g_n = m / (m + N_n)``: the degree-K truncation of ``(t + b)^2 / (2 + eps - 2t)``
    (times alpha / sqrt(D), which cancel under the l1 readout) as ``m`` grows. With ``K`` from
    :func:`performer_degree` (growing with ``m``) the truncation and the shrinkage both vanish as
    ``m -> infinity``, so the output converges to the exact spherical Yat attention; slowly, since the score
    peaks at ``t -> 1`` (``(1 + b)^2 / eps``), which only high degrees resolve. Degrees 0 and 1 are exact;
    the random part's variance grows with ``N_n / m`` and the shrinkage keeps the l1 denominator away from 0.
    Cost O(L m (D + K)). Features are sign-indefinite: :func:`linear_readout` shifts its denominator keeping
    the sign.
    """
    d = x.shape[-1]
    m = proj.shape[0]
    degree = performer_degree(m, d) if degree is None else int(degree)
    coefs = performer_coefficients(F, d, m, eps, degree, bias)
    x_hat = x / F.sqrt(F.sum(x * x, -1, True) + eps)
    w_hat = unit(F, proj, -1)
    u = F.einsum("blhd,md->blhm", x_hat, w_hat)
    prev, cur = None, u
    rand = None
    for n in range(1, degree):
        nxt = ((2 * n + d - 2) * u * cur - (n * prev if prev is not None else 1.0)) / max(n + d - 2, 1)
        prev, cur = cur, nxt
        rand = nxt * coefs[n + 1] if rand is None else rand + nxt * coefs[n + 1]
    if rand is None:
        rand = u * 0.0
    const = F.full_like(x[..., :1], 1.0) * coefs[0]
    return F.concat([const, x_hat * coefs[1], rand], -1)


def linear_readout(F, qf, kf, v, *, causal=False, epsilon=PERFORMER_DIV_EPSILON):
    """``O = qf (kf^T v) / (qf . sum kf)`` on (B, L, H, m) features, causal by prefix sums.

    The denominator is shifted by ``epsilon`` away from 0 keeping its sign (``den + sign(den) epsilon``, and 0
    gets ``+epsilon``): random features can be sign-indefinite. The ONNX ``YatLinearAttention``'s ``epsilon``.
    """
    if causal:
        kv = F.cumsum(F.einsum("blhm,blhd->blhmd", kf, v), 1)
        num = F.einsum("blhm,blhmd->blhd", qf, kv)
        den = F.einsum("blhm,blhm->blh", qf, F.cumsum(kf, 1))
    else:
        kv = F.einsum("blhm,blhd->bhmd", kf, v)
        num = F.einsum("blhm,bhmd->blhd", qf, kv)
        den = F.einsum("blhm,bhm->blh", qf, F.sum(kf, 1, False))
    zero = F.full_like(den, 0.0)
    shift = F.sign(den) * epsilon + F.where(den == zero, F.full_like(den, epsilon), zero)
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
