"""Fused, flash-style Yat attention as Triton kernels: O(L) memory forward and backward.

The scores ``s = alpha (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + eps) sqrt(D))`` of one ``(BM, BN)`` tile of
queries and keys are computed in registers, normalised on the fly and multiplied into V; the ``Lq x Lk``
matrix never exists. The idea is the flash-attention scheme (Dao et al., "FlashAttention", 2022; "FlashAttention-2",
2023): one pass over the key tiles per query tile with running row statistics, and a backward pass that
recomputes each tile from the saved per-row statistics. What is Yat-specific is written out here:

* ``softmax``: online maximum ``m`` and sum ``l`` of ``exp(s - m)``; the saved statistic is ``m + log l``.
* ``l1`` and ``softermax``: Yat scores are non-negative, so no maximum is needed, only the running sum
  ``S = sum t`` (``t = s``, or ``s^power``); the saved statistic is ``S + floor`` (``eps``, or 1e-12).
* A query row that attends to no key (mask and causal rows all False) attends uniformly, as in
  :func:`nmn.core.yat.normalize_scores`: the kernel counts the attended keys per row and :func:`yat_attention`
  puts the mean of ``V`` on the rows whose count is 0.
* Backward, with ``P`` the weights and ``delta_i = dO_i . O_i``: ``dV = P^T dO``; the gradient of a score is
  ``P (dO.v - delta)`` (softmax) or ``(dO.v - delta) / (S + floor) * dt/ds`` (l1, softermax). Through the Yat
  tail, with ``c = alpha / sqrt(D)``, ``r = dot / den`` and ``m = [dist > 0]``:
  ``ds/ddot = 2 c r (1 + r m)``, ``ds/d|q|^2 = ds/d|k|^2 = -c r^2 m``, ``ds/dalpha = dot r / sqrt(D)``.

Spherical attention unit-normalises ``q`` and ``k`` with torch ops before the kernel (autograd differentiates
that part) and the kernel takes ``dist = 2 - 2 q.k``. Masks are bool, broadcastable to ``(B, H, Lq, Lk)``
(key padding ``(B, 1, 1, Lk)``, a full mask, ...); a broadcast axis is read with stride 0. Dropout is not fused:
:func:`supported` says so and the caller falls back. float16/bfloat16 inputs are computed in float32.

Both passes are ``torch.library`` custom ops (``nmn::yat_flash_attention`` and its backward) with fake
(meta) implementations and a registered autograd formula, so they run in eager mode and under
``torch.compile``. Triton is imported on first use only (never at import of this module); on CPU the kernels
run in Triton's interpreter when ``TRITON_INTERPRET=1`` is set before that first use.

>>> available() in (True, False)
True
>>> supported(torch.zeros(1, 4, 1, 2), None, None) in ("", "triton is not installed") or not interpreting()
True
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os

import torch

from nmn.core.options import SOFTERMAX_EPSILON

__all__ = ["available", "interpreting", "supported", "yat_attention", "NORMS"]

NORMS = {"softmax": 0, "l1": 1, "softermax": 2}

tl = None  # triton.language, bound by _kernels() on first use (the kernels below read it as a global)


def available() -> bool:
    """True when the ``triton`` package is installed (it is not imported here).

    >>> isinstance(available(), bool)
    True
    """
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: the kernels run on CPU tensors in Triton's interpreter.

    >>> isinstance(interpreting(), bool)
    True
    """
    return os.environ.get("TRITON_INTERPRET", "0").strip() == "1"


def supported(q, mask, dropout) -> str:
    """``''`` when the fused kernel can run these inputs, else the reason it cannot (one line).

    >>> supported(torch.zeros(1, 4, 1, 2), None, lambda w: w)
    'dropout on the attention weights is not fused'
    """
    if dropout is not None:
        return "dropout on the attention weights is not fused"
    if not available():
        return "triton is not installed"
    if not (q.is_cuda or interpreting()):
        return f"the tensors are on {q.device.type} (the kernel needs CUDA, or TRITON_INTERPRET=1 on CPU)"
    if mask is not None and (mask.dtype != torch.bool or mask.dim() > 4):
        return f"mask must be bool with at most 4 axes, got {mask.dtype} with {mask.dim()}"
    return ""


# ----------------------------------------------------------------------------------------------------------------
# kernels (plain functions; _kernels() binds ``tl`` and wraps them in triton.jit on first use)


