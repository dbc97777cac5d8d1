"""Yat attention in query tiles for JAX: O(L * tile) memory on any backend, forward and backward, no kernel.

The queries are cut into tiles of ``tile`` rows; :func:`jax.lax.map` runs the reference
:func:`nmn.core.yat.yat_attention` of one tile against all keys at a time, so at most a
``(B, H, tile, Lk)`` score block exists. The tile body is wrapped in :func:`jax.checkpoint`: the backward pass
keeps only each tile's queries (and mask rows) and recomputes its scores, instead of the whole ``(B, H, Lq, Lk)``
set of intermediates autodiff would save. Rows are independent, so the values are the reference's: causal
masking is the same offset lower triangle (the last query sees the last key), and a query row that sees no key
attends uniformly (docs/design.md §D5).

This is the CPU fallback for long sequences (``NMN_ATTENTION_IMPL=chunked``, or ``auto`` when
``Lq * Lk >= 2**20``; torch's eager tiles pay off earlier, from ``H * Lq * Lk >= 2**17``, while XLA fuses the
reference well below that); on GPU the Pallas kernel of :mod:`nmn._jax._flash` is taken.

>>> import jax.numpy as jnp
>>> from nmn._jax.ops import F
>>> from nmn.core import yat as core
>>> q = jnp.linspace(-1.0, 1.0, 2 * 9 * 1 * 3).reshape(2, 9, 1, 3)
>>> got = yat_attention(q, q, q, None, 1.0, 1e-3, causal=True, tile=4)
>>> bool(jnp.allclose(got, core.yat_attention(F, q, q, q, None, 1.0, 1e-3, causal=True), atol=1e-6))
True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from nmn._jax.ops import F
from nmn.core import yat as core

TILE = 128
AUTO_MIN_SCORES = 2**20


def by_size(lq: int, lk: int) -> bool:
    """Whether ``auto`` tiles: ``Lq * Lk >= 2**20`` and more than one tile of queries.

    >>> by_size(8, 8), by_size(4096, 4096)
    (False, True)
    """
    return lq * lk >= AUTO_MIN_SCORES and lq > TILE


def _mask4(mask, b, h, lq, lk):
    mask = jnp.asarray(mask, bool)
    want = (b, h, lq, lk)
    if mask.ndim > 4 or any(s not in (1, n) for s, n in zip(mask.shape[::-1], want[::-1])):
        raise ValueError(f"yat_attention: mask of shape {tuple(mask.shape)} does not broadcast to {want}")
    return mask.reshape((1,) * (4 - mask.ndim) + mask.shape)


def yat_attention(
    q, k, v, mask, alpha, eps, *, spherical=False, normalization="softmax", power=1.0, causal=False, tile=TILE
):
    """Yat attention of ``(B, L, H, D)`` heads in query tiles; the values of :func:`nmn.core.yat.yat_attention`.

    Args:
        q, k, v: ``(B, Lq, H, D)``, ``(B, Lk, H, D)``, ``(B, Lk, H, Dv)``.
        mask: bool (True = attend) broadcastable to ``(B, H, Lq, Lk)``, or ``None``.
        alpha, eps: score scale (array, number or ``None``) and epsilon.
        spherical, normalization, power, causal: as the reference.
        tile: query rows per tile (default 128).

    Returns ``(B, Lq, H, Dv)``, as the reference.

    >>> x = jnp.ones((1, 5, 2, 3))
    >>> yat_attention(x, x, x, None, None, 1e-5, tile=2).shape
    (1, 5, 2, 3)
    """
    b, lq, h, _ = q.shape
    lk = k.shape[1]
    tile = max(1, min(int(tile), lq))
    n = -(-lq // tile)
    rows = n * tile
    qp = jnp.pad(q, ((0, 0), (0, rows - lq), (0, 0), (0, 0))) if rows != lq else q
    q_tiles = jnp.moveaxis(qp.reshape(b, n, tile, *q.shape[2:]), 1, 0)  # (n, B, tile, H, D)
    mask4 = None if mask is None else _mask4(mask, b, h, lq, lk)
    per_row = mask4 is not None and mask4.shape[2] > 1
    if per_row:  # (Bm, Hm, Lq, Lk) -> (n, Bm, Hm, tile, Lk); padded rows attend to every key (then dropped)
        mp = jnp.pad(mask4, ((0, 0), (0, 0), (0, rows - lq), (0, 0)), constant_values=True)
        mask_tiles = jnp.moveaxis(mp.reshape(*mp.shape[:2], n, tile, lk), 2, 0)
    else:
        mask_tiles = jnp.zeros((n,), bool)  # a placeholder: the mask, if any, is one row for all queries
    starts = jnp.arange(n) * tile

    @jax.checkpoint
    def one(args):
        qt, mt, start = args
        m = mt if per_row else mask4
        if causal:  # row i sees key j <= i + (Lk - Lq), as nmn.core.yat.combine_causal
            i = start + jnp.arange(tile)[:, None]
            allowed = jnp.arange(lk)[None, :] <= i + (lk - lq)
            m = allowed if m is None else jnp.logical_and(m, allowed)
        return core.yat_attention(
            F, qt, k, v, m, alpha, eps, spherical=spherical, normalization=normalization, power=power
        )

    out = lax.map(one, (q_tiles, mask_tiles, starts))  # (n, B, tile, H, Dv)
    out = jnp.moveaxis(out, 0, 1).reshape(b, rows, *out.shape[3:])
    return out[:, :lq] if rows != lq else out
