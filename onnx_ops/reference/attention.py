"""Naive float64 oracles for the attention functions: explicit per-pair distances and sums."""

import numpy as np


def _f(a):
    return np.asarray(a, np.float64)


def _scalar(a):
    return float(np.asarray(a).reshape(-1)[0])


def YatAttention(Q, K, V, MASK, ALPHA, EPS, spherical=0, normalization="softmax", power=1.0, causal=0):
    q, k, v = _f(Q), _f(K), _f(V)
    alpha, eps = _scalar(ALPHA), _scalar(EPS)
    bsz, lq, h, d = q.shape
    lk = k.shape[1]
    mask = np.broadcast_to(np.asarray(MASK, bool), (bsz, h, lq, lk))
    out = np.zeros((bsz, lq, h, v.shape[-1]))
    for bi in range(bsz):
        for hi in range(h):
            for i in range(lq):
                qi = q[bi, i, hi]
                if spherical:
                    qi = qi / np.sqrt(qi @ qi + eps)
                scores = np.zeros(lk)
                allowed = mask[bi, hi, i].copy()
                for j in range(lk):
                    kj = k[bi, j, hi]
                    if spherical:
                        kj = kj / np.sqrt(kj @ kj + eps)
                        dist = max(2.0 - 2.0 * (qi @ kj), 0.0)
                    else:
                        dist = np.sum((qi - kj) ** 2)
                    scores[j] = alpha * (qi @ kj) ** 2 / ((dist + eps) * np.sqrt(d))
                    if causal and j > i + (lk - lq):
                        allowed[j] = False
                if not allowed.any():
                    weights = np.full(lk, 1.0 / lk)
                elif normalization == "l1":
                    z = np.where(allowed, scores, 0.0)
                    weights = z / (z.sum() + eps)
                elif normalization == "softermax":
                    z = np.where(allowed, scores**power, 0.0)
                    weights = z / (z.sum() + 1e-12)
                else:
                    z = np.exp(scores - scores[allowed].max())
                    z = np.where(allowed, z, 0.0)
                    weights = z / z.sum()
                out[bi, i, hi] = weights @ v[bi, :, hi]
    return out


def _project(x, w, b):
    return _f(x) @ _f(w).T + _f(b)


def _heads(x, num_heads):
    return x.reshape(x.shape[0], x.shape[1], num_heads, -1)


def RotaryEmbedding(X, COS, SIN, interleaved=1):
    x = _f(X)
    cos, sin = _f(COS), _f(SIN)
    y = np.empty_like(x)
    half = x.shape[-1] // 2
    for t in range(x.shape[1]):
        for i in range(half):
            a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + half)
            c, s = cos[t, i], sin[t, i]
            y[:, t, :, a] = x[:, t, :, a] * c - x[:, t, :, b] * s
            y[:, t, :, b] = x[:, t, :, a] * s + x[:, t, :, b] * c
    return y


def YatMultiHeadAttention(
    XQ,
    XK,
    XV,
    MASK,
    WQ,
    BQ,
    WK,
    BK,
    WV,
    BV,
    WO,
    BO,
    ALPHA,
    EPS,
    num_heads=1,
    spherical=0,
    normalization="softmax",
    power=1.0,
    causal=0,
    _rope=None,
):
    q = _heads(_project(XQ, WQ, BQ), num_heads)
    k = _heads(_project(XK, WK, BK), num_heads)
    v = _heads(_project(XV, WV, BV), num_heads)
    if _rope is not None:
        q, k = _rope(q), _rope(k)
    o = YatAttention(q, k, v, MASK, ALPHA, EPS, spherical, normalization, power, causal)
    return _project(o.reshape(o.shape[0], o.shape[1], -1), WO, BO)


def RotaryYatMultiHeadAttention(
    XQ,
    XK,
    XV,
    MASK,
    WQ,
    BQ,
    WK,
    BK,
    WV,
    BV,
    WO,
    BO,
    ALPHA,
    EPS,
    COS,
    SIN,
    num_heads=1,
    spherical=0,
    normalization="softmax",
    power=1.0,
    causal=0,
    interleaved=1,
):
    def rope(x):
        return RotaryEmbedding(x, COS, SIN, interleaved)

    return YatMultiHeadAttention(
        XQ,
        XK,
        XV,
        MASK,
        WQ,
        BQ,
        WK,
        BK,
        WV,
        BV,
        WO,
        BO,
        ALPHA,
        EPS,
        num_heads,
        spherical,
        normalization,
        power,
        causal,
        _rope=rope,
    )


def _gegenbauer(n, t, d):
    """``P_n(t)`` of the d-sphere with ``P_n(1) = 1`` by the three-term recurrence (independent of the feature code)."""
    prev, cur = np.ones_like(t), t
    if n == 0:
        return prev
    for k in range(1, n):
        prev, cur = cur, ((2 * k + d - 2) * t * cur - k * prev) / (k + d - 2)
    return cur


