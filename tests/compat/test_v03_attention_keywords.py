"""nmn 0.3's Flax attention keywords (issue 17): NNX ``MultiHeadAttention`` / ``RotaryYatAttention`` and Linen
``MultiHeadAttention``.

Accepted keywords are checked for what they do: the out projection's initialisers set exactly its parameters,
``broadcast_dropout`` shares the dropout mask over the batch (identical batch rows stay identical under dropout,
and differ without it), ``embed_dim`` is ``in_features``, ``alpha_init`` sets alpha, ``deterministic`` switches
dropout off. Hooks accepted only at the ONNX function's value (``attention_fn``, the ``*dot_general*`` keywords,
nmn 0.3.5's rotary-performer sizes, Linen ``normalize_qk``) raise the reason of :mod:`nmn.core.names` otherwise.
A missing framework is a skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from nmn.core import names
from nmn.core.options import ROTARY_PERFORMER_V03
from tests.frameworks import nmn_module, require

E, H, L = 8, 2, 5
X = np.random.default_rng(0).normal(size=(2, L, E)).astype(np.float32)
TWINS = np.repeat(X[:1], 2, axis=0)  # two identical batch rows


def _nnx():
    require("nnx")
    from flax import nnx

    return nmn_module("nnx"), nnx


def _yat_attention_oracle(x, layer):
    """float64 softmax Yat attention from the NNX layer's own parameters (kernel (in, out), bias, alpha)."""
    p = {n: (np.asarray(getattr(layer, n).kernel[...], np.float64), np.asarray(getattr(layer, n).bias[...], np.float64))
         for n in ("query", "key", "value", "out")}  # fmt: skip
    alpha = float(np.asarray(layer.alpha[...])[0])
    x = np.asarray(x, np.float64)
    q, k, v = ((x @ p[n][0] + p[n][1]).reshape(x.shape[0], x.shape[1], H, E // H) for n in ("query", "key", "value"))
    dot = np.einsum("bqhd,bkhd->bhqk", q, k)
    dist = (q * q).sum(-1).transpose(0, 2, 1)[..., None] + (k * k).sum(-1).transpose(0, 2, 1)[:, :, None] - 2 * dot
    scores = alpha * dot**2 / ((np.maximum(dist, 0.0) + 1e-5) * np.sqrt(E // H))
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", w, v).reshape(x.shape[0], x.shape[1], E)
    return out @ p["out"][0] + p["out"][1]


# -------------------------------------------------------------------------------------------------- NNX
def test_nnx_out_initializers_set_the_out_projection_only():
    N, nnx = _nnx()
    c, d = nnx.initializers.constant(0.25), nnx.initializers.constant(-0.5)
    layer = N.MultiHeadAttention(H, E, out_kernel_init=c, out_bias_init=d, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(np.asarray(layer.out.kernel[...]), np.full((E, E), 0.25, np.float32))
    np.testing.assert_array_equal(np.asarray(layer.out.bias[...]), np.full((E,), -0.5, np.float32))
    plain = N.MultiHeadAttention(H, E, rngs=nnx.Rngs(0))
    for proj in ("query", "key", "value"):  # kernel_init / bias_init unchanged there, same draws
        np.testing.assert_array_equal(
            np.asarray(getattr(layer, proj).kernel[...]), np.asarray(getattr(plain, proj).kernel[...])
        )
    got = np.asarray(layer(X), np.float64)
    np.testing.assert_allclose(got, _yat_attention_oracle(X, layer), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("performer", [False, True], ids=["quadratic", "performer"])
def test_nnx_broadcast_dropout_shares_the_mask_over_the_batch(performer):
    N, nnx = _nnx()
    kw = dict(dropout_rate=0.5, use_performer=performer, normalization="l1" if performer else "softmax")
    outs = {}
    for broadcast in (True, False):
        layer = N.MultiHeadAttention(H, E, broadcast_dropout=broadcast, rngs=nnx.Rngs(0, dropout=3), **kw)
        assert layer.dropout.broadcast_dims == (((0,) if performer else (0, 1)) if broadcast else ())
        outs[broadcast] = np.asarray(layer(TWINS, deterministic=False))
        off = np.asarray(layer(TWINS, deterministic=True))
        assert not np.allclose(outs[broadcast], off), "dropout was not applied"
    np.testing.assert_array_equal(outs[True][0], outs[True][1])  # one mask for both identical rows
    assert not np.allclose(outs[False][0], outs[False][1])  # a mask of its own per row
    with pytest.raises(TypeError, match="MultiHeadYatAttention: broadcast_dropout must be True or False, got 1"):
        N.MultiHeadAttention(H, E, broadcast_dropout=1, rngs=nnx.Rngs(0))


def test_nnx_hooks_at_the_onnx_value_change_nothing():
    N, nnx = _nnx()
    from jax import lax

    base = np.asarray(N.MultiHeadAttention(H, E, rngs=nnx.Rngs(0))(X))
    same = N.MultiHeadAttention(
        H, E, attention_fn=N.yat_attention, qkv_dot_general=lax.dot_general, out_dot_general=lax.dot_general,
        qkv_dot_general_cls=None, out_dot_general_cls=None, rngs=nnx.Rngs(0),
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(same(X)), base)
    np.testing.assert_array_equal(np.asarray(N.MultiHeadAttention(H, E, attention_fn=None, rngs=nnx.Rngs(0))(X)), base)


def _hook_refusals():
    custom = lambda *a, **k: None
    return [
        pytest.param(key, value, id=key)
        for key, value in (
            ("attention_fn", custom),
            ("qkv_dot_general", custom),
            ("out_dot_general", custom),
            ("qkv_dot_general_cls", object),
            ("out_dot_general_cls", object),
        )
    ]


@pytest.mark.parametrize(("key", "value"), _hook_refusals())
@pytest.mark.parametrize("layer", ["MultiHeadAttention", "MultiHeadYatAttention"])
def test_nnx_other_hooks_are_refused_saying_why(layer, key, value):
    N, nnx = _nnx()
    with pytest.raises(ValueError) as err:
        getattr(N, layer)(H, E, rngs=nnx.Rngs(0), **{key: value})
    text = str(err.value)
    assert text.startswith("MultiHeadYatAttention: ") and f"{key}=" in text and "nmn 0.3" in text, text
    assert names.REFUSED_VALUES[key] in text, text


def test_nnx_rotary_embed_dim_is_in_features():
    N, nnx = _nnx()
    a = N.RotaryYatAttention(embed_dim=E, num_heads=H, rngs=nnx.Rngs(0))
    b = N.RotaryYatAttention(H, E, rngs=nnx.Rngs(0))
    assert a.in_features == E
    np.testing.assert_array_equal(np.asarray(a(X)), np.asarray(b(X)))
    with pytest.raises(ValueError, match="in_features=8 and embed_dim=16 disagree"):
        N.RotaryYatAttention(H, E, embed_dim=16, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="RotaryYatAttention: missing in_features \\(nmn 0.3.5 called it embed_dim\\)"):
        N.RotaryYatAttention(num_heads=H, rngs=nnx.Rngs(0))


def test_nnx_rotary_old_positional_order_is_a_loud_error():
    N, nnx = _nnx()
    with pytest.raises(ValueError) as err:
        N.RotaryYatAttention(64, 8, rngs=nnx.Rngs(0))  # nmn 0.3.5: embed_dim=64, num_heads=8
    assert "(embed_dim, num_heads) positionally" in str(err.value)
    assert "RotaryYatAttention(embed_dim=64, num_heads=8, ...)" in str(err.value)


@pytest.mark.parametrize("key", sorted(ROTARY_PERFORMER_V03))
def test_nnx_rotary_performer_sizes_only_at_their_defaults(key):
    N, nnx = _nnx()
    default = ROTARY_PERFORMER_V03[key]
    N.RotaryYatAttention(H, E, rngs=nnx.Rngs(0), **{key: default})
    other = (not default) if isinstance(default, bool) else default + 1
    with pytest.raises(ValueError, match=f"RotaryYatAttention: {key}={other!r} has no effect here"):
        N.RotaryYatAttention(H, E, rngs=nnx.Rngs(0), **{key: other})


def test_nnx_rotary_passes_alpha_init_deterministic_and_dropout_options():
    N, nnx = _nnx()
    two = N.RotaryYatAttention(H, E, alpha_init=nnx.initializers.constant(2.0), rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(np.asarray(two.alpha[...]), np.array([2.0], np.float32))
    plain = N.RotaryYatAttention(H, E, rngs=nnx.Rngs(0))
    quiet = N.RotaryYatAttention(H, E, dropout_rate=0.5, deterministic=True, rngs=nnx.Rngs(0, dropout=1))
    np.testing.assert_array_equal(np.asarray(quiet(X)), np.asarray(plain(X)))  # deterministic: dropout is off
    drop = N.RotaryYatAttention(H, E, dropout_rate=0.5, broadcast_dropout=True, rngs=nnx.Rngs(0, dropout=1))
    out = np.asarray(drop(TWINS, deterministic=False))
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.allclose(out, np.asarray(plain(TWINS)))


# ------------------------------------------------------------------------------------------------ Linen
def test_linen_alpha_init_sets_alpha_and_normalize_qk_is_refused():
    require("nnx")
    import jax

    Ln = nmn_module("linen")
    layer = Ln.MultiHeadAttention(num_heads=H, alpha_init=jax.nn.initializers.constant(3.0))
    variables = layer.init(jax.random.key(0), X)
    np.testing.assert_array_equal(np.asarray(variables["params"]["alpha"]), np.array([3.0], np.float32))
    plain = Ln.MultiHeadAttention(num_heads=H)
    pv = plain.init(jax.random.key(0), X)
    # the same projections; alpha 3 in the plain layer gives the same output
    swapped = {"params": {**pv["params"], "alpha": variables["params"]["alpha"]}}
    np.testing.assert_allclose(
        np.asarray(layer.apply(variables, X)), np.asarray(plain.apply(swapped, X)), rtol=1e-6, atol=1e-7
    )
    Ln.MultiHeadAttention(num_heads=H, normalize_qk=False)
    with pytest.raises(TypeError) as err:
        Ln.MultiHeadAttention(num_heads=H, normalize_qk=True)
    assert names.REFUSED_KEYWORDS["MultiHeadYatAttention"]["normalize_qk"] in str(err.value)
    with pytest.raises(ValueError, match="MultiHeadYatAttention: alpha_init has no effect"):
        Ln.MultiHeadAttention(num_heads=H, normalization="l1", alpha_init=jax.nn.initializers.ones)


def test_linen_slay_performer_applies_dropout_to_its_output_as_torch():
    require("linen")
    import jax

    Ln = nmn_module("linen")
    layer = Ln.MultiHeadYatAttention(
        num_heads=H, use_performer=True, normalization="l1", dropout_rate=0.5, use_out_proj=False
    )
    variables = layer.init(jax.random.key(0), X, deterministic=True)
    off = np.asarray(layer.apply(variables, X, deterministic=True))
    on = np.asarray(layer.apply(variables, X, deterministic=False, rngs={"dropout": jax.random.key(1)}))
    zeroed = np.isclose(on, 0.0) & ~np.isclose(off, 0.0)
    assert zeroed.any(), "dropout was not applied"
    np.testing.assert_allclose(on[~zeroed], 2.0 * off[~zeroed], rtol=1e-5)  # inverted dropout: kept x 1/(1 - p)
