"""Flax Linen specifics of nmn 0.3's helpers: dropout inside a Linen module with its ``'dropout'`` rng stream
(nmn 0.3.5's Linen had no way to pass a key), and ``jit`` against eager."""

from __future__ import annotations

import numpy as np
import pytest

nn = pytest.importorskip("flax.linen")

import jax
import jax.numpy as jnp

import nmn.linen as ns


class _Block(nn.Module):
    @nn.compact
    def __call__(self, x, deterministic=True):
        rng = None if deterministic else self.make_rng("dropout")
        return ns.yat_attention(x, x, x, dropout_rate=0.5, deterministic=deterministic, dropout_rng=rng)


def test_dropout_in_a_module_uses_its_rng_stream():
    x = jax.random.normal(jax.random.key(0), (1, 6, 2, 4))
    block = _Block()
    variables = block.init(jax.random.key(1), x)
    np.testing.assert_allclose(block.apply(variables, x), ns.yat_attention(x, x, x), rtol=1e-6)
    a = block.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    b = block.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(a, b) and not np.allclose(a, ns.yat_attention(x, x, x))
    with pytest.raises(ValueError, match="needs dropout_rng"):
        ns.yat_attention(x, x, x, dropout_rate=0.5, deterministic=False)


def test_jit_matches_eager():
    x = jax.random.normal(jax.random.key(4), (2, 5, 2, 4))
    mask = ns.make_causal_mask(jnp.ones((2, 5)))
    eager = ns.yat_attention(x, x, x, mask=mask, spherical=True)
    np.testing.assert_allclose(
        jax.jit(lambda x: ns.yat_attention(x, x, x, mask=mask, spherical=True))(x), eager, rtol=1e-6
    )
