"""nmn.torch.random_features (nmn 0.3's MAY / RAY / tensor-product attentions) and the MAY / RAY layer option.

Oracles: onnxruntime running the nmn ONNX functions on the same projection (``tests/random_features_util.ort_run``),
a float64 numpy formula written here from the functions' doc strings (explicit loops), a masked quadratic numpy
readout for ``causal``, and central finite differences (``torch.autograd.gradcheck``, float64).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nmn.torch as nt
from nmn.torch import random_features as rf

D = 4  # head size of every case (tiny shapes)


def _np(t):
    return t.detach().cpu().numpy()


def _unit(x, eps):
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + eps)


# ------------------------------------------------------------------ float64 numpy formulas, written from the docs
def may_formula(x, omega, degmask, scale, eps):
    """phi_r = scale * prod_l (degmask[r,l] (omega[r,l] . x_hat) + 1 - degmask[r,l])."""
    xh = _unit(np.asarray(x, np.float64), eps)
    m, n, _ = omega.shape
    out = np.ones(xh.shape[:-1] + (m,))
    for r in range(m):
        for ell in range(n):
            g = degmask[r, ell]
            out[..., r] *= g * (xh @ omega[r, ell].astype(np.float64)) + 1.0 - g
    return out * float(scale[0])


def ray_formula(x, w1, w2, omega, phase, coef, bias, eps):
    """z = [x_hat, sqrt(b)], psi = (z.w1)(z.w2)/sqrt(m), rff_j = sqrt(2/R) sqrt(coef_j) cos(z.omega_j + phase_j)."""
    xh = _unit(np.asarray(x, np.float64), eps)
    z = np.concatenate([xh, np.full(xh.shape[:-1] + (1,), math.sqrt(bias))], -1)
    m, j, r = w1.shape[0], omega.shape[0], omega.shape[1]
    psi = (z @ w1.T.astype(np.float64)) * (z @ w2.T.astype(np.float64)) / math.sqrt(m)
    rff = np.zeros(xh.shape[:-1] + (j, r))
    for a in range(j):
        rff[..., a, :] = math.sqrt(2.0 / r) * math.sqrt(max(coef[a], 0.0)) * np.cos(z @ omega[a].T + phase[a])
    rff = rff.reshape(xh.shape[:-1] + (j * r,))
    return (psi[..., :, None] * rff[..., None, :]).reshape(xh.shape[:-1] + (m * j * r,))


def tp_formula(x, anchors, proj, nodes, weights, eps):
    """concat_j sqrt(w_j) flatten(poly (x) prf_j), poly_p = (x_hat.a_p)^2/sqrt(P), prf = exp(clip(...))/sqrt(M)."""
    xh = _unit(np.asarray(x, np.float64), eps)
    p, j, m = anchors.shape[0], proj.shape[0], proj.shape[1]
    poly = (xh @ anchors.T.astype(np.float64)) ** 2 / math.sqrt(p)
    parts = []
    for a in range(j):
        s = float(nodes[a])
        arg = np.clip(math.sqrt(2.0 * max(s, 0.0)) * (xh @ proj[a].T.astype(np.float64)) - s, -20.0, 20.0)
        prf = np.exp(arg) / math.sqrt(m)
        outer = poly[..., :, None] * prf[..., None, :]
        parts.append(math.sqrt(max(float(weights[a]), 0.0)) * outer.reshape(xh.shape[:-1] + (p * m,)))
    return np.concatenate(parts, -1)


def readout_formula(qf, kf, v, causal, eps):
    """Quadratic l1 readout with an explicit mask: out_i = sum_j s_ij v_j / (sum_j s_ij +- eps), s = qf.kf."""
    qf, kf, v = (np.asarray(a, np.float64) for a in (qf, kf, v))
    s = np.einsum("bqhm,bkhm->bhqk", qf, kf)
    if causal:
        lq, lk = s.shape[-2:]
        s = np.where(np.tril(np.ones((lq, lk), bool), lk - lq), s, 0.0)
    den = s.sum(-1)
    den = den + np.where(den == 0, eps, np.sign(den) * eps)
    return np.einsum("bhqk,bkhd->bqhd", s, v) / np.transpose(den, (0, 2, 1))[..., None]


# ------------------------------------------------------------------------------------------------------ cases
def _may(seed=0, **kw):
    return rf.create_maclaurin_projection(D, num_features=kw.pop("num_features", 6), nmax=5, seed=seed, **kw)


def _ray(seed=0):
    return rf.create_radial_projection(D, sketch_m=3, num_radial=2, radial_dim=4, bias=0.5, epsilon=0.3, seed=seed)


def _tp(seed=0):
    return rf.create_yat_tp_projection(D, num_prf_features=3, num_quad_nodes=2, num_anchor_features=4, seed=seed)


def _formula(kind, x, p, eps):
    a = {k: _np(v) if torch.is_tensor(v) else v for k, v in p.items()}
    if kind == "maclaurin":
        return may_formula(x, a["omega"], a["degmask"], a["scale"], eps)
    if kind == "radial":
        return ray_formula(x, a["w1"], a["w2"], a["omega"], a["phase"], a["coef"], a["b"], eps)
    return tp_formula(x, a["anchors"], a["proj"], a["nodes"], a["weights"], eps)


KINDS = {
    "maclaurin": (_may, rf.maclaurin_features, rf.maclaurin_yat_attention),
    "radial": (_ray, rf.radial_features, rf.radial_yat_attention),
    "anchor": (_tp, rf.yat_tp_features, rf.yat_tp_attention),
}


def _onnx_features(kind, x, p, eps):
    from tests.random_features_util import ort_run

    a = {k: _np(v) for k, v in p.items() if torch.is_tensor(v)}
    x = np.asarray(x, np.float32)
    if kind == "maclaurin":
        out = ort_run("YatMaclaurinFeatures", [x, a["omega"], a["degmask"], a["scale"]], {"epsilon": eps})
    elif kind == "radial":
        ins = [x, a["w1"], a["w2"], a["omega"], a["phase"], a["coef"]]
        out = ort_run("YatRadialFeatures", ins, {"epsilon": eps, "bias": float(p["b"])})
    else:
        out = ort_run("YatAnchorFeatures", [x, a["anchors"], a["proj"], a["nodes"], a["weights"]], {"epsilon": eps})
    return out[0] if isinstance(out, (list, tuple)) else out


def _close(got, want, rtol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("kind", list(KINDS))
def test_features_match_the_numpy_formula(kind):
    make, features, _ = KINDS[kind]
    p = make()
    x = torch.randn(2, 3, 2, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = features(x, p, epsilon=1e-3)
    assert got.dtype == torch.float64 and got.shape[:-1] == x.shape[:-1]
    _close(_np(got), _formula(kind, _np(x), p, 1e-3), 1e-10)


@pytest.mark.parametrize("kind", list(KINDS))
def test_features_match_onnxruntime(kind):
    make, features, _ = KINDS[kind]
    p = make(seed=3)
    x = torch.randn(2, 3, D, generator=torch.Generator().manual_seed(2))
    _close(_np(features(x, p)), _onnx_features(kind, _np(x), p, 1e-6), 2e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_attention_matches_onnxruntime(kind, causal):
    from tests.random_features_util import ort_run

    make, _, attention = KINDS[kind]
    p = make(seed=4)
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 4, 2, D, generator=g) for _ in range(3))
    got = attention(q, k, v, p, causal=causal, epsilon=1e-5)
    qf, kf = _onnx_features(kind, _np(q), p, 1e-6), _onnx_features(kind, _np(k), p, 1e-6)
    want = ort_run("YatLinearAttention", [qf, kf, _np(v)], {"causal": int(causal), "epsilon": 1e-5})
    want = want[0] if isinstance(want, (list, tuple)) else want
    _close(_np(got), want, 2e-4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_causal_readout_is_the_masked_quadratic_readout(kind):
    make, features, attention = KINDS[kind]
    p = make(seed=6)
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 5, 2, D, generator=g, dtype=torch.float64) for _ in range(3))
    for causal in (False, True):
        got = attention(q, k, v, p, causal=causal, epsilon=1e-5)
        qf, kf = _formula(kind, _np(q), p, 1e-6), _formula(kind, _np(k), p, 1e-6)
        _close(_np(got), readout_formula(qf, kf, _np(v), causal, 1e-5), 1e-9)
    qf, kf = features(q, p), features(k, p)
    for fn, eps_key in ((rf.linear_attention_readout, "epsilon"), (rf.linear_attention, "eps_div")):
        got = fn(qf, kf, v, causal=True, **{eps_key: 1e-3})
        _close(_np(got), readout_formula(_np(qf), _np(kf), _np(v), True, 1e-3), 1e-9)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradient_wrt_query_is_the_central_difference(kind):
    make, _, attention = KINDS[kind]
    p = make(seed=8)
    g = torch.Generator().manual_seed(9)
    q = torch.randn(1, 3, 1, D, generator=g, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(1, 3, 1, D, generator=g, dtype=torch.float64) for _ in range(2))
    assert torch.autograd.gradcheck(lambda q: attention(q, k, v, p, causal=True), (q,), eps=1e-6, atol=1e-5)


def test_spherical_kappa_and_the_coefficients():
    s = torch.tensor([-0.5, 0.0, 0.3, 0.9], dtype=torch.float64)
    want = (s.numpy() + 1.5) ** 2 / (2.0 + 0.1 - 2.0 * s.numpy())
    np.testing.assert_allclose(_np(rf.spherical_kappa(s, 1.5, 0.1)), want, rtol=1e-12)
    a = rf.maclaurin_coeffs(1.5, 0.1, 60)  # sum_n a_n t^n is kappa_b(t) for |t| < C/2
    t = 0.3
    assert isinstance(a, np.ndarray) and a.shape == (61,)
    assert abs(sum(c * t**n for n, c in enumerate(a)) - (t + 1.5) ** 2 / (2.1 - 2 * t)) < 1e-9


def test_the_projection_dicts_hold_the_core_arrays_and_0_3_5_keys():
    may = _may(seed=0, bias=0.7, epsilon=0.2)
    assert may["omegas"] is may["omega"] and may["omega"].shape == (6, 5, D)
    assert torch.equal(may["degmask"].sum(1).long(), may["degrees"])
    assert (may["num_features"], may["nmax"], may["b"], may["eps"], may["head_dim"]) == (6, 5, 0.7, 0.2, D)
    assert math.isclose(may["Z"], float(rf.maclaurin_coeffs(0.7, 0.2, 5).sum()))
    ray = _ray()
    assert ray["W1"] is ray["w1"] and ray["phases"] is ray["phase"] and ray["omegas"].shape == (2, 4, D + 1)
    assert (ray["sketch_m"], ray["num_radial"], ray["radial_dim"], ray["b"]) == (3, 2, 4, 0.5)
    tp = _tp()
    assert tp["projections"] is tp["proj"] and tp["quad_nodes"] is tp["nodes"] and tp["num_scales"] == 2
    same = rf.create_maclaurin_projection(D, 6, nmax=5, seed=0)
    assert torch.equal(same["omega"], _may(seed=0)["omega"])  # a seed fixes the draw
    half = rf.create_radial_projection(D, 3, 2, 4, dtype=torch.float64, seed=1)
    assert half["w1"].dtype == torch.float64


def test_a_0_3_5_maclaurin_dict_gives_the_same_features():
    """nmn 0.3.5's dict (omegas with nmax + 1 rows, degrees, Z) is read through degmask/scale built from it."""
    p = _may(seed=2)
    rows = torch.cat([p["omega"], torch.ones(6, 1, D)], 1)  # 0.3.5 stored one more (never used) row
    old = {"omegas": rows, "degrees": p["degrees"], "Z": p["Z"], "num_features": 6, "nmax": 5}
    x = torch.randn(3, D)
    torch.testing.assert_close(rf.maclaurin_features(x, old), rf.maclaurin_features(x, p))


