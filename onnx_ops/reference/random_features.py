"""Naive float64 numpy oracles of the random-feature functions (MAY, RAY, anchor) and of the linear readout.

Explicit loops over rows, features and factors, written from the schema formulas (nmn.core.schemas), not from
the ONNX bodies or nmn.core.random_features. ``YatLinearAttention`` here takes the ``epsilon`` attribute (the
quadratic form ``sum_j (qf_i . kf_j) v_j / shift(sum_j qf_i . kf_j)``).

>>> import numpy as np
>>> x = np.array([[3.0, 4.0]]); omega = np.array([[[1.0, 1.0]]]); mask = np.ones((1, 1))
>>> round(float(YatMaclaurinFeatures(x, omega, mask, np.array([2.0]), epsilon=0.0)[0, 0]), 6)
2.8
"""

from __future__ import annotations

import math

import numpy as np

from onnx_ops.reference.attention import _heads, _project


def _f(a):
    return np.asarray(a, dtype=np.float64)


def _unit(v, eps):
    return v / math.sqrt(float(np.dot(v, v)) + eps)


def _rows(x):
    """(index, row) pairs over every leading index of x (..., D)."""
    return [(idx, x[idx]) for idx in np.ndindex(*x.shape[:-1])]


def YatMaclaurinFeatures(X, OMEGA, DEGMASK, SCALE, epsilon=1e-6):
    x, omega, mask = _f(X), _f(OMEGA), _f(DEGMASK)
    scale = float(_f(SCALE).reshape(-1)[0])
    m, n, _ = omega.shape
    out = np.zeros(x.shape[:-1] + (m,))
    for idx, row in _rows(x):
        xh = _unit(row, epsilon)
        for r in range(m):
            v = scale
            for ell in range(n):
                v *= mask[r, ell] * float(np.dot(omega[r, ell], xh)) + 1.0 - mask[r, ell]
            out[idx + (r,)] = v
    return out


def YatRadialFeatures(X, W1, W2, OMEGA, PHASE, COEF, epsilon=1e-6, bias=1.0):
    x, w1, w2, omega, phase, coef = (_f(a) for a in (X, W1, W2, OMEGA, PHASE, COEF))
    m = w1.shape[0]
    j, r, _ = omega.shape
    out = np.zeros(x.shape[:-1] + (m * j * r,))
    for idx, row in _rows(x):
        z = np.append(_unit(row, epsilon), math.sqrt(bias))
        col = 0
        for a in range(m):
            psi = float(np.dot(z, w1[a])) * float(np.dot(z, w2[a])) / math.sqrt(m)
            for jj in range(j):
                amp = math.sqrt(2.0 / r) * math.sqrt(max(coef[jj], 0.0))
                for rr in range(r):
                    out[idx + (col,)] = psi * amp * math.cos(float(np.dot(z, omega[jj, rr])) + phase[jj, rr])
                    col += 1
    return out


def YatAnchorFeatures(X, ANCHORS, PROJ, NODES, WEIGHTS, epsilon=1e-6):
    x, anchors, proj, nodes, weights = (_f(a) for a in (X, ANCHORS, PROJ, NODES, WEIGHTS))
    p = anchors.shape[0]
    j, m, _ = proj.shape
    out = np.zeros(x.shape[:-1] + (j * p * m,))
    for idx, row in _rows(x):
        xh = _unit(row, epsilon)
        col = 0
        for jj in range(j):
            s = nodes[jj]
            for pp in range(p):
                poly = float(np.dot(xh, anchors[pp])) ** 2 / math.sqrt(p)
                for mm in range(m):
                    arg = math.sqrt(2.0 * max(s, 0.0)) * float(np.dot(proj[jj, mm], xh)) - s
                    prf = math.exp(min(max(arg, -20.0), 20.0)) / math.sqrt(m)
                    out[idx + (col,)] = math.sqrt(max(weights[jj], 0.0)) * poly * prf
                    col += 1
    return out


def YatLinearAttention(QF, KF, V, causal=0, epsilon=1e-6):
    qf, kf, v = _f(QF), _f(KF), _f(V)
    bsz, lq, h, _ = qf.shape
    out = np.zeros((bsz, lq, h, v.shape[-1]))
    for bi in range(bsz):
        for hi in range(h):
            for i in range(lq):
                keys = list(range(i + 1)) if causal else list(range(kf.shape[1]))
                w = np.array([float(np.dot(qf[bi, i, hi], kf[bi, jj, hi])) for jj in keys])
                den = float(w.sum())
                den = den + (epsilon if den >= 0 else -epsilon) if den != 0 else epsilon
                out[bi, i, hi] = w @ v[bi, keys, hi] / den
    return out


def _mha(feature, XQ, XK, XV, WQ, BQ, WK, BK, WV, BV, WO, BO, num_heads, causal):
    q = _heads(_project(XQ, WQ, BQ), num_heads)
    k = _heads(_project(XK, WK, BK), num_heads)
    v = _heads(_project(XV, WV, BV), num_heads)
    o = YatLinearAttention(feature(q), feature(k), v, causal, 1e-6)
    return _project(o.reshape(o.shape[0], o.shape[1], -1), WO, BO)


def YatMaclaurinMultiHeadAttention(
    XQ, XK, XV, MASK, WQ, BQ, WK, BK, WV, BV, WO, BO, ALPHA, EPS, OMEGA, DEGMASK, SCALE, num_heads=1, causal=0
):
    def feature(h):
        return YatMaclaurinFeatures(h, OMEGA, DEGMASK, SCALE, 1e-6)

    return _mha(feature, XQ, XK, XV, WQ, BQ, WK, BK, WV, BV, WO, BO, num_heads, causal)


def YatRadialMultiHeadAttention(
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
    W1,
    W2,
    OMEGA,
    PHASE,
    COEF,
    num_heads=1,
    causal=0,
    bias=1.0,
):
    def feature(h):
        return YatRadialFeatures(h, W1, W2, OMEGA, PHASE, COEF, 1e-6, bias)

    return _mha(feature, XQ, XK, XV, WQ, BQ, WK, BK, WV, BV, WO, BO, num_heads, causal)
