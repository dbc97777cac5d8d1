"""The fused fast paths (nmn._torch._fused) equal autograd through the composed core functions."""

from __future__ import annotations

import pytest
import torch

from nmn._torch import _fused
from nmn.core import yat as core
from nmn.torch._ops import ops_for


def _core_dense(x, w, bias, alpha, eps):
    return core.yat_dense(ops_for(x), x, w.t(), bias, alpha, eps)


@pytest.mark.parametrize("bias_kind", ["tensor", "number", "none"])
@pytest.mark.parametrize("alpha_kind", ["tensor", "number", "none"])
@pytest.mark.parametrize("eps_kind", ["tensor", "number"])
def test_fused_dense_matches_core_autograd(bias_kind, alpha_kind, eps_kind):
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64)
    w = torch.randn(4, 5, dtype=torch.float64)
    x[0] = w[1]  # a clamped (zero) distance
    bias = {"tensor": torch.randn(4, dtype=torch.float64), "number": 0.3, "none": None}[bias_kind]
    alpha = {"tensor": torch.tensor([1.4], dtype=torch.float64), "number": 0.7, "none": None}[alpha_kind]
    eps = {"tensor": torch.tensor([0.05], dtype=torch.float64), "number": 0.05}[eps_kind]
    leaves = [t.requires_grad_(True) for t in _fused.tensors(x, w, bias, alpha, eps)]
    g = torch.randn(6, 4, dtype=torch.float64)
    got = _fused.YatDense.apply(x, w, bias, alpha, eps)
    want = _core_dense(x, w, bias, alpha, eps)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad((got * g).sum(), leaves), torch.autograd.grad((want * g).sum(), leaves)):
        torch.testing.assert_close(a, b)


def test_fused_tail_matches_core_autograd_with_broadcast_bias():
    torch.manual_seed(1)
    dot = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    dist = torch.randn(2, 3, 4, 4, dtype=torch.float64).abs() - 0.2  # some negative: clamped
    bias = torch.randn(3, dtype=torch.float64).reshape(1, 3, 1, 1)
    alpha = torch.tensor([1.3], dtype=torch.float64)
    eps = torch.tensor([0.1], dtype=torch.float64)
    leaves = [t.requires_grad_(True) for t in (dot, dist, bias, alpha, eps)]
    g = torch.randn_like(dot)
    got = _fused.YatTail.apply(dot, dist, bias, alpha, eps)
    want = core.yat_tail(ops_for(dot), dot, dist, bias, alpha, eps)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad((got * g).sum(), leaves), torch.autograd.grad((want * g).sum(), leaves)):
        torch.testing.assert_close(a, b)


def test_fused_paths_pass_gradcheck():
    torch.manual_seed(2)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    e = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_fused.YatDense.apply, (x, w, b, a, e))
    assert torch.autograd.gradcheck(_fused.YatTail.apply, (x, x.detach().abs() + 0.1, b[:1], a, e))


def test_ops_namespace_tail_member_equals_core():
    from nmn.torch._ops import F

    dot, dist = torch.randn(3, 4), torch.rand(3, 4) - 0.1
    want = core.yat_tail(F, dot, dist, 0.1, 1.2, 1e-5)
    torch.testing.assert_close(F.yat_tail(dot, dist, 0.1, 1.2, 1e-5), want)
    dot.requires_grad_(True)
    torch.testing.assert_close(F.yat_tail(dot, dist, 0.1, 1.2, 1e-5), want)


