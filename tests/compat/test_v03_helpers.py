"""nmn 0.3's attention helpers (``nmn.<framework>.yat_attention_weights``, masks, RoPE, ...) in all six frameworks.

Oracles, none of them the code under test:

- the ONNX function ``nmn::YatAttention`` run by onnxruntime (the normative Yat attention): the helpers' output,
  and their weights read out through an identity value (``V[b, k, h, :] = e_k`` turns ``A.V`` into ``A``);
- numpy written from nmn 0.3.5's docstrings: ``softmax(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d)))``, masked
  weights exactly 0 and a query row with no key left all zeros (where nmn 0.3.5 and the ONNX function differ:
  the function gives such a row uniform weights), the interleaved RoPE rotation, ``q / sqrt(|q|^2 + eps)``;
- Flax's own ``make_attention_mask`` / ``make_causal_mask`` / ``combine_masks`` for the masks of every framework.

Signatures differ per framework exactly as they did in nmn 0.3.5 (torch ``dropout_p``/``training=True``, Flax
``deterministic``, Keras/TF/MLX ``training=False``); ``_call`` below maps one test onto each.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nmn.core import names
from tests.frameworks import FRAMEWORKS, nmn_module

B, LQ, LK, H, D = 2, 4, 5, 2, 4


def _host(fw, a):
    a = np.asarray(a)
    if fw == "torch":
        import torch

        return torch.from_numpy(a.copy())
    if fw in ("nnx", "linen"):
        import jax.numpy as jnp

        return jnp.asarray(a)
    if fw == "keras":
        import keras

        return keras.ops.convert_to_tensor(a)
    if fw == "tf":
        import tensorflow as tf

        return tf.constant(a)
    import mlx.core as mx

    return mx.array(a)


def _np(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _qkv(seed=0, dv=3):
    r = np.random.default_rng(seed)
    q = r.standard_normal((B, LQ, H, D)).astype(np.float32)
    k = r.standard_normal((B, LK, H, D)).astype(np.float32)
    v = r.standard_normal((B, LK, H, dv)).astype(np.float32)
    return q, k, v


def _partial_mask(seed=1):
    m = np.random.default_rng(seed).random((B, H, LQ, LK)) < 0.6
    m[..., 0] = True  # every row keeps a key: nmn 0.3.5 and the ONNX function agree there
    return m


def _onnx(q, k, v, mask=None, alpha=1.0, eps=1e-5, spherical=False):
    pytest.importorskip("onnxruntime")
    from onnx_ops import run_function

    mask = np.ones((1, 1, 1, 1), bool) if mask is None else mask
    scalars = [np.full(1, alpha, np.float32), np.full(1, eps, np.float32)]
    return run_function(
        "YatAttention",
        [q, k, v, mask, *scalars],
        spherical=int(spherical),
        normalization="softmax",
        power=1.0,
        causal=0,
    )


def _identity_value():
    return np.broadcast_to(np.eye(LK, dtype=np.float32)[None, :, None, :], (B, LK, H, LK)).copy()


def _numpy_weights(q, k, mask=None, alpha=None, eps=1e-5, bias=None, spherical=False):
    """nmn 0.3.5's docstring formula, in float64."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    if spherical:
        q = q / np.sqrt((q * q).sum(-1, keepdims=True) + eps)
        k = k / np.sqrt((k * k).sum(-1, keepdims=True) + eps)
    dot = np.einsum("bqhd,bkhd->bhqk", q, k)
    qq = np.einsum("bqhd,bqhd->bhq", q, q)[..., :, None]
    kk = np.einsum("bkhd,bkhd->bhk", k, k)[..., None, :]
    s = dot**2 / ((np.maximum(qq + kk - 2 * dot, 0.0) + eps) * math.sqrt(q.shape[-1]))
    if alpha is not None:
        s = s * alpha
    keep = np.ones(s.shape, bool)
    if bias is not None:
        keep &= ~np.isneginf(np.broadcast_to(bias, s.shape))
        s = s + np.where(np.isneginf(bias), 0.0, bias)
    if mask is not None:
        keep &= np.broadcast_to(mask, s.shape)
    s = np.where(keep, s, -np.inf)
    m = np.max(np.where(keep, s, -1e300), -1, keepdims=True)
    e = np.where(keep, np.exp(s - m), 0.0)
    tot = e.sum(-1, keepdims=True)
    return np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), 0.0)


def _call(fw, fn, *args, mask=None, alpha=None, dropout=0.0, train=False, seed=0, **kw):
    """``ns.<fn>(*args)`` with the mask, alpha and dropout spelt as that framework's nmn 0.3.5 spelt them."""
    ns = nmn_module(fw)
    host = [_host(fw, a) for a in args]
    extra = dict(kw)
    if mask is not None:
        extra["mask"] = _host(fw, mask)
    if alpha is not None:
        extra["alpha"] = alpha
    if fw == "torch":
        extra.update(dropout_p=dropout, training=train)
    elif fw in ("nnx", "linen"):
        import jax

        extra.update(dropout_rate=dropout, deterministic=not train)
        if train:
            extra["dropout_rng"] = jax.random.key(seed)
    else:
        extra.update(dropout_rate=dropout, training=train)
    return _np(getattr(ns, fn)(*host, **extra))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("case", ["plain", "alpha", "mask"])
