"""The fused Triton Yat attention (nmn._torch._triton_attention) in Triton's interpreter, against independent oracles.

Importing triton aborts a process that has loaded TensorFlow (and torch probes for triton, e.g. in
``torch.optim``), so triton is not installed into the test environment's site-packages: ``.ci/run`` installs it
into ``<venv>/triton-interp`` (or set ``NMN_TRITON_PATH``), and only the child pytest process
(``TRITON_INTERPRET=1``, ``NMN_TRITON_CHILD=1``, that folder on ``PYTHONPATH``) started by
:func:`test_kernels_in_a_child_process` imports it; in the parent the kernel checks skip. Oracles: the numpy reference of the ``nmn`` ONNX function (``onnx_ops.reference``),
onnxruntime running the function for the conformance cases, and torch autograd of the reference path
(``NMN_ATTENTION_IMPL=reference``) in float64 for the gradients. Shapes are tiny: the interpreter is slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmn._torch import _triton_attention
from nmn.torch import functional
from tests.kernels import triton_child
from tests.kernels.triton_child import CHILD, needs_triton, parent, run_child

child = triton_child.child("runs in the child process of test_kernels_in_a_child_process")

NORMS = ("softmax", "l1", "softermax")
FLAGS = [(n, c, m, s) for n in NORMS for c in (False, True) for m in (False, True) for s in (False, True)]


@parent
@needs_triton
def test_kernels_in_a_child_process():
    run_child(__file__, timeout=1500)


def _heads(seed, b, lq, lk, h, d, dv=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, lq, h, d, generator=g, dtype=dtype),
        torch.randn(b, lk, h, d, generator=g, dtype=dtype),
        torch.randn(b, lk, h, dv, generator=g, dtype=dtype),
    )


def _mask(seed, b, lq, lk):
    """A random (B, 1, Lq, Lk) mask with one fully masked query row (it must attend uniformly)."""
    m = torch.rand(b, 1, lq, lk, generator=torch.Generator().manual_seed(seed)) > 0.3
    m[0, 0, 1, :] = False
    return m


def _opts(normalization, causal, spherical):
    return dict(
        normalization=normalization,
        power=2.0 if normalization == "softermax" else 1.0,
        causal=causal,
        spherical=spherical,
    )


@child
@pytest.mark.parametrize("normalization,causal,masked,spherical", FLAGS)
@pytest.mark.parametrize("lq,lk", [(5, 5), (7, 4)])
def test_forward_matches_numpy_oracle(normalization, causal, masked, spherical, lq, lk):
    from onnx_ops import reference

    q, k, v = _heads(0, 2, lq, lk, 2, 3)
    mask = _mask(1, 2, lq, lk) if masked else None
    opts = _opts(normalization, causal, spherical)
    got = _triton_attention.yat_attention(q, k, v, mask, 1.3, 1e-3, **opts)
    full = np.broadcast_to(mask.numpy() if masked else np.ones((1, 1, 1, 1), bool), (2, 2, lq, lk))
    want = reference.YatAttention(
        q.numpy(),
        k.numpy(),
        v.numpy(),
        full,
        np.array([1.3]),
        np.array([1e-3]),
        spherical=int(spherical),
        normalization=normalization,
        power=opts["power"],
        causal=int(causal),
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def _reference_grads(fn, leaves, cot, monkeypatch, impl):
    monkeypatch.setenv("NMN_ATTENTION_IMPL", impl)
    xs = [t.detach().clone().requires_grad_(True) for t in leaves]
    out = fn(*xs)
    return out.detach(), torch.autograd.grad((out * cot).sum(), xs)


@child
@pytest.mark.parametrize("normalization,causal,masked,spherical", FLAGS)
def test_gradients_match_reference_autograd_over_several_tiles(normalization, causal, masked, spherical, monkeypatch):
    """Lq 20 and Lk 33 span two and three 16-row tiles: the online statistics and the causal tile bounds."""
    q, k, v = _heads(2, 1, 20, 33, 2, 5)
    alpha = torch.tensor([0.8], dtype=torch.float64)
    mask = _mask(3, 1, 20, 33) if masked else None
    opts = _opts(normalization, causal, spherical)

    def f(q, k, v, alpha):
        return functional.yat_attention(q, k, v, mask, alpha, 1e-2, **opts)

    cot = torch.randn(1, 20, 2, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    want_y, want = _reference_grads(f, (q, k, v, alpha), cot, monkeypatch, "reference")
    got_y, got = _reference_grads(f, (q, k, v, alpha), cot, monkeypatch, "triton")
    torch.testing.assert_close(got_y, want_y, rtol=1e-9, atol=1e-12)
    for name, g, w in zip("qkv", got, want):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-10, msg=lambda m, n=name: f"d{n}: {m}")
    torch.testing.assert_close(got[3], want[3], rtol=1e-8, atol=1e-10)


@child
def test_gradients_pass_gradcheck_on_a_tiny_case():
    q, k, v = _heads(5, 1, 4, 6, 1, 2, dv=2)
    alpha = torch.tensor([1.1], dtype=torch.float64)
    mask = torch.ones(1, 1, 1, 6, dtype=torch.bool)
    mask[..., -2:] = False  # key padding

    def f(q, k, v, alpha):
        return _triton_attention.yat_attention(q, k, v, mask, alpha, 1e-2, normalization="softmax", causal=True)

    assert torch.autograd.gradcheck(f, [t.requires_grad_(True) for t in (q, k, v, alpha)])


def _attention_cases():
    from tests.conformance import cases as table

    keep = ("MultiHeadYatAttention", "RotaryYatAttention")
    return [c for c in table.CASES if c.kind in keep and not c.config.get("use_performer")]


@child
@pytest.mark.parametrize("case", _attention_cases(), ids=lambda c: c.id)
def test_conformance_attention_cases_match_onnxruntime(case, monkeypatch):
    import onnx_ops
    from tests.conformance import cases as table
    from tests.conformance.adapter_torch import ADAPTER

    monkeypatch.setenv("NMN_ATTENTION_IMPL", "triton")
    name, ins, attrs = table.onnx_call(case, case.params, case.inputs)
    want = np.asarray(onnx_ops.run_function(name, ins, **attrs), np.float64)
    layer = ADAPTER.build(case.kind, case.config, case.params)
    got = ADAPTER.forward(layer, case.kind, case.inputs, case.call)
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got - want)))
    assert err <= case.rtol * scale, f"{case.id}: max|diff| {err:.3g} > {case.rtol} x scale {scale:.3g}"
    if case.grad:  # float64 gradients of every parameter against the reference path's
        cot = np.random.default_rng(0).normal(size=want.shape)
        got_g = ADAPTER.grads(layer, case.kind, case.inputs, case.call, cot)
        monkeypatch.setenv("NMN_ATTENTION_IMPL", "reference")
        want_g = ADAPTER.grads(layer, case.kind, case.inputs, case.call, cot)
        for key in want_g:
            np.testing.assert_allclose(got_g[key], want_g[key], rtol=1e-8, atol=1e-10, err_msg=f"{case.id} {key}")


@child
def test_float32_and_float16_inputs_are_computed_in_float32():
    from onnx_ops import reference

    q, k, v = _heads(6, 1, 9, 9, 2, 8, dv=8, dtype=torch.float32)
    want = reference.YatAttention(
        *(t.double().numpy() for t in (q, k, v)), np.ones((1, 2, 9, 9), bool), np.array([1.0]), np.array([1e-5])
    )
    got = _triton_attention.yat_attention(q, k, v, None, None, 1e-5)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5, atol=1e-6)
    half = _triton_attention.yat_attention(q.half(), k.half(), v.half(), None, None, 1e-5)
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.double().numpy(), want, rtol=2e-2, atol=2e-2)


@child
def test_runs_under_torch_compile_with_fake_tensors_and_autograd():
    q, k, v = _heads(7, 1, 6, 6, 1, 3)
    alpha = torch.tensor([1.2], dtype=torch.float64)

    def f(q, k, v, alpha):
        return _triton_attention.yat_attention(q, k, v, None, alpha, 1e-3, normalization="l1", causal=True)

    eager_leaves = [t.clone().requires_grad_(True) for t in (q, k, v, alpha)]
    comp_leaves = [t.clone().requires_grad_(True) for t in (q, k, v, alpha)]
    eager = f(*eager_leaves)
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)(*comp_leaves)
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(compiled.sum(), comp_leaves), torch.autograd.grad(eager.sum(), eager_leaves)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@child
def test_custom_op_passes_torch_library_opcheck():
    q, k, v = _heads(8, 1, 5, 5, 1, 2, dv=2)
    alpha = torch.tensor([1.0], dtype=torch.float64)
    args = (
        q.requires_grad_(True),
        k.requires_grad_(True),
        v.requires_grad_(True),
        None,
        alpha,
        1e-3,
        1.0,
        0,
        True,
        False,
    )
    torch.library.opcheck(torch.ops.nmn.yat_flash_attention.default, args)


# dispatch: these run in the parent process and never import triton


def test_auto_never_picks_triton_for_cpu_tensors(monkeypatch):
    monkeypatch.delenv("NMN_ATTENTION_IMPL", raising=False)
    from nmn._torch import _chunked

    assert _chunked.pick(torch.zeros(1, 4, 1, 2), torch.zeros(1, 4, 1, 2)) == "reference"


def test_forcing_triton_on_an_unsupported_call_names_the_reason(monkeypatch):
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "triton")
    q = torch.zeros(1, 4, 1, 2)
    with pytest.raises(ValueError, match="NMN_ATTENTION_IMPL=triton cannot run this call: dropout"):
        functional.yat_attention(q, q, q, dropout_p=0.5, training=True)
    if not CHILD:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        with pytest.raises(
            ValueError, match="NMN_ATTENTION_IMPL=triton cannot run this call: (the tensors are on cpu|tr)"
        ):
            functional.yat_attention(q, q, q)
