"""nmn.nnx.random_features (nmn 0.3's MAY / RAY / tensor-product attentions) and the NNX MAY / RAY layer option.

Oracles: onnxruntime running the nmn ONNX functions on the same projection (``tests/random_features_util.ort_run``),
the float64 numpy formulas of ``tests/torch/test_random_features.py`` (explicit loops from the functions' doc
strings; numpy only), the masked quadratic readout for ``causal`` and a central finite difference (float64 under
``jax.enable_x64``). The generic tests take the module under test from the ``rf`` fixture, so
``tests/linen/test_random_features.py`` runs them on ``nmn.linen.random_features`` (positional arguments only:
the two modules spell the epsilons differently, as nmn 0.3.5 did).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

import jax.numpy as jnp

import nmn.nnx as N
from nmn.nnx import random_features as nnx_rf
from tests.random_features_util import ort_run
from tests.torch.test_random_features import may_formula, ray_formula, readout_formula, tp_formula

D = 4  # head size of every case (tiny shapes)
EMPTY = inspect.Parameter.empty


@pytest.fixture
def rf():
    return nnx_rf


def _key(seed):
    return jax.random.key(seed)


def _make(rf, kind, seed, dtype=jnp.float32):
    if kind == "maclaurin":
        return rf.create_maclaurin_projection(_key(seed), D, 6, 0.7, 0.2, 5, dtype)
    if kind == "radial":
        return rf.create_radial_projection(_key(seed), D, 3, 2, 4, 0.5, 0.3, dtype)
    return rf.create_yat_tp_projection(_key(seed), D, 3, 2, 4, 1e-5, dtype)


def _fns(rf, kind):
    return {
        "maclaurin": (rf.maclaurin_features, rf.maclaurin_yat_attention),
        "radial": (rf.radial_features, rf.radial_yat_attention),
        "anchor": (rf.yat_tp_features, rf.yat_tp_attention),
    }[kind]


def _np(p):
    return {k: (np.asarray(v) if hasattr(v, "shape") else v) for k, v in p.items()}


def _formula(kind, x, p, eps):
    a = _np(p)
    if kind == "maclaurin":
        return may_formula(x, a["omega"], a["degmask"], a["scale"], eps)
    if kind == "radial":
        return ray_formula(x, a["w1"], a["w2"], a["omega"], a["phase"], a["coef"], a["b"], eps)
    return tp_formula(x, a["anchors"], a["proj"], a["nodes"], a["weights"], eps)


def _onnx_features(kind, x, p, eps):
    a, x = _np(p), np.asarray(x, np.float32)
    if kind == "maclaurin":
        out = ort_run("YatMaclaurinFeatures", [x, a["omega"], a["degmask"], a["scale"]], {"epsilon": eps})
    elif kind == "radial":
        ins = [x, a["w1"], a["w2"], a["omega"], a["phase"], a["coef"]]
        out = ort_run("YatRadialFeatures", ins, {"epsilon": eps, "bias": float(a["b"])})
    else:
        out = ort_run("YatAnchorFeatures", [x, a["anchors"], a["proj"], a["nodes"], a["weights"]], {"epsilon": eps})
    return out[0] if isinstance(out, (list, tuple)) else out


def _close(got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, float(np.abs(want).max())))


def _randn(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


KINDS = ["maclaurin", "radial", "anchor"]


@pytest.mark.parametrize("kind", KINDS)
def test_features_match_onnxruntime_and_the_numpy_formula(rf, kind):
    p = _make(rf, kind, 3)
    features, _ = _fns(rf, kind)
    x = _randn((2, 3, D), 2)
    got = features(jnp.asarray(x), p)
    assert got.shape[:-1] == x.shape[:-1] and got.dtype == jnp.float32
    _close(got, _onnx_features(kind, x, p, 1e-6), 2e-5)
    _close(got, _formula(kind, x, p, 1e-6), 2e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("kind", KINDS)
def test_attention_matches_onnxruntime(rf, kind, causal):
    p = _make(rf, kind, 4)
    _, attention = _fns(rf, kind)
    q, k, v = (_randn((1, 4, 2, D), s) for s in (5, 6, 7))
    got = attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), p, causal, 1e-5)
    qf, kf = _onnx_features(kind, q, p, 1e-6), _onnx_features(kind, k, p, 1e-6)
    want = ort_run("YatLinearAttention", [qf, kf, v], {"causal": int(causal), "epsilon": 1e-5})
    _close(got, want[0] if isinstance(want, (list, tuple)) else want, 2e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_causal_readout_is_the_masked_quadratic_readout(rf, kind):
    with jax.enable_x64(True):
        p = _make(rf, kind, 6, jnp.float64)
        features, attention = _fns(rf, kind)
        q, k, v = (_randn((1, 5, 2, D), s, np.float64) for s in (7, 8, 9))
        for causal in (False, True):
            got = attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), p, causal, 1e-5)
            assert got.dtype == jnp.float64
            qf, kf = _formula(kind, q, p, 1e-6), _formula(kind, k, p, 1e-6)
            _close(got, readout_formula(qf, kf, v, causal, 1e-5), 1e-9)
        qf, kf = features(jnp.asarray(q), p), features(jnp.asarray(k), p)
        for fn in (rf.linear_attention_readout, rf.linear_attention):
            _close(fn(qf, kf, jnp.asarray(v), True, 1e-3), readout_formula(qf, kf, v, True, 1e-3), 1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_wrt_query_is_the_central_difference(rf, kind):
    with jax.enable_x64(True):
        p = _make(rf, kind, 8, jnp.float64)
        _, attention = _fns(rf, kind)
        q, k, v = (jnp.asarray(_randn((1, 3, 1, D), s, np.float64)) for s in (9, 10, 11))
        w = jnp.asarray(_randn((1, 3, 1, D), 12, np.float64))

        def loss(q):
            return jnp.sum(attention(q, k, v, p, True, 1e-5) * w)

        g = np.asarray(jax.grad(loss)(q))
        h, fd = 1e-6, np.zeros(q.shape)
        for idx in np.ndindex(*q.shape):
            e = jnp.zeros(q.shape, jnp.float64).at[idx].set(h)
            fd[idx] = (float(loss(q + e)) - float(loss(q - e))) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_kappa_coefficients_and_a_0_3_5_maclaurin_dict(rf):
    s = np.array([-0.5, 0.0, 0.3, 0.9])
    want = (s + 1.5) ** 2 / (2.1 - 2.0 * s)
    np.testing.assert_allclose(np.asarray(rf.spherical_kappa(jnp.asarray(s, jnp.float32), 1.5, 0.1)), want, rtol=1e-6)
    a = rf.maclaurin_coeffs(1.5, 0.1, 60)
    assert isinstance(a, np.ndarray) and a.shape == (61,)
    assert abs(sum(c * 0.3**n for n, c in enumerate(a)) - (0.3 + 1.5) ** 2 / (2.1 - 0.6)) < 1e-9
    p = _make(rf, "maclaurin", 2)  # nmn 0.3.5's dict: omegas with nmax + 1 rows, degrees, Z
    rows = jnp.concatenate([p["omega"], jnp.ones((6, 1, D))], 1)
    old = {"omegas": rows, "degrees": p["degrees"], "Z": p["Z"], "M": 6, "nmax": 5}
    x = jnp.asarray(_randn((3, D), 1))
    _close(rf.maclaurin_features(x, old), rf.maclaurin_features(x, p), 1e-6)


def test_the_dicts_hold_the_core_arrays_and_0_3_5_keys(rf):
    may = _make(rf, "maclaurin", 0)
    assert may["omegas"] is may["omega"] and may["omega"].shape == (6, 5, D)
    assert np.array_equal(np.asarray(may["degmask"]).sum(1), np.asarray(may["degrees"]))
    assert (may["num_features"], may["M"], may["nmax"], may["b"], may["eps"], may["head_dim"]) == (6, 6, 5, 0.7, 0.2, D)
    assert may["Z"] == pytest.approx(float(rf.maclaurin_coeffs(0.7, 0.2, 5).sum()))
    ray = _make(rf, "radial", 0)
    assert ray["W1"] is ray["w1"] and ray["phases"] is ray["phase"] and ray["omegas"].shape == (2, 4, D + 1)
    assert (ray["sketch_m"], ray["num_radial"], ray["radial_dim"], ray["bias"]) == (3, 2, 4, 0.5)
    tp = _make(rf, "anchor", 0)
    assert tp["projections"] is tp["proj"] and tp["quad_nodes"] is tp["nodes"] and tp["num_scales"] == 2
    same = _make(rf, "maclaurin", 0)
    assert np.array_equal(np.asarray(same["omega"]), np.asarray(may["omega"]))  # a key fixes the draw
    other = _make(rf, "maclaurin", 1)
    assert not np.array_equal(np.asarray(other["omega"]), np.asarray(may["omega"]))
    jitted = jax.jit(lambda k: rf.create_radial_projection(k, D, 3, 2, 4)["w1"])(_key(5))
    assert np.array_equal(np.asarray(jitted), np.asarray(rf.create_radial_projection(_key(5), D, 3, 2, 4)["w1"]))


def test_bad_arguments_say_what_was_expected(rf):
    p = _make(rf, "maclaurin", 0)
    x = jnp.ones((2, D))
    with pytest.raises(ValueError, match="maclaurin_features: normalize=False is not offered"):
        rf.maclaurin_features(x, p, False)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\)"):
        rf.maclaurin_features(jnp.ones((2, 3)), p)
    with pytest.raises(TypeError, match="params must be the dict that create_radial_projection returns"):
        rf.radial_features(x, [1, 2])
    with pytest.raises(ValueError, match="params lacks"):
        rf.yat_tp_features(x, {"anchors": jnp.ones((2, D))})
    with pytest.raises(ValueError, match=r"expected query of shape \(B, L, H, D\)"):
        rf.maclaurin_yat_attention(jnp.ones((3, D)), x, x, p)
    q = jnp.ones((1, 3, 1, D))
    with pytest.raises(ValueError, match="causal=True needs Lq == Lk"):
        rf.linear_attention_readout(jnp.ones((1, 2, 1, 6)), jnp.ones((1, 3, 1, 6)), q, True)
    with pytest.raises(ValueError, match="nmax must be an int in 1..64"):
        rf.create_maclaurin_projection(_key(0), D, 4, 1.0, 1e-5, 0)


def test_nnx_key_padding_mask_and_precision():
    """0.3.5 NNX's extras: a key-padding mask drops keys (the oracle: the attention without them), precision
    runs the contractions at that precision, a query-dependent mask is refused."""
    p = _make(nnx_rf, "radial", 1)
    q, k, v = (jnp.asarray(_randn((1, 4, 2, D), s)) for s in (1, 2, 3))
    mask = jnp.asarray([True, False, True, True]).reshape(1, 1, 1, 4)
    got = nnx_rf.radial_yat_attention(q, k, v, p, mask=mask, precision=jax.lax.Precision.HIGHEST)
    keep = np.array([0, 2, 3])
    want = nnx_rf.radial_yat_attention(q, k[:, keep], v[:, keep], p, precision="highest")
    _close(got, want, 1e-5)
    with pytest.raises(ValueError, match="key-padding mask"):
        nnx_rf.maclaurin_yat_attention(q, k, v, _make(nnx_rf, "maclaurin", 0), mask=jnp.ones((1, 2, 4, 4), bool))
    with pytest.raises(ValueError, match="precision must be None"):
        nnx_rf.yat_tp_attention(q, k, v, _make(nnx_rf, "anchor", 0), precision=(1, 2))


# nmn 0.3.5 NNX's signatures (read from its sources; 0.3.5 is not imported); names 0.3.5 NNX lacked take
# Linen's (spherical_kappa, linear_attention) or torch's (linear_attention_readout)
_ATTN = [("query", EMPTY), ("key", EMPTY), ("value", EMPTY), ("params", EMPTY), ("causal", False)]
_EXTRA = [("precision", None), ("gradient_scaling", True), ("mask", None)]
_FEAT = [("x", EMPTY), ("params", EMPTY), ("normalize", True), ("epsilon", 1e-6)]
SIGNATURES_035 = {
    "maclaurin_coeffs": [("b", EMPTY), ("epsilon", EMPTY), ("nmax", EMPTY)],
    "create_maclaurin_projection": [("key", EMPTY), ("head_dim", EMPTY), ("num_features", 256), ("bias", 1.0),
                                    ("epsilon", 1e-5), ("nmax", 40), ("dtype", jnp.float32)],
    "maclaurin_features": _FEAT,
    "maclaurin_yat_attention": _ATTN + [("epsilon", 1e-6)] + _EXTRA,
    "create_radial_projection": [("key", EMPTY), ("head_dim", EMPTY), ("sketch_m", 128), ("num_radial", 8),
                                 ("radial_dim", 64), ("bias", 1.0), ("epsilon", 1e-5), ("dtype", jnp.float32)],
    "radial_features": _FEAT,
    "radial_yat_attention": _ATTN + [("epsilon", 1e-6)] + _EXTRA,
    "create_yat_tp_projection": [("key", EMPTY), ("head_dim", EMPTY), ("num_prf_features", 8),
                                 ("num_quad_nodes", 1), ("num_anchor_features", 16), ("epsilon", 1e-5),
                                 ("dtype", jnp.float32)],
    "yat_tp_features": _FEAT,
    "yat_tp_attention": _ATTN + [("epsilon", 1e-5)] + _EXTRA,
    "spherical_kappa": [("s", EMPTY), ("b", EMPTY), ("eps", 1e-5)],
    "linear_attention": [("phi_q", EMPTY), ("phi_k", EMPTY), ("value", EMPTY), ("causal", False), ("eps_div", 1e-6)],
    "linear_attention_readout": [("q_feat", EMPTY), ("k_feat", EMPTY), ("value", EMPTY), ("causal", False),
                                 ("epsilon", 1e-5)],
}  # fmt: skip


def check_signatures(module, package, attention_module, signatures):
    assert sorted(module.__all__) == sorted(signatures)
    for name, want in signatures.items():
        fn = getattr(module, name)
        got = [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]
        assert got == want, name
        assert getattr(package, name) is fn and getattr(attention_module, name) is fn, name


def test_0_3_5_signatures_and_the_three_import_paths():
    import nmn.nnx.attention as attention_module

    check_signatures(nnx_rf, N, attention_module, SIGNATURES_035)


# --------------------------------------------------------------------------------------------- the layer
def _layer(kind, **kw):
    if kind == "maclaurin":
        opts = dict(performer_kind="maclaurin", num_features=8, performer_nmax=4)
    else:
        # RAY at epsilon 1.0, as the conformance rows: eps = 1e-5 puts its radial frequencies ~ 1/sqrt(eps)
        # into the cosines, and float32 rounding of their arguments then differs between two runtimes by ~1e-4
        opts = dict(performer_kind="radial", performer_sketch_m=3, performer_num_radial=2, performer_radial_dim=2)
        opts["epsilon"] = 1.0
    return N.MultiHeadYatAttention(2, 8, use_performer=True, rngs=nnx.Rngs(0), **opts, **kw)


def _mha_onnx(layer, x, causal):
    """onnxruntime running nmn::Yat{Maclaurin,Radial}MultiHeadAttention with the layer's spec params."""
    _, config, p = N.to_spec(layer)
    e = x.shape[-1]
    ins = [x, x, x, np.ones((1, 1, 1, 1), bool)]
    for s in "qkv":
        ins += [p[f"{s}_weight"], p[f"{s}_bias"]]
    ins += [p["out_weight"], p["out_bias"], np.ones((1,), np.float32), np.array([config["epsilon"]], np.float32)]
    attrs = dict(num_heads=config["num_heads"], causal=int(causal))
    if config["performer_kind"] == "maclaurin":
        return ort_run(
            "YatMaclaurinMultiHeadAttention", ins + [p[n] for n in ("may_omega", "may_degmask", "may_scale")], attrs
        )
    attrs["bias"] = float(config["performer_bias"])
    names = ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef")
    assert e == 8
    return ort_run("YatRadialMultiHeadAttention", ins + [p[n] for n in names], attrs)


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_the_layer_buffers_are_frozen_and_its_forward_is_the_onnx_function(kind):
    layer = _layer(kind, causal=True, performer_bias=0.5)
    names = [n for n in vars(layer) if n.startswith(("may_", "ray_"))]
    assert sorted(names) == sorted(
        ("may_omega", "may_degmask", "may_scale")
        if kind == "maclaurin"
        else ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef")
    )
    assert all(isinstance(getattr(layer, n), N.Buffer) for n in names)
    trainable = nnx.to_pure_dict(nnx.state(layer, nnx.Param))
    assert not any(k.startswith(("may_", "ray_", "proj", "alpha")) for k in trainable)
    grads = nnx.grad(lambda m: jnp.sum(m(jnp.ones((1, 3, 8)))))(layer)
    assert not any(k.startswith(("may_", "ray_")) for k in nnx.to_pure_dict(grads))
    x = _randn((2, 5, 8), 3)
    want = _mha_onnx(layer, x, True)
    _close(layer(jnp.asarray(x)), want[0] if isinstance(want, (list, tuple)) else want, 5e-5)


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_the_layer_round_trips_through_the_spec(kind):
    layer = _layer(kind, performer_bias=1.0)
    kind_, config, params = N.to_spec(layer)
    assert config["performer_kind"] == kind and "proj" not in params
    back = N.from_spec(kind_, config, params)
    x = jnp.asarray(_randn((1, 4, 8), 1))
    _close(back(x), layer(x), 1e-6)
    assert N.to_spec(back)[1] == config
    same = _layer(kind, performer_bias=1.0)  # one Rngs seed, one projection
    assert np.array_equal(np.asarray(same(x)), np.asarray(layer(x)))


