"""Flax's autoregressive decoding idiom on nmn.linen attention, as ``flax.linen.MultiHeadDotProductAttention``
has it: ``decode=True`` on the module, ``init`` on a full-length input creating the ``'cache'`` collection
(``cached_key``, ``cached_value``, ``cache_index``), then one token per ``apply(..., mutable=['cache'])``.
Oracle: the decoded tokens reproduce the causal full pass as onnxruntime computes it from the exported file."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import pytest
from flax import linen as nn

import nmn.linen as L
from nmn.interchange import export

B, T, E, H = 2, 6, 8, 2


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, E)).astype(np.float32)


def _onnx_forward(module, variables, x):
    proto = export(module, x, variables=variables)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


LAYERS = {
    "mha": lambda **kw: L.MultiHeadYatAttention(num_heads=H, causal=True, **kw),
    "mha-softermax": lambda **kw: L.MultiHeadYatAttention(num_heads=H, causal=True, normalization="softermax", **kw),
    "rotary": lambda **kw: L.RotaryYatAttention(num_heads=H, causal=True, max_seq_len=16, **kw),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_token_by_token_decode_equals_the_onnx_causal_forward(name):
    x = _x()
    full = LAYERS[name]()
    params = full.init(jax.random.key(1), x)["params"]
    want = _onnx_forward(full, {"params": params}, x)
    np.testing.assert_allclose(np.asarray(full.apply({"params": params}, x)), want, rtol=1e-5, atol=1e-5)

    dec = LAYERS[name](decode=True)
    cache = dec.init(jax.random.key(1), x)["cache"]  # allocate the cache from a full-length input
    steps = []
    for t in range(T):
        y, mutated = dec.apply({"params": params, "cache": cache}, x[:, t : t + 1], mutable=["cache"])
        cache = mutated["cache"]
        steps.append(np.asarray(y))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), want, rtol=1e-5, atol=1e-5)
    assert int(cache["cache_index"]) == T


def test_cache_collection_matches_flax_multi_head_dot_product_attention():
    x = jnp.asarray(_x())
    ours = L.MultiHeadYatAttention(num_heads=H, qkv_features=4, decode=True).init(jax.random.key(0), x)["cache"]
    flax_mha = nn.MultiHeadDotProductAttention(num_heads=H, qkv_features=4, decode=True)
    theirs = flax_mha.init(jax.random.key(0), x, x)["cache"]
    shapes = jax.tree.map(lambda a: (a.shape, a.dtype), dict(ours))
    assert shapes == jax.tree.map(lambda a: (a.shape, a.dtype), dict(theirs))
    assert set(shapes) == {"cached_key", "cached_value", "cache_index"}


def test_a_jitted_decode_step_matches_the_full_pass():
    x = _x(2)
    full = L.MultiHeadYatAttention(num_heads=H, causal=True)
    params = full.init(jax.random.key(0), x)["params"]
    want = np.asarray(full.apply({"params": params}, x))
    dec = L.MultiHeadYatAttention(num_heads=H, causal=True, decode=True)
    cache = dec.init(jax.random.key(0), x)["cache"]
    step = jax.jit(lambda c, tok: dec.apply({"params": params, "cache": c}, tok, mutable=["cache"]))
    outs = []
    for t in range(T):
        y, mutated = step(cache, jnp.asarray(x[:, t : t + 1]))
        cache = mutated["cache"]
        outs.append(np.asarray(y))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), want, rtol=1e-5, atol=1e-5)


def test_decode_errors_name_the_layer():
    x = jnp.ones((1, 2, E))
    dec = L.MultiHeadYatAttention(num_heads=H, decode=True)
    variables = dec.init(jax.random.key(0), x)
    _, mutated = dec.apply(variables, x, mutable=["cache"])
    with pytest.raises(ValueError, match="MultiHeadYatAttention: cache full: position 2 \\+ 1 tokens > 2"):
        dec.apply({**variables, **mutated}, x[:, :1], mutable=["cache"])
    with pytest.raises(ValueError, match="MultiHeadYatAttention: decode=True is not available with use_performer"):
        L.MultiHeadYatAttention(num_heads=H, decode=True, use_performer=True).init(jax.random.key(0), x)
