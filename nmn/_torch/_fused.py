"""Fast paths with analytic backward passes: the Yat tail, the plain Yat dense product and the Yat conv tail.

Alternative implementations of ``nmn.core.yat.yat_tail`` / ``yat_dense`` (docs/design.md §A3 allows a fast path
that passes the same conformance cases). They compute the same values as the core functions with fewer passes
over memory: in-place updates of their own temporaries, the clamp and epsilon as one ``max(dist + eps, eps)``
(equal to ``relu(dist) + eps``), squared norms by ``vector_norm`` (no full-size ``w * w`` temporary), and a
backward written out so that autograd keeps only ``num = dot + b`` and ``den = relu(dist) + eps``.

With ``y = a n^2 / D``, ``r = n / D``, ``u = a G r`` (``G`` the output gradient) and ``m = [dist > 0]``:
``dy/dn = 2u``, ``dy/dD = -u r``, ``dy/ddist = -u r m``, ``dy/da = G n r``, ``dy/deps = -u r``.
The Functions run only when autograd records (``torch.is_grad_enabled()`` and some input requires grad);
otherwise the same forward arithmetic runs without a graph.

>>> import torch
>>> x, w = torch.ones(2, 3), torch.ones(4, 3)
>>> float(dense_forward(x, w, None, None, 1.0)[0][0, 0])     # (3)^2 / (0 + 1)
9.0
"""

from __future__ import annotations

import torch

from nmn.core.options import env_choice

__all__ = [
    "tensors",
    "recording",
    "sqnorm",
    "row_sqnorm",
    "dense_forward",
    "dist_tail_forward",
    "YatTail",
    "YatDense",
    "YatDistTail",
    "GroupEnergy",
    "group_energy",
    "energy_forward",
    "yat_tail",
    "yat_dense",
    "yat_dist_tail",
]


def tensors(*xs):
    """The tensors among ``xs`` (numbers and None dropped).

    >>> len(tensors(torch.ones(1), 2.0, None))
    1
    """
    return [x for x in xs if isinstance(x, torch.Tensor)]


def recording(*xs) -> bool:
    """True when autograd would record an op on ``xs``.

    >>> recording(torch.ones(1, requires_grad=True)), recording(torch.ones(1))
    (True, False)
    """
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors(*xs))


def sqnorm(v, dim, keepdim=False):
    """``sum(v * v, dim)`` in one reading pass, without a full-size temporary.

    Fast on CPU when ``dim`` is the innermost, contiguous axis (rows of a weight matrix); across an outer axis
    ``v.square().sum(dim)`` is faster (measured 20x on ``(8, 64, 32, 32)`` over channels), so callers use that.

    Args:
        v: a tensor.
        dim: the axis (or axes) to reduce.
        keepdim: keep the reduced axes with size 1 (default False).

    >>> sqnorm(torch.tensor([[3.0, 4.0]]), 1).tolist()
    [25.0]
    """
    return torch.linalg.vector_norm(v, 2, dim, keepdim).square()


COLUMN_BLOCK_BYTES = 1 << 20