@pytest.mark.parametrize("floored", [False, True], ids=["no-floor", "floored"])
@pytest.mark.parametrize("alpha_kind", ["tensor", "none"])
def test_fused_dist_tail_matches_core_autograd(floored, alpha_kind):
    """The conv tail ``alpha num^2 / max(E + const - 2 num, eps)`` against autograd through the core tail of
    ``dot = num - b``, ``dist = E + |w|^2 - 2 dot`` (``const = |w|^2 + 2 b + eps``), with and without floored
    distances (the mask pass runs only when some entry is floored)."""
    torch.manual_seed(3)
    num = torch.randn(2, 1, 3, 4, 4, dtype=torch.float64)
    energy = torch.rand(2, 1, 1, 4, 4, dtype=torch.float64) * 4 + 4.0
    wsq = torch.rand(1, 1, 3, 1, 1, dtype=torch.float64) + 1.0
    b = torch.randn(1, 1, 3, 1, 1, dtype=torch.float64) * 0.1
    eps = torch.tensor([0.05], dtype=torch.float64)
    if floored:  # num = (E + |w|^2 + 2b) / 2 + 0.5: dist < 0 there
        num[0, 0, 1, 2] = ((energy[0, 0, 0, 2] + wsq[0, 0, 1, 0] + 2 * b[0, 0, 1, 0]) / 2 + 0.5).detach()
    alpha = torch.tensor([1.3], dtype=torch.float64) if alpha_kind == "tensor" else None
    leaves = [t.requires_grad_(True) for t in _fused.tensors(num, energy, wsq, b, alpha, eps)]
    const = wsq + 2 * b + eps
    got = _fused.YatDistTail.apply(num, energy, const, alpha, eps)
    dot = num - b
    want = core.yat_tail(ops_for(num), dot, energy + wsq - 2 * dot, b, alpha, eps)
    torch.testing.assert_close(got, want)
    assert bool((energy + wsq - 2 * dot < 0).any()) == floored
    g = torch.randn_like(got)
    for a, w in zip(torch.autograd.grad((got * g).sum(), leaves), torch.autograd.grad((want * g).sum(), leaves)):
        torch.testing.assert_close(a, w)


def test_dist_tail_and_group_energy_pass_gradcheck():
    torch.manual_seed(4)
    num = torch.randn(2, 1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    energy = (torch.rand(2, 1, 1, 2, 2, dtype=torch.float64) * 4 + 4).requires_grad_(True)
    const = (torch.rand(1, 1, 3, 1, 1, dtype=torch.float64) + 1).requires_grad_(True)
    a = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    e = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_fused.YatDistTail.apply, (num, energy, const, a, e))
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _fused.GroupEnergy.apply(t, 3), (x,))
    torch.testing.assert_close(_fused.group_energy(x, 3), (x * x).reshape(2, 3, 2, 3, 3).sum(2))


def test_empty_batches_have_empty_gradients():
    from nmn.torch import YatConv2D, YatNMN

    for layer, x in ((YatConv2D(2, 3, 3), torch.randn(0, 2, 5, 5)), (YatNMN(4, 3), torch.randn(0, 4))):
        x.requires_grad_(True)
        layer(x).sum().backward()
        assert x.grad.shape == x.shape and torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))


def _device_like_scalar(v, default=1.0):
    """``_fused._scalar`` as on a GPU: numbers and ``None`` as floats, every tensor ``None`` (the tensor path)."""
    if v is None:
        return default
    return None if isinstance(v, torch.Tensor) else float(v)


@pytest.mark.parametrize("path", ["cpu-scalar", "tensor"])
@pytest.mark.parametrize("alpha_value", [1.4, 0.0, -0.6])
def test_fused_dense_and_dist_tail_scalar_and_tensor_paths_match_core(monkeypatch, path, alpha_value):
    """Both ways of applying alpha (riding on ``addcmul``'s ``value`` as a CPU scalar, or a tensor multiply as on a
    device), including alpha = 0 (no division by alpha) and a negative alpha, against autograd through the core."""
    if path == "tensor":
        monkeypatch.setattr(_fused, "_scalar", _device_like_scalar)
    torch.manual_seed(5)
    x = torch.randn(5, 4, dtype=torch.float64)
    w = torch.randn(3, 4, dtype=torch.float64)
    x[1] = w[2]  # a floored distance
    bias = torch.randn(3, dtype=torch.float64)
    alpha = torch.tensor([alpha_value], dtype=torch.float64)
    eps = torch.tensor([0.05], dtype=torch.float64)
    leaves = [t.requires_grad_(True) for t in (x, w, bias, alpha, eps)]
    g = torch.randn(5, 3, dtype=torch.float64)
    got = _fused.YatDense.apply(x, w, bias, alpha, eps)
    want = _core_dense(x, w, bias, alpha, eps)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad((got * g).sum(), leaves), torch.autograd.grad((want * g).sum(), leaves)):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the inference path writes y over its own num
        torch.testing.assert_close(_fused.yat_dense(x, w, bias, alpha, eps), want)
        torch.testing.assert_close(_fused.yat_dense(x, w, 0.2, alpha_value, 0.05), _core_dense(x, w, 0.2, alpha, eps))
    num = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    energy = torch.rand(2, 1, 1, 4, dtype=torch.float64) * 3
    const = torch.randn(1, 1, 3, 1, dtype=torch.float64)  # some distances floored
    tail_leaves = [t.requires_grad_(True) for t in (num, energy, const)]
    assert torch.autograd.gradcheck(_fused.YatDistTail.apply, (*tail_leaves, alpha, eps))