def _harmonics(d, n):
    """Dimension of the degree-n spherical harmonics on the sphere in d dimensions."""
    from math import comb

    return 1 if n == 0 else (2 * n + d - 2) * comb(n + d - 3, n - 1) // n


def _sphere_moment(j, d):
    """``E[t^j]`` for ``t = w . x``, w uniform on the unit sphere in d dimensions: ``(j-1)!! / (d (d+2) ... (d+j-2))``."""
    if j % 2:
        return 0.0
    out = 1.0
    for i in range(0, j, 2):
        out *= (i + 1) / (d + i)
    return out


def _monomial_in_gegenbauer(k, d):
    """Coefficients g_n with ``t^k = sum_n g_n P_n(t)`` (Funk-Hecke: ``g_n = N_n E[t^k P_n(t)]``, exact moments)."""
    from numpy.polynomial import Polynomial

    polys = [Polynomial([1.0]), Polynomial([0.0, 1.0])]
    for n in range(1, k):
        polys.append(((2 * n + d - 2) * Polynomial([0.0, 1.0]) * polys[n] - n * polys[n - 1]) / (n + d - 2))
    out = []
    for n in range(k + 1):
        coef = np.pad(polys[n].coef, (0, k + 1))
        out.append(_harmonics(d, n) * sum(coef[i] * _sphere_moment(k + i, d) for i in range(n + 1)))
    return out


def _monomial_on_circle(k):
    """``t^k`` in Chebyshev polynomials (the d = 2 sphere): ``2^-k sum_j C(k, j) T_|k - 2j|``."""
    from math import comb

    g = [0.0] * (k + 1)
    for j in range(k + 1):
        g[abs(k - 2 * j)] += comb(k, j) / 2.0**k
    return g


def YatPerformerFeatures(X, PROJ, epsilon=1e-5, degree=3, bias=0.0):
    """Features whose inner product has the expectation of ``performer_coefficients``' kernel.

    Coefficients from first principles: the Maclaurin terms ``a_n t^n`` (n <= degree) of
    ``(t + bias)^2 / C * sum_j (2t / C)^j``, ``C = 2 + epsilon``, re-expanded in the Gegenbauer basis with exact
    sphere moments (d >= 3) or, for d = 2, Chebyshev identities; degree n > 1 shrunk by ``m / (m + N_n)``.
    """
    x, proj = _f(X), _f(PROJ)
    d, m = x.shape[-1], proj.shape[0]
    c = 2.0 + epsilon
    geometric = [(2.0 / c) ** j / c for j in range(degree + 1)]  # 1 / (C - 2t)
    square = {0: bias * bias, 1: 2.0 * bias, 2: 1.0}  # (t + b)^2
    a = {n: sum(w * geometric[n - p] for p, w in square.items() if n >= p) for n in range(degree + 1)}
    b = np.zeros(degree + 1)
    for k, ak in a.items():
        if d >= 3:
            g = _monomial_in_gegenbauer(k, d)
        elif d == 2:
            g = _monomial_on_circle(k)
        else:  # d = 1: t = +-1, t^k = 1 or t
            g = [1.0] if k % 2 == 0 else [0.0, 1.0]
        b[: len(g)] += ak * np.asarray(g)
    b = np.maximum(b, 0.0)  # round-off around exact zeros
    x_hat = x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + epsilon)
    w_hat = proj / (np.linalg.norm(proj, axis=-1, keepdims=True) + 1e-8)
    u = x_hat @ w_hat.T
    rand = 0.0
    for n in range(2, degree + 1):
        harm = _harmonics(d, n) if d >= 2 else 0
        if b[n] > 0 and harm > 0:
            rand = rand + np.sqrt(b[n] * harm / (m + harm)) * _gegenbauer(n, u, d)
    rand = rand + np.zeros_like(u)
    const = np.full(x.shape[:-1] + (1,), np.sqrt(b[0]))
    return np.concatenate([const, np.sqrt(b[1]) * x_hat, rand], axis=-1)


def YatPerformerMultiHeadAttention(
    XQ, XK, XV, MASK, WQ, BQ, WK, BK, WV, BV, WO, BO, ALPHA, EPS, PROJ, num_heads=1, causal=0, degree=3, bias=0.0
):
    eps = _scalar(EPS)
    q = _heads(_project(XQ, WQ, BQ), num_heads)
    k = _heads(_project(XK, WK, BK), num_heads)
    v = _heads(_project(XV, WV, BV), num_heads)
    qf = _scalar(ALPHA) * YatPerformerFeatures(q, PROJ, eps, degree, bias)
    kf = YatPerformerFeatures(k, PROJ, eps, degree, bias)
    from onnx_ops.reference.random_features import YatLinearAttention  # the readout's oracle lives there

    o = YatLinearAttention(qf, kf, v, causal)
    return _project(o.reshape(o.shape[0], o.shape[1], -1), WO, BO)
