"""nmn.mlx.random_features (nmn 0.3's MAY / RAY / tensor-product attentions) and the MAY / RAY layer option.

Oracles: onnxruntime running the nmn ONNX functions on the same projection (``tests/random_features_util.ort_run``),
the float64 numpy formulas of ``tests/torch/test_random_features.py`` (explicit loops from the functions' doc
strings; numpy only, no torch), the masked quadratic readout for ``causal``, and a central finite difference of
``mx.grad`` (float64 on the CPU).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

import nmn.mlx as nm
from nmn.mlx import random_features as rf
from tests.torch.test_random_features import (
    may_formula,
    ray_formula,
    readout_formula,
    tp_formula,
)

D = 4
F64 = mx.float64


def _np(a):
    return np.array(a)


def _may(seed=0, **kw):
    return rf.create_maclaurin_projection(D, num_features=6, nmax=5, seed=seed, **kw)


def _ray(seed=0):
    return rf.create_radial_projection(D, sketch_m=3, num_radial=2, radial_dim=4, bias=0.5, epsilon=0.3, seed=seed)


def _tp(seed=0):
    return rf.create_yat_tp_projection(D, num_prf_features=3, num_quad_nodes=2, num_anchor_features=4, seed=seed)


KINDS = {
    "maclaurin": (_may, rf.maclaurin_features, rf.maclaurin_yat_attention),
    "radial": (_ray, rf.radial_features, rf.radial_yat_attention),
    "anchor": (_tp, rf.yat_tp_features, rf.yat_tp_attention),
}


def _formula(kind, x, p, eps):
    a = {k: _np(v) if isinstance(v, mx.array) else v for k, v in p.items()}
    if kind == "maclaurin":
        return may_formula(x, a["omega"], a["degmask"], a["scale"], eps)
    if kind == "radial":
        return ray_formula(x, a["w1"], a["w2"], a["omega"], a["phase"], a["coef"], a["b"], eps)
    return tp_formula(x, a["anchors"], a["proj"], a["nodes"], a["weights"], eps)


def _onnx_features(kind, x, p, eps):
    from tests.random_features_util import ort_run

    a = {k: _np(v).astype(np.float32) for k, v in p.items() if isinstance(v, mx.array)}
    x = np.asarray(x, np.float32)
    if kind == "maclaurin":
        out = ort_run("YatMaclaurinFeatures", [x, a["omega"], a["degmask"], a["scale"]], {"epsilon": eps})
    elif kind == "radial":
        ins = [x, a["w1"], a["w2"], a["omega"], a["phase"], a["coef"]]
        out = ort_run("YatRadialFeatures", ins, {"epsilon": eps, "bias": float(p["b"])})
    else:
        out = ort_run("YatAnchorFeatures", [x, a["anchors"], a["proj"], a["nodes"], a["weights"]], {"epsilon": eps})
    return out[0] if isinstance(out, (list, tuple)) else out


def _close(got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, float(np.abs(want).max())))


def _randn(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("kind", list(KINDS))
def test_features_match_the_numpy_formula(kind):
    make, features, _ = KINDS[kind]
    p = make()
    x = _randn((2, 3, 2, D), 1)
    got = features(mx.array(x, dtype=F64), p, epsilon=1e-3)
    assert got.dtype == F64
    _close(got, _formula(kind, x, p, 1e-3), 1e-6)  # float32 projections, float64 arithmetic


@pytest.mark.parametrize("kind", list(KINDS))
def test_features_and_attention_match_onnxruntime(kind):
    from tests.random_features_util import ort_run

    make, features, attention = KINDS[kind]
    p = make(seed=3)
    q, k, v = (_randn((1, 4, 2, D), s).astype(np.float32) for s in (4, 5, 6))
    _close(features(mx.array(q), p), _onnx_features(kind, q, p, 1e-6), 2e-5)
    qf, kf = _onnx_features(kind, q, p, 1e-6), _onnx_features(kind, k, p, 1e-6)
    for causal in (False, True):
        got = attention(mx.array(q), mx.array(k), mx.array(v), p, causal=causal, epsilon=1e-5)
        want = ort_run("YatLinearAttention", [qf, kf, v], {"causal": int(causal), "epsilon": 1e-5})
        _close(got, want[0] if isinstance(want, (list, tuple)) else want, 2e-4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_causal_readout_is_the_masked_quadratic_readout(kind):
    make, features, attention = KINDS[kind]
    p = make(seed=6)
    q, k, v = (_randn((1, 5, 2, D), s) for s in (7, 8, 9))
    for causal in (False, True):
        got = attention(mx.array(q, dtype=F64), mx.array(k, dtype=F64), mx.array(v, dtype=F64), p, causal=causal)
        qf, kf = _formula(kind, q, p, 1e-6), _formula(kind, k, p, 1e-6)
        _close(got, readout_formula(qf, kf, v, causal, 1e-5), 1e-6)
    qf, kf = features(mx.array(q, dtype=F64), p), features(mx.array(k, dtype=F64), p)
    vv = mx.array(v, dtype=F64)
    for fn, eps_key in ((rf.linear_attention_readout, "epsilon"), (rf.linear_attention, "eps_div")):
        got = fn(qf, kf, vv, causal=True, **{eps_key: 1e-3})
        _close(got, readout_formula(_np(qf), _np(kf), v, True, 1e-3), 1e-9)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradient_wrt_query_is_the_central_difference(kind):
    make, _, attention = KINDS[kind]
    p = make(seed=8)
    q0, k, v = (_randn((1, 3, 1, D), s) for s in (10, 11, 12))
    k, v = mx.array(k, dtype=F64), mx.array(v, dtype=F64)
    w = mx.array(_randn((1, 3, 1, D), 13), dtype=F64)

    def loss(q):
        return (attention(q, k, v, p, causal=True) * w).sum()

    grad = _np(mx.grad(loss)(mx.array(q0, dtype=F64)))
    h, fd = 1e-3, np.zeros_like(q0)  # MLX's float64 cos/exp are float32-accurate on the CPU: a wide step
    for idx in np.ndindex(q0.shape):
        up, dn = q0.copy(), q0.copy()
        up[idx] += h
        dn[idx] -= h
        fd[idx] = (float(loss(mx.array(up, dtype=F64))) - float(loss(mx.array(dn, dtype=F64)))) / (2 * h)
    _close(grad, fd, 2e-3)


def test_the_dicts_hold_the_core_arrays_and_0_3_5_keys():
    may = _may(bias=0.7, epsilon=0.2)
    assert may["omegas"] is may["omega"] and may["omega"].shape == (6, 5, D)
    assert (may["num_features"], may["nmax"], may["head_dim"]) == (6, 5, D) and may["degrees"].dtype == mx.int64
    assert math.isclose(may["Z"], float(rf.maclaurin_coeffs(0.7, 0.2, 5).sum()))
    ray = rf.create_radial_projection(D, seed=0)  # MLX's own 0.3.5 defaults: 8 x 4 x 8
    assert ray["W1"].shape == (8, D + 1) and ray["omegas"].shape == (4, 8, D + 1) and ray["bias"] == 1.0
    tp = _tp()
    assert tp["projections"] is tp["proj"] and tp["quad_weights"] is tp["weights"] and tp["num_scales"] == 2
    assert np.array_equal(_np(_may(seed=0)["omega"]), _np(_may(seed=0)["omega"]))
    p = _may(seed=2)  # nmn 0.3.5's dict: omegas, integer degrees and Z
    old = {"omegas": p["omega"], "degrees": p["degrees"].astype(mx.int32), "Z": p["Z"], "num_features": 6, "nmax": 5}
    x = mx.array(_randn((3, D), 0).astype(np.float32))
    _close(rf.maclaurin_features(x, old), rf.maclaurin_features(x, p), 1e-6)
    s = mx.array([-0.5, 0.0, 0.9])
    _close(rf.spherical_kappa(s, 1.5, 0.1), (_np(s) + 1.5) ** 2 / (2.1 - 2 * _np(s)), 1e-6)


_E = inspect.Parameter.empty
# nmn 0.3.5's MLX signatures (read from its sources; 0.3.5 is not imported); the readouts and spherical_kappa were
# not in 0.3.5's MLX: torch's / Linen's names and parameters
SIGNATURES_035 = {
    "maclaurin_coeffs": [("b", _E), ("epsilon", _E), ("nmax", _E)],
    "create_maclaurin_projection": [
        ("head_dim", _E),
        ("num_features", 256),
        ("bias", 1.0),
        ("epsilon", 1e-5),
        ("nmax", 40),
        ("dtype", mx.float32),
        ("seed", None),
    ],  # fmt: skip
    "maclaurin_features": [("x", _E), ("params", _E), ("normalize", True), ("epsilon", 1e-6)],
    "maclaurin_yat_attention": [
        ("query", _E),
        ("key", _E),
        ("value", _E),
        ("params", _E),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
    "create_radial_projection": [
        ("head_dim", _E),
        ("sketch_m", 8),
        ("num_radial", 4),
        ("radial_dim", 8),
        ("bias", 1.0),
        ("epsilon", 1e-5),
        ("dtype", mx.float32),
        ("seed", None),
    ],  # fmt: skip
    "radial_features": [("x", _E), ("params", _E), ("normalize", True), ("epsilon", 1e-6)],
    "radial_yat_attention": [
        ("query", _E),
        ("key", _E),
        ("value", _E),
        ("params", _E),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
    "create_yat_tp_projection": [
        ("head_dim", _E),
        ("num_prf_features", 8),
        ("num_quad_nodes", 1),
        ("num_anchor_features", 16),
        ("epsilon", 1e-5),
        ("dtype", mx.float32),
        ("seed", None),
    ],  # fmt: skip
    "yat_tp_features": [("x", _E), ("params", _E), ("normalize", True), ("epsilon", 1e-6)],
    "yat_tp_attention": [
        ("query", _E),
        ("key", _E),
        ("value", _E),
        ("params", _E),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
    "spherical_kappa": [("s", _E), ("b", _E), ("eps", 1e-5)],
    "linear_attention": [("phi_q", _E), ("phi_k", _E), ("value", _E), ("causal", False), ("eps_div", 1e-6)],
    "linear_attention_readout": [
        ("q_feat", _E),
        ("k_feat", _E),
        ("value", _E),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(SIGNATURES_035))
def test_0_3_5_signatures_and_the_three_import_paths(name):
    import nmn.mlx.attention as ma

    fn = getattr(rf, name)
    assert [(p.name, p.default) for p in inspect.signature(fn).parameters.values()] == SIGNATURES_035[name]
    assert getattr(nm, name) is fn and getattr(ma, name) is fn and name in ma.__all__ and name in rf.__all__


def test_bad_arguments_say_what_was_expected():
    p = _may()
    x = mx.zeros((2, D))
    with pytest.raises(ValueError, match=r"maclaurin_features: normalize=False is not offered"):
        rf.maclaurin_features(x, p, normalize=False)
    with pytest.raises(TypeError, match=r"radial_features: x must be an mx.array, got ndarray"):
        rf.radial_features(np.zeros((2, D)), _ray())
    with pytest.raises(ValueError, match=r"yat_tp_features: params lacks \['anchors'\]"):
        rf.yat_tp_features(x, {"proj": 1})
    with pytest.raises(ValueError, match=r"yat_tp_attention: expected key of shape \(B, L, H, D\), got shape \(2, 4\)"):
        rf.yat_tp_attention(mx.zeros((1, 2, 1, D)), x, x, _tp())
    q = mx.zeros((1, 3, 1, D))
    with pytest.raises(ValueError, match=r"causal=True needs Lq == Lk, got 3 and 2"):
        rf.maclaurin_yat_attention(q, q[:, :2], q[:, :2], p, causal=True)


# -------------------------------------------------------------------------------------------- the layer option
LAYERS = {
    "maclaurin": dict(performer_kind="maclaurin", num_features=8, performer_nmax=6, performer_bias=1.0),
    "radial": dict(performer_kind="radial", performer_sketch_m=3, performer_num_radial=2, performer_radial_dim=4),
}
FROZEN = {"maclaurin": ("may_omega", "may_degmask", "may_scale"),
          "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef")}  # fmt: skip


@pytest.mark.parametrize("kind", list(LAYERS))
def test_the_layer_projections_are_frozen_and_its_forward_is_the_functional_one(kind):
    from mlx.utils import tree_flatten

    mx.random.seed(0)
    layer = nm.MultiHeadYatAttention(8, 2, use_performer=True, causal=True, **LAYERS[kind])
    params = dict(tree_flatten(layer.parameters()))
    trainable = dict(tree_flatten(layer.trainable_parameters()))
    assert set(FROZEN[kind]) <= set(params) and not set(FROZEN[kind]) & set(trainable) and "alpha" not in params
    x = mx.array(_randn((2, 5, 8), 3).astype(np.float32))
    q, k, v = (lin(x).reshape(2, 5, 2, 4) for lin in (layer.query_proj, layer.key_proj, layer.value_proj))
    if kind == "maclaurin":
        p = {"omega": layer.may_omega, "degmask": layer.may_degmask, "scale": layer.may_scale}
        heads = rf.maclaurin_yat_attention(q, k, v, p, causal=True, epsilon=1e-6)
    else:
        p = {n: layer[f"ray_{n}"] for n in ("w1", "w2", "omega", "phase", "coef")} | {"b": layer.performer_bias}
        heads = rf.radial_yat_attention(q, k, v, p, causal=True, epsilon=1e-6)
    _close(layer(x), layer.out_proj(heads.reshape(2, 5, 8)), 1e-5)
    mx.random.seed(0)
    again = nm.MultiHeadYatAttention(8, 2, use_performer=True, causal=True, **LAYERS[kind])
    assert all(np.array_equal(_np(again[n]), _np(layer[n])) for n in FROZEN[kind])  # mlx.random's seed fixes them


def test_the_layer_round_trips_through_the_spec_and_refuses_bad_keywords():
    from nmn.mlx.spec import from_spec, to_spec

    x = mx.array(_randn((1, 3, 8), 4).astype(np.float32))
    for kind, kw in LAYERS.items():
        layer = nm.MultiHeadYatAttention(8, 2, use_performer=True, **kw)
        name, config, params = to_spec(layer)
        assert config["performer_kind"] == kind and set(FROZEN[kind]) <= set(params)
        again = from_spec(name, config, params)
        assert again.get_config() == layer.get_config() and f"performer_kind={kind!r}" in repr(layer)
        _close(again(x), layer(x), 1e-6)
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention: performer_radial_dim=4 has no effect"):
        nm.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", performer_radial_dim=4)
    with pytest.raises(ValueError, match=r"RotaryYatAttention: performer_kind='radial' has no effect here"):
        nm.RotaryYatAttention(8, 2, performer_kind="radial")