# nmn 0.3.5's signatures (read from its sources; 0.3.5 is not imported): (name, parameters with their defaults)
SIGNATURES_035 = {
    "create_maclaurin_projection": [
        ("head_dim", inspect.Parameter.empty),
        ("num_features", 256),
        ("bias", 1.0),
        ("epsilon", 1e-5),
        ("nmax", 40),
        ("seed", None),
        ("dtype", torch.float32),
        ("device", None),
    ],
    "maclaurin_features": [
        ("x", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("normalize", True),
        ("epsilon", 1e-6),
    ],  # fmt: skip
    "maclaurin_yat_attention": [
        ("query", inspect.Parameter.empty),
        ("key", inspect.Parameter.empty),
        ("value", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
    "create_radial_projection": [
        ("head_dim", inspect.Parameter.empty),
        ("sketch_m", 128),
        ("num_radial", 8),
        ("radial_dim", 64),
        ("bias", 1.0),
        ("epsilon", 1e-5),
        ("seed", None),
        ("dtype", torch.float32),
        ("device", None),
    ],
    "radial_features": [
        ("x", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("normalize", True),
        ("epsilon", 1e-6),
    ],  # fmt: skip
    "radial_yat_attention": [
        ("query", inspect.Parameter.empty),
        ("key", inspect.Parameter.empty),
        ("value", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
    "linear_attention_readout": [
        ("q_feat", inspect.Parameter.empty),
        ("k_feat", inspect.Parameter.empty),
        ("value", inspect.Parameter.empty),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
    "maclaurin_coeffs": [
        ("b", inspect.Parameter.empty),
        ("eps", inspect.Parameter.empty),
        ("nmax", inspect.Parameter.empty),
    ],  # fmt: skip
    # not in 0.3.5's torch: Linen's spherical_kappa / linear_attention and nnx's yat_tp (torch idiom: seed, not key)
    "spherical_kappa": [("s", inspect.Parameter.empty), ("b", inspect.Parameter.empty), ("eps", 1e-5)],
    "linear_attention": [
        ("phi_q", inspect.Parameter.empty),
        ("phi_k", inspect.Parameter.empty),
        ("value", inspect.Parameter.empty),
        ("causal", False),
        ("eps_div", 1e-6),
    ],  # fmt: skip
    "create_yat_tp_projection": [
        ("head_dim", inspect.Parameter.empty),
        ("num_prf_features", 8),
        ("num_quad_nodes", 1),
        ("num_anchor_features", 16),
        ("epsilon", 1e-5),
        ("seed", None),
        ("dtype", torch.float32),
        ("device", None),
    ],  # fmt: skip
    "yat_tp_features": [
        ("x", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("normalize", True),
        ("epsilon", 1e-6),
    ],  # fmt: skip
    "yat_tp_attention": [
        ("query", inspect.Parameter.empty),
        ("key", inspect.Parameter.empty),
        ("value", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("causal", False),
        ("epsilon", 1e-5),
    ],  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(SIGNATURES_035))
def test_0_3_5_signatures_and_the_three_import_paths(name):
    import nmn.torch.attention as ta

    fn = getattr(rf, name)
    got = [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]
    assert got == SIGNATURES_035[name]
    assert getattr(nt, name) is fn and getattr(ta, name) is fn and name in rf.__all__


def test_bad_arguments_say_what_was_expected():
    p = _may()
    x = torch.randn(2, D)
    with pytest.raises(ValueError, match=r"maclaurin_features: normalize=False is not offered"):
        rf.maclaurin_features(x, p, normalize=False)
    with pytest.raises(TypeError, match=r"radial_features: params must be the dict that create_radial_projection"):
        rf.radial_features(x, [1, 2])
    with pytest.raises(ValueError, match=r"yat_tp_features: params lacks \['anchors'\]"):
        rf.yat_tp_features(x, {"proj": 1})
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\).*got \(2, 3\)"):
        rf.maclaurin_features(torch.randn(2, 3), p)
    with pytest.raises(ValueError, match=r"maclaurin_yat_attention: expected query of shape \(B, L, H, D\)"):
        rf.maclaurin_yat_attention(x, x, x, p)
    q = torch.randn(1, 3, 1, D)
    with pytest.raises(ValueError, match=r"radial_yat_attention: epsilon must be a finite number >= 0, got -1"):
        rf.radial_yat_attention(q, q, q, _ray(), epsilon=-1)
    with pytest.raises(ValueError, match=r"causal=True needs Lq == Lk, got 3 and 2"):
        rf.maclaurin_yat_attention(q, q[:, :2], q[:, :2], p, causal=True)
    with pytest.raises(ValueError, match=r"maclaurin_projection: nmax must be an int in 1\.\.64, got 0"):
        rf.create_maclaurin_projection(D, nmax=0)
    with pytest.raises(ValueError, match=r"spherical_kappa: eps must be a finite number >= 0"):
        rf.spherical_kappa(0.5, 1.0, eps=float("nan"))


# -------------------------------------------------------------------------------------------- the layer option
LAYERS = {
    "maclaurin": dict(performer_kind="maclaurin", num_features=8, performer_nmax=6, performer_bias=1.0),
    "radial": dict(performer_kind="radial", performer_sketch_m=3, performer_num_radial=2, performer_radial_dim=4),
}
BUFFERS = {"maclaurin": ["may_degmask", "may_omega", "may_scale"],
           "radial": ["ray_coef", "ray_omega", "ray_phase", "ray_w1", "ray_w2"]}  # fmt: skip


@pytest.mark.parametrize("kind", list(LAYERS))
def test_the_layer_projections_are_frozen_saved_buffers(kind):
    torch.manual_seed(0)
    layer = nt.MultiHeadYatAttention(8, 2, use_performer=True, **LAYERS[kind])
    assert sorted(n for n, _ in layer.named_buffers()) == BUFFERS[kind]
    assert not any(n.startswith(("may_", "ray_", "alpha")) for n, _ in layer.named_parameters())
    assert set(BUFFERS[kind]) <= set(layer.state_dict())
    frozen = {n: b.clone() for n, b in layer.named_buffers()}
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(2, 5, 8)
    layer(x).square().sum().backward()
    opt.step()
    assert all(torch.equal(b, frozen[n]) for n, b in layer.named_buffers())
    torch.manual_seed(0)
    assert all(torch.equal(b, frozen[n]) for n, b in nt.MultiHeadYatAttention(8, 2, use_performer=True,
                                                                             **LAYERS[kind]).named_buffers())  # fmt: skip
    other = nt.MultiHeadYatAttention(8, 2, use_performer=True, **LAYERS[kind])  # another draw ...
    other.load_state_dict(layer.state_dict())  # ... replaced by the saved one
    torch.testing.assert_close(other(x), layer(x))


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_the_layer_is_the_functional_attention_of_its_heads(kind, causal):
    torch.manual_seed(1)
    layer = nt.MultiHeadYatAttention(8, 2, use_performer=True, causal=causal, **LAYERS[kind]).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    q, k, v = (lin(x).reshape(2, 5, 2, 4) for lin in (layer.q_proj, layer.k_proj, layer.v_proj))
    if kind == "maclaurin":
        p = {"omega": layer.may_omega, "degmask": layer.may_degmask, "scale": layer.may_scale}
        heads = rf.maclaurin_yat_attention(q, k, v, p, causal=causal, epsilon=1e-6)
    else:
        names = ("w1", "w2", "omega", "phase", "coef")
        p = {n: getattr(layer, f"ray_{n}") for n in names} | {"b": layer.performer_bias}
        heads = rf.radial_yat_attention(q, k, v, p, causal=causal, epsilon=1e-6)
    torch.testing.assert_close(layer(x), layer.out_proj(heads.reshape(2, 5, 8)))


def test_the_layer_round_trips_through_repr_and_the_spec():
    from nmn.torch.spec import from_spec, to_spec

    for kind, kw in LAYERS.items():
        layer = nt.MultiHeadYatAttention(8, 2, use_performer=True, **kw)
        name, config, params = to_spec(layer)
        assert config["performer_kind"] == kind and sorted(k for k in params if k[:4] in ("may_", "ray_")) == [
            b for b in BUFFERS[kind]
        ]
        again = from_spec(name, config, params)
        assert repr(again) == repr(layer) and f"performer_kind={kind!r}" in repr(layer)
        x = torch.randn(1, 3, 8)
        torch.testing.assert_close(again(x), layer(x))
    old = dict(to_spec(nt.MultiHeadYatAttention(8, 2, use_performer=True))[1])
    for key in ("performer_kind", "performer_sketch_m", "performer_num_radial", "performer_radial_dim"):
        old.pop(key)  # a file written before the MAY / RAY kinds: the SLAY performer
    assert from_spec("MultiHeadYatAttention", old).performer_kind == "slay"


def test_bad_layer_keywords_name_the_layer_and_the_keyword():
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention: performer_kind='radial' has no effect with use_perf"):
        nt.MultiHeadYatAttention(8, 2, performer_kind="radial")
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention: performer_sketch_m=4 has no effect"):
        nt.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", performer_sketch_m=4)
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention: performer_kind must be one of"):
        nt.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="goat")
    with pytest.raises(ValueError, match=r"RotaryYatAttention: performer_kind='maclaurin' has no effect here"):
        nt.RotaryYatAttention(8, 2, performer_kind="maclaurin")
    layer = nt.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=4)
    x = torch.randn(1, 3, 8)
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention: use_performer=True takes no mask"):
        layer(x, mask=torch.ones(3, 3, dtype=torch.bool))


def test_param_dtype_stores_the_parameters_and_dtype_computes():
    """nmn 0.3's torch MultiHeadYatAttention(dtype=..., param_dtype=...): storage in param_dtype, compute in dtype."""
    for kw in ({}, dict(use_performer=True, **LAYERS["maclaurin"])):
        torch.manual_seed(2)
        layer = nt.MultiHeadYatAttention(8, 2, dtype=torch.float32, param_dtype=torch.float64, **kw)
        assert all(p.dtype == torch.float64 for p in layer.parameters()) and layer.compute_dtype == torch.float32
        x = torch.randn(2, 5, 8)
        y = layer(x)
        plain = nt.MultiHeadYatAttention(8, 2, **kw)
        plain.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, plain(x))  # the float32 copy of the stored weights
    assert nt.MultiHeadYatAttention(8, 2, param_dtype=torch.float64)(torch.randn(1, 2, 8)).dtype == torch.float64
    with pytest.raises(TypeError, match=r"MultiHeadYatAttention: param_dtype must be a torch.dtype or None"):
        nt.MultiHeadYatAttention(8, 2, param_dtype="float16")
