"""The Pallas Yat attention kernel (nmn._jax._flash, interpreter mode) against the numpy oracle, jax.grad of the
reference path, and the attention rows of the conformance table (the NNX and Linen layers with the kernel)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmn._jax import _flash
from nmn._jax.ops import F
from nmn.core import yat as core
from onnx_ops import reference
from tests.conformance import cases as case_table

CASES = [
    (norm, causal, mask)
    for norm in ("softmax", "l1", "softermax")
    for causal in (False, True)
    for mask in (None, "keys", "full")
]


def _inputs(seed, b=2, lq=7, lk=7, h=2, d=3):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(b, n, h, d)).astype(np.float32) for n in (lq, lk, lk))
    keys = np.ones((b, 1, 1, lk), bool)
    keys[0, ..., -3:] = False  # padding: the last keys of the first sequence
    full = rng.random((b, 1, lq, lk)) > 0.3
    full[-1, 0, 2] = False  # a query that sees no key attends uniformly
    return q, k, v, {None: None, "keys": keys, "full": full}


def _oracle(q, k, v, mask, alpha, eps, **kw):
    b, lq, h, _ = q.shape
    full = np.ones((b, h, lq, k.shape[1]), bool) if mask is None else np.broadcast_to(mask, (b, h, lq, k.shape[1]))
    return reference.YatAttention(q, k, v, full, np.array([alpha]), np.array([eps]), **kw)


def _power(norm):
    return 2.0 if norm == "softermax" else 1.0


@pytest.mark.parametrize("normalization,causal,mask", CASES)
def test_kernel_matches_numpy_oracle(normalization, causal, mask):
    q, k, v, masks = _inputs(0)
    m = masks[mask]
    got = _flash.yat_attention(
        q,
        k,
        v,
        m,
        1.3,
        1e-3,
        normalization=normalization,
        power=_power(normalization),
        causal=causal,
        block_q=4,
        block_k=2,
        interpret=True,
    )
    want = _oracle(q, k, v, m, 1.3, 1e-3, normalization=normalization, power=_power(normalization), causal=int(causal))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("spherical", [False, True])
def test_cross_lengths_spherical_and_no_alpha(spherical):
    q, k, v, _ = _inputs(1, lq=5, lk=9)
    mask = np.ones((5, 9), bool)
    mask[3] = False
    got = _flash.yat_attention(
        q, k, v, mask, None, 1e-2, spherical=spherical, causal=True, block_q=2, block_k=4, interpret=True
    )
    want = _oracle(q, k, v, mask, 1.0, 1e-2, spherical=int(spherical), causal=1)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-5, atol=2e-6)


GRAD_CASES = [
    ("softmax", True, "keys", False),
    ("softmax", False, "full", True),
    ("l1", True, "full", False),
    ("l1", False, None, True),
    ("softermax", True, "keys", False),
]


@pytest.mark.parametrize("normalization,causal,mask,spherical", GRAD_CASES)
def test_gradients_match_jax_grad_of_the_reference(normalization, causal, mask, spherical):
    q, k, v, masks = _inputs(2, b=1, lq=6, lk=5, h=2, d=3)
    m = None if masks[mask] is None else jnp.asarray(masks[mask])
    cot = jnp.asarray(np.random.default_rng(3).normal(size=(1, 6, 2, 3)), jnp.float32)
    kw = dict(spherical=spherical, normalization=normalization, power=_power(normalization), causal=causal)

    def loss_kernel(q, k, v, alpha, eps):
        out = _flash.yat_attention(q, k, v, m, alpha, eps, block_q=4, block_k=2, interpret=True, **kw)
        return jnp.sum(out * cot)

    def loss_reference(q, k, v, alpha, eps):
        return jnp.sum(core.yat_attention(F, q, k, v, m, alpha, eps, **kw) * cot)

    args = (jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.float32(1.2), jnp.float32(0.05))
    got = jax.grad(loss_kernel, argnums=tuple(range(5)))(*args)
    want = jax.grad(loss_reference, argnums=tuple(range(5)))(*args)
    for name, g, w in zip(("q", "k", "v", "alpha", "eps"), got, want):
        scale = max(float(jnp.max(jnp.abs(w))), 1e-6)
        err = float(jnp.max(jnp.abs(g - w)))
        # float32 both sides; the absolute floor covers l1's alpha gradient, which cancels but for the eps floor
        assert err <= 1e-4 * scale + 2e-6, f"d/d{name}: max|diff| {err:.3g} (scale {scale:.3g})"


def test_jit_and_vmap_over_the_kernel():
    q, k, v, masks = _inputs(4, b=2, lq=4, lk=4, h=1, d=2)

    def one(q, k, v):
        return _flash.yat_attention(q[None], k[None], v[None], None, 1.0, 1e-3, block_q=2, block_k=2, interpret=True)[0]

    got = jax.jit(jax.vmap(one))(q, k, v)
    np.testing.assert_allclose(np.asarray(got, np.float64), _oracle(q, k, v, None, 1.0, 1e-3), rtol=2e-5, atol=2e-6)


def test_bad_mask_and_normalisation_are_named_errors():
    q, k, v, _ = _inputs(5, b=2, lq=4, lk=4, h=1, d=2)
    with pytest.raises(ValueError, match=r"yat_attention: mask of shape \(1, 1, 3, 4\) does not broadcast"):
        _flash.yat_attention(q, k, v, np.ones((3, 4), bool), None, 1e-3, interpret=True)
    with pytest.raises(ValueError, match="yat_attention: normalization must be softmax, l1 or softermax, got 'l2'"):
        _flash.yat_attention(q, k, v, None, None, 1e-3, normalization="l2", interpret=True)


def test_environment_switch(monkeypatch):
    q_short, q_long = jnp.zeros((1, 8, 1, 2)), jnp.zeros((1, 1024, 1, 2))
    accelerator = jax.default_backend() in ("gpu", "tpu")
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "reference")
    assert _flash.pick(q_long, q_long) == "reference"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "flash")
    assert _flash.pick(q_short, q_short) == "flash" and _flash.pick(dropout=lambda w: w) == "reference"
    for alias in ("pallas", "triton"):  # torch's name of its fused kernel means this one
        monkeypatch.setenv("NMN_ATTENTION_IMPL", alias)
        assert _flash.pick(q_short, q_short) == "flash"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "chunked")
    assert _flash.pick(q_short, q_short) == "chunked" and _flash.pick(dropout=lambda w: w) == "reference"
    monkeypatch.delenv("NMN_ATTENTION_IMPL")
    assert _flash.pick(q_short, q_short) == ("flash" if accelerator else "reference")
    assert _flash.pick(q_long, q_long) == ("flash" if accelerator else "chunked")  # 1024 x 1024 scores: tiles
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "fast")
    with pytest.raises(ValueError, match="NMN_ATTENTION_IMPL: expected one of auto, flash, chunked, reference"):
        _flash.pick()


# ---------------------------------------------------------------------------------- the conformance attention rows
ATTENTION = [
    pytest.param(c, id=c.id)
    for c in case_table.CASES
    if c.kind in ("MultiHeadYatAttention", "RotaryYatAttention") and not c.config.get("use_performer")
]


@pytest.fixture
def kernel_calls(monkeypatch):
    """Force the kernel through the layers' own dispatch (``NMN_ATTENTION_IMPL=flash``) and count its calls."""
    calls = []
    kernel = _flash.yat_attention

    def counted(*args, **kwargs):
        calls.append(kwargs.get("interpret"))
        return kernel(*args, **kwargs)

    monkeypatch.setenv("NMN_ATTENTION_IMPL", "flash")
    monkeypatch.setattr(_flash, "yat_attention", counted)
    return calls


