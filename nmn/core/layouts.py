"""Canonical (ONNX) <-> host weight layouts for dense, conv and conv-transpose kernels in all six frameworks.

Canonical layouts are ONNX's (docs/design.md §D6): dense ``W (O, I)``; conv ``W (M, C/G, *k)``;
conv-transpose ``W (C, M/G, *k)``. Each host keeps its own idiom:

=========  ==============  ====================  =======================================
framework  dense           conv                  conv-transpose
=========  ==============  ====================  =======================================
torch      ``(O, I)``      ``(M, C/G, *k)``      ``(C, M/G, *k)``
nnx        ``(I, O)``      ``(*k, C/G, M)``      ``(*k, C, M/G)``, spatially flipped (lax)
linen      ``(I, O)``      ``(*k, C/G, M)``      ``(*k, C, M/G)``, spatially flipped (lax)
keras      ``(I, O)``      ``(*k, C/G, M)``      ``(*k, M/G, C)``
tf         ``(I, O)``      ``(*k, C/G, M)``      ``(*k, M/G, C)``
mlx        ``(O, I)``      ``(M, *k, C/G)``      ``(M, *k, C/G)`` (per group: (M/G, *k, C/G))
=========  ==============  ====================  =======================================

Every conversion is a permutation of entries (transpose, flip, group regrouping), so it is exact and also maps
gradients. The functions work on any array with numpy-style ``transpose``, ``reshape``, ``shape`` and slicing
(numpy, JAX); frameworks with other spellings convert through numpy.

>>> import numpy as np
>>> w = np.arange(2 * 3 * 4).reshape(2, 3, 4)          # conv1d canonical (M=2, C=3, k=4)
>>> to_host("keras", "conv", w).shape
(4, 3, 2)
>>> bool((to_canonical("keras", "conv", to_host("keras", "conv", w)) == w).all())
True
>>> t = np.arange(4 * 3 * 5).reshape(4, 3, 5)          # conv-transpose canonical (C=4, M/G=3, k=5), groups=2
>>> bool((to_canonical("mlx", "conv_transpose", to_host("mlx", "conv_transpose", t, groups=2), groups=2) == t).all())
True
"""

from __future__ import annotations

FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
KINDS = ("dense", "conv", "conv_transpose")


def _flip(a, axes):
    index = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(len(a.shape)))
    return a[index]


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def host_permutation(framework: str, kind: str, rank: int) -> tuple[tuple[int, ...], bool]:
    """``(perm, flip)``: host = canonical.transpose(perm), then (if ``flip``) reversed along the spatial axes.

    Not defined for MLX conv-transpose with groups > 1 (a regrouping, see :func:`to_host`).
    """
    if framework not in FRAMEWORKS or kind not in KINDS:
        raise ValueError(f"unknown layout ({framework!r}, {kind!r}); frameworks {FRAMEWORKS}, kinds {KINDS}")
    spatial = tuple(range(2, rank + 2))
    if framework == "torch":
        return tuple(range(rank + 2)), False
    if kind == "dense":
        return ((0, 1), False) if framework == "mlx" else ((1, 0), False)
    if framework == "mlx":
        return (0, *spatial, 1) if kind == "conv" else (1, *spatial, 0), False
    if kind == "conv":
        return (*spatial, 1, 0), False
    if framework in ("nnx", "linen"):
        return (*spatial, 0, 1), True
    return (*spatial, 1, 0), False


def to_host(framework: str, kind: str, w, *, groups: int = 1):
    """Canonical kernel -> the host's layout."""
    rank = len(w.shape) - 2 if kind != "dense" else 0
    if framework == "mlx" and kind == "conv_transpose" and groups > 1:
        c, mg, *k = w.shape
        g = w.reshape(groups, c // groups, mg, *k)  # (G, C/G, M/G, *k)
        g = g.transpose(0, 2, *range(3, rank + 3), 1)  # (G, M/G, *k, C/G)
        return g.reshape(groups * mg, *k, c // groups)
    perm, flip = host_permutation(framework, kind, rank)
    out = w.transpose(*perm)
    return _flip(out, range(rank)) if flip else out


def to_canonical(framework: str, kind: str, w, *, groups: int = 1):
    """Host kernel -> the canonical (ONNX) layout."""
    if framework == "mlx" and kind == "conv_transpose" and groups > 1:
        m, *k, cg = w.shape
        rank = len(k)
        g = w.reshape(groups, m // groups, *k, cg)  # (G, M/G, *k, C/G)
        g = g.transpose(0, rank + 2, 1, *range(2, rank + 2))  # (G, C/G, M/G, *k)
        return g.reshape(groups * cg, m // groups, *k)
    rank = len(w.shape) - 2 if kind != "dense" else 0
    perm, flip = host_permutation(framework, kind, rank)
    if flip:
        w = _flip(w, range(rank))
    return w.transpose(*_inverse(perm))