def test_bad_layer_keywords_name_the_layer_and_the_keyword():
    with pytest.raises(
        ValueError, match="MultiHeadYatAttention: performer_sketch_m=4 has no effect with performer_kind='maclaurin'"
    ):
        N.MultiHeadYatAttention(
            2, 8, use_performer=True, performer_kind="maclaurin", performer_sketch_m=4, rngs=nnx.Rngs(0)
        )
    with pytest.raises(ValueError, match="performer_kind='radial' has no effect with use_performer=False"):
        N.MultiHeadYatAttention(2, 8, performer_kind="radial", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="performer_kind must be one of"):
        N.MultiHeadYatAttention(2, 8, use_performer=True, performer_kind="goat", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="RotaryYatAttention: performer_num_radial=2 has no effect here"):
        N.RotaryYatAttention(2, 8, performer_num_radial=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="takes no mask"):
        _layer("maclaurin")(jnp.ones((1, 3, 8)), mask=jnp.ones((3, 3), bool))


def test_flax_idioms_deterministic_alpha_init_precision():
    """Flax's ``deterministic`` (the constructor's default of the call's flag), ``alpha_init`` and ``precision``
    on MultiHeadYatAttention (issue 17): oracles are the same layer without dropout, with alpha set by hand, and
    without a precision."""
    x = jnp.asarray(_randn((1, 5, 8), 4))
    plain = N.MultiHeadYatAttention(2, 8, rngs=nnx.Rngs(0))
    off = N.MultiHeadYatAttention(2, 8, dropout_rate=0.5, deterministic=True, rngs=nnx.Rngs(0))
    _close(off(x), plain(x), 1e-6)
    on = N.MultiHeadYatAttention(2, 8, dropout_rate=0.5, deterministic=False, rngs=nnx.Rngs(0))
    assert not np.allclose(np.asarray(on(x)), np.asarray(plain(x)))
    on.eval()  # nnx's eval() sets the flag, as on Flax's MultiHeadAttention
    _close(on(x), plain(x), 1e-6)
    two = N.MultiHeadYatAttention(2, 8, alpha_init=nnx.initializers.constant(2.0), rngs=nnx.Rngs(0))
    assert float(two.alpha[...][0]) == 2.0
    by_hand = N.MultiHeadYatAttention(2, 8, rngs=nnx.Rngs(0))
    for name in ("query", "key", "value", "out"):
        getattr(by_hand, name).kernel[...] = getattr(two, name).kernel[...]
    by_hand.alpha[...] = jnp.full((1,), 2.0)
    _close(two(x), by_hand(x), 1e-6)
    highest = N.MultiHeadYatAttention(2, 8, precision=jax.lax.Precision.HIGHEST, rngs=nnx.Rngs(0))
    _close(highest(x), plain(x), 1e-5)
    with pytest.raises(ValueError, match="alpha_init has no effect"):
        N.MultiHeadYatAttention(2, 8, normalization="l1", alpha_init=nnx.initializers.constant(1.0), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="precision must be None"):
        N.MultiHeadYatAttention(2, 8, precision=(1, 2), rngs=nnx.Rngs(0))
