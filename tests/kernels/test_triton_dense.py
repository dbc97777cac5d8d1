"""The fused Triton Yat dense tail (nmn._torch._triton_dense) in Triton's interpreter, against independent oracles.

Importing triton aborts a process that has loaded TensorFlow, so (as in test_triton_attention.py) only the child
pytest process (``TRITON_INTERPRET=1``, ``NMN_TRITON_CHILD=1``, the ``triton-interp`` folder on ``PYTHONPATH``)
started by :func:`test_dense_kernels_in_a_child_process` imports triton; in the parent the kernel checks skip.
Oracles: a float64 numpy formula for the forward, torch autograd of the float64 reference formula and
``gradcheck`` for the gradients. Shapes are tiny (the interpreter is slow) and cross the 16 x 16 tile edges.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmn._torch import _triton_dense
from tests.kernels import triton_child
from tests.kernels.triton_child import needs_triton, parent, run_child

EPS = 1e-3

child = triton_child.child("runs in the child process of test_dense_kernels_in_a_child_process")

SHAPES = [(5, 33, 3), (16, 16, 4), (17, 5, 2)]


@parent
@needs_triton
def test_dense_kernels_in_a_child_process():
    run_child(__file__, timeout=600)


def _inputs(seed, n, o, i, dtype=torch.float64, floored=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, i, generator=g, dtype=dtype)
    w = torch.randn(o, i, generator=g, dtype=dtype)
    if floored:  # x row 0 equals w row 1: a distance at (or, rounded, below) zero, floored by the relu
        x[0] = w[1]
    b = torch.randn(o, generator=g, dtype=dtype)
    a = torch.tensor([1.3], dtype=dtype)
    return x, w, b, a


def _numpy_oracle(x, w, b, a, eps):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    dot = x @ w.T
    u = dot + (0.0 if b is None else np.asarray(b, np.float64))
    dist = (x * x).sum(1)[:, None] + (w * w).sum(1)[None, :] - 2.0 * dot
    return (1.0 if a is None else float(a[0])) * u * u / (np.maximum(dist, 0.0) + eps)


def _torch_reference(x, w, b, a, eps):
    dot = x @ w.T
    u = dot if b is None else dot + b
    dist = (x * x).sum(1, keepdim=True) + (w * w).sum(1) - 2.0 * dot
    return (1.0 if a is None else a) * u * u / (torch.relu(dist) + eps)


@child
@pytest.mark.parametrize("n,o,i", SHAPES)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_forward_matches_numpy_oracle(n, o, i, with_bias, with_alpha):
    x, w, b, a = _inputs(0, n, o, i)
    b, a = (b if with_bias else None), (a if with_alpha else None)
    got = _triton_dense.yat_dense(x, w, b, a, EPS)
    want = _numpy_oracle(x.numpy(), w.numpy(), None if b is None else b.numpy(), None if a is None else a.numpy(), EPS)
    assert got.shape == (n, o) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-9)


@child
def test_bias_as_a_number_matches_the_oracle():
    x, w, _, _ = _inputs(9, 5, 7, 3)
    got = _triton_dense.yat_dense(x, w, 0.5, 2.0, EPS)
    want = _numpy_oracle(x.numpy(), w.numpy(), np.full(7, 0.5), np.array([2.0]), EPS)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-9)


@child
@pytest.mark.parametrize("n,o,i", SHAPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_gradients_match_reference_autograd(n, o, i, with_bias):
    x, w, b, a = _inputs(1, n, o, i)
    cot = torch.randn(n, o, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    leaves = (x, w, b, a) if with_bias else (x, w, a)

    def grads(fn):
        ts = [t.detach().clone().requires_grad_(True) for t in leaves]
        args = ts if with_bias else (ts[0], ts[1], None, ts[2])
        y = fn(*args, EPS)
        return y.detach(), torch.autograd.grad((y * cot).sum(), ts)

    got_y, got = grads(_triton_dense.yat_dense)
    want_y, want = grads(_torch_reference)
    torch.testing.assert_close(got_y, want_y, rtol=1e-10, atol=1e-9)
    for k, (g, r) in enumerate(zip(got, want)):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-8, msg=lambda m, k=k: f"gradient {k}: {m}")


@child
def test_floored_distance_has_no_distance_gradient():
    """x = w row: dist <= 0 is floored, so dy/d|x|^2 = 0 there; the partial row sums must see m = 0."""
    w = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    x = w[:1].clone().requires_grad_(True)
    y = _triton_dense.yat_dense(x, w, None, None, EPS)
    (gx,) = torch.autograd.grad(y[0, 0], x)
    # y00 = dot^2 / eps with the distance floored: dy/dx = 2 dot w0 / eps only
    torch.testing.assert_close(gx, 2.0 * 5.0 * w[:1] / EPS, rtol=1e-10, atol=1e-10)


@child
def test_gradients_pass_gradcheck_on_a_tiny_case():
    x, w, b, a = _inputs(3, 3, 5, 2, floored=False)
    ts = [t.requires_grad_(True) for t in (x, w, b, a)]
    assert torch.autograd.gradcheck(lambda *t: _triton_dense.yat_dense(*t, EPS), ts)


@child
def test_float32_and_half_inputs_are_computed_in_float32():
    x, w, b, a = _inputs(4, 5, 33, 8, dtype=torch.float32, floored=False)
    want = _numpy_oracle(x.numpy(), w.numpy(), b.numpy(), a.numpy(), EPS)
    got = _triton_dense.yat_dense(x, w, b, a, EPS)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    half = _triton_dense.yat_dense(x.half(), w.half(), b, a, EPS)
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.double().numpy(), want, rtol=3e-2, atol=3e-2 * np.abs(want).max())
    bf = _triton_dense.yat_dense(x.bfloat16(), w.bfloat16(), b, a, EPS)
    assert bf.dtype == torch.bfloat16
    np.testing.assert_allclose(bf.double().numpy(), want, rtol=1e-1, atol=1e-1 * np.abs(want).max())


@child
def test_custom_ops_pass_torch_library_opcheck():
    x, w, b, a = _inputs(5, 5, 17, 3, floored=False)
    dot = (x @ w.T).requires_grad_(True)
    xx, ww = (x * x).sum(1).requires_grad_(True), (w * w).sum(1).requires_grad_(True)
    args = (dot, xx, ww, b.requires_grad_(True), a.requires_grad_(True), EPS)
    torch.library.opcheck(torch.ops.nmn.yat_dense_tail.default, args)
    grad = torch.randn(5, 17, dtype=torch.float64)
    torch.library.opcheck(torch.ops.nmn.yat_dense_tail_backward.default, (grad, *(t.detach() for t in args[:5]), EPS))


@child
def test_runs_under_torch_compile_with_fake_tensors_and_autograd():
    x, w, b, a = _inputs(7, 5, 9, 3)

    def f(x, w, b, a):
        return _triton_dense.yat_dense(x, w, b, a, EPS)

    eager_leaves = [t.clone().requires_grad_(True) for t in (x, w, b, a)]
    comp_leaves = [t.clone().requires_grad_(True) for t in (x, w, b, a)]
    eager = f(*eager_leaves)
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)(*comp_leaves)
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12)
    for p, q in zip(torch.autograd.grad(compiled.sum(), comp_leaves), torch.autograd.grad(eager.sum(), eager_leaves)):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


# supported(): these run in the parent process and never import triton


def test_supported_refuses_cpu_tensors_outside_interpreter_mode(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = _triton_dense.supported(torch.zeros(2, 3), torch.zeros(4, 3))
    assert reason.startswith("the tensors are on cpu") or reason == "triton is not installed"


def test_supported_refuses_other_dtypes_and_ranks():
    assert "2-D" in _triton_dense.supported(torch.zeros(2, 3, 1), torch.zeros(4, 3))
    assert "not fused" in _triton_dense.supported(torch.zeros(2, 3, dtype=torch.int32), torch.zeros(4, 3))


@child
def test_yatnmn_runs_the_kernel_under_nmn_dense_impl_triton(monkeypatch):
    """The layer's plain path takes the kernel when NMN_DENSE_IMPL=triton, with the torch tail's values and grads."""
    from nmn.torch import YatNMN

    torch.manual_seed(0)
    layer = YatNMN(3, 33)
    x = torch.randn(5, 3)
    calls = []
    kernel = _triton_dense.yat_dense
    monkeypatch.setattr(_triton_dense, "yat_dense", lambda *a: calls.append(1) or kernel(*a))
    results = {}
    for impl in ("triton", "torch"):
        monkeypatch.setenv("NMN_DENSE_IMPL", impl)
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        results[impl] = [y.detach(), xi.grad, layer.weight.grad.clone(), layer.bias.grad.clone(), layer.alpha.grad]
    assert calls == [1], "the kernel did not run (or ran under NMN_DENSE_IMPL=torch)"
    for got, want in zip(results["triton"], results["torch"]):
        torch.testing.assert_close(got, want, rtol=2e-5, atol=1e-5)


# NMN_DENSE_IMPL: these run in the parent process and never import triton


def test_nmn_dense_impl_is_checked(monkeypatch):
    from nmn.torch import YatNMN

    monkeypatch.setenv("NMN_DENSE_IMPL", "fused")
    with pytest.raises(ValueError, match="NMN_DENSE_IMPL: expected one of auto, torch, triton, got 'fused'"):
        YatNMN(3, 4)(torch.zeros(2, 3))


def test_forced_triton_on_cpu_outside_the_interpreter_says_why(monkeypatch):
    from nmn.torch import YatNMN

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("NMN_DENSE_IMPL", "triton")
    with pytest.raises(ValueError, match="YatNMN: NMN_DENSE_IMPL=triton cannot run this call: (the tensors are on cpu|"
                       "triton is not installed)"):  # fmt: skip
        YatNMN(3, 4)(torch.zeros(2, 3))