def row_sqnorm(w):
    """``sum(w * w, 1)`` of a 2-D ``w (O, I)``, fast in both of its layouts.

    A contiguous ``w`` (torch's ``(O, I)`` weight) takes :func:`sqnorm` along its rows. A transposed view
    ``kernel.t()`` of a contiguous ``kernel (I, O)`` (the Keras layout) needs sums down the columns of
    ``kernel``, which torch runs slowly as one reduction (``vector_norm`` over dim 0 of 4096 x 4096: 145 ms;
    ``square().sum(0)``: 40 ms, a 64 MiB temporary); here they run in row blocks of about 1 MiB whose square
    stays in the cache, each summed down its columns by a matrix-vector product with ones (4096 x 4096: 10 ms;
    measured on this machine's CPU). A weight of one block takes ``square().sum(0)``: the GEMV's ones vector
    and call cost more than they save there (Keras YatNMN 784 -> 256 on the torch backend, forward: 4-5 %
    faster, interleaved A/B in one process).

    >>> k = torch.tensor([[3.0, 1.0], [4.0, 2.0]])   # (I, O) = (2, 2)
    >>> row_sqnorm(k.t()).tolist(), row_sqnorm(k).tolist()
    ([25.0, 5.0], [10.0, 20.0])
    """
    if not _transposed(w):
        return sqnorm(w, 1)
    k = w.t()
    if k.numel() * k.element_size() <= COLUMN_BLOCK_BYTES:
        return k.square().sum(0)
    rows = max(1, COLUMN_BLOCK_BYTES // max(1, k.shape[1] * k.element_size()))  # <= k.shape[0]: k is over a block
    ones = k.new_ones(rows)
    out = None
    for start in range(0, k.shape[0], rows):
        block = k[start : start + rows].square()
        part = torch.mv(block.t(), ones[: block.shape[0]])  # the column sums as a GEMV: 2x sum(0), measured
        out = part if out is None else out.add_(part)
    return out


def _transposed(w):
    """True for ``kernel.t()`` of a contiguous 2-D ``kernel``: a weight in the Keras ``(I, O)`` layout."""
    return w.dim() == 2 and not w.is_contiguous() and w.t().is_contiguous()


def _reduce_to(grad, like):
    if not isinstance(like, torch.Tensor):
        return None
    return _sum_to(grad, like.shape)


def _save(ctx, *saved, terms):
    ctx.terms = [(isinstance(t, torch.Tensor), None if isinstance(t, torch.Tensor) else t) for t in terms]
    ctx.save_for_backward(*saved, *tensors(*terms))


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


def _scalar(v, default=1.0):
    """``v`` as a Python float where that is free: ``default`` for ``None``, a number as itself, a one-element CPU
    tensor by ``item()`` (outside ``torch.compile``); ``None`` otherwise (a device tensor: no host sync).

    A scalar lets the factor ride on an op that runs anyway (``addcmul``'s ``value``) instead of a pass of its own.

    >>> _scalar(None), _scalar(2), _scalar(torch.tensor([0.5])), _scalar(torch.ones(2))
    (1.0, 2.0, 0.5, None)
    """
    if v is None:
        return default
    if not isinstance(v, torch.Tensor):
        return float(v)
    if v.numel() != 1 or v.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    return float(v.detach())


def _scaled_product(p, q, factor, out=None):
    """``factor * p * q`` in one pass (``addcmul`` onto a broadcast zero) for a float ``factor``."""
    if factor == 1.0:
        return torch.mul(p, q, out=out) if out is not None else torch.mul(p, q)
    if not (p.is_contiguous() and q.is_contiguous()):
        # an expanded operand (the gradient of a .sum() is a stride-0 view): addcmul then takes a slow path
        # (measured 58 us against 25 us for mul + mul_ on 256 x 256 floats); mul has no such penalty
        y = torch.mul(p, q, out=out) if out is not None else torch.mul(p, q)
        return y.mul_(factor)
    zero = p.new_zeros(())
    return (
        torch.addcmul(zero, p, q, value=factor, out=out) if out is not None else torch.addcmul(zero, p, q, value=factor)
    )


def _finish(num, den, alpha, consume=False):
    """``alpha * num^2 / den`` in one new tensor (two passes; alpha rides on the first when it is a CPU scalar), or
    in ``num``'s own memory when ``consume`` (inference: no new output-sized tensor)."""
    a = _scalar(alpha)
    if a is None:
        y = num.square_().div_(den) if consume else torch.mul(num, num).div_(den)
        return y.mul_(alpha)
    return _scaled_product(num, num, a, out=num if consume else None).div_(den)


def _tail_forward(dot, dist, bias, alpha, eps):
    """``(y, num, den)``: the value of ``nmn.core.yat.yat_tail`` keeping its two intermediates."""
    num = dot if bias is None else dot + bias
    den = torch.clamp_min(dist, 0.0).add_(eps)
    return _finish(num, den, alpha), num, den


def _tail_grads(ctx, grad, num, den, alpha, eps, needs_alpha, needs_eps, scale=1.0):
    """``(s u, s um, g_alpha, g_eps)``: ``u = a G r``, ``um = u r m`` (times ``scale``) and the gradients of alpha and
    epsilon (unscaled). A ``scale`` of 2 gives the ``2u``, ``2um`` the callers need without a pass of their own.

    Passes over the output size: ``r = num / den``, ``s u`` (the factor ``s a`` rides on the product when alpha is a
    CPU scalar), ``s um`` in ``r``'s memory; reads for ``g_alpha``/``g_eps`` only when asked."""
    r = num / den
    a = _scalar(alpha)
    factor = None if a is None or a == 0.0 else a * scale
    if factor is not None:
        u = _scaled_product(grad, r, factor)  # s a G r
        g_alpha = (torch.dot(u.reshape(-1), num.reshape(-1)) / factor).reshape(alpha.shape) if needs_alpha else None
    else:
        u = grad * r
        g_alpha = torch.dot(u.reshape(-1), num.reshape(-1)).reshape(alpha.shape) if needs_alpha else None
        u.mul_(alpha * scale)
    um = r.mul_(u)
    g_eps = (um.sum() * (-1.0 / scale)).reshape(eps.shape) if needs_eps else None
    _zero_where_floored(um, den, eps)
    return u, um, g_alpha, g_eps


def _zero_where_floored(um, den, eps):
    """``um[den <= eps] = 0`` (``m = 0`` where the distance was floored), in place.

    On CPU (outside ``torch.compile``) the floor is rare and a mask pass is the costliest op of the backward
    (measured 5 ms on 2M floats against 0.7 ms for ``amin``), so the mask is built only when some entry is floored;
    the test is one reduction and a host compare (:func:`_floored_possible`).
    """
    if _floored_possible(den, eps, _scalar(eps, 0.0)):
        um.masked_fill_(den <= eps, 0.0)


def _sum_to(t, shape):
    """``t.sum_to_size(shape)`` as an explicit ``sum`` over the broadcast axes (2x faster on CPU, measured)."""
    shape = tuple(shape)
    if tuple(t.shape) == shape:
        return t
    lead = t.dim() - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and t.shape[lead + i] != 1)
    return t.sum(dims, keepdim=True).reshape(shape)