def _scores(q, qq, kt, kk, a, eps, scale, SPHERICAL: tl.constexpr):
    """``(s, dot, den, dist)`` of one tile: ``s = a dot^2 / den * scale``, ``den = relu(dist) + eps``."""
    dot = tl.dot(q, tl.trans(kt), input_precision="ieee")
    if SPHERICAL:
        dist = 2.0 - 2.0 * dot
    else:
        dist = qq[:, None] + kk[None, :] - 2.0 * dot
    den = tl.maximum(dist, 0.0) + eps
    s = a * dot * dot / den * scale
    return s, dot, den, dist


def _valid(rm, rn, lq, lk, offset, b, h, M, smb, smh, smq, smk, HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr):
    """The attended (query, key) pairs of a tile: in range, mask True, and causal ``j <= i + (Lk - Lq)``."""
    ok = (rm[:, None] < lq) & (rn[None, :] < lk)
    if HAS_MASK:
        ptr = M + b * smb + h * smh + rm[:, None] * smq + rn[None, :] * smk
        ok = ok & (tl.load(ptr, mask=ok, other=0) != 0)
    if CAUSAL:
        ok = ok & (rn[None, :] <= rm[:, None] + offset)
    return ok


def _power(s, power):
    """``s^power`` for ``s >= 0`` (0 where ``s <= 0``)."""
    return tl.where(s > 0.0, tl.exp(power * tl.log(tl.maximum(s, 1e-38))), 0.0)