def test_fused_tail_full_size_bias_gets_its_own_gradient():
    """A bias of dot's own shape: d/dbias equals d/ddot in value but is a separate tensor (no aliasing)."""
    torch.manual_seed(6)
    dot = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    dist = (torch.rand(3, 4, dtype=torch.float64) - 0.2).requires_grad_(True)
    bias = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = _fused.YatTail.apply(dot, dist, bias, 1.5, 0.1)
    g_dot, g_bias = torch.autograd.grad(y.sum(), (dot, bias))
    assert g_dot.data_ptr() != g_bias.data_ptr()
    want = torch.autograd.grad(core.yat_tail(ops_for(dot), dot, dist, bias, 1.5, 0.1).sum(), (dot, bias))
    torch.testing.assert_close(g_dot, want[0])
    torch.testing.assert_close(g_bias, want[1])


@pytest.mark.parametrize(
    "kw", [{}, {"bias": False}, {"constant_bias": 0.4, "constant_alpha": 1.7}, {"use_alpha": False}]
)
def test_yatnmn_direct_fused_call_matches_the_functional_path(kw):
    """YatNMN's direct call of the fused dense (no cast, no reshaped terms) gives the values and gradients of the
    general path through ``functional.yat_dense`` and of autograd through the core, for a 3-D input."""
    from nmn.torch import YatNMN, functional

    torch.manual_seed(7)
    layer = YatNMN(5, 4, dtype=torch.float64, **kw)
    assert layer._fast_terms is not None
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.normal_()
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    got = layer(x)
    bias, alpha, eps = layer._yat_terms()
    want = functional.yat_dense(x, layer.weight, bias, alpha, eps)
    core_want = _core_dense(x.reshape(-1, 5), layer.weight, bias, alpha, eps).reshape(2, 3, 4)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, core_want)
    g = torch.randn_like(got)
    leaves = [x, *(p for p in layer.parameters() if p.requires_grad)]
    for a, b in zip(torch.autograd.grad((got * g).sum(), leaves), torch.autograd.grad((core_want * g).sum(), leaves)):
        torch.testing.assert_close(a, b)


# the Keras layout's paths: one block, one block, two blocks and a remainder, two rows each over a block
@pytest.mark.parametrize("shape", [(7, 5), (784, 256), (1100, 300), (300_000, 2)])
@pytest.mark.parametrize("layout", ["torch", "keras"])
def test_row_sqnorm_matches_float64_numpy(shape, layout):
    """``row_sqnorm`` of a torch ``(O, I)`` weight and of a Keras kernel's ``.t()`` view, on both of its paths
    (one block: ``square().sum(0)``; several ~1 MiB blocks summed by GEMVs), against float64 numpy."""
    import numpy as np

    torch.manual_seed(2)
    o, i = shape
    if layout == "torch":
        w = torch.randn(o, i)
    else:
        w = torch.randn(i, o).t()  # the (I, O) kernel's (O, I) view
        assert _fused._transposed(w)
    want = (w.numpy().astype(np.float64) ** 2).sum(1)
    np.testing.assert_allclose(_fused.row_sqnorm(w).numpy(), want, rtol=2e-6)
