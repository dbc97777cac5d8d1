"""Fast paths with analytic backward passes: the Yat tail and the plain Yat dense product.

Alternative implementations of ``nmn.core.yat.yat_tail`` / ``yat_dense`` (architecture.md allows a fast path
that passes the same conformance cases): the forward is the same arithmetic in the same order as the core
function, and the backward is written out so that autograd keeps only ``num = dot + b`` and
``den = relu(dist) + eps`` and launches about half the kernels it would for the composed ops.

With ``y = a n^2 / D``, ``r = n / D``, ``u = a G r`` (``G`` the output gradient) and ``m = [dist > 0]``:
``dy/dn = 2u``, ``dy/dD = -u r``, ``dy/ddist = -u r m``, ``dy/da = G n r``, ``dy/deps = -u r``.
Used only when autograd records (``torch.is_grad_enabled()`` and some input requires grad); otherwise the
layers call the core functions directly.
"""

from __future__ import annotations

import torch

from nmn.core import yat as _yat
from nmn.torch._ops import ops_for


def tensors(*xs):
    """The tensors among ``xs`` (numbers and None dropped)."""
    return [x for x in xs if isinstance(x, torch.Tensor)]


def recording(*xs) -> bool:
    """True when autograd would record an op on ``xs``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors(*xs))


def _reduce_to(grad, like):
    if not isinstance(like, torch.Tensor):
        return None
    return grad.sum_to_size(like.shape) if grad.shape != like.shape else grad


def _save(ctx, *saved, bias, alpha, eps):
    ctx.terms = [(isinstance(t, torch.Tensor), None if isinstance(t, torch.Tensor) else t) for t in (bias, alpha, eps)]
    ctx.save_for_backward(*saved, *tensors(bias, alpha, eps))


def _load(ctx, n):
    saved = ctx.saved_tensors
    out, i = list(saved[:n]), n
    for is_tensor, const in ctx.terms:
        if is_tensor:
            out.append(saved[i])
            i += 1
        else:
            out.append(const)
    return out


def _tail_forward(dot, dist, bias, alpha, eps):
    """``(y, num, den)``: the arithmetic of ``nmn.core.yat.yat_tail`` keeping its two intermediates."""
    num = dot if bias is None else dot + bias
    den = torch.relu(dist) + eps
    y = num * num / den
    return (y if alpha is None else y * alpha), num, den


def _tail_backward(ctx, grad, num, den, bias, alpha, eps):
    """``(u, um, grads of bias, alpha, eps)`` with ``u = a G r`` and ``um = u r m``."""
    r = num / den
    g_r = grad * r
    u = g_r if alpha is None else g_r * alpha
    um = u * torch.where(den > eps, r, 0.0)
    needs = ctx.needs_input_grad
    g_bias = _reduce_to(u, bias) * 2.0 if needs[2] else None
    g_alpha = torch.dot(g_r.reshape(-1), num.reshape(-1)).reshape(alpha.shape) if needs[3] else None
    g_eps = -torch.dot(u.reshape(-1), r.reshape(-1)).reshape(eps.shape) if needs[4] else None
    return u, um, g_bias, g_alpha, g_eps


class YatTail(torch.autograd.Function):
    """``alpha (dot + bias)^2 / (relu(dist) + eps)`` with the analytic backward above."""

    @staticmethod
    def forward(ctx, dot, dist, bias, alpha, eps):
        y, num, den = _tail_forward(dot, dist, bias, alpha, eps)
        _save(ctx, num, den, bias=bias, alpha=alpha, eps=eps)
        return y

    @staticmethod
    def backward(ctx, grad):
        num, den, bias, alpha, eps = _load(ctx, 2)
        u, um, g_bias, g_alpha, g_eps = _tail_backward(ctx, grad, num, den, bias, alpha, eps)
        return 2.0 * u, -um, g_bias, g_alpha, g_eps


class YatDense(torch.autograd.Function):
    """Plain Yat dense of 2-D ``x (N, I)`` and ``w (O, I)``: ``dot = x w^T``, ``dist = |x|^2 + |w|^2 - 2 dot``.

    Backward (yat-ops.md 10.2), with ``h = u + um``: ``dx = 2 (h w - x sum_o um)``, ``dW = 2 (h^T x - w sum_n um)``;
    two matmuls, as ``nn.Linear``.
    """

    @staticmethod
    def forward(ctx, x, w, bias, alpha, eps):
        dot = x @ w.t()
        dist = torch.add(w.square().sum(1), dot, alpha=-2.0).add_(x.square().sum(1, keepdim=True))
        y, num, den = _tail_forward(dot, dist, bias, alpha, eps)
        _save(ctx, x, w, num, den, bias=bias, alpha=alpha, eps=eps)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, num, den, bias, alpha, eps = _load(ctx, 4)
        u, um, g_bias, g_alpha, g_eps = _tail_backward(ctx, grad, num, den, bias, alpha, eps)
        h = torch.add(u, um)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.addmm(x * um.sum(1, keepdim=True), h, w, beta=-2.0, alpha=2.0)
        if ctx.needs_input_grad[1]:
            gw = torch.addmm(w * um.sum(0).unsqueeze(1), h.t(), x, beta=-2.0, alpha=2.0)
        return gx, gw, g_bias, g_alpha, g_eps


def yat_tail(dot, dist, bias, alpha, eps):
    """The Yat tail: the fused Function when autograd records, else the core function."""
    if recording(dot, dist, bias, alpha, eps):
        return YatTail.apply(dot, dist, bias, alpha, eps)
    return _yat.yat_tail(ops_for(dot), dot, dist, bias, alpha, eps)