def _adapter(api):
    if api == "nnx":
        from tests.conformance.adapter_nnx import ADAPTER
    else:
        from tests.conformance.adapter_linen import ADAPTER
    return ADAPTER


@pytest.mark.parametrize("api", ["nnx", "linen"])
@pytest.mark.parametrize("case", ATTENTION)
def test_conformance_attention_rows_through_the_kernel(api, case, kernel_calls):
    """The layers' forward through the Pallas kernel (interpreter mode on CPU) against onnxruntime."""
    import onnx_ops

    adapter = _adapter(api)
    if adapter.supports(case.kind, case.config) is not True:
        pytest.skip(f"{api} does not build {case.id}")
    name, ins, attrs = case_table.onnx_call(case, case.params, case.inputs)
    expected = np.asarray(onnx_ops.run_function(name, ins, **attrs), np.float64)
    layer = adapter.build(case.kind, case.config, case.params)
    got = np.asarray(adapter.forward(layer, case.kind, case.inputs, case.call), np.float64)
    assert kernel_calls, f"{api} {case.id}: the layer did not call the Pallas kernel under NMN_ATTENTION_IMPL=flash"
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(got - expected)))
    assert err <= case.rtol * scale, f"{api} {case.id}: max|diff| {err:.3g} > {case.rtol} x scale {scale:.3g}"


GRAD_ROWS = [  # each gradient row of the table once, the two APIs in turn (interpreter-mode backward is slow)
    pytest.param(api, c.values[0], id=f"{c.id}-{api}")
    for c, api in zip([c for c in ATTENTION if c.values[0].grad], ["nnx", "linen"] * 8)
]


@pytest.mark.parametrize("api,case", GRAD_ROWS)
def test_conformance_attention_gradients_through_the_kernel(api, case, kernel_calls, monkeypatch):
    """The layers' gradients (input and every parameter) through the kernel's backward against the reference
    path's, which the conformance suite checks against the float64 finite difference of the numpy oracle."""
    adapter = _adapter(api)
    if adapter.supports(case.kind, case.config) is not True:
        pytest.skip(f"{api} does not build {case.id}")
    cot_shape = np.shape(adapter.forward(adapter.build(case.kind, case.config, case.params), case.kind,
                                         case.inputs, case.call))  # fmt: skip
    cot = np.random.default_rng(123).normal(size=cot_shape).astype(np.float32)
    kernel_calls.clear()
    got = adapter.grads(adapter.build(case.kind, case.config, case.params), case.kind, case.inputs, case.call, cot)
    assert kernel_calls, f"{api} {case.id}: the layer did not call the Pallas kernel under NMN_ATTENTION_IMPL=flash"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "reference")
    want = adapter.grads(adapter.build(case.kind, case.config, case.params), case.kind, case.inputs, case.call, cot)
    assert set(got) == set(want)
    for key in want:
        w, g = np.asarray(want[key], np.float64), np.asarray(got[key], np.float64)
        scale = max(float(np.max(np.abs(w))), 1e-8)
        err = float(np.max(np.abs(g - w)))
        assert err <= 1e-4 * scale + 1e-6, f"{api} {case.id}: d/d{key} max|diff| {err:.3g} (scale {scale:.3g})"
