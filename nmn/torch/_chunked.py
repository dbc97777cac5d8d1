"""Yat attention in query tiles: peak memory O(L * tile) instead of O(L^2), same values as the reference path.

Every Yat normalisation (softmax, l1, softermax) needs a whole row of scores over the keys, and a query tile
holds whole rows, so each tile is the reference computation (:func:`nmn.core.yat.yat_attention`) on
``q[:, s:s + tile]`` with the mask rows of that tile (the causal rows built for the tile's positions). Only one
``(B, H, tile, Lk)`` block of scores lives at a time. When autograd records, each tile runs under
``torch.utils.checkpoint`` (non-reentrant), so the backward pass recomputes the tile instead of keeping its
scores: training memory is O(L * tile) too. Dropout replays the same random mask (checkpoint restores the RNG).

``NMN_ATTENTION_IMPL`` picks the path: ``auto`` (default: the fused Triton kernel of
``nmn.torch._triton_attention`` on CUDA when triton is installed, else tiles when ``Lq * Lk >= 2**20``),
``triton``, ``chunked`` or ``reference``.

>>> import torch
>>> q = torch.randn(1, 5, 2, 4)
>>> ref = yat_attention(q, q, q, None, None, 1e-5, tile=5)
>>> torch.allclose(yat_attention(q, q, q, None, None, 1e-5, tile=2), ref, atol=1e-6)
True
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch.utils.checkpoint import checkpoint

from nmn.core import yat as _yat
from nmn.torch._ops import ops_for

IMPLS = ("auto", "triton", "chunked", "reference")
TILE = 128
AUTO_MIN_SCORES = 2**20


def requested() -> str:
    """The path ``NMN_ATTENTION_IMPL`` asks for: ``auto`` (default), ``triton``, ``chunked`` or ``reference``.

    >>> requested() in IMPLS
    True
    """
    impl = os.environ.get("NMN_ATTENTION_IMPL", "auto").strip().lower() or "auto"
    if impl not in IMPLS:
        raise ValueError(f"NMN_ATTENTION_IMPL: expected one of {', '.join(IMPLS)}, got {impl!r}")
    return impl


def by_size(q, k) -> str:
    """``'chunked'`` when ``Lq * Lk >= 2**20`` (and more than one tile of queries), else ``'reference'``.

    >>> by_size(torch.zeros(1, 8, 1, 2), torch.zeros(1, 8, 1, 2))
    'reference'
    """
    return "chunked" if q.shape[1] * k.shape[1] >= AUTO_MIN_SCORES and q.shape[1] > TILE else "reference"


def pick(q, k) -> str:
    """``'triton'``, ``'chunked'`` or ``'reference'`` for heads ``q (B, Lq, H, D)``, ``k (B, Lk, H, D)``.

    ``NMN_ATTENTION_IMPL`` forces a path; ``auto`` (the default) takes the fused Triton kernel for CUDA tensors
    when triton is installed (``nmn.torch._triton_attention``; the caller falls back when the kernel does not
    support the call, e.g. dropout), else tiles when ``Lq * Lk >= 2**20``.

    >>> pick(torch.zeros(1, 8, 1, 2), torch.zeros(1, 8, 1, 2))
    'reference'
    """
    impl = requested()
    if impl != "auto":
        return impl
    if q.is_cuda and importlib.util.find_spec("triton") is not None:
        return "triton"
    return by_size(q, k)


def _rows(mask, start, stop, lq):
    """The rows ``start:stop`` of a bool mask broadcastable to ``(B, H, Lq, Lk)`` (a broadcast axis stays)."""
    if mask is None or mask.dim() < 2 or mask.shape[-2] == 1:
        return mask
    if mask.shape[-2] != lq:
        raise ValueError(f"yat_attention: mask of shape {tuple(mask.shape)} does not broadcast to {lq} queries")
    return mask[..., start:stop, :]


def yat_attention(
    q,
    k,
    v,
    mask,
    alpha,
    eps,
    *,
    spherical=False,
    normalization="softmax",
    power=1.0,
    causal=False,
    dropout=None,
    tile=TILE,
):
    """Yat attention of ``(B, L, H, D)`` heads in query tiles of ``tile`` rows (see the module docstring).

    Args:
        q, k, v: ``(B, Lq, H, D)``, ``(B, Lk, H, D)``, ``(B, Lk, H, Dv)``.
        mask: bool (True = attend) broadcastable to ``(B, H, Lq, Lk)``, or ``None``.
        alpha, eps: score scale (tensor, number or ``None``) and epsilon.
        spherical, normalization, power, causal, dropout: as :func:`nmn.core.yat.yat_attention`.
        tile: query rows per tile (default 128).

    Shape: ``-> (B, Lq, H, Dv)``.

    >>> q = torch.randn(2, 7, 1, 3)
    >>> yat_attention(q, q, q, None, None, 1e-5, causal=True, tile=3).shape
    torch.Size([2, 7, 1, 3])
    """
    F = ops_for(q)
    lq, lk = q.shape[1], k.shape[1]
    rows = torch.arange(lq, device=q.device)
    cols = torch.arange(lk, device=q.device)
    grad = torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in (q, k, v, alpha))
    outs = []
    for start in range(0, lq, tile):
        stop = min(start + tile, lq)
        m = _rows(mask, start, stop, lq)
        if causal:  # key j is visible to query i when j <= i + (Lk - Lq): the last query sees the last key
            c = cols[None, :] <= rows[start:stop, None] + (lk - lq)
            m = c if m is None else torch.logical_and(m, c)

        def block(qs, k, v, m=m):
            return _yat.yat_attention(
                F,
                qs,
                k,
                v,
                m,
                alpha,
                eps,
                spherical=spherical,
                normalization=normalization,
                power=power,
                causal=False,
                dropout=dropout,
            )

        qs = q[:, start:stop]
        outs.append(checkpoint(block, qs, k, v, use_reentrant=False) if grad else block(qs, k, v))
    return outs[0] if len(outs) == 1 else torch.cat(outs, 1)