def test_yat_attention_matches_the_onnx_function(framework, case):
    q, k, v = _qkv()
    mask = _partial_mask() if case == "mask" else None
    alpha = 1.3 if case == "alpha" else None
    want = _onnx(q, k, v, mask=mask, alpha=1.0 if alpha is None else alpha)
    got = _call(framework, "yat_attention", q, k, v, mask=mask, alpha=alpha)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    weights = _call(framework, "yat_attention_weights", q, k, mask=mask, alpha=alpha)
    read = _onnx(q, k, _identity_value(), mask=mask, alpha=1.0 if alpha is None else alpha)
    np.testing.assert_allclose(weights, np.transpose(read, (0, 2, 1, 3)), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_yat_attention_normalized_is_the_spherical_onnx_function(framework):
    q, k, v = _qkv(3)
    got = _call(framework, "yat_attention_normalized", q, k, v)
    np.testing.assert_allclose(got, _onnx(q, k, v, spherical=True), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_weights_follow_the_v03_formula_with_fully_masked_rows(framework):
    q, k, _ = _qkv(5)
    mask = _partial_mask(6)
    mask[:, :, 1, :] = False  # a query with no key left: nmn 0.3.5 gives it all-zero weights
    got = _call(framework, "yat_attention_weights", q, k, mask=mask, alpha=0.7)
    want = _numpy_weights(q, k, mask=mask, alpha=0.7)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert not got[:, :, 1, :].any()
    assert (got[~mask] == 0).all()


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "mlx"])
def test_scale_multiplies_when_alpha_is_none(framework):
    q, k, _ = _qkv(7)
    got = _call(framework, "yat_attention_weights", q, k, scale=math.sqrt(2.0))
    np.testing.assert_allclose(got, _numpy_weights(q, k, alpha=math.sqrt(2.0)), rtol=2e-5, atol=1e-6)
    both = _call(framework, "yat_attention_weights", q, k, alpha=0.5, scale=math.sqrt(2.0))
    np.testing.assert_allclose(both, _numpy_weights(q, k, alpha=0.5), rtol=2e-5, atol=1e-6)


def test_nnx_bias_and_neg_inf_bias():
    q, k, _ = _qkv(8)
    bias = np.random.default_rng(9).standard_normal((1, H, LQ, LK)).astype(np.float32)
    bias[0, 0, 2, 3] = -np.inf
    got = _call("nnx", "yat_attention_weights", q, k, bias=_host("nnx", bias))
    np.testing.assert_allclose(got, _numpy_weights(q, k, bias=bias), rtol=2e-5, atol=1e-6)
    assert (got[:, 0, 2, 3] == 0).all() and np.isfinite(got).all()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dropout_only_when_training(framework):
    q, k, _ = _qkv(10)
    clean = _call(framework, "yat_attention_weights", q, k)
    off = _call(framework, "yat_attention_weights", q, k, dropout=0.5, train=False)
    np.testing.assert_array_equal(off, clean)
    on = _call(framework, "yat_attention_weights", q, k, dropout=0.5, train=True)
    dropped = on == 0
    assert dropped.any() and (~dropped).any(), "dropout 0.5 dropped none or all of the weights"
    np.testing.assert_allclose(on[~dropped], clean[~dropped] / 0.5, rtol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_masks_match_flax(framework):
    nn = pytest.importorskip("flax.linen")
    ns = nmn_module(framework)
    qv = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], np.float32)
    kv = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
    got = _np(ns.make_attention_mask(_host(framework, qv), _host(framework, kv), extra_batch_dims=1))
    np.testing.assert_array_equal(got, np.asarray(nn.make_attention_mask(qv, kv, extra_batch_dims=1)))
    x = np.zeros((2, 5), np.float32)
    causal = _np(ns.make_causal_mask(_host(framework, x)))
    np.testing.assert_array_equal(causal, np.asarray(nn.make_causal_mask(x)))
    pad = np.asarray(nn.make_attention_mask(np.ones((2, 5)), np.array([[1, 1, 1, 0, 0]] * 2)))
    both = _np(ns.combine_masks(_host(framework, causal), None, _host(framework, pad)))
    np.testing.assert_array_equal(both, np.asarray(nn.combine_masks(causal, None, pad)))
    assert ns.combine_masks(None, None) is None
    np.testing.assert_array_equal(_np(ns.causal_attention_mask(4)), np.tril(np.ones((4, 4), np.float32)))
    with pytest.raises(ValueError, match="same rank"):
        ns.combine_masks(_host(framework, causal), _host(framework, qv))