class YatTail(torch.autograd.Function):
    """``alpha (dot + bias)^2 / (relu(dist) + eps)`` with the analytic backward above."""

    @staticmethod
    def forward(ctx, dot, dist, bias, alpha, eps):
        y, num, den = _tail_forward(dot, dist, bias, alpha, eps)
        _save(ctx, num, den, terms=(bias, alpha, eps))
        return y

    @staticmethod
    def backward(ctx, grad):
        num, den, bias, alpha, eps = _load(ctx, 2)
        needs = ctx.needs_input_grad
        # u2 = 2u, um2 = 2um (_tail_grads' scale): d/ddot = u2 as it comes, d/ddist = -um = -um2 / 2
        u2, um2, g_alpha, g_eps = _tail_grads(ctx, grad, num, den, alpha, eps, needs[3], needs[4], scale=2.0)
        g_bias = _reduce_to(u2, bias) if needs[2] else None
        g_bias = g_bias.clone() if g_bias is u2 else g_bias  # a full-size bias: its own tensor, not dot's
        return u2, um2.mul_(-0.5), g_bias, g_alpha, g_eps


def _num_den(x, w, bias, eps, clamp=True):
    """``(num, den)`` of the plain Yat dense product: ``num = x w^T + b``, ``den = max(|x|^2 + |w|^2 - 2 dot + eps,
    eps)``; the bias rides in the GEMM (``addmm``, as ``nn.Linear``) and in the per-neuron constant of the distance.
    ``clamp=False`` leaves ``den = |x|^2 + |w|^2 - 2 dot + eps`` unfloored (the caller floors it where needed)."""
    if isinstance(bias, torch.Tensor):  # num = b + x w^T in the GEMM's own epilogue, as nn.Linear
        num = torch.addmm(bias, x, w.t())
    else:
        num = torch.mm(x, w.t())
        if bias is not None:
            num.add_(bias)
    # den = |x|^2 + (|w|^2 + 2b + eps) - 2 num (= |x|^2 + |w|^2 - 2 dot + eps): the bias folded into the small
    # per-neuron constant, three passes over the output for the distance
    const = row_sqnorm(w)
    if bias is not None:
        const = const.add_(bias, alpha=2.0) if isinstance(bias, torch.Tensor) else const.add_(2.0 * bias)
    const = const.add_(eps)
    den = torch.add(const, num, alpha=-2.0).add_(sqnorm(x, 1, True))
    return num, (den.clamp_min_(eps) if clamp else den)


