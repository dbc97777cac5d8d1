"""Naive float64 oracles for YatDense, YatEmbedAttend and the squashers."""

import numpy as np

GUARD = 1e-8  # the norm guard of v / (|v| + 1e-8)


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _unit(v):
    return v / (np.sqrt(np.sum(v * v, axis=-1, keepdims=True)) + GUARD)


def yat_pairs(x, w, b, alpha, eps, spherical=0):
    """``alpha * (x.w_o + b_o)^2 / (dist + eps)`` for x (..., I) and every row w_o of w (O, I).

    The distance is the explicit ``sum((x - w_o)^2)``; in spherical mode x and w are unit vectors and the
    distance is defined as ``max(2 - 2 x.w_o, 0)``.
    """
    dot = np.einsum("...i,oi->...o", x, w)
    if spherical:
        dist = np.maximum(2.0 - 2.0 * dot, 0.0)
    else:
        diff = x[..., None, :] - w  # (..., O, I): every pair explicitly
        dist = np.sum(diff * diff, axis=-1)
    return alpha * (dot + b) ** 2 / (dist + eps)


def YatDense(X, W, B, ALPHA, EPS, spherical=0, weight_normalized=0):
    x, w, b, alpha, eps = _f64(X, W, B, ALPHA, EPS)
    if spherical or weight_normalized:
        w = _unit(w)
    if spherical:
        x = _unit(x)
    return yat_pairs(x, w, b, alpha, eps, spherical)


def YatEmbedAttend(Q, E, ALPHA, EPS, spherical=0):
    return YatDense(Q, E, np.zeros(1), ALPHA, EPS, spherical=spherical)


def Softermax(X, n=1.0, epsilon=1e-12, axis=-1):
    xn = np.asarray(X, np.float64) ** n
    return xn / (epsilon + np.sum(xn, axis=axis, keepdims=True))


def SofterSigmoid(X, n=1.0):
    xn = np.asarray(X, np.float64) ** n
    return xn / (1.0 + xn)


def SoftTanh(X, n=1.0):
    xn = np.asarray(X, np.float64) ** n
    return (xn - 1.0) / (xn + 1.0)
