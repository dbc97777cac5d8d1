"""The Yat dense tail after the GEMM as one Triton kernel forward and one backward (elementwise over ``(N, O)``).

The GEMM stays torch's (``dot = x w^T`` by ``torch.mm``); the row norms ``xx = |x|^2`` ``(N,)`` and column norms
``ww = |w|^2`` ``(O,)`` are small torch reductions. The kernel fuses everything after them into one pass:

    ``u = dot + b``, ``dist = xx + ww - 2 dot``, ``den = relu(dist) + eps``, ``y = alpha u^2 / den``.

Backward, with ``g = dL/dy``, ``r = u / den`` and ``m = [dist > 0]`` (at a floored distance, ``dist <= 0``, the
relu's derivative is 0, so the distance terms vanish):

* ``dy/ddot = 2 alpha r + alpha r^2 m * 2 = 2 alpha r (1 + r m)`` (the numerator's and the distance's ``-2 dot``),
* ``dy/dxx = dy/dww = -alpha r^2 m``, ``dy/db = 2 alpha r``, ``dy/dalpha = u r``.

One backward kernel reads ``g, dot, xx, ww, b`` once and writes ``grad_dot = g dy/ddot`` ``(N, O)`` plus per-tile
partial sums (no atomics, deterministic): the row sums of ``g dy/dxx`` (one per column tile), the column sums of
``g dy/dww`` and ``g dy/db`` (one per row tile) and ``g dy/dalpha`` (one per tile); torch adds the partials.
Autograd then takes ``grad_dot`` through the GEMM (``grad_x = grad_dot w``, ``grad_w = grad_dot^T x``) and the
norms' gradients through ``|x|^2`` (``2 x * rowsum``) and ``|w|^2`` (``2 w * colsum``): those are torch's ops.
float16/bfloat16 are loaded and computed in float32 (the output keeps the input dtype); float64 stays float64.

Both passes are ``torch.library`` custom ops (``nmn::yat_dense_tail`` and ``nmn::yat_dense_tail_backward``) with
fake implementations and a registered autograd formula, so they run in eager mode and under ``torch.compile``.
Triton is imported on first use only; on CPU the kernels run in Triton's interpreter when ``TRITON_INTERPRET=1``
is set before that first use (the pattern of :mod:`nmn._torch._triton_attention`).

>>> supported(torch.zeros(2, 3), torch.zeros(4, 3)) in ("", "triton is not installed") or not interpreting()
True
"""

from __future__ import annotations

import functools

import torch

from nmn._torch._fused import sqnorm
from nmn._torch._triton_attention import available, interpreting, triton_cdiv

__all__ = ["available", "interpreting", "supported", "yat_dense"]

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

tl = None  # triton.language, bound by _kernels() on first use (the kernels below read it as a global)


def supported(x, w, eps=None) -> str:
    """``''`` when the fused tail can run ``x (N, I)``, ``w (O, I)`` (and ``eps``), else the reason it cannot (one
    line).

    >>> supported(torch.zeros(2, 3, 1), torch.zeros(4, 3))
    'x and w must be 2-D, got 3-D and 2-D'
    """
    if x.dim() != 2 or w.dim() != 2:
        return f"x and w must be 2-D, got {x.dim()}-D and {w.dim()}-D"
    if isinstance(eps, torch.Tensor) and eps.requires_grad:
        return "a learnable epsilon is not fused"
    if x.dtype not in DTYPES or w.dtype not in DTYPES:
        return f"dtypes {x.dtype} / {w.dtype} are not fused (float32, float16, bfloat16, float64)"
    if not available():
        return "triton is not installed"
    if not ((x.is_cuda and w.is_cuda) or interpreting()):
        return f"the tensors are on {x.device.type} (the kernel needs CUDA, or TRITON_INTERPRET=1 on CPU)"
    return ""


# ----------------------------------------------------------------------------------------------------------------
# kernels (plain functions; _kernels() binds ``tl`` and wraps them in triton.jit on first use)


def _load(ptr, mask, F64: tl.constexpr):
    v = tl.load(ptr, mask=mask, other=0.0)
    if F64:
        return v.to(tl.float64)
    return v.to(tl.float32)