def dense_forward(x, w, bias, alpha, eps, consume=False):
    """``(y, num, den)`` of the plain Yat dense product of 2-D ``x (N, I)`` and ``w (O, I)``.

    ``dot = x w^T``; ``den = max(|x|^2 + |w|^2 - 2 dot + eps, eps)``; ``y = alpha (dot + b)^2 / den``.

    Args:
        x: ``(N, I)``.
        w: ``(O, I)``.
        bias, alpha, eps: tensors (``bias (O,)``, ``alpha (1,)``, ``eps (1,)``), numbers or ``None``.
        consume: write ``y`` over ``num`` (which is then ``y``): inference, where ``num`` is not kept.

    >>> y, num, den = dense_forward(torch.ones(1, 2), torch.zeros(3, 2), 1.0, 2.0, 1.0)
    >>> [round(v, 4) for v in y[0].tolist()], den.tolist()
    ([0.6667, 0.6667, 0.6667], [[3.0, 3.0, 3.0]])
    """
    num, den = _num_den(x, w, bias, eps)
    return _finish(num, den, alpha, consume), num, den


def _floored_possible(den, eps, e):
    """False when no entry of ``den`` is at or below the floor ``eps`` (CPU, outside ``torch.compile``: one
    reduction and a host compare, ``float(den.amin())``: 8 us on 256 x 256 floats against 21 us for ``den.min()``,
    measured); True otherwise (then the caller floors ``den`` and builds the mask).

    >>> _floored_possible(torch.tensor([1.0, 2.0]), 1.0, 1.0), _floored_possible(torch.tensor([2.0]), 1.0, 1.0)
    (True, False)
    """
    if den.numel() == 0:
        return False
    if den.device.type != "cpu" or torch.compiler.is_compiling():
        return True
    return bool(den.amin() <= eps) if e is None else float(den.amin()) <= e


