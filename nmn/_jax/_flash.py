"""Flash-style Yat attention for JAX: a Pallas kernel, forward and backward, that never holds an L x L block.

Scores ``s_ij = alpha (q_i.k_j)^2 / ((relu(|q_i - k_j|^2) + eps) sqrt(D))`` are computed tile by tile
(``block_q`` queries against ``block_k`` keys) and folded into per-row running state:

* ``softmax``: the online maximum ``m`` and sum ``l`` of ``exp(s - m)`` (the flash-attention recurrence,
  Dao et al. 2022, "FlashAttention", section 3.1), the output accumulator rescaled by ``exp(m_old - m_new)``;
* ``l1`` and ``softermax``: Yat scores are non-negative, so no maximum is needed: the running sums of
  ``t = s`` (or ``s^power``) and of ``t v`` give ``sum t v / (sum t + floor)`` exactly.

Masked keys (bool mask, causal, or the padding added to reach a whole tile) are left out of every sum; a query
row that sees no key attends uniformly over the keys (docs/design.md §D5), which the wrapper applies
from the per-row count of attended keys. The backward pass is two more kernels that recompute the tiles from
``q, k, v`` and the saved row statistics (``dq`` with the ``alpha``/``eps`` partial sums, then ``dk, dv``), with
``ds = c (dO.v - dO.O)`` where ``c`` is the softmax weight or ``g'(s) / (sum t + floor)`` (FlashAttention-2,
Dao 2023, section 3.1, adapted to the Yat score and to the running-sum normalisations).

Memory is O(B H L D) plus one tile per program: no ``(B, H, Lq, Lk)`` array is formed. The mask may be any bool
array broadcastable to ``(B, H, Lq, Lk)``; a key-padding mask ``(B, 1, 1, Lk)`` stays O(L).

On CPU the kernels run in Pallas interpreter mode (``interpret=True``, slow: for tests); on GPU they lower
through Triton. :func:`pick` chooses between this path and the reference :func:`nmn.core.yat.yat_attention`.

>>> import jax.numpy as jnp
>>> from nmn._jax.ops import F
>>> from nmn.core import yat as core
>>> q = jnp.linspace(-1.0, 1.0, 2 * 5 * 1 * 3).reshape(2, 5, 1, 3)
>>> got = yat_attention(q, q, q, None, 1.0, 1e-3, block_q=4, block_k=4, interpret=True)
>>> want = core.yat_attention(F, q, q, q, None, 1.0, 1e-3)
>>> bool(jnp.allclose(got, want, atol=1e-5))
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from nmn.core.options import SOFTERMAX_EPSILON, env_choice
from nmn.core.yat import NEG_LARGE

IMPLS = ("auto", "flash", "chunked", "reference")
_ALIASES = {"pallas": "flash", "triton": "flash"}  # the torch name of its fused kernel means this one here
_HIGHEST = lax.Precision.HIGHEST  # the distance |q|^2 + |k|^2 - 2 q.k cancels: no TF32 in the score products
_ACCELERATORS = ("gpu", "cuda", "rocm", "tpu")


def requested() -> str:
    """The path ``NMN_ATTENTION_IMPL`` asks for: ``auto`` (default), ``flash``, ``chunked`` or ``reference``.

    ``pallas`` and ``triton`` (torch's name of its fused kernel) mean ``flash``.

    >>> requested() in IMPLS
    True
    """
    return env_choice("NMN_ATTENTION_IMPL", IMPLS, _ALIASES)


def pick(q=None, k=None, *, dropout=None) -> str:
    """``'flash'``, ``'chunked'`` or ``'reference'`` for heads ``q (B, Lq, H, D)``, ``k (B, Lk, H, D)``.

    ``NMN_ATTENTION_IMPL`` forces a path. ``auto`` (the default) takes this Pallas kernel on GPU and TPU; elsewhere
    the query tiles of :mod:`nmn._jax._chunked` when ``Lq * Lk >= 2**20`` (as the torch layers), else the
    reference. Attention-weight ``dropout`` always takes the reference (neither tiled path forms the weights
    as one array for a dropout callable to see).

    >>> pick(dropout=None) in ("flash", "reference")
    True
    """
    impl = requested()
    if dropout is not None:
        return "reference"
    if impl != "auto":
        return impl
    if jax.default_backend() in _ACCELERATORS:
        return "flash"
    from nmn._jax import _chunked

    if q is not None and k is not None and _chunked.by_size(q.shape[1], k.shape[1]):
        return "chunked"
    return "reference"


@dataclass(frozen=True)
class _Cfg:
    """The static shape of one kernel call."""

    lq: int  # real lengths (the arrays are padded to whole tiles)
    lk: int
    bq: int
    bk: int
    scale: float  # 1 / sqrt(D) of the real head size
    spherical: bool
    normalization: str
    power: float
    causal: bool
    mask_rows: int  # 0: no mask, 1: one row for all queries, else the padded query length
    mask_b: bool  # the mask has a batch axis (else broadcast)
    mask_h: bool  # the mask has a head axis
    interpret: bool


def _pow(s, p):
    """``s^p`` for ``s >= 0`` (an integer power stays a product, as the reference's ``**`` gives)."""
    if float(p).is_integer() and 0 <= p <= 8:
        return lax.integer_pow(s, int(p))
    return jnp.exp(p * jnp.log(s))


def _t_of_s(s, cfg):
    return _pow(s, cfg.power) if cfg.normalization == "softermax" else s


def _dt_ds(s, cfg):
    if cfg.normalization != "softermax" or cfg.power == 1.0:
        return jnp.ones_like(s)
    return cfg.power * _pow(s, cfg.power - 1.0)


def _floor(eps, cfg):
    return eps if cfg.normalization == "l1" else SOFTERMAX_EPSILON


def _scores(q, qq, k, kk, alpha, eps, cfg):
    """``(dot, dist, den, r)`` of a tile: ``s = alpha r``, ``r = scale dot^2 / den``, ``den = relu(dist) + eps``."""
    dot = lax.dot_general(q, k, (((1,), (1,)), ((), ())), precision=_HIGHEST, preferred_element_type=jnp.float32)
    dist = 2.0 - 2.0 * dot if cfg.spherical else qq[:, None] + kk[None, :] - 2.0 * dot
    den = jnp.maximum(dist, 0.0) + eps
    return dot, dist, den, dot * dot / den * cfg.scale


def _valid(rows, cols, mask_tile, cfg):
    """Bool ``(len(rows), len(cols))``: real key, causally visible, and attended by the mask."""
    ok = jnp.broadcast_to(cols[None, :] < cfg.lk, (rows.shape[0], cols.shape[0]))
    if cfg.causal:  # the last query sees the last key, as nmn.core's tril offset
        ok = jnp.logical_and(ok, cols[None, :] <= rows[:, None] + (cfg.lk - cfg.lq))
    if mask_tile is not None:
        ok = jnp.logical_and(ok, mask_tile != 0)
    return ok


def _mm(a, b, dims):
    return lax.dot_general(a, b, (dims, ((), ())), precision=_HIGHEST, preferred_element_type=jnp.float32)


def _key_blocks(qi, cfg, nk):
    """Key tiles a query tile needs: all, or (causal) those up to its last row's diagonal."""
    if not cfg.causal:
        return nk
    last = (qi + 1) * cfg.bq - 1 + (cfg.lk - cfg.lq)
    return jnp.clip(last // cfg.bk + 1, 0, nk)


def _query_start(kj, cfg):
    """First query tile that sees a key tile (causal), else 0."""
    if not cfg.causal:
        return 0
    first_row = kj * cfg.bk - (cfg.lk - cfg.lq)
    return jnp.maximum(first_row, 0) // cfg.bq


def _split(refs, cfg, n_in):
    ins, outs = list(refs[:n_in]), list(refs[n_in:])
    mask_ref = ins.pop(3) if cfg.mask_rows else None
    return ins, mask_ref, outs


# ----------------------------------------------------------------------------------------------------- kernels
def _fwd_kernel(*refs, cfg):
    (q_ref, k_ref, v_ref, par_ref), mask_ref, (o_ref, m_ref, l_ref, n_ref) = _split(
        refs, cfg, 5 if cfg.mask_rows else 4
    )
    qi = pl.program_id(2)
    alpha, eps = par_ref[0], par_ref[1]
    q = q_ref[...].astype(jnp.float32)
    qq = jnp.sum(q * q, axis=1)
    rows = qi * cfg.bq + jnp.arange(cfg.bq)
    nk = k_ref.shape[0] // cfg.bk

    def body(j, carry):
        acc, m, l, n = carry
        ks = pl.ds(j * cfg.bk, cfg.bk)
        k = k_ref[ks, :].astype(jnp.float32)
        v = v_ref[ks, :]
        _, _, _, r = _scores(q, qq, k, jnp.sum(k * k, axis=1), alpha, eps, cfg)
        s = alpha * r
        mt = None if mask_ref is None else mask_ref[:, ks]
        ok = _valid(rows, j * cfg.bk + jnp.arange(cfg.bk), mt, cfg)
        n = n + jnp.sum(ok.astype(jnp.float32), axis=1)
        if cfg.normalization == "softmax":
            m_new = jnp.maximum(m, jnp.max(jnp.where(ok, s, NEG_LARGE), axis=1))
            t = jnp.where(ok, jnp.exp(s - m_new[:, None]), 0.0)
            corr = jnp.exp(m - m_new)
            acc = acc * corr[:, None]
            l = l * corr
            m = m_new
        else:
            t = jnp.where(ok, _t_of_s(s, cfg), 0.0)
        acc = acc + _mm(t.astype(v.dtype), v, ((1,), (0,)))
        return acc, m, l + jnp.sum(t, axis=1), n

    zero = jnp.zeros((cfg.bq,), jnp.float32)
    init = (jnp.zeros((cfg.bq, v_ref.shape[1]), jnp.float32), zero + NEG_LARGE, zero, zero)
    acc, m, l, n = lax.fori_loop(0, _key_blocks(qi, cfg, nk), body, init)
    if cfg.normalization == "softmax":
        z = jnp.where(l > 0.0, l, 1.0)
    else:
        z = l + _floor(eps, cfg)
    o_ref[...] = (acc / z[:, None]).astype(o_ref.dtype)
    m_ref[...] = m
    l_ref[...] = l
    n_ref[...] = n


def _ds_tile(s, r, dot, dist, den, ok, dp, m, l, delta, alpha, eps, cfg):
    """``(w, ds, G - 2E, E, dden)`` of a tile: weights, score cotangent and its chain through dot and dist."""
    if cfg.normalization == "softmax":
        w = jnp.where(ok, jnp.exp(s - m[:, None]), 0.0) / jnp.where(l > 0.0, l, 1.0)[:, None]
        ds = w * (dp - delta[:, None])
    else:
        z = (l + _floor(eps, cfg))[:, None]
        w = jnp.where(ok, _t_of_s(s, cfg), 0.0) / z
        ds = jnp.where(ok, _dt_ds(s, cfg), 0.0) * (dp - delta[:, None]) / z
    g = ds * alpha * cfg.scale * 2.0 * dot / den  # d s / d dot at fixed distance
    dden = -ds * s / den
    e = jnp.where(dist > 0.0, dden, 0.0)  # d s / d dist (relu)
    return w, ds, g - 2.0 * e, e, dden


def _dq_kernel(*refs, cfg):
    n_in = 9 if cfg.mask_rows else 8
    (q_ref, k_ref, v_ref, par_ref, do_ref, m_ref, l_ref, dl_ref), mask_ref, outs = _split(refs, cfg, n_in)
    dq_ref, da_ref, de_ref = outs
    qi = pl.program_id(2)
    alpha, eps = par_ref[0], par_ref[1]
    q = q_ref[...].astype(jnp.float32)
    qq = jnp.sum(q * q, axis=1)
    do = do_ref[...].astype(jnp.float32)
    m, l, delta = m_ref[...], l_ref[...], dl_ref[...]
    rows = qi * cfg.bq + jnp.arange(cfg.bq)
    nk = k_ref.shape[0] // cfg.bk

    def body(j, carry):
        dq, row_e, da, de = carry
        ks = pl.ds(j * cfg.bk, cfg.bk)
        k = k_ref[ks, :].astype(jnp.float32)
        v = v_ref[ks, :].astype(jnp.float32)
        dot, dist, den, r = _scores(q, qq, k, jnp.sum(k * k, axis=1), alpha, eps, cfg)
        s = alpha * r
        mt = None if mask_ref is None else mask_ref[:, ks]
        ok = _valid(rows, j * cfg.bk + jnp.arange(cfg.bk), mt, cfg)
        dp = _mm(do, v, ((1,), (1,)))
        _, ds, dd, e, dden = _ds_tile(s, r, dot, dist, den, ok, dp, m, l, delta, alpha, eps, cfg)
        dq = dq + _mm(dd, k, ((1,), (0,)))
        return dq, row_e + jnp.sum(e, axis=1), da + jnp.sum(ds * r, axis=1), de + jnp.sum(dden, axis=1)

    zero = jnp.zeros((cfg.bq,), jnp.float32)
    init = (jnp.zeros(q.shape, jnp.float32), zero, zero, zero)
    dq, row_e, da, de = lax.fori_loop(0, _key_blocks(qi, cfg, nk), body, init)
    if not cfg.spherical:  # d |q|^2 / d q = 2 q
        dq = dq + 2.0 * q * row_e[:, None]
    dq_ref[...] = dq.astype(dq_ref.dtype)
    da_ref[...] = da
    de_ref[...] = de


def _dkv_kernel(*refs, cfg):
    n_in = 9 if cfg.mask_rows else 8
    (q_ref, k_ref, v_ref, par_ref, do_ref, m_ref, l_ref, dl_ref), mask_ref, (dk_ref, dv_ref) = _split(refs, cfg, n_in)
    kj = pl.program_id(2)
    alpha, eps = par_ref[0], par_ref[1]
    k = k_ref[...].astype(jnp.float32)
    kk = jnp.sum(k * k, axis=1)
    v = v_ref[...].astype(jnp.float32)
    cols = kj * cfg.bk + jnp.arange(cfg.bk)
    nq = q_ref.shape[0] // cfg.bq

    def body(i, carry):
        dk, dv, col_e = carry
        qs = pl.ds(i * cfg.bq, cfg.bq)
        q = q_ref[qs, :].astype(jnp.float32)
        do = do_ref[qs, :].astype(jnp.float32)
        dot, dist, den, r = _scores(q, jnp.sum(q * q, axis=1), k, kk, alpha, eps, cfg)
        s = alpha * r
        mt = None if mask_ref is None else (mask_ref[...] if cfg.mask_rows == 1 else mask_ref[qs, :])
        ok = _valid(i * cfg.bq + jnp.arange(cfg.bq), cols, mt, cfg)
        dp = _mm(do, v, ((1,), (1,)))
        w, _, dd, e, _ = _ds_tile(s, r, dot, dist, den, ok, dp, m_ref[qs], l_ref[qs], dl_ref[qs], alpha, eps, cfg)
        dv = dv + _mm(w, do, ((0,), (0,)))
        dk = dk + _mm(dd, q, ((0,), (0,)))
        return dk, dv, col_e + jnp.sum(e, axis=0)

    init = (jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32), jnp.zeros((cfg.bk,), jnp.float32))
    dk, dv, col_e = lax.fori_loop(_query_start(kj, cfg), nq, body, init)
    if not cfg.spherical:
        dk = dk + 2.0 * k * col_e[:, None]
    dk_ref[...] = dk.astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


# ------------------------------------------------------------------------------------------------ pallas calls
def _compiler_params(cfg):
    if cfg.interpret or jax.default_backend() not in ("gpu", "cuda", "rocm"):
        return None
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=4, num_stages=2)


def _mask_spec(cfg, rows_block, rows_index, cols_block, cols_index):
    """BlockSpec of the int8 mask ``(Bm, Hm, R, Lk)``: broadcast axes always read index 0."""

    def index(b, h, i):
        return (b if cfg.mask_b else 0, h if cfg.mask_h else 0, rows_index(i), cols_index(i))

    return pl.BlockSpec((None, None, rows_block, cols_block), index)


def _row_spec(block):
    return pl.BlockSpec((None, None, block, None), lambda b, h, i: (b, h, i, 0))


def _full_spec(shape):
    return pl.BlockSpec((None, None, *shape), lambda b, h, i: (b, h, 0, 0))


def _stat_spec(block):
    return pl.BlockSpec((None, None, block), lambda b, h, i: (b, h, i))


def _par_spec():
    return pl.BlockSpec((2,), lambda b, h, i: (0,))


def _row_spec_fixed(block, d):
    return pl.BlockSpec((None, None, block, d), lambda b, h, i: (b, h, i, 0))


def _forward(q, k, v, mask, par, cfg):
    b, h, lqp, d = q.shape
    lkp, dv = k.shape[2], v.shape[3]
    in_specs = [_row_spec_fixed(cfg.bq, d), _full_spec((lkp, d)), _full_spec((lkp, dv)), _par_spec()]
    args = [q, k, v, par]
    if cfg.mask_rows:
        rb = cfg.bq if cfg.mask_rows > 1 else 1
        in_specs.insert(3, _mask_spec(cfg, rb, (lambda i: i) if cfg.mask_rows > 1 else (lambda i: 0), lkp, lambda i: 0))
        args.insert(3, mask)
    stat = jax.ShapeDtypeStruct((b, h, lqp), jnp.float32)
    return pl.pallas_call(
        functools.partial(_fwd_kernel, cfg=cfg),
        grid=(b, h, lqp // cfg.bq),
        in_specs=in_specs,
        out_specs=[_row_spec_fixed(cfg.bq, dv), _stat_spec(cfg.bq), _stat_spec(cfg.bq), _stat_spec(cfg.bq)],
        out_shape=[jax.ShapeDtypeStruct((b, h, lqp, dv), v.dtype), stat, stat, stat],
        interpret=cfg.interpret,
        compiler_params=_compiler_params(cfg),
        name="yat_flash_forward",
    )(*args)


def _backward(q, k, v, mask, par, do, m, l, delta, cfg):
    b, h, lqp, d = q.shape
    lkp, dv = k.shape[2], v.shape[3]
    # dq, d alpha, d eps: one program per query tile, looping over key tiles
    in_specs = [
        _row_spec_fixed(cfg.bq, d),
        _full_spec((lkp, d)),
        _full_spec((lkp, dv)),
        _par_spec(),
        _row_spec_fixed(cfg.bq, dv),
        _stat_spec(cfg.bq),
        _stat_spec(cfg.bq),
        _stat_spec(cfg.bq),
    ]
    args = [q, k, v, par, do, m, l, delta]
    if cfg.mask_rows:
        rb = cfg.bq if cfg.mask_rows > 1 else 1
        in_specs.insert(3, _mask_spec(cfg, rb, (lambda i: i) if cfg.mask_rows > 1 else (lambda i: 0), lkp, lambda i: 0))
        args.insert(3, mask)
    stat = jax.ShapeDtypeStruct((b, h, lqp), jnp.float32)
    dq, da, de = pl.pallas_call(
        functools.partial(_dq_kernel, cfg=cfg),
        grid=(b, h, lqp // cfg.bq),
        in_specs=in_specs,
        out_specs=[_row_spec_fixed(cfg.bq, d), _stat_spec(cfg.bq), _stat_spec(cfg.bq)],
        out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype), stat, stat],
        interpret=cfg.interpret,
        compiler_params=_compiler_params(cfg),
        name="yat_flash_dq",
    )(*args)
    # dk, dv: one program per key tile, looping over query tiles
    full_stat = pl.BlockSpec((None, None, lqp), lambda b, h, j: (b, h, 0))
    in_specs = [
        _full_spec((lqp, d)),
        _row_spec_fixed(cfg.bk, d),
        _row_spec_fixed(cfg.bk, dv),
        _par_spec(),
        _full_spec((lqp, dv)),
        full_stat,
        full_stat,
        full_stat,
    ]
    args = [q, k, v, par, do, m, l, delta]
    if cfg.mask_rows:
        rb = lqp if cfg.mask_rows > 1 else 1
        in_specs.insert(3, _mask_spec(cfg, rb, lambda j: 0, cfg.bk, lambda j: j))
        args.insert(3, mask)
    dk, dv_ = pl.pallas_call(
        functools.partial(_dkv_kernel, cfg=cfg),
        grid=(b, h, lkp // cfg.bk),
        in_specs=in_specs,
        out_specs=[_row_spec_fixed(cfg.bk, d), _row_spec_fixed(cfg.bk, dv)],
        out_shape=[jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
        interpret=cfg.interpret,
        compiler_params=_compiler_params(cfg),
        name="yat_flash_dkv",
    )(*args)
    return dq, dk, dv_, jnp.stack([jnp.sum(da), jnp.sum(de)])


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _flash(q, k, v, mask, par, cfg):
    o, _, _, n = _forward(q, k, v, mask, par, cfg)
    return o, n


def _flash_fwd(q, k, v, mask, par, cfg):
    o, m, l, n = _forward(q, k, v, mask, par, cfg)
    return (o, n), (q, k, v, mask, par, o, m, l)


def _flash_bwd(cfg, res, cts):
    q, k, v, mask, par, o, m, l = res
    do = cts[0]
    delta = jnp.sum(do.astype(jnp.float32) * o.astype(jnp.float32), axis=-1)  # dO . O per row
    dq, dk, dv, dpar = _backward(q, k, v, mask, par, do, m, l, delta, cfg)
    if cfg.normalization == "l1":  # the floor of sum t is eps: d O / d floor = -O / (sum t + eps)
        dpar = dpar.at[1].add(jnp.sum(-delta / (l + par[1])))
    return dq, dk, dv, None, dpar


_flash.defvjp(_flash_fwd, _flash_bwd)


# ------------------------------------------------------------------------------------------------------ wrapper
def _ceil_to(n, m):
    return -(-n // m) * m


def _block(n, want):
    """A power-of-two tile size no larger than needed for ``n`` rows (at most ``want``)."""
    return max(1, min(want, pl.next_power_of_2(n)))


def _pad_to(x, axis, size):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, pad) if size != x.shape[axis] else x


def _mask4(mask, b, h, lq, lk, lqp, lkp):
    """The bool mask as int8 ``(Bm, Hm, R, Lkp)`` with ``R`` 1 or ``Lqp``, and its ``(rows, has_b, has_h)``."""
    mask = jnp.asarray(mask)
    if mask.ndim > 4:
        raise ValueError(f"yat_attention: mask of shape {mask.shape} does not broadcast to {(b, h, lq, lk)}")
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    for size, full in zip(mask.shape, (b, h, lq, lk)):
        if size not in (1, full):
            raise ValueError(f"yat_attention: mask of shape {mask.shape} does not broadcast to {(b, h, lq, lk)}")
    mask = jnp.broadcast_to(mask, (*mask.shape[:3], lk)).astype(jnp.int8)
    mask = _pad_to(mask, 3, lkp)
    rows = 1
    if mask.shape[2] > 1:
        mask = _pad_to(mask, 2, lqp)
        rows = lqp
    return mask, rows, mask.shape[0] > 1, mask.shape[1] > 1


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
    block_q=128,
    block_k=128,
    interpret=None,
):
    """Yat attention of ``(B, L, H, D)`` heads through the Pallas kernel; same arguments and values as
    :func:`nmn.core.yat.yat_attention` (less ``dropout``).

    Args:
        q, k, v: ``(B, Lq, H, D)``, ``(B, Lk, H, D)``, ``(B, Lk, H, Dv)``.
        mask: bool (True = attend) broadcastable to ``(B, H, Lq, Lk)``, or ``None``.
        alpha, eps: score scale (array, number or ``None``) and epsilon (array or number); both differentiable.
        spherical, normalization (``softmax``, ``l1``, ``softermax``), power, causal: as the reference.
        block_q, block_k: tile sizes (powers of two; shrunk for short sequences).
        interpret: run the kernels in Pallas interpreter mode (default: when the backend is not GPU/TPU).

    Returns ``(B, Lq, H, Dv)`` in ``v``'s dtype.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones((1, 3, 1, 2))
    >>> yat_attention(x, x, x, None, None, 1e-5, causal=True, interpret=True).shape
    (1, 3, 1, 2)
    """
    if normalization not in ("softmax", "l1", "softermax"):
        raise ValueError(f"yat_attention: normalization must be softmax, l1 or softermax, got {normalization!r}")
    if interpret is None:
        interpret = jax.default_backend() not in _ACCELERATORS
    b, lq, h, d = q.shape
    lk, dv = k.shape[1], v.shape[3]
    eps = jnp.asarray(eps, jnp.float32).reshape(())
    alpha = jnp.ones((), jnp.float32) if alpha is None else jnp.asarray(alpha, jnp.float32).reshape(())
    q32, k32 = q.astype(jnp.float32), k.astype(jnp.float32)
    if spherical:  # as nmn.core.yat.attention_scores: q / sqrt(|q|^2 + eps)
        q32 = q32 / jnp.sqrt(jnp.sum(q32 * q32, -1, keepdims=True) + eps)
        k32 = k32 / jnp.sqrt(jnp.sum(k32 * k32, -1, keepdims=True) + eps)
    bq, bk = _block(lq, block_q), _block(lk, block_k)
    lqp, lkp = _ceil_to(lq, bq), _ceil_to(lk, bk)
    dp = d if interpret else pl.next_power_of_2(d)  # Triton tiles are powers of two; zeros change no product
    dvp = dv if interpret else pl.next_power_of_2(dv)

    def heads(x, length, width):  # (B, L, H, D) -> (B, H, Lpad, Dpad)
        return _pad_to(_pad_to(jnp.swapaxes(x, 1, 2), 2, length), 3, width)

    qh, kh, vh = heads(q32, lqp, dp), heads(k32, lkp, dp), heads(v, lkp, dvp)
    rows, has_b, has_h = 0, False, False
    if mask is not None:
        mask, rows, has_b, has_h = _mask4(mask, b, h, lq, lk, lqp, lkp)
    cfg = _Cfg(
        lq=lq,
        lk=lk,
        bq=bq,
        bk=bk,
        scale=1.0 / math.sqrt(d),
        spherical=bool(spherical),
        normalization=normalization,
        power=float(power),
        causal=bool(causal),
        mask_rows=rows,
        mask_b=has_b,
        mask_h=has_h,
        interpret=bool(interpret),
    )
    o, n = _flash(qh, kh, vh, mask, jnp.stack([alpha, eps]), cfg)
    o = jnp.swapaxes(o[:, :, :lq, :dv], 1, 2)  # (B, Lq, H, Dv)
    seen = jnp.swapaxes(n[:, :, :lq], 1, 2)[..., None] > 0.0
    uniform = jnp.mean(v.astype(jnp.float32), axis=1, keepdims=True).astype(v.dtype)  # a row that sees no key
    return jnp.where(seen, o, uniform)