def _tile(DOT, XX, WW, B, A, n, o, F64: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    """This program's ``(BM, BN)`` output tile: its rows, columns, bounds mask, offsets, and the tail's inputs."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    ok = (rm[:, None] < n) & (rn[None, :] < o)
    offs = rm[:, None] * o + rn[None, :]
    dot = _load(DOT + offs, ok, F64)
    xx = _load(XX + rm, rm < n, F64)
    ww = _load(WW + rn, rn < o, F64)
    b = _load(B + rn, rn < o, F64)
    a = _load(A, True, F64)
    return rm, rn, ok, offs, dot, xx, ww, b, a


def _forward_kernel(DOT, XX, WW, B, A, Y, n, o, eps, F64: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    rm, rn, ok, offs, dot, xx, ww, b, a = _tile(DOT, XX, WW, B, A, n, o, F64, BM, BN)
    u = dot + b[None, :]
    den = tl.maximum(xx[:, None] + ww[None, :] - 2.0 * dot, 0.0) + eps
    tl.store(Y + offs, a * u * u / den, mask=ok)


def _backward_kernel(
    G, DOT, XX, WW, B, A, GD, ROWP, COLP, BIASP, ALPHAP, n, o, eps,
    F64: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
):  # fmt: skip
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    rm, rn, ok, offs, dot, xx, ww, b, a = _tile(DOT, XX, WW, B, A, n, o, F64, BM, BN)
    g = _load(G + offs, ok, F64)
    u = dot + b[None, :]
    dist = xx[:, None] + ww[None, :] - 2.0 * dot
    den = tl.maximum(dist, 0.0) + eps
    r = u / den
    m = tl.where(dist > 0.0, 1.0, 0.0)
    gr = tl.where(ok, g * r, 0.0)  # padded lanes hold 0 and add nothing to the partial sums
    tl.store(GD + offs, 2.0 * a * gr * (1.0 + r * m), mask=ok)
    gn = a * gr * r * m  # = -g dy/dxx = -g dy/dww
    tl.store(ROWP + pn * n + rm, -tl.sum(gn, 1), mask=rm < n)
    tl.store(COLP + pm * o + rn, -tl.sum(gn, 0), mask=rn < o)
    tl.store(BIASP + pm * o + rn, 2.0 * a * tl.sum(gr, 0), mask=rn < o)
    tl.store(ALPHAP + pm * tl.num_programs(1) + pn, tl.sum(tl.sum(gr * u, 1), 0))


@functools.cache
def _kernels():
    """``(forward, backward)``: the kernels above compiled with ``triton.jit`` (imports triton)."""
    global tl
    import triton
    import triton.language as language

    tl = language
    for helper in ("_load", "_tile"):  # the kernels call the jitted helpers through the globals
        globals()[helper] = triton.jit(globals()[helper])
    return triton.jit(_forward_kernel), triton.jit(_backward_kernel)


# ----------------------------------------------------------------------------------------------------------------
# torch.library ops


def _blocks(device):
    """``(BM, BN, num_warps)``: 16 x 16 tiles in the interpreter (cheap and boundary-rich), 64 x 64 on a GPU."""
    return (64, 64, 4) if device.type == "cuda" else (16, 16, 1)


def _compute(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.custom_op("nmn::yat_dense_tail", mutates_args=())
def _tail_forward(
    dot: torch.Tensor, xx: torch.Tensor, ww: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor, eps: float
) -> torch.Tensor:
    """``y (N, O) = alpha (dot + b)^2 / (relu(xx + ww - 2 dot) + eps)`` in ``dot``'s dtype."""
    fwd, _ = _kernels()
    n, o = dot.shape
    bm, bn, warps = _blocks(dot.device)
    y = torch.empty_like(dot, memory_format=torch.contiguous_format)
    grid = (triton_cdiv(n, bm), triton_cdiv(o, bn))
    fwd[grid](
        dot.contiguous(), xx.contiguous(), ww.contiguous(), bias.contiguous(), alpha.reshape(1).contiguous(), y,
        n, o, float(eps), F64=dot.dtype == torch.float64, BM=bm, BN=bn, num_warps=warps,
    )  # fmt: skip
    return y


@_tail_forward.register_fake
def _(dot, xx, ww, bias, alpha, eps):
    return torch.empty_like(dot, memory_format=torch.contiguous_format)


@torch.library.custom_op("nmn::yat_dense_tail_backward", mutates_args=())
def _tail_backward(
    grad: torch.Tensor,
    dot: torch.Tensor,
    xx: torch.Tensor,
    ww: torch.Tensor,
    bias: torch.Tensor,
    alpha: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_dot, grad_xx, grad_ww, grad_bias, grad_alpha)`` of :func:`_tail_forward` (see the module docstring)."""
    _, bwd = _kernels()
    n, o = dot.shape
    bm, bn, warps = _blocks(dot.device)
    gm, gn = triton_cdiv(n, bm), triton_cdiv(o, bn)
    ct = _compute(dot.dtype)
    gd = torch.empty_like(dot, memory_format=torch.contiguous_format)
    rowp = torch.empty(gn, n, dtype=ct, device=dot.device)
    colp = torch.empty(gm, o, dtype=ct, device=dot.device)
    biasp = torch.empty(gm, o, dtype=ct, device=dot.device)
    alphap = torch.empty(gm, gn, dtype=ct, device=dot.device)
    bwd[(gm, gn)](
        grad.contiguous(), dot.contiguous(), xx.contiguous(), ww.contiguous(), bias.contiguous(),
        alpha.reshape(1).contiguous(), gd, rowp, colp, biasp, alphap, n, o, float(eps),
        F64=dot.dtype == torch.float64, BM=bm, BN=bn, num_warps=warps,
    )  # fmt: skip
    return (
        gd,
        rowp.sum(0).to(xx.dtype),
        colp.sum(0).to(ww.dtype),
        biasp.sum(0).to(bias.dtype),
        alphap.sum().reshape(alpha.shape).to(alpha.dtype),
    )


@_tail_backward.register_fake
def _(grad, dot, xx, ww, bias, alpha, eps):
    return (
        torch.empty_like(dot, memory_format=torch.contiguous_format),
        torch.empty_like(xx),
        torch.empty_like(ww),
        torch.empty_like(bias),
        torch.empty_like(alpha),
    )


def _setup(ctx, inputs, output):
    dot, xx, ww, bias, alpha, eps = inputs
    ctx.save_for_backward(dot, xx, ww, bias, alpha)
    ctx.eps = eps


def _backward(ctx, grad):
    dot, xx, ww, bias, alpha = ctx.saved_tensors
    gd, gxx, gww, gb, ga = _tail_backward(grad.contiguous(), dot, xx, ww, bias, alpha, ctx.eps)
    return gd, gxx, gww, gb, ga, None


_tail_forward.register_autograd(_backward, setup_context=_setup)


def yat_dense(x, w, bias, alpha, eps):
    """Plain Yat dense of 2-D ``x (N, I)`` and ``w (O, I)`` with the fused Triton tail.

    Args:
        x, w: ``(N, I)``, ``(O, I)`` (CUDA, or CPU under ``TRITON_INTERPRET=1``); see :func:`supported`.
        bias: ``(O,)`` tensor, a number or ``None``; alpha: ``(1,)`` tensor, a number or ``None`` (= 1);
        eps: a number (or a tensor without gradient).

    Shape: ``-> (N, O)`` in the promoted dtype of ``x, w`` (half types computed in float32 inside the kernel).
    The GEMM is ``torch.mm`` and the norms are torch reductions; autograd differentiates those.
    """
    if isinstance(eps, torch.Tensor):
        if eps.requires_grad and torch.is_grad_enabled():
            raise ValueError("yat_dense (triton): epsilon must be a number or a tensor without gradient")
        eps = float(eps.reshape(-1)[0])
    result = torch.promote_types(x.dtype, w.dtype)
    x, w = x.to(result), w.to(result)
    ct = _compute(result)
    dot = torch.mm(x, w.t())
    xx = sqnorm(x.to(ct), 1)  # one reading pass, no full-size x*x / w*w temporary
    ww = sqnorm(w.to(ct), 1)
    if bias is None or not isinstance(bias, torch.Tensor):
        bias = torch.full((w.shape[0],), 0.0 if bias is None else float(bias), dtype=ct, device=x.device)
    else:
        bias = bias.to(ct).reshape(w.shape[0])
    if alpha is None or not isinstance(alpha, torch.Tensor):
        alpha = torch.full((1,), 1.0 if alpha is None else float(alpha), dtype=ct, device=x.device)
    else:
        alpha = alpha.to(ct).reshape(1)
    return _tail_forward(dot, xx, ww, bias, alpha, float(eps))
