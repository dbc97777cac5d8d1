"""Yat attention in query x key tiles with an online combine: working set O(tile), never ``Lq x Lk``.

The scores of one ``(B, H, tq, tk)`` tile, ``s = alpha (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + eps) sqrt(D))``,
are built in place in two temporaries (the dot product, then the distance), normalised on the fly and
multiplied into V; the tile's size comes from a byte budget (:func:`tiles`), so the temporaries stay near the
size of a fused SDPA kernel's working set whatever L is. Per query row it keeps:

* ``softmax``: the running maximum ``m`` and the running sum ``l`` of ``exp(s - m)`` (the accumulated
  ``exp(s - m) V`` is rescaled by ``exp(m_old - m_new)`` when the maximum grows), as flash attention does
  (Dao et al., 2022). A masked score is the most negative float32, as in :func:`nmn.core.yat.normalize_scores`,
  so a row that attends to nothing comes out uniform.
* ``l1`` and ``softermax``: Yat scores are non-negative, so only the running sum ``S`` of ``t = s`` (or
  ``s^power``) is needed; the weights are ``t / (S + floor)`` (``floor`` = ``eps`` or 1e-12). Rows that attend
  to no key are found first (from the mask tiles alone) and take ``t = 1`` for every key and no floor: uniform.

Dropout (a callable on the weights, as in :func:`nmn.core.yat.yat_attention`) is applied to each tile of
unnormalised weights; dropout is elementwise and linear, so ``dropout(t) / Z`` is ``dropout(t / Z)``, and the
weights it drops are dropped in V's sum but not in the normaliser, as in the reference. The backward pass
(a ``torch.autograd.Function``) keeps only ``q, k, v``, the output and the per-row statistics, and recomputes
every tile; it replays the forward's random state, so its dropout masks are the forward's. Gradients, with
``c = alpha / sqrt(D)``, ``r = dot / den`` and ``pos = [dist > 0]``: the score gradient ``g`` is
``P (dP - delta)`` (softmax) or ``(dP - delta) / Z`` times ``dt/ds`` (l1, softermax), ``delta_i = dO_i . O_i``;
then ``d dot = 2 c g r (1 + r pos)``, ``d|q|^2 = d|k|^2 = -c g r^2 pos`` and ``d alpha = sum g dot r / sqrt(D)``.

``NMN_ATTENTION_IMPL`` picks the path: ``auto`` (default: the fused Triton kernel of
``nmn._torch._triton_attention`` on CUDA when triton is installed, else tiles when ``H * Lq * Lk >= 2**17``),
``triton``, ``chunked`` or ``reference``. ``NMN_ATTENTION_TILE_BYTES`` sets the byte budget of one score tile
(default 1 MiB).

>>> import torch
>>> q = torch.randn(1, 5, 2, 4)
>>> ref = yat_attention(q, q, q, None, None, 1e-5, tile=5, key_tile=5)
>>> torch.allclose(yat_attention(q, q, q, None, None, 1e-5, tile=2, key_tile=3), ref, atol=1e-6)
True
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from typing import Any

import torch

from nmn.core.options import SOFTERMAX_EPSILON, env_choice
from nmn.core.yat import NEG_LARGE

IMPLS = ("auto", "triton", "chunked", "reference")
TILE_BYTES = 1 << 20
AUTO_MIN_SCORES = 2**17  # H * Lq * Lk from which the tiles beat the reference on the CPU (measured: README)
MIN_TILE = 16
KEY_TILE = 512


def requested() -> str:
    """The path ``NMN_ATTENTION_IMPL`` asks for: ``auto`` (default), ``triton``, ``chunked`` or ``reference``.

    >>> requested() in IMPLS
    True
    """
    return env_choice("NMN_ATTENTION_IMPL", IMPLS)


def budget() -> int:
    """Bytes of one ``(B, H, tq, tk)`` score tile: ``NMN_ATTENTION_TILE_BYTES`` or 1 MiB (:data:`TILE_BYTES`).

    >>> budget() > 0
    True
    """
    text = os.environ.get("NMN_ATTENTION_TILE_BYTES", "").strip()
    if not text:
        return TILE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"NMN_ATTENTION_TILE_BYTES: expected a positive number of bytes, got {text!r}")
    return value


def tiles(q: torch.Tensor, k: torch.Tensor, tile_bytes: int | None = None) -> tuple[int, int]:
    """``(query rows, key columns)`` of a tile for heads ``q (B, Lq, H, D)``, ``k (B, Lk, H, D)``.

    Tiles are per batch element: one holds ``H * tq * tk`` numbers of the compute type (float32, or float64
    for float64 inputs) and is at most ``tile_bytes`` (default :func:`budget`): keys in blocks of up to 512,
    query rows as many as fit, at least 16 of each.

    >>> tiles(torch.zeros(1, 4096, 4, 32), torch.zeros(1, 4096, 4, 32))
    (128, 512)
    >>> tiles(torch.zeros(8, 100, 8, 32), torch.zeros(8, 100, 8, 32))
    (100, 100)
    """
    lq, h, lk = q.shape[1], q.shape[2], k.shape[1]
    size = _compute_dtype(q, k, k).itemsize
    cells = max(1, (tile_bytes or budget()) // (size * max(1, h)))
    tk = min(lk, KEY_TILE, max(MIN_TILE, cells // MIN_TILE))
    tq = min(lq, max(MIN_TILE, cells // max(tk, 1)))
    return tq, tk


def by_size(q: torch.Tensor, k: torch.Tensor) -> str:
    """``'chunked'`` when ``H * Lq * Lk >= 2**17`` scores per batch element (from there the tiles are faster
    than the reference on the CPU, forward and backward: E256 H8 B8 at L = 128), else ``'reference'``.

    >>> by_size(torch.zeros(1, 8, 1, 2), torch.zeros(1, 8, 1, 2))
    'reference'
    >>> by_size(torch.zeros(1, 128, 8, 2), torch.zeros(1, 128, 8, 2))
    'chunked'
    """
    return "chunked" if q.shape[2] * q.shape[1] * k.shape[1] >= AUTO_MIN_SCORES else "reference"


def pick(q: torch.Tensor, k: torch.Tensor) -> str:
    """``'triton'``, ``'chunked'`` or ``'reference'`` for heads ``q (B, Lq, H, D)``, ``k (B, Lk, H, D)``.

    ``NMN_ATTENTION_IMPL`` forces a path; ``auto`` (the default) takes the fused Triton kernel for CUDA tensors
    when triton is installed (``nmn._torch._triton_attention``; the caller falls back when the kernel does not
    support the call, e.g. dropout), else :func:`by_size`.

    >>> pick(torch.zeros(1, 8, 1, 2), torch.zeros(1, 8, 1, 2))
    'reference'
    """
    impl = requested()
    if impl != "auto":
        return impl
    if q.is_cuda and importlib.util.find_spec("triton") is not None:
        return "triton"
    return by_size(q, k)


def _compute_dtype(q, k, v):
    return torch.promote_types(torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype), torch.float32)


def _check_mask(mask, lq, lk):
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"yat_attention: the mask must be bool (True = attend), got {mask.dtype}")
    shape = tuple(mask.shape)
    if (
        mask.dim() > 4
        or (mask.dim() >= 1 and shape[-1] not in (1, lk))
        or (mask.dim() >= 2 and shape[-2] not in (1, lq))
    ):
        raise ValueError(
            f"yat_attention: mask of shape {shape} does not broadcast to (B, H, {lq}, {lk}) (queries, keys)"
        )
    return mask


def _mask_tile(mask, qs, qe, ks, ke):
    """Rows ``qs:qe`` and columns ``ks:ke`` of a mask broadcastable to ``(B, H, Lq, Lk)`` (broadcast axes stay)."""
    if mask.dim() >= 2 and mask.shape[-2] != 1:
        mask = mask[..., qs:qe, :]
    if mask.dim() >= 1 and mask.shape[-1] != 1:
        mask = mask[..., ks:ke]
    return mask


class _Plan:
    """Everything a pass needs besides the tensors: options, tile sizes and the tile iteration order."""

    def __init__(self, q, k, v, mask, eps, spherical, normalization, power, causal, dropout, tq, tk):
        self.b, self.lq, self.h, self.d = q.shape
        self.lk = k.shape[1]
        self.dtype = _compute_dtype(q, k, v)
        self.eps, self.spherical, self.norm, self.power = eps, spherical, normalization, power
        self.causal, self.dropout, self.tq, self.tk = causal, dropout, tq, tk
        self.mask = mask
        self.offset = self.lk - self.lq  # key j is visible to query i when j <= i + offset
        # causal tiles wholly above the diagonal hold no visible key; they are skipped when no row can be
        # empty (no other mask and Lk >= Lq), so nothing but zeros is skipped
        self.skip = causal and mask is None and self.lk >= self.lq
        self.floor = eps if normalization == "l1" else SOFTERMAX_EPSILON
        self.device = q.device
        self.grad = False  # whether autograd records the call (set by yat_attention): the forward keeps statistics
        self.rows = torch.arange(self.lq, device=q.device)
        self.cols = torch.arange(self.lk, device=q.device)

    def query_tiles(self):
        for qs in range(0, self.lq, self.tq):
            yield qs, min(qs + self.tq, self.lq)

    def key_tiles(self, qs, qe):
        stop = min(self.lk, qe + self.offset) if self.skip else self.lk  # row qe - 1 sees keys < qe + offset
        for ks in range(0, stop, self.tk):
            yield ks, min(ks + self.tk, self.lk)


def _tail_scale(alpha, d):
    """``(c, fold)``: the score scale ``c = alpha / sqrt(D)`` and whether it is a positive number (folded into
    the denominator: ``s = dot^2 / den'`` with ``den' = den / c``, one pass fewer per tile)."""
    scale = 1.0 / math.sqrt(d)
    if alpha is None:
        return scale, True
    value = float(alpha.detach().reshape(-1)[0]) if alpha.numel() == 1 else -1.0
    if value > 0.0 and math.isfinite(value):
        return value * scale, True
    return alpha * scale, False


class _Tiles:
    """The inputs of one batch element as ``(H, L, D)`` views and the tile builders over them."""

    def __init__(self, p, q, k, v, c, fold, bi):
        ct = p.dtype
        self.p, self.c, self.fold = p, c, fold
        self.q, self.k, self.v = (x[bi].transpose(0, 1) for x in (q, k, v))  # (H, L, D) views, no copy
        if ct != q.dtype or ct != k.dtype or ct != v.dtype:
            self.q, self.k, self.v = (x.to(ct) for x in (self.q, self.k, self.v))
        self.mask = None
        if p.mask is not None:
            m = p.mask
            self.mask = m[bi if m.shape[0] > 1 else 0] if m.dim() == 4 else m
        if not p.spherical:  # (|q|^2 + eps) / c and |k|^2 / c: den' = relu(dist) / c + eps / c
            inv = 1.0 / c if fold else 1.0
            self.qq = self.q.square().sum(-1).add_(p.eps).mul_(inv)
            self.kk = self.k.square().sum(-1).mul_(inv)
        self.low = p.eps / c if fold else p.eps

    def mask_tile(self, qs, qe, ks, ke):
        p = self.p
        m = None if self.mask is None else _mask_tile(self.mask, qs, qe, ks, ke)
        if p.causal and ke - 1 > qs + p.offset:  # some key of the tile is after some query's last key
            cm = p.cols[None, ks:ke] <= p.rows[qs:qe, None] + p.offset
            m = cm if m is None else m & cm
        return m

    def empty_rows(self, qs, qe):
        """Bool ``(H, qe - qs)`` of the rows that attend to no key, or ``None`` when every row attends to one."""
        p = self.p
        if p.mask is None and (p.offset >= 0 or not p.causal):
            return None
        seen = None
        for ks, ke in p.key_tiles(qs, qe):
            m = self.mask_tile(qs, qe, ks, ke)
            if m is None:
                return None
            hit = m.any(-1)
            seen = hit if seen is None else seen | hit
        if seen is None or bool(seen.all()):
            return None
        return torch.broadcast_to(~seen, (p.h, qe - qs))

    def scores(self, qs, qe, ks, ke, grad=False):
        """``(s, rho, pos, u)`` of one ``(H, tq, tk)`` tile: ``s = c dot^2 / den`` with
        ``den = relu(|q|^2 + |k|^2 - 2 q.k) + eps`` (spherical: ``relu(2 - 2 q.k) + eps``); with ``grad`` also
        ``rho = dot / den`` (times ``c`` when folded), ``pos = [dist > 0]`` (``None`` where every distance is
        positive) and, unfolded, ``u = s / c``."""
        p = self.p
        qt, kt = self.q[:, qs:qe], self.k[:, ks:ke]
        dot = torch.bmm(qt, kt.transpose(1, 2))
        inv = 1.0 / self.c if self.fold else 1.0
        if p.spherical:  # den' = (2 + eps - 2 dot) / c, floored at eps / c
            den = torch.mul(dot, -2.0 * inv).add_((2.0 + p.eps) * inv)
        else:
            den = torch.add(self.qq[:, qs:qe, None], self.kk[:, None, ks:ke]).add_(dot, alpha=-2.0 * inv)
        pos = None
        if grad and float(den.min()) <= self.low:
            pos = den > self.low
        den.clamp_(min=self.low)
        if not grad:
            s = dot.square_().div_(den)
            return (s if self.fold else s.mul_(self.c)), None, None, None
        rho = torch.div(dot, den, out=den)  # c dot / den (fold) or dot / den
        if self.fold:
            return dot.mul_(rho), rho, pos, None
        u = dot.mul_(rho)  # s / c
        return u * self.c, rho, pos, u


def _forward(p, q, k, v, alpha, grad):
    """Output ``(B, Lq, H, Dv)`` and the per-row statistics ``(stat, empty)`` of the backward pass (with
    ``grad``): ``stat`` is ``m + log l`` (softmax) or ``Z`` (l1, softermax), ``empty`` the rows that attend to
    no key (or ``None``)."""
    ct = p.dtype
    c, fold = _tail_scale(alpha, p.d)
    out = torch.empty(p.b, p.lq, p.h, v.shape[-1], dtype=ct, device=p.device)
    stat = torch.empty(p.b, p.h, p.lq, dtype=ct, device=p.device) if grad else None
    empty_all = None
    for bi in range(p.b):
        t = _Tiles(p, q, k, v, c, fold, bi)
        out_h = out[bi].transpose(0, 1)
        for qs, qe in p.query_tiles():
            empty = None if p.norm == "softmax" else t.empty_rows(qs, qe)
            acc = mrow = lrow = None
            for ks, ke in p.key_tiles(qs, qe):
                m = t.mask_tile(qs, qe, ks, ke)
                s = t.scores(qs, qe, ks, ke)[0]
                vt = t.v[:, ks:ke]
                if p.norm == "softmax":
                    if m is not None:
                        s.masked_fill_(~m, NEG_LARGE)
                    if not grad and ke - ks == p.lk:  # one key tile: the fused softmax, in place
                        w = torch.softmax(s, -1, out=s)
                        acc, lrow = torch.bmm(p.dropout(w) if p.dropout is not None else w, vt), None
                        continue
                    mnew = s.amax(-1)
                    if mrow is not None:
                        mnew = torch.maximum(mrow, mnew)
                    w = s.sub_(mnew[..., None]).exp_()
                    rowsum = w.sum(-1)
                    if acc is None:
                        acc, lrow = torch.bmm(p.dropout(w) if p.dropout is not None else w, vt), rowsum
                    else:
                        corr = (mrow - mnew).exp_()
                        lrow = lrow.mul_(corr).add_(rowsum)
                        acc = acc.mul_(corr[..., None]).baddbmm_(p.dropout(w) if p.dropout is not None else w, vt)
                    mrow = mnew
                else:
                    w = s if p.norm == "l1" or p.power == 1.0 else s.pow_(p.power)
                    if m is not None:
                        w.masked_fill_(~m, 0.0)
                    if empty is not None:
                        w.masked_fill_(empty[..., None], 1.0)
                    rowsum = w.sum(-1)
                    wd = p.dropout(w) if p.dropout is not None else w
                    acc, lrow = (
                        (torch.bmm(wd, vt), rowsum) if acc is None else (acc.baddbmm_(wd, vt), lrow.add_(rowsum))
                    )
                del s, w
            if p.norm == "softmax":
                if lrow is None:  # the fused softmax: already normalised
                    out_h[:, qs:qe] = acc
                    continue
                z = lrow
                gone = mrow == NEG_LARGE  # rows that attend to nothing: m + log l rounds to m in float32
                if bool(gone.any()):
                    empty = gone
                if grad:
                    stat[bi, :, qs:qe] = mrow + lrow.log()
            else:
                z = lrow + p.floor if empty is None else torch.where(empty, lrow, lrow + p.floor)
                if grad:
                    stat[bi, :, qs:qe] = z
            if empty is not None and grad:
                if empty_all is None:
                    empty_all = torch.zeros(p.b, p.h, p.lq, dtype=torch.bool, device=p.device)
                empty_all[bi, :, qs:qe] = empty
            out_h[:, qs:qe] = acc.div_(z[..., None])
    return out, stat, empty_all


def _backward(p, q, k, v, alpha, out, stat, empty_all, dout, rng, need):
    """Gradients ``(dq, dk, dv, dalpha)`` by recomputing every tile (same order, same random state as forward)."""
    ct = p.dtype
    c, fold = _tail_scale(alpha, p.d)
    inv = 1.0 / c if fold else 1.0
    dq = torch.empty(q.shape, dtype=ct, device=p.device)  # every query tile writes its rows
    dk = torch.zeros(k.shape, dtype=ct, device=p.device)  # causal tiles may skip keys: zeros there
    dv = torch.zeros(v.shape, dtype=ct, device=p.device)
    galpha = torch.zeros((), dtype=ct, device=p.device) if need[3] else None
    devices = [p.device] if p.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=rng is not None):
        if rng is not None:
            torch.set_rng_state(rng[0])
            if rng[1] is not None:
                torch.cuda.set_rng_state(rng[1], p.device)
        for bi in range(p.b):
            t = _Tiles(p, q, k, v, c, fold, bi)
            dq_h, dk_h, dv_h = dq[bi].transpose(0, 1), dk[bi].transpose(0, 1), dv[bi].transpose(0, 1)
            gkk = None if p.spherical else torch.zeros(p.h, p.lk, dtype=ct, device=p.device)
            # dq, dk and dv accumulate in contiguous (H, tile, D) blocks: baddbmm_ into a slice of a longer
            # (H, L, D) tensor runs one addmm_ per head on the CPU (measured 240 us against 120 us per call)
            blocks = {}  # key tile start -> (dk, dv) blocks
            for qs, qe in p.query_tiles():
                qt = t.q[:, qs:qe]
                do = dout[bi, qs:qe].transpose(0, 1).to(ct).contiguous()  # a .sum()'s gradient is stride 0
                delta = (do * out[bi, qs:qe].transpose(0, 1)).sum(-1)[..., None]
                st = stat[bi, :, qs:qe, None]
                empty = None if empty_all is None else empty_all[bi, :, qs:qe, None]
                gq = None if p.spherical else torch.zeros(p.h, qe - qs, dtype=ct, device=p.device)
                dqt = torch.zeros(p.h, qe - qs, p.d, dtype=ct, device=p.device)
                for ks, ke in p.key_tiles(qs, qe):
                    kt, vt = t.k[:, ks:ke], t.v[:, ks:ke]
                    if ks not in blocks:
                        blocks[ks] = tuple(
                            torch.zeros(p.h, ke - ks, n, dtype=ct, device=p.device) for n in (p.d, v.shape[-1])
                        )
                    dk_b, dv_b = blocks[ks]
                    m = t.mask_tile(qs, qe, ks, ke)
                    s, rho, pos, u = t.scores(qs, qe, ks, ke, grad=True)
                    keep_s = galpha is not None and fold
                    if p.norm == "softmax":
                        if m is not None:
                            s.masked_fill_(~m, NEG_LARGE)
                        w = (torch.sub(s, st) if keep_s else s.sub_(st)).exp_()
                        if empty is not None:
                            w.masked_fill_(empty, 1.0 / p.lk)
                        dts = None
                    else:
                        dts = None if p.norm == "l1" or p.power == 1.0 else torch.pow(s, p.power - 1.0).mul_(p.power)
                        w = torch.pow(s, p.power) if dts is not None else (s.clone() if keep_s else s)
                        if m is not None:
                            w.masked_fill_(~m, 0.0)
                        if empty is not None:
                            w.masked_fill_(empty, 1.0)
                        w.div_(st)
                    keep = p.dropout(torch.ones_like(w)) if p.dropout is not None else None
                    dv_b.baddbmm_((w if keep is None else w * keep).transpose(1, 2), do)
                    g = torch.bmm(do, vt.transpose(1, 2))
                    if keep is not None:
                        g.mul_(keep)
                    del keep
                    g.sub_(delta)
                    if p.norm == "softmax":
                        g.mul_(w)
                    else:
                        g.div_(st)
                        if dts is not None:
                            g.mul_(dts)
                    del w, dts
                    if m is not None:
                        g.masked_fill_(~m, 0.0)
                    if galpha is not None:  # ds/dalpha = s / alpha
                        galpha += torch.sum(g * s) if fold else torch.sum(g * u) / math.sqrt(p.d)
                    del s, u
                    a = g.mul_(rho)  # c g r (fold: rho = c r; else rho = r: one more scaling)
                    if not fold:
                        a.mul_(c)
                    b = rho.mul_(a)  # fold: c^2 g r^2; else c g r^2
                    if pos is not None:
                        b.mul_(pos)
                    if gq is not None:  # d|q|^2 = d|k|^2 = -c g r^2 pos
                        gq.add_(b.sum(-1), alpha=-inv)
                        gkk[:, ks:ke].add_(b.sum(-2), alpha=-inv)
                    h = a.add_(b, alpha=inv)  # half of d dot: c g r (1 + r pos)
                    del b, rho
                    dqt.baddbmm_(h, kt, alpha=2.0)
                    dk_b.baddbmm_(h.transpose(1, 2), qt, alpha=2.0)
                    del h, a, g
                if gq is not None:
                    dqt.addcmul_(qt, gq[..., None], value=2.0)
                dq_h[:, qs:qe] = dqt
            for ks, (dk_b, dv_b) in blocks.items():
                dk_h[:, ks : ks + dk_b.shape[1]] = dk_b
                dv_h[:, ks : ks + dv_b.shape[1]] = dv_b
            if gkk is not None:
                dk_h.addcmul_(t.k, gkk[..., None], value=2.0)
    if galpha is not None:
        if fold:
            galpha = galpha / (c * math.sqrt(p.d))
        galpha = galpha.reshape(alpha.shape).to(alpha.dtype)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), galpha


class _TiledAttention(torch.autograd.Function):
    """Forward in tiles; backward recomputes them (only q, k, v, the output and row statistics are kept)."""

    @staticmethod
    def forward(ctx, q, k, v, alpha, plan):
        rng = None
        if plan.dropout is not None:  # the backward pass replays the forward's dropout draws
            cuda = torch.cuda.get_rng_state(q.device) if q.is_cuda else None
            rng = (torch.get_rng_state(), cuda)
        out, stat, empty = _forward(plan, q, k, v, alpha, plan.grad)
        ctx.plan, ctx.rng = plan, rng
        ctx.save_for_backward(q, k, v, alpha, out, stat, empty)
        return out.to(v.dtype)

    @staticmethod
    def backward(ctx, dout):
        q, k, v, alpha, out, stat, empty = ctx.saved_tensors
        dq, dk, dv, galpha = _backward(ctx.plan, q, k, v, alpha, out, stat, empty, dout, ctx.rng, ctx.needs_input_grad)
        return dq, dk, dv, galpha, None


def yat_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    alpha: Any,
    eps: float,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout: Callable[[torch.Tensor], torch.Tensor] | None = None,
    tile: int | None = None,
    key_tile: int | None = None,
) -> torch.Tensor:
    """Yat attention of ``(B, L, H, D)`` heads in ``(tile, key_tile)`` tiles (see the module docstring).

    Args:
        q, k, v: ``(B, Lq, H, D)``, ``(B, Lk, H, D)``, ``(B, Lk, H, Dv)``.
        mask: bool (True = attend) broadcastable to ``(B, H, Lq, Lk)``, or ``None``.
        alpha, eps: score scale (tensor, number or ``None``) and epsilon.
        spherical, normalization, power, causal, dropout: as :func:`nmn.core.yat.yat_attention`.
        tile, key_tile: query rows and key columns per tile (default: :func:`tiles`, from the byte budget).

    Shape: ``-> (B, Lq, H, Dv)``.

    >>> q = torch.randn(2, 7, 1, 3)
    >>> yat_attention(q, q, q, None, None, 1e-5, causal=True, tile=3, key_tile=2).shape
    torch.Size([2, 7, 1, 3])
    """
    lq, lk = q.shape[1], k.shape[1]
    mask = _check_mask(mask, lq, lk)
    for name, value in (("eps", eps), ("power", power)):
        if isinstance(value, torch.Tensor) and value.requires_grad:
            raise ValueError(
                f"yat_attention: the tiled path takes a fixed {name} (a number), got a tensor that requires grad; "
                "use NMN_ATTENTION_IMPL=reference to learn it"
            )
    eps, power = float(eps), float(power)
    auto_q, auto_k = tiles(q, k)
    tq = max(1, min(tile or auto_q, lq))
    tk = max(1, min(key_tile or (lk if tile and not key_tile else auto_k), lk))
    if spherical:
        q = q / torch.sqrt(q.square().sum(-1, keepdim=True) + eps)
        k = k / torch.sqrt(k.square().sum(-1, keepdim=True) + eps)
    if alpha is not None and not isinstance(alpha, torch.Tensor):
        alpha = torch.tensor(float(alpha), dtype=_compute_dtype(q, k, v), device=q.device)
    plan = _Plan(q, k, v, mask, eps, spherical, normalization, power, causal, dropout, tq, tk)
    plan.grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in (q, k, v, alpha)
    )
    return _TiledAttention.apply(q, k, v, alpha, plan)


def fast_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    alpha: Any,
    eps: Any,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout: Callable[[torch.Tensor], torch.Tensor] | None = None,
    label: str = "yat_attention",
) -> torch.Tensor | None:
    """The attention of :func:`pick`'s path for this call, or ``None`` where the reference formula is to run.

    The one choice of path for ``nmn.torch`` and for ``nmn.keras`` on the torch backend: the fused Triton kernel
    (:mod:`nmn._torch._triton_attention`) where it supports the call, else the tiles here, else ``None``. A forced
    ``NMN_ATTENTION_IMPL=triton`` that cannot run the call raises a ``ValueError`` naming ``label``.

    >>> q = torch.ones(1, 3, 2, 4)
    >>> fast_attention(q, q, q, None, None, 1e-5) is None   # 2 x 3 x 3 scores: the reference
    True
    """
    impl = pick(q, k)
    if impl == "triton":
        from nmn._torch import _triton_attention

        why = _triton_attention.supported(q, mask, dropout)
        if not why:
            return _triton_attention.yat_attention(
                q, k, v, mask, alpha, eps, spherical=spherical, normalization=normalization, power=power,
                causal=causal,
            )  # fmt: skip
        if requested() == "triton":
            raise ValueError(f"{label}: NMN_ATTENTION_IMPL=triton cannot run this call: {why}")
        impl = by_size(q, k)
    if impl != "chunked":
        return None
    return yat_attention(
        q,
        k,
        v,
        mask,
        alpha,
        eps,
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
        dropout=dropout,
    )
