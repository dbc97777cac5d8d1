"""Naive float64 oracles for YatConv and YatConvTranspose: every patch explicitly, distance ``sum((P - W_m)^2)``."""

import itertools

import numpy as np

_NP_MODE = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _defaults(r, strides, dilations, pads):
    strides = list(strides) if strides is not None else [1] * r
    dilations = list(dilations) if dilations is not None else [1] * r
    pads = list(pads) if pads is not None else [0] * (2 * r)
    return strides, dilations, pads


def _same_pads(size, k, s, d, auto_pad):
    """(low, high) zero padding of one axis for Conv's auto_pad."""
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    small = total // 2
    return (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)


def yat_patch(patch, w, b, alpha, eps):
    """Yat product of one patch (N, Cg, *k) with filters w (Mg, Cg, *k) -> (N, Mg), distance written out."""
    p = patch[:, None]  # (N, 1, Cg, *k)
    axes = tuple(range(2, p.ndim))
    dot = np.sum(p * w[None], axis=axes)
    dist = np.sum((p - w[None]) ** 2, axis=axes)
    return alpha * (dot + b) ** 2 / (dist + eps)


def _stuff_zeros(x, dilations):
    """``d - 1`` zeros between neighbouring samples of each spatial axis: ``n -> (n - 1) d + 1``."""
    r = x.ndim - 2
    out = np.zeros(x.shape[:2] + tuple((x.shape[2 + i] - 1) * int(dilations[i]) + 1 for i in range(r)))
    out[(slice(None), slice(None)) + tuple(slice(None, None, int(d)) for d in dilations)] = x
    return out


def YatConv(
    X,
    W,
    B,
    ALPHA,
    EPS,
    strides=None,
    pads=None,
    dilations=None,
    group=1,
    auto_pad="NOTSET",
    pad_mode="constant",
    weight_normalized=0,
    input_dilations=None,
):
    x = np.asarray(X, np.float64)
    w = np.asarray(W, np.float64)
    r = x.ndim - 2
    if input_dilations is not None and any(int(d) != 1 for d in input_dilations):
        x = _stuff_zeros(x, input_dilations)
    strides, dilations, pads = _defaults(r, strides, dilations, pads)
    b = np.broadcast_to(np.asarray(B, np.float64).reshape(-1), (w.shape[0],))
    alpha, eps = float(np.asarray(ALPHA).reshape(-1)[0]), float(np.asarray(EPS).reshape(-1)[0])
    if weight_normalized:
        norms = np.sqrt(np.sum(w * w, axis=tuple(range(1, w.ndim)), keepdims=True))
        w = w / (norms + 1e-8)
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + r]) for i in range(r)]
    xp = np.pad(x, width, mode=_NP_MODE[pad_mode])
    ks = w.shape[2:]
    same = [_same_pads(xp.shape[2 + i], ks[i], strides[i], dilations[i], auto_pad) for i in range(r)]
    xp = np.pad(xp, [(0, 0), (0, 0)] + same)  # auto_pad padding is always zeros
    outs = [(xp.shape[2 + i] - (ks[i] - 1) * dilations[i] - 1) // strides[i] + 1 for i in range(r)]
    n, c = x.shape[:2]
    m = w.shape[0]
    cg, mg = c // group, m // group
    y = np.zeros((n, m, *outs))
    for pos in itertools.product(*[range(o) for o in outs]):
        window = tuple(
            slice(pos[i] * strides[i], pos[i] * strides[i] + (ks[i] - 1) * dilations[i] + 1, dilations[i])
            for i in range(r)
        )
        for g in range(group):
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            sel = slice(g * mg, (g + 1) * mg)
            y[(slice(None), sel) + pos] = yat_patch(patch, w[sel], b[sel], alpha, eps)
    return y


def _transpose_pads(size, k, s, d, op, auto_pad):
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return 0, 0
    full = (size - 1) * s + (k - 1) * d + 1 + op
    total = max(full - size * s, 0)
    small = total // 2
    return (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)


def YatConvTranspose(
    X,
    W,
    B,
    ALPHA,
    EPS,
    strides=None,
    pads=None,
    dilations=None,
    group=1,
    auto_pad="NOTSET",
    output_padding=None,
    weight_normalized=0,
):
    """Per output position q: the patch value at (c, t) is x[c, i] when ``q + pad = i*s + t*d`` for an integer
    ``0 <= i < L``, else 0 (an inserted zero); distance ``sum((patch - W[:, m])^2)`` over c in m's group and all t.

    ``weight_normalized``: filter ``m`` (the ``W[c, m', t]`` of its group's ``c`` and every ``t``) is divided by
    ``its norm + 1e-8`` first (nmn 0.3.5's Keras transposed convolutions)."""
    x = np.asarray(X, np.float64)
    w = np.asarray(W, np.float64)
    r = x.ndim - 2
    strides, dilations, pads = _defaults(r, strides, dilations, pads)
    out_pad = list(output_padding) if output_padding is not None else [0] * r
    n, c = x.shape[:2]
    ks = w.shape[2:]
    mg = w.shape[1]
    m, cg = mg * group, c // group
    if weight_normalized:
        w = w.copy()
        for g in range(group):
            block = w[g * cg : (g + 1) * cg]  # (Cg, Mg, *k): filter m' is block[:, m']
            norms = np.sqrt(np.sum(block * block, axis=(0, *range(2, block.ndim)), keepdims=True))
            w[g * cg : (g + 1) * cg] = block / (norms + 1e-8)
    b = np.broadcast_to(np.asarray(B, np.float64).reshape(-1), (m,))
    alpha, eps = float(np.asarray(ALPHA).reshape(-1)[0]), float(np.asarray(EPS).reshape(-1)[0])
    auto = [_transpose_pads(x.shape[2 + i], ks[i], strides[i], dilations[i], out_pad[i], auto_pad) for i in range(r)]
    begin = [pads[i] + auto[i][0] for i in range(r)]
    end = [pads[i + r] + auto[i][1] for i in range(r)]
    outs = [
        (x.shape[2 + i] - 1) * strides[i] + (ks[i] - 1) * dilations[i] + 1 + out_pad[i] - begin[i] - end[i]
        for i in range(r)
    ]
    y = np.zeros((n, m, *outs))
    for q in itertools.product(*[range(o) for o in outs]):
        patch = np.zeros((n, c, *ks))
        for t in itertools.product(*[range(k) for k in ks]):
            src = []
            for i in range(r):
                num = q[i] + begin[i] - t[i] * dilations[i]
                if num % strides[i] or not 0 <= num // strides[i] < x.shape[2 + i]:
                    break
                src.append(num // strides[i])
            else:
                patch[(slice(None), slice(None)) + t] = x[(slice(None), slice(None)) + tuple(src)]
        for g in range(group):
            sel = slice(g * mg, (g + 1) * mg)
            filters = np.swapaxes(w[g * cg : (g + 1) * cg], 0, 1)  # (Mg, Cg, *k)
            y[(slice(None), sel) + q] = yat_patch(patch[:, g * cg : (g + 1) * cg], filters, b[sel], alpha, eps)
    return y