class YatDense(torch.autograd.Function):
    """Plain Yat dense of 2-D ``x (N, I)`` and ``w (O, I)``: ``dot = x w^T``, ``dist = |x|^2 + |w|^2 - 2 dot``.

    ``w`` may be a contiguous ``(O, I)`` weight (torch) or the ``.t()`` view of a contiguous ``(I, O)`` kernel
    (Keras on the torch backend); the norms (:func:`row_sqnorm`) and ``dW`` follow the layout that came, so the
    gradient reaches the kernel with no transposing copy.

    Backward (docs/design.md §10.2), with ``h = u + um``: ``dx = 2 (h w - x sum_o um)``, ``dW = 2 (h^T x - w sum_n um)``;
    two matmuls, as ``nn.Linear``, and one in-place pass over each of ``dx`` and ``dW``.

    The forward computes ``r = num / den`` and ``y = alpha num r`` (the same two passes as ``alpha num^2 / den``)
    and keeps ``r`` for the backward, which then needs no division of its own; ``r`` is written over ``den`` (no
    new output-sized tensor), and the floor mask ``den <= eps`` is built, and kept, only where some distance may be
    floored (the test, one reduction, moves from the backward to the forward). The CPU-scalar
    alpha and epsilon are read once, in the forward.
    """

    @staticmethod
    def forward(ctx, x, w, bias, alpha, eps):
        # den unfloored: where no entry reaches the floor (the rule on CPU, tested by one reduction) the clamp
        # would change nothing, so it runs, with the mask m = 0 it implies, only where some entry does
        num, den = _num_den(x, w, bias, eps, clamp=False)
        a, e = _scalar(alpha), _scalar(eps, 0.0)
        floored = None
        if _floored_possible(den, eps, e):
            den.clamp_min_(eps)
            floored = den <= eps
        # r in den's memory (den is not kept): no new output-sized tensor in eager; a traced graph (torch.compile,
        # torch.export) gets the plain division, since out= refuses tensors that record when the graph is replayed
        eager = not (torch.compiler.is_compiling() or num.requires_grad or den.requires_grad)
        r = torch.div(num, den, out=den) if eager else num / den
        y = _scaled_product(num, r, a) if a is not None else torch.mul(num, r).mul_(alpha)
        ctx.scalars = (a, e)
        _save(ctx, x, w, num, r, floored, terms=(bias, alpha, eps))
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, num, r, floored, bias, alpha, eps = _load(ctx, 5)
        a, _ = ctx.scalars
        needs = ctx.needs_input_grad
        factor = None if a is None or a == 0.0 else 2.0 * a
        if factor is not None:
            # unscaled t = G r and s = t r (u2 = f t, um2 = f s, f = 2a): f rides on the GEMMs' alpha and on the
            # small reductions instead of a pass of its own, and mul reads an expanded G at full speed
            t = torch.mul(r, grad)
            g_alpha = torch.dot(t.reshape(-1), num.reshape(-1)).reshape(alpha.shape) if needs[3] else None
            s = torch.mul(t, r)
            g_eps = (s.sum() * (-0.5 * factor)).reshape(eps.shape) if needs[4] else None
            if floored is not None:
                s.masked_fill_(floored, 0.0)
            g_bias = _reduce_to(t, bias) if needs[2] else None
            g_bias = None if g_bias is None else g_bias * factor  # a new tensor: t becomes h below
            h = t.add_(s)
            zero = h.new_zeros(())
            gx = gw = None
            if needs[0]:
                gx = torch.addmm(zero, h, w, beta=0, alpha=factor).addcmul_(x, s.sum(1, keepdim=True), value=-factor)
            if needs[1] and _transposed(w):  # dW in the kernel's own (I, O) layout, handed back as its .t() view
                gw = torch.addmm(zero, x.t(), h, beta=0, alpha=factor)
                gw = gw.addcmul_(w.t(), s.sum(0).unsqueeze(0), value=-factor).t()
            elif needs[1]:
                gw = torch.addmm(zero, h.t(), x, beta=0, alpha=factor)
                gw.addcmul_(w, s.sum(0).unsqueeze(1), value=-factor)
            return gx, gw, g_bias, g_alpha, g_eps
        # a tensor alpha (a device scalar: no host sync) or alpha = 0: u2 = 2u = 2 alpha G r, um2 = 2um = u2 r
        u2 = grad * r
        g_alpha = torch.dot(u2.reshape(-1), num.reshape(-1)).reshape(alpha.shape) if needs[3] else None
        u2.mul_(alpha * 2.0)
        um2 = torch.mul(u2, r)  # r is saved: never written (a second backward with retain_graph reads it again)
        g_eps = (um2.sum() * -0.5).reshape(eps.shape) if needs[4] else None
        if floored is not None:
            um2.masked_fill_(floored, 0.0)
        g_bias = _reduce_to(u2, bias) if needs[2] else None
        g_bias = g_bias.clone() if g_bias is u2 else g_bias  # u2 becomes h2 below
        h2 = u2.add_(um2)
        gx = gw = None
        if needs[0]:
            gx = torch.mm(h2, w).addcmul_(x, um2.sum(1, keepdim=True), value=-1.0)
        if needs[1] and _transposed(w):
            gw = torch.mm(x.t(), h2).addcmul_(w.t(), um2.sum(0).unsqueeze(0), value=-1.0).t()
        elif needs[1]:
            gw = torch.mm(h2.t(), x).addcmul_(w, um2.sum(0).unsqueeze(1), value=-1.0)
        return gx, gw, g_bias, g_alpha, g_eps