def _numpy_rope(x, offset, theta=10000.0):
    d = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    ang = np.outer(np.arange(offset, offset + x.shape[1]), inv)[None, :, None, :]
    a, b = x[..., 0::2].astype(np.float64), x[..., 1::2].astype(np.float64)
    out = np.empty(x.shape, np.float64)
    out[..., 0::2] = a * np.cos(ang) - b * np.sin(ang)
    out[..., 1::2] = a * np.sin(ang) + b * np.cos(ang)
    return out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rope_tables_and_rotation(framework):
    ns = nmn_module(framework)
    cos, sin = ns.precompute_freqs_cis(D, 12, theta=500.0)
    inv = 1.0 / 500.0 ** (np.arange(0, D, 2) / D)
    np.testing.assert_allclose(_np(cos), np.cos(np.outer(np.arange(12), inv)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_np(sin), np.sin(np.outer(np.arange(12), inv)), rtol=1e-6, atol=1e-7)
    q, k, _ = _qkv(11)
    got = _np(ns.apply_rotary_emb(_host(framework, q), cos, sin, position_offset=3))
    np.testing.assert_allclose(got, _numpy_rope(q, 3, 500.0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="max_seq_len=12"):
        ns.apply_rotary_emb(_host(framework, q), cos, sin, position_offset=9)
    with pytest.raises(ValueError, match="even"):
        ns.precompute_freqs_cis(5, 8)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rotary_yat_attention_is_yat_attention_of_rotated_heads(framework):
    ns = nmn_module(framework)
    q, k, v = _qkv(12)
    cos, sin = (_np(t) for t in ns.precompute_freqs_cis(D, 16))
    kw = {"position_offset": 2}
    got = _call(framework, "rotary_yat_attention_weights", q, k, cos, sin, **kw)
    rq, rk = _numpy_rope(q, 2), _numpy_rope(k, 2)
    np.testing.assert_allclose(got, _numpy_weights(rq, rk), rtol=2e-5, atol=1e-6)
    out = _call(framework, "rotary_yat_attention", q, k, v, cos, sin, **kw)
    np.testing.assert_allclose(out, _onnx(rq.astype(np.float32), rk.astype(np.float32), v), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_normalize_qk(framework):
    ns = nmn_module(framework)
    q, k, _ = _qkv(13)
    nq, nk = ns.normalize_qk(_host(framework, q), _host(framework, k))
    np.testing.assert_allclose(_np(nq), q / np.sqrt((q * q).sum(-1, keepdims=True) + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(_np(nk), k / np.sqrt((k * k).sum(-1, keepdims=True) + 1e-6), rtol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_shapes_are_checked(framework):
    ns = nmn_module(framework)
    bad = _host(framework, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"yat_attention_weights: query must be \(batch, seq_len, num_heads"):
        ns.yat_attention_weights(bad, bad)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_helper_is_exported(framework):
    ns = nmn_module(framework)
    for name in names.V03_HELPERS:
        assert callable(getattr(ns, name)) and name in ns.__all__
        assert getattr(ns, name).__module__ in (f"nmn.{framework}.attention_helpers", "nmn._jax.attention_helpers")


def _layer_call(fw):
    """``call(x, mask)`` of one small MultiHeadYatAttention of ``fw`` (fixed weights), as numpy."""
    ns = nmn_module(fw)
    if fw == "torch":
        layer = ns.MultiHeadYatAttention(8, 2)
        return lambda x, m: _np(layer(_host(fw, x), mask=_host(fw, m)))
    if fw == "nnx":
        from flax import nnx

        layer = ns.MultiHeadYatAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
        return lambda x, m: _np(layer(_host(fw, x), mask=_host(fw, m)))
    if fw == "linen":
        import jax

        layer = ns.MultiHeadYatAttention(num_heads=2)
        params = layer.init(jax.random.key(0), np.zeros((2, 5, 8), np.float32))
        return lambda x, m: _np(layer.apply(params, _host(fw, x), mask=_host(fw, m)))
    layer = ns.MultiHeadYatAttention(8, 2)
    if fw == "keras":
        return lambda x, m: _np(layer(_host(fw, x), attention_mask=_host(fw, m)))
    return lambda x, m: _np(layer(_host(fw, x), mask=_host(fw, m)))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_masks_plug_into_the_layers(framework):
    """A ``make_causal_mask`` / ``combine_masks`` mask ``(B, 1, L, L)`` means in the layer what the plain
    ``(L, L)`` lower-triangular bool mask (and the padding mask written in numpy) means."""
    ns = nmn_module(framework)
    call = _layer_call(framework)
    x = np.random.default_rng(14).standard_normal((2, 5, 8)).astype(np.float32)
    causal = _np(ns.make_causal_mask(_host(framework, np.zeros((2, 5), np.float32)))).astype(bool)
    np.testing.assert_allclose(call(x, causal), call(x, np.tril(np.ones((5, 5), bool))), rtol=1e-5, atol=1e-6)
    valid = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], np.float32)
    pad = ns.make_attention_mask(_host(framework, np.ones((2, 5), np.float32)), _host(framework, valid))
    both = _np(ns.combine_masks(_host(framework, causal.astype(np.float32)), pad)).astype(bool)
    want = np.tril(np.ones((5, 5), bool))[None, None] & valid.astype(bool)[:, None, None, :]
    np.testing.assert_allclose(call(x, both), call(x, want), rtol=1e-5, atol=1e-6)
