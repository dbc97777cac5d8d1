"""The JAX query-tiled Yat attention (nmn._jax._chunked) against the numpy oracle and jax.grad of the reference,
the layers' dispatch to it, and its memory: the compiled program's temporaries stay below one (B, H, L, L) block."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmn._jax import _chunked
from nmn._jax.ops import F
from nmn.core import yat as core
from onnx_ops import reference


def _inputs(seed, b=2, lq=11, lk=11, h=2, d=3):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(b, n, h, d)).astype(np.float32) for n in (lq, lk, lk))
    keys = np.ones((b, 1, 1, lk), bool)
    keys[0, ..., -3:] = False
    full = rng.random((b, 1, lq, lk)) > 0.3
    full[-1, 0, lq - 2] = False  # a query (in the last, partial tile) that sees no key attends uniformly
    return q, k, v, {None: None, "keys": keys, "full": full}


def _oracle(q, k, v, mask, alpha, eps, **kw):
    b, lq, h, _ = q.shape
    full = np.ones((b, h, lq, k.shape[1]), bool) if mask is None else np.broadcast_to(mask, (b, h, lq, k.shape[1]))
    return reference.YatAttention(q, k, v, full, np.array([alpha]), np.array([eps]), **kw)


@pytest.mark.parametrize("normalization", ["softmax", "l1", "softermax"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask", [None, "keys", "full"])
def test_tiles_match_the_numpy_oracle(normalization, causal, mask):
    q, k, v, masks = _inputs(0)
    power = 2.0 if normalization == "softermax" else 1.0
    kw = dict(normalization=normalization, power=power)
    got = _chunked.yat_attention(q, k, v, masks[mask], 1.3, 1e-3, causal=causal, tile=4, **kw)
    want = _oracle(q, k, v, masks[mask], 1.3, 1e-3, causal=int(causal), **kw)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("spherical", [False, True])
def test_cross_lengths_and_per_query_mask(spherical):
    q, k, v, _ = _inputs(1, lq=7, lk=10)
    mask = np.random.default_rng(2).random((7, 10)) > 0.4
    got = _chunked.yat_attention(q, k, v, mask, None, 1e-2, spherical=spherical, causal=True, tile=3)
    want = _oracle(q, k, v, mask, 1.0, 1e-2, spherical=int(spherical), causal=1)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-5, atol=2e-6)


def test_gradients_match_jax_grad_of_the_reference():
    q, k, v, masks = _inputs(3, b=1, lq=9, lk=9)
    m = jnp.asarray(masks["full"])
    cot = jnp.asarray(np.random.default_rng(4).normal(size=q.shape), jnp.float32)

    def loss(fn):
        return lambda q, k, v, alpha, eps: jnp.sum(fn(q, k, v, alpha, eps) * cot)

    def tiled(q, k, v, alpha, eps):
        return _chunked.yat_attention(q, k, v, m, alpha, eps, causal=True, tile=4)

    def ref(q, k, v, alpha, eps):
        return core.yat_attention(F, q, k, v, m, alpha, eps, causal=True)

    args = (jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.float32(1.2), jnp.float32(0.05))
    got = jax.grad(loss(tiled), argnums=tuple(range(5)))(*args)
    want = jax.grad(loss(ref), argnums=tuple(range(5)))(*args)
    for name, g, w in zip(("q", "k", "v", "alpha", "eps"), got, want):
        scale = max(float(jnp.max(jnp.abs(w))), 1e-6)
        assert float(jnp.max(jnp.abs(g - w))) <= 1e-5 * scale + 1e-7, f"d/d{name}"


def test_bad_mask_is_a_named_error():
    q, k, v, _ = _inputs(5, lq=4, lk=4)
    with pytest.raises(ValueError, match=r"yat_attention: mask of shape \(3, 4\) does not broadcast to \(2, 2, 4, 4\)"):
        _chunked.yat_attention(q, k, v, np.ones((3, 4), bool), None, 1e-3)


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_compiled_temporaries_grow_linearly(mode):
    """XLA's temporary-buffer size of the compiled program at L and 2L: the reference's (B, H, L, L) blocks grow
    4x, the tiles' (B, H, tile, L) ones 2x (backward included, through the checkpointed tile body)."""
    b, h, d, tile = 1, 2, 8, 64

    def temp(fn, length):
        q = jnp.zeros((b, length, h, d), jnp.float32)
        f = fn if mode == "fwd" else jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v)), argnums=(0, 1, 2))
        return jax.jit(f).lower(q, q, q).compile().memory_analysis().temp_size_in_bytes

    def tiled(q, k, v):
        return _chunked.yat_attention(q, k, v, None, 1.0, 1e-5, causal=True, tile=tile)

    def ref(q, k, v):
        return core.yat_attention(F, q, k, v, None, 1.0, 1e-5, causal=True)

    t1, t2, r1, r2 = temp(tiled, 256), temp(tiled, 512), temp(ref, 256), temp(ref, 512)
    block = b * h * 512 * 512 * 4
    assert r2 >= block and r2 / r1 > 3.5, f"reference temporaries {r1} -> {r2} B: expected quadratic growth"
    assert t2 / t1 < 2.5 and t2 < block, f"tiled temporaries {t1} -> {t2} B (a score block at L=512: {block} B)"


@pytest.mark.parametrize("api", ["nnx", "linen"])
def test_layers_take_the_tiles(api, monkeypatch):
    """``NMN_ATTENTION_IMPL=chunked`` routes the layers through the tiles, with the reference path's values."""
    from tests.conformance import cases as case_table

    if api == "nnx":
        from tests.conformance.adapter_nnx import ADAPTER
    else:
        from tests.conformance.adapter_linen import ADAPTER
    case = next(c for c in case_table.CASES if c.id == "mha-causal")
    calls = []
    tiles = _chunked.yat_attention
    monkeypatch.setattr(_chunked, "yat_attention", lambda *a, **kw: calls.append(1) or tiles(*a, tile=2, **kw))
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "chunked")
    got = np.asarray(ADAPTER.forward(ADAPTER.build(case.kind, case.config, case.params), case.kind, case.inputs, {}))
    assert calls, f"{api}: the layer did not call the tiled path under NMN_ATTENTION_IMPL=chunked"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "reference")
    want = np.asarray(ADAPTER.forward(ADAPTER.build(case.kind, case.config, case.params), case.kind, case.inputs, {}))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