def dist_tail_forward(num, energy, const, alpha, eps, consume=False):
    """``(y, den)`` of ``alpha num^2 / max(energy + const - 2 num, eps)`` (the conv tail; see :func:`yat_dist_tail`).

    ``consume`` writes ``y`` over ``num`` (inference, where the caller does not keep ``num``).

    >>> y, den = dist_tail_forward(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([8.0]), None, 1.0)
    >>> round(float(y), 4), den.tolist()
    (0.8, [5.0])
    """
    den = torch.add(energy, num, alpha=-2.0).add_(const).clamp_min_(eps)
    return _finish(num, den, alpha, consume), den


class YatDistTail(torch.autograd.Function):
    """``alpha num^2 / max(energy + const - 2 num, eps)``; ``energy`` and ``const`` broadcast against ``num``.

    With ``num = dot + b`` and ``const = |w|^2 + 2 b + eps`` this is the Yat tail of a contraction whose bias
    the contraction itself added (a conv's ``bias=``): ``energy + const - 2 num = |P|^2 + |w|^2 - 2 dot + eps``.
    Gradients: ``num: 2u + 2um``, ``energy`` and ``const``: ``-um`` summed to their shapes, ``eps`` (the floor
    only; the rest reaches epsilon through ``const``): ``-sum(u r (1 - m))``, ``alpha``: ``sum(G n r)``.
    """

    @staticmethod
    def forward(ctx, num, energy, const, alpha, eps):
        y, den = dist_tail_forward(num, energy, const, alpha, eps)
        ctx.shapes = (energy.shape, const.shape)
        _save(ctx, num, den, terms=(alpha, eps))
        return y

    @staticmethod
    def backward(ctx, grad):
        num, den, alpha, eps = _load(ctx, 2)
        needs = ctx.needs_input_grad
        # u2 = 2u and um2 = 2um: g_num = u2 + um2 in one pass; the halves go to the small reductions
        u2, um2, g_alpha, g_eps = _tail_grads(ctx, grad, num, den, alpha, eps, needs[3], needs[4], scale=2.0)
        if g_eps is not None:  # _tail_grads gives -sum(u r); the floor's share is that minus the unmasked part
            g_eps = g_eps + (um2.sum() * 0.5).reshape(g_eps.shape)
        g_energy = _sum_to(um2, ctx.shapes[0]).mul(-0.5) if needs[1] else None
        g_const = _sum_to(um2, ctx.shapes[1]).mul(-0.5) if needs[2] else None
        g_num = u2.add_(um2) if needs[0] else None
        return g_num, g_energy, g_const, g_alpha, g_eps


