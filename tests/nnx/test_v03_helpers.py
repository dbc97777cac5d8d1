"""Flax NNX specifics of nmn 0.3's helpers (``nmn.nnx.yat_attention_weights`` ...; the shared checks against the
ONNX function and numpy are in ``tests/compat/test_v03_helpers.py``).

Oracles: Flax's own ``nnx`` mask functions, numpy (standard attention, l1 and softermax normalisation), ``jit``
against eager, and the values nmn 0.3.5 documented (sqrt 2, ones, xavier normal).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

nnx = pytest.importorskip("flax.nnx")

import jax
import jax.numpy as jnp

import nmn.nnx as ns


def _qk(seed=0, lq=4, lk=5):
    r = np.random.default_rng(seed)
    return r.standard_normal((2, lq, 2, 4)).astype(np.float32), r.standard_normal((2, lk, 2, 4)).astype(np.float32)


def _scores(q, k, eps=1e-5):
    q, k = q.astype(np.float64), k.astype(np.float64)
    dot = np.einsum("bqhd,bkhd->bhqk", q, k)
    dist = (q * q).sum(-1).transpose(0, 2, 1)[..., None] + (k * k).sum(-1).transpose(0, 2, 1)[..., None, :] - 2 * dot
    return dot**2 / ((np.maximum(dist, 0) + eps) * math.sqrt(q.shape[-1]))


def test_masks_equal_flax_nnx_own():
    x = jnp.array([[1, 1, 0, 1]])
    for extra, dtype in ((0, jnp.float32), (2, jnp.bool_)):
        np.testing.assert_array_equal(
            ns.make_attention_mask(x, x, jnp.greater, extra, dtype),
            nnx.make_attention_mask(x, x, jnp.greater, extra, dtype),
        )
        np.testing.assert_array_equal(ns.make_causal_mask(x, extra, dtype), nnx.make_causal_mask(x, extra, dtype))
    assert ns.make_causal_mask(x, dtype=jnp.bool_).dtype == jnp.bool_


def test_l1_and_softermax_normalisations():
    q, k = _qk(1)
    s = _scores(q, k)
    l1 = ns.yat_attention_weights(jnp.asarray(q), jnp.asarray(k), normalization="l1")
    np.testing.assert_allclose(l1, s / (s.sum(-1, keepdims=True) + 1e-5), rtol=2e-5)
    soft = ns.yat_attention_weights(jnp.asarray(q), jnp.asarray(k), use_softermax=True, power=2.0)
    np.testing.assert_allclose(soft, s**2 / (s**2).sum(-1, keepdims=True), rtol=2e-4)
    np.testing.assert_array_equal(
        soft, ns.yat_attention_weights(jnp.asarray(q), jnp.asarray(k), normalization="softermax", power=2.0)
    )


def test_dot_product_attention_is_standard_attention():
    q, k = _qk(2)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / 2.0
    want = np.exp(logits - logits.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(ns.dot_product_attention_weights(jnp.asarray(q), jnp.asarray(k)), want, rtol=1e-5)
    v = np.ones((2, 5, 2, 4), np.float32)
    np.testing.assert_allclose(ns.dot_product_attention(q, k, v), np.ones((2, 4, 2, 4)), rtol=1e-5)


def test_module_sows_the_weights():
    class Probe(nnx.Module):
        def __call__(self, q):
            return ns.yat_attention(q, q, q, module=self)

    probe = Probe()
    q = jnp.asarray(_qk(3)[0])
    probe(q)
    sown = nnx.state(probe, nnx.Intermediate)["attention_weights"]
    sown = getattr(sown, "value", sown)
    np.testing.assert_allclose(sown[0], ns.yat_attention_weights(q, q), rtol=1e-6)


def test_errors_name_the_option():
    q = jnp.ones((1, 3, 2, 4))
    with pytest.raises(ValueError, match="yat_attention_weights: precision='highest' is not supported"):
        ns.yat_attention_weights(q, q, precision="highest")
    with pytest.raises(ValueError, match="needs dropout_rng"):
        ns.yat_attention(q, q, q, dropout_rate=0.1)
    assert ns.yat_attention(q, q, q, dropout_rate=0.1, deterministic=True).shape == (1, 3, 2, 4)


def test_traced_position_offset_under_jit():
    cos, sin = ns.precompute_freqs_cis(4, 16)
    q = jnp.asarray(_qk(4)[0])
    eager = ns.apply_rotary_emb(q, cos, sin, 5)
    traced = jax.jit(lambda q, pos: ns.apply_rotary_emb(q, cos, sin, pos))(q, jnp.int32(5))
    np.testing.assert_allclose(traced, eager, rtol=1e-6)
    np.testing.assert_allclose(
        ns.rotary_yat_attention_weights(q, q, cos, sin, position_offset=1, key_position_offset=1),
        ns.rotary_yat_attention_weights(q, q, cos, sin, position_offset=1),
    )


def test_old_constants_and_initialisers():
    assert ns.ATTENTION_DEFAULT_CONSTANT_ALPHA == ns.CONV_DEFAULT_CONSTANT_ALPHA == pytest.approx(math.sqrt(2.0))
    np.testing.assert_array_equal(ns.default_alpha_init(jax.random.key(0), (1,)), np.ones(1))
    np.testing.assert_array_equal(ns.default_bias_init(jax.random.key(0), (3,)), np.zeros(3))
    draw = ns.default_kernel_init(jax.random.key(0), (400, 300))
    assert abs(float(jnp.std(draw)) - math.sqrt(2.0 / 700)) < 2e-3  # xavier normal: var 2 / (fan_in + fan_out)
    import inspect

    assert inspect.signature(ns.YatNMN.__init__).parameters["kernel_init"].default is ns.default_kernel_init
    assert ns.canonicalize_padding(1, 2) == [(1, 1), (1, 1)] and ns.canonicalize_padding("SAME", 2) == "SAME"
