"""Flax's autoregressive decoding idiom on nmn.nnx attention, as ``flax.nnx.MultiHeadAttention`` has it:
``decode=`` on the constructor and the call, ``init_cache(input_shape, dtype=...)`` making ``nnx.Cache`` variables
``cached_key``/``cached_value`` ``(B, T, H, D)`` and ``cache_index``. Oracle: token-by-token decoding reproduces the
causal full pass as onnxruntime computes it from the exported file (the nmn ONNX function, not JAX)."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import pytest
from flax import nnx

import nmn.nnx as N
from nmn.interchange import export

B, T, E, H = 2, 6, 8, 2


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, E)).astype(np.float32)


def _onnx_forward(module, x):
    proto = export(module, x)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _layers():
    yield "mha", lambda **kw: N.MultiHeadYatAttention(H, E, causal=True, rngs=nnx.Rngs(3), **kw)
    yield (
        "mha-l1-spherical",
        lambda **kw: N.MultiHeadYatAttention(
            H, E, causal=True, normalization="l1", spherical=True, rngs=nnx.Rngs(4), **kw
        ),
    )
    yield "rotary", lambda **kw: N.RotaryYatAttention(H, E, causal=True, max_seq_len=16, rngs=nnx.Rngs(5), **kw)


LAYERS = list(_layers())


@pytest.mark.parametrize("name, make", LAYERS, ids=[n for n, _ in LAYERS])
def test_token_by_token_decode_equals_the_onnx_causal_forward(name, make):
    x = _x()
    attn = make()
    want = _onnx_forward(attn, x)
    attn.init_cache(x.shape)
    steps = [np.asarray(attn(x[:, t : t + 1], decode=True)) for t in range(T)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), want, rtol=1e-5, atol=1e-5)
    assert int(attn.cache_index[...]) == T


@pytest.mark.parametrize("name, make", LAYERS, ids=[n for n, _ in LAYERS])
def test_constructor_decode_and_a_jitted_step_match_the_causal_forward(name, make):
    x = _x(1)
    attn = make(decode=True)
    want = np.asarray(attn(x, decode=False))
    attn.init_cache(x.shape)

    @nnx.jit
    def step(m, tok):
        return m(tok)

    out = [np.asarray(attn(x[:, :2]))]  # a prompt chunk, then single tokens through a jitted step
    out += [np.asarray(step(attn, jnp.asarray(x[:, t : t + 1]))) for t in range(2, T)]
    np.testing.assert_allclose(np.concatenate(out, axis=1), want, rtol=1e-5, atol=1e-5)


def test_cache_matches_flax_multihead_attention():
    ours = N.MultiHeadYatAttention(H, E, qkv_features=4, rngs=nnx.Rngs(0))
    flax_mha = nnx.MultiHeadAttention(H, E, qkv_features=4, decode=True, rngs=nnx.Rngs(0))
    ours_sig = inspect.signature(type(ours).init_cache).parameters
    flax_sig = inspect.signature(nnx.MultiHeadAttention.init_cache).parameters
    assert list(ours_sig) == list(flax_sig) and ours_sig["dtype"].default is flax_sig["dtype"].default
    assert "decode" in inspect.signature(N.MultiHeadYatAttention.__init__).parameters
    ours.init_cache((B, T, E), dtype=jnp.bfloat16)
    flax_mha.init_cache((B, T, E), dtype=jnp.bfloat16)
    for attr in ("cached_key", "cached_value", "cache_index"):
        a, b = getattr(ours, attr), getattr(flax_mha, attr)
        assert type(a) is type(b) is nnx.Cache, attr
        assert (a.shape, a.dtype) == (b.shape, b.dtype), attr


def test_decode_errors_name_the_layer():
    attn = N.MultiHeadYatAttention(H, E, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="MultiHeadYatAttention: decode=True needs init_cache"):
        attn(jnp.ones((1, 1, E)), decode=True)
    attn.init_cache((1, 2, E))
    attn(jnp.ones((1, 2, E)), decode=True)
    with pytest.raises(ValueError, match="MultiHeadYatAttention: cache full: position 2 \\+ 1 tokens > 2"):
        attn(jnp.ones((1, 1, E)), decode=True)
    with pytest.raises(ValueError, match="do not fit the cache"):
        attn.init_cache((1, 4, E))
        attn(jnp.ones((3, 1, E)), decode=True)
    perf = N.MultiHeadYatAttention(H, E, use_performer=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="MultiHeadYatAttention: decode/init_cache is not available with use_perf"):
        perf.init_cache((1, 4, E))
    rot = N.RotaryYatAttention(H, E, max_seq_len=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="RotaryYatAttention: cache length 5 > max_seq_len 4"):
        rot.init_cache((1, 5, E))


def test_rotary_takes_its_documented_keywords():
    params = inspect.signature(N.RotaryYatAttention.__init__).parameters
    # no **kwargs that passes keywords on; ``**refused`` only refuses (nmn.core.names.refuse_keywords)
    assert all(p.name == "refused" for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD)
    for key in ("dropout_rate", "use_bias", "normalization", "epsilon", "decode", "max_seq_len", "rngs"):
        assert key in params, key
    with pytest.raises(TypeError, match="embed_dimm"):
        N.RotaryYatAttention(H, E, embed_dimm=8, rngs=nnx.Rngs(0))