def _grouped(shape, groups, axis):
    """``shape`` with its channel axis split into ``(groups, channels per group)``."""
    return (*shape[:axis], groups, shape[axis] // groups, *shape[axis + 1 :])


def energy_forward(x, groups, axis=1):
    """``sum of x^2`` over each group's channels of ``x``, the channels on ``axis``: ``(N, C, *S) -> (N, groups,
    *S)`` for torch's layout (``axis=1``), ``(N, *S, C) -> (N, *S, groups)`` for channels-last (``axis=-1``).

    >>> energy_forward(torch.ones(1, 4, 2), 2).tolist()
    [[[2.0, 2.0], [2.0, 2.0]]]
    >>> energy_forward(torch.ones(1, 2, 4), 2, axis=-1).tolist()
    [[[2.0, 2.0], [2.0, 2.0]]]
    """
    axis = axis % x.dim()
    return x.square().reshape(_grouped(x.shape, groups, axis)).sum(axis + 1)


class GroupEnergy(torch.autograd.Function):
    """:func:`energy_forward` with the backward ``dx = 2 x g`` in one pass (autograd's ``square`` takes three:
    ``x.pow(1)``, ``* 2``, ``* g``, each a new input-sized tensor)."""

    @staticmethod
    def forward(ctx, x, groups, axis=1):
        ctx.groups, ctx.axis = groups, axis % x.dim()
        ctx.save_for_backward(x)
        return energy_forward(x, groups, axis)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        grouped = _grouped(x.shape, ctx.groups, ctx.axis)
        g2 = (grad * 2.0).unsqueeze(ctx.axis + 1)  # the energy's shape with a 1 for the channels: small
        gx = torch.empty_like(x, memory_format=torch.contiguous_format)
        # written through a view, returned as the base: autograd can then add the conv's dx into it in place
        torch.mul(x.reshape(grouped), g2, out=gx.view(grouped))
        return gx, None, None


def group_energy(x, groups, axis=1):
    """:func:`energy_forward`, through :class:`GroupEnergy` when autograd records.

    >>> group_energy(torch.ones(1, 2, 3, requires_grad=True), 1).sum().backward()
    """
    if recording(x):
        return GroupEnergy.apply(x, groups, axis)
    return energy_forward(x, groups, axis)


def yat_tail(dot, dist, bias, alpha, eps):
    """The Yat tail ``alpha (dot + bias)^2 / (relu(dist) + eps)``: the Function when autograd records.

    >>> float(yat_tail(torch.tensor([2.0]), torch.tensor([1.0]), 1.0, 2.0, 1.0))
    9.0
    """
    if recording(dot, dist, bias, alpha, eps):
        return YatTail.apply(dot, dist, bias, alpha, eps)
    return _tail_forward(dot, dist, bias, alpha, eps)[0]


DENSE_IMPLS = ("auto", "torch", "triton")


def dense_impl() -> str:
    """The dense tail's path, from ``NMN_DENSE_IMPL``: ``auto`` (default) and ``torch`` run the torch ops here;
    ``triton`` runs the fused Triton tail of :mod:`nmn._torch._triton_dense` (CUDA, or CPU under
    ``TRITON_INTERPRET=1``). ``auto`` stays on torch until a GPU run has measured and confirmed the kernel (none
    has yet: no device was lent to the round that wrote it).

    >>> dense_impl() in DENSE_IMPLS
    True
    """
    return env_choice("NMN_DENSE_IMPL", DENSE_IMPLS)


def yat_dense(x, w, bias, alpha, eps):
    """Plain Yat dense of 2-D ``x (N, I)`` and ``w (O, I)``: the Function when autograd records.

    >>> yat_dense(torch.ones(2, 3), torch.ones(4, 3), None, None, 1.0).shape
    torch.Size([2, 4])
    """
    if dense_impl() == "triton":
        from nmn._torch import _triton_dense

        reason = _triton_dense.supported(x, w, eps)
        if reason:
            raise ValueError(f"YatNMN: NMN_DENSE_IMPL=triton cannot run this call: {reason}")
        return _triton_dense.yat_dense(x, w, bias, alpha, eps)
    if recording(x, w, bias, alpha, eps):
        return YatDense.apply(x, w, bias, alpha, eps)
    return dense_forward(x, w, bias, alpha, eps, consume=True)[0]  # num = x w^T (+ b) is its own


def yat_dist_tail(num, energy, const, alpha, eps, *, consume=False):
    """``alpha num^2 / max(energy + const - 2 num, eps)``: the Function when autograd records.

    Args:
        num: ``dot + b``, full size.
        energy: the input energy ``|P|^2``, broadcastable to ``num``.
        const: ``|w|^2 + 2 b + eps``, broadcastable to ``num``.
        alpha, eps: tensors, numbers or ``None`` (alpha).
        consume: when autograd does not record, write the result over ``num`` (a caller's own temporary).

    >>> float(yat_dist_tail(torch.tensor([3.0]), torch.tensor([9.0]), torch.tensor([-7.0]), 2.0, 1.0))
    18.0
    """
    if recording(num, energy, const, alpha, eps):
        return YatDistTail.apply(num, energy, const, alpha, eps)
    return dist_tail_forward(num, energy, const, alpha, eps, consume)[0]