def _forward_kernel(
    Q, K, V, M, A, O, STAT, CNT,
    lq, lk, heads, offset, eps, scale, power, floor,
    smb, smh, smq, smk,
    dk: tl.constexpr, dv: tl.constexpr,
    HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr, SPHERICAL: tl.constexpr, NORM: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // heads
    h = bh % heads
    rm = pid * BM + tl.arange(0, BM)
    rd = tl.arange(0, BD)
    re = tl.arange(0, BDV)
    q = tl.load(
        Q + bh * lq * dk + rm[:, None] * dk + rd[None, :], mask=(rm[:, None] < lq) & (rd[None, :] < dk), other=0.0
    )
    qq = tl.sum(q * q, 1)
    a = tl.load(A)
    m_i = tl.zeros([BM], dtype=q.dtype) - 1.0e30  # finite: exp(m_old - m_new) never meets inf - inf
    l_i = tl.zeros([BM], dtype=q.dtype)
    cnt = tl.zeros([BM], dtype=q.dtype)
    acc = tl.zeros([BM, BDV], dtype=q.dtype)
    hi = lk
    if CAUSAL:
        hi = tl.minimum(tl.maximum((pid + 1) * BM + offset, 0), lk)
    for start in range(0, hi, BN):
        rn = start + tl.arange(0, BN)
        kt = tl.load(
            K + bh * lk * dk + rn[:, None] * dk + rd[None, :], mask=(rn[:, None] < lk) & (rd[None, :] < dk), other=0.0
        )
        kk = tl.sum(kt * kt, 1)
        s, dot, den, dist = _scores(q, qq, kt, kk, a, eps, scale, SPHERICAL)
        ok = _valid(rm, rn, lq, lk, offset, b, h, M, smb, smh, smq, smk, HAS_MASK, CAUSAL)
        cnt += tl.sum(ok.to(q.dtype), 1)
        if NORM == 0:
            m_new = tl.maximum(m_i, tl.max(tl.where(ok, s, -1.0e30), 1))
            p = tl.where(ok, tl.exp(tl.where(ok, s, -1.0e30) - m_new[:, None]), 0.0)  # no exp of a masked score
            corr = tl.exp(m_i - m_new)
            l_i = l_i * corr + tl.sum(p, 1)
            acc = acc * corr[:, None]
            m_i = m_new
        else:
            if NORM == 2:
                s = _power(s, power)
            p = tl.where(ok, s, 0.0)
            l_i += tl.sum(p, 1)
        vt = tl.load(
            V + bh * lk * dv + rn[:, None] * dv + re[None, :], mask=(rn[:, None] < lk) & (re[None, :] < dv), other=0.0
        )
        acc += tl.dot(p.to(vt.dtype), vt, input_precision="ieee")
    if NORM == 0:
        # a row with no attended key stores 0 (its weights are all masked in the backward pass anyway)
        stat = tl.where(cnt > 0.0, m_i + tl.log(tl.where(l_i > 0.0, l_i, 1.0)), 0.0)
        out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    else:
        stat = l_i + floor
        out = acc / stat[:, None]
    out = tl.where((cnt > 0.0)[:, None], out, 0.0)
    tl.store(O + bh * lq * dv + rm[:, None] * dv + re[None, :], out, mask=(rm[:, None] < lq) & (re[None, :] < dv))
    tl.store(STAT + bh * lq + rm, stat, mask=rm < lq)
    tl.store(CNT + bh * lq + rm, cnt, mask=rm < lq)


def _score_grad(s, ok, dp, delta, stat, power, NORM: tl.constexpr):
    """``(P, dL/ds)`` of a tile from the saved row statistics (see the module docstring)."""
    if NORM == 0:
        p = tl.where(ok, tl.exp(tl.where(ok, s - stat[:, None], -1.0e30)), 0.0)
        g = p * (dp - delta[:, None])
    elif NORM == 1:
        p = tl.where(ok, s / stat[:, None], 0.0)
        g = tl.where(ok, (dp - delta[:, None]) / stat[:, None], 0.0)
    else:
        t = _power(s, power)
        p = tl.where(ok, t / stat[:, None], 0.0)
        dt = tl.where(s > 0.0, power * t / tl.maximum(s, 1e-38), tl.where(power == 1.0, 1.0, 0.0))
        g = tl.where(ok, (dp - delta[:, None]) / stat[:, None] * dt, 0.0)
    return p, g


def _backward_kv_kernel(
    Q, K, V, M, A, DO, STAT, DELTA, DK, DV,
    lq, lk, heads, offset, eps, scale, power,
    smb, smh, smq, smk,
    dk: tl.constexpr, dv: tl.constexpr,
    HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr, SPHERICAL: tl.constexpr, NORM: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // heads
    h = bh % heads
    rn = pid * BN + tl.arange(0, BN)
    rd = tl.arange(0, BD)
    re = tl.arange(0, BDV)
    kt = tl.load(
        K + bh * lk * dk + rn[:, None] * dk + rd[None, :], mask=(rn[:, None] < lk) & (rd[None, :] < dk), other=0.0
    )
    vt = tl.load(
        V + bh * lk * dv + rn[:, None] * dv + re[None, :], mask=(rn[:, None] < lk) & (re[None, :] < dv), other=0.0
    )
    kk = tl.sum(kt * kt, 1)
    a = tl.load(A)
    c = a * scale
    gk = tl.zeros([BN, BD], dtype=kt.dtype)
    gkk = tl.zeros([BN], dtype=kt.dtype)
    gv = tl.zeros([BN, BDV], dtype=kt.dtype)
    lo = 0
    if CAUSAL:  # query i sees key j when i >= j - offset
        lo = tl.maximum(pid * BN - offset, 0) // BM * BM
    for start in range(lo, lq, BM):
        rm = start + tl.arange(0, BM)
        rows = rm < lq
        q = tl.load(
            Q + bh * lq * dk + rm[:, None] * dk + rd[None, :], mask=rows[:, None] & (rd[None, :] < dk), other=0.0
        )
        do = tl.load(
            DO + bh * lq * dv + rm[:, None] * dv + re[None, :], mask=rows[:, None] & (re[None, :] < dv), other=0.0
        )
        stat = tl.load(STAT + bh * lq + rm, mask=rows, other=1.0)
        delta = tl.load(DELTA + bh * lq + rm, mask=rows, other=0.0)
        qq = tl.sum(q * q, 1)
        s, dot, den, dist = _scores(q, qq, kt, kk, a, eps, scale, SPHERICAL)
        ok = _valid(rm, rn, lq, lk, offset, b, h, M, smb, smh, smq, smk, HAS_MASK, CAUSAL)
        dp = tl.dot(do, tl.trans(vt), input_precision="ieee")
        p, g = _score_grad(s, ok, dp, delta, stat, power, NORM)
        gv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision="ieee")
        r = dot / den
        mk = (dist > 0.0).to(r.dtype)
        gk += tl.dot(tl.trans(g * (2.0 * c) * r * (1.0 + r * mk)), q, input_precision="ieee")
        if not SPHERICAL:
            gkk -= tl.sum(g * c * r * r * mk, 0)
    if not SPHERICAL:
        gk += 2.0 * kt * gkk[:, None]
    tl.store(DK + bh * lk * dk + rn[:, None] * dk + rd[None, :], gk, mask=(rn[:, None] < lk) & (rd[None, :] < dk))
    tl.store(DV + bh * lk * dv + rn[:, None] * dv + re[None, :], gv, mask=(rn[:, None] < lk) & (re[None, :] < dv))


def _backward_q_kernel(
    Q, K, V, M, A, DO, STAT, DELTA, DQ, DA,
    lq, lk, heads, offset, eps, scale, power,
    smb, smh, smq, smk,
    dk: tl.constexpr, dv: tl.constexpr,
    HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr, SPHERICAL: tl.constexpr, NORM: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // heads
    h = bh % heads
    rm = pid * BM + tl.arange(0, BM)
    rows = rm < lq
    rd = tl.arange(0, BD)
    re = tl.arange(0, BDV)
    q = tl.load(Q + bh * lq * dk + rm[:, None] * dk + rd[None, :], mask=rows[:, None] & (rd[None, :] < dk), other=0.0)
    do = tl.load(DO + bh * lq * dv + rm[:, None] * dv + re[None, :], mask=rows[:, None] & (re[None, :] < dv), other=0.0)
    stat = tl.load(STAT + bh * lq + rm, mask=rows, other=1.0)
    delta = tl.load(DELTA + bh * lq + rm, mask=rows, other=0.0)
    qq = tl.sum(q * q, 1)
    a = tl.load(A)
    c = a * scale
    gq = tl.zeros([BM, BD], dtype=q.dtype)
    gqq = tl.zeros([BM], dtype=q.dtype)
    ga = tl.zeros([BM], dtype=q.dtype)
    hi = lk
    if CAUSAL:
        hi = tl.minimum(tl.maximum((pid + 1) * BM + offset, 0), lk)
    for start in range(0, hi, BN):
        rn = start + tl.arange(0, BN)
        kt = tl.load(
            K + bh * lk * dk + rn[:, None] * dk + rd[None, :], mask=(rn[:, None] < lk) & (rd[None, :] < dk), other=0.0
        )
        vt = tl.load(
            V + bh * lk * dv + rn[:, None] * dv + re[None, :], mask=(rn[:, None] < lk) & (re[None, :] < dv), other=0.0
        )
        kk = tl.sum(kt * kt, 1)
        s, dot, den, dist = _scores(q, qq, kt, kk, a, eps, scale, SPHERICAL)
        ok = _valid(rm, rn, lq, lk, offset, b, h, M, smb, smh, smq, smk, HAS_MASK, CAUSAL)
        dp = tl.dot(do, tl.trans(vt), input_precision="ieee")
        p, g = _score_grad(s, ok, dp, delta, stat, power, NORM)
        r = dot / den
        mk = (dist > 0.0).to(r.dtype)
        gq += tl.dot(g * (2.0 * c) * r * (1.0 + r * mk), kt, input_precision="ieee")
        if not SPHERICAL:
            gqq -= tl.sum(g * c * r * r * mk, 1)
        ga += tl.sum(g * dot * r * scale, 1)
    if not SPHERICAL:
        gq += 2.0 * q * gqq[:, None]
    tl.store(DQ + bh * lq * dk + rm[:, None] * dk + rd[None, :], gq, mask=rows[:, None] & (rd[None, :] < dk))
    tl.store(DA + bh * lq + rm, ga, mask=rows)


@functools.cache
def _kernels():
    """``(forward, backward_kv, backward_q)``: the kernels above compiled with ``triton.jit`` (imports triton)."""
    global tl
    import triton
    import triton.language as language

    tl = language
    helpers = {name: triton.jit(globals()[name]) for name in ("_scores", "_valid", "_power", "_score_grad")}
    globals().update(helpers)  # the kernels call the jitted helpers through the module globals
    return tuple(triton.jit(globals()[n]) for n in ("_forward_kernel", "_backward_kv_kernel", "_backward_q_kernel"))


# ----------------------------------------------------------------------------------------------------------------
# torch.library ops


def _blocks(dk, dv, device):
    """``(BM, BN, BD, BDV, num_warps)``: 16-row tiles in the interpreter, 64 on a GPU (tl.dot needs >= 16)."""
    bd = max(16, 1 << (dk - 1).bit_length())
    bdv = max(16, 1 << (dv - 1).bit_length())
    if device.type != "cuda":
        return 16, 16, bd, bdv, 1
    tile = 64 if max(bd, bdv) <= 64 else 32
    return tile, tile, bd, bdv, 4


def _heads_first(x):
    """``(B, L, H, D) -> (B*H, L, D)`` contiguous."""
    b, l, h, d = x.shape
    return x.transpose(1, 2).reshape(b * h, l, d).contiguous()


def _mask_args(mask, b, h, lq, lk, device):
    """``(tensor, strides)`` of a bool mask broadcast to ``(B, H, Lq, Lk)`` as uint8 (stride 0 on broadcast axes)."""
    if mask is None:
        return torch.zeros(1, dtype=torch.uint8, device=device), (0, 0, 0, 0)
    m = mask.to(torch.uint8)
    m = m.reshape((1,) * (4 - m.dim()) + tuple(m.shape)).expand(b, h, lq, lk)
    return m, tuple(m.stride())


def _launch_args(q, k, v, mask, eps, power, normalization, causal, spherical):
    b, lq, h, dk = q.shape
    lk, dv = k.shape[1], v.shape[-1]
    m, strides = _mask_args(mask, b, h, lq, lk, q.device)
    floor = eps if normalization == 1 else SOFTERMAX_EPSILON
    scalars = (lq, lk, h, lk - lq, float(eps), 1.0 / math.sqrt(dk), float(power))
    consts = dict(HAS_MASK=mask is not None, CAUSAL=bool(causal), SPHERICAL=bool(spherical), NORM=int(normalization))
    return b, lq, lk, h, dk, dv, m, strides, floor, scalars, consts


@torch.library.custom_op("nmn::yat_flash_attention", mutates_args=())
def _flash_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    alpha: torch.Tensor,
    eps: float,
    power: float,
    normalization: int,
    causal: bool,
    spherical: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(O (B, Lq, H, Dv), stat (B, H, Lq), count (B, H, Lq))``; rows with count 0 hold zeros."""
    fwd, _, _ = _kernels()
    b, lq, lk, h, dk, dv, m, strides, floor, scalars, consts = _launch_args(
        q, k, v, mask, eps, power, normalization, causal, spherical
    )
    bm, bn, bd, bdv, warps = _blocks(dk, dv, q.device)
    out = torch.empty(b * h, lq, dv, dtype=q.dtype, device=q.device)
    stat = torch.empty(b * h, lq, dtype=q.dtype, device=q.device)
    cnt = torch.empty(b * h, lq, dtype=q.dtype, device=q.device)
    grid = (triton_cdiv(lq, bm), b * h)
    fwd[grid](
        _heads_first(q), _heads_first(k), _heads_first(v), m, alpha.reshape(1).contiguous(), out, stat, cnt,
        *scalars[:6], scalars[6], float(floor), *strides, dk, dv, **consts, BM=bm, BN=bn, BD=bd, BDV=bdv,
        num_warps=warps,
    )  # fmt: skip
    return out.reshape(b, h, lq, dv).transpose(1, 2).contiguous(), stat.reshape(b, h, lq), cnt.reshape(b, h, lq)


@_flash_forward.register_fake
def _(q, k, v, mask, alpha, eps, power, normalization, causal, spherical):
    b, lq, h, _ = q.shape
    return q.new_empty(b, lq, h, v.shape[-1]), q.new_empty(b, h, lq), q.new_empty(b, h, lq)


@torch.library.custom_op("nmn::yat_flash_attention_backward", mutates_args=())
def _flash_backward(
    grad: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    alpha: torch.Tensor,
    out: torch.Tensor,
    stat: torch.Tensor,
    eps: float,
    power: float,
    normalization: int,
    causal: bool,
    spherical: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dq, dk, dv, dalpha)`` of :func:`_flash_forward`'s first output, recomputing every tile."""
    _, bwd_kv, bwd_q = _kernels()
    b, lq, lk, h, dk, dv, m, strides, _, scalars, consts = _launch_args(
        q, k, v, mask, eps, power, normalization, causal, spherical
    )
    bm, bn, bd, bdv, warps = _blocks(dk, dv, q.device)
    qf, kf, vf, gf = _heads_first(q), _heads_first(k), _heads_first(v), _heads_first(grad)
    delta = (grad * out).sum(-1).transpose(1, 2).reshape(b * h, lq).contiguous()
    st = stat.reshape(b * h, lq).contiguous()
    a = alpha.reshape(1).contiguous()
    dq, dkk, dvv = torch.empty_like(qf), torch.empty_like(kf), torch.empty_like(vf)
    da = torch.empty(b * h, lq, dtype=q.dtype, device=q.device)
    common = dict(**consts, BM=bm, BN=bn, BD=bd, BDV=bdv, num_warps=warps)
    bwd_kv[(triton_cdiv(lk, bn), b * h)](
        qf, kf, vf, m, a, gf, st, delta, dkk, dvv, *scalars, *strides, dk, dv, **common
    )  # fmt: skip
    bwd_q[(triton_cdiv(lq, bm), b * h)](
        qf, kf, vf, m, a, gf, st, delta, dq, da, *scalars, *strides, dk, dv, **common
    )  # fmt: skip

    def back(t, n):
        return t.reshape(b, h, n, t.shape[-1]).transpose(1, 2).contiguous()

    return back(dq, lq), back(dkk, lk), back(dvv, lk), da.sum().reshape(alpha.shape)


@_flash_backward.register_fake
def _(grad, q, k, v, mask, alpha, out, stat, eps, power, normalization, causal, spherical):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(alpha)


def _setup(ctx, inputs, output):
    q, k, v, mask, alpha, eps, power, normalization, causal, spherical = inputs
    ctx.save_for_backward(q, k, v, mask, alpha, output[0], output[1])
    ctx.opts = (eps, power, normalization, causal, spherical)


def _backward(ctx, grad, _grad_stat, _grad_cnt):
    q, k, v, mask, alpha, out, stat = ctx.saved_tensors
    dq, dk, dv, da = _flash_backward(grad.contiguous(), q, k, v, mask, alpha, out, stat, *ctx.opts)
    return dq, dk, dv, None, da, None, None, None, None, None


_flash_forward.register_autograd(_backward, setup_context=_setup)


def triton_cdiv(n, d):
    """``ceil(n / d)`` for ints (the launch grids).

    >>> triton_cdiv(17, 16)
    2
    """
    return -(-n // d)


def yat_attention(q, k, v, mask, alpha, eps, *, spherical=False, normalization="softmax", power=1.0, causal=False):
    """Fused Yat attention of ``(B, L, H, D)`` heads (the semantics of :func:`nmn.core.yat.yat_attention`).

    Args:
        q, k, v: ``(B, Lq, H, D)``, ``(B, Lk, H, D)``, ``(B, Lk, H, Dv)`` (CUDA, or CPU under ``TRITON_INTERPRET=1``).
        mask: bool (True = attend) broadcastable to ``(B, H, Lq, Lk)``, or ``None``.
        alpha: score scale (tensor ``(1,)``, number or ``None``); eps: a number.
        spherical, normalization, power, causal: as :func:`nmn.torch.functional.yat_attention`.

    Shape: ``-> (B, Lq, H, Dv)`` in the promoted dtype of ``q, k, v`` (half types computed in float32).
    """
    if isinstance(eps, torch.Tensor):
        if eps.requires_grad and torch.is_grad_enabled():
            raise ValueError("yat_attention (triton): epsilon must be a number or a tensor without gradient")
        eps = float(eps.reshape(-1)[0])
    result = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    compute = torch.float32 if result in (torch.float16, torch.bfloat16) else result
    q, k, v = q.to(compute), k.to(compute), v.to(compute)
    if spherical:  # unit-normalise with torch ops (autograd differentiates them); the kernel takes 2 - 2 q.k
        q = q / torch.sqrt((q * q).sum(-1, keepdim=True) + eps)
        k = k / torch.sqrt((k * k).sum(-1, keepdim=True) + eps)
    if alpha is None or not isinstance(alpha, torch.Tensor):
        alpha = torch.full((1,), 1.0 if alpha is None else float(alpha), dtype=compute, device=q.device)
    else:
        alpha = alpha.to(compute)
    if mask is not None and mask.device != q.device:
        mask = mask.to(q.device)
    out, _, cnt = _flash_forward(
        q, k, v, mask, alpha, float(eps), float(power), NORMS[normalization], causal, spherical
    )
    if mask is not None or causal:  # a row that sees no key attends uniformly: the mean of V
        empty = (cnt == 0).transpose(1, 2).unsqueeze(-1)
        out = torch.where(empty, v.mean(1, keepdim=True), out)
    return out.to(result)
