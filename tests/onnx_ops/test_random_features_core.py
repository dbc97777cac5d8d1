"""nmn.core.random_features against float64 numpy formulas written here, run through torch's F.

The oracles loop over features explicitly; they are not the core's einsum code. Also: the samplers' laws
(degree distribution, unit anchors, Gauss-Laguerre constants), MAY's unbiasedness for the truncated kernel
(exact expectation over the Rademacher signs by enumeration on a tiny case) and linear_readout's epsilon.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nmn.core import random_features as rf

torch = pytest.importorskip("torch")
from nmn.core.yat import linear_readout
from nmn.torch._ops import ops_for


def _unit(x, eps):
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + eps)


def may_oracle(x, omega, degmask, scale, eps):
    xh = _unit(np.asarray(x, np.float64), eps)
    m, n, _ = omega.shape
    out = np.empty(xh.shape[:-1] + (m,))
    for idx in np.ndindex(*xh.shape[:-1]):
        for r in range(m):
            v = float(scale[0])
            for ell in range(n):
                if degmask[r, ell] > 0:
                    v *= float(np.dot(omega[r, ell].astype(np.float64), xh[idx]))
            out[idx + (r,)] = v
    return out


def ray_oracle(x, w1, w2, omega, phase, coef, bias, eps):
    xh = _unit(np.asarray(x, np.float64), eps)
    m = w1.shape[0]
    j, r, _ = omega.shape
    out = np.empty(xh.shape[:-1] + (m * j * r,))
    for idx in np.ndindex(*xh.shape[:-1]):
        z = np.concatenate([xh[idx], [math.sqrt(bias)]])
        col = 0
        for a in range(m):
            psi = float(np.dot(w1[a], z) * np.dot(w2[a], z)) / math.sqrt(m)
            for jj in range(j):
                for rr in range(r):
                    c = math.sqrt(max(float(coef[jj]), 0.0))
                    rff = math.sqrt(2.0 / r) * c * math.cos(float(np.dot(omega[jj, rr], z)) + float(phase[jj, rr]))
                    out[idx + (col,)] = psi * rff
                    col += 1
    return out


def anchor_oracle(x, anchors, proj, nodes, weights, eps):
    xh = _unit(np.asarray(x, np.float64), eps)
    p = anchors.shape[0]
    j, m, _ = proj.shape
    out = np.empty(xh.shape[:-1] + (j * p * m,))
    for idx in np.ndindex(*xh.shape[:-1]):
        col = 0
        for jj in range(j):
            s = float(nodes[jj])
            for pp in range(p):
                poly = float(np.dot(anchors[pp], xh[idx])) ** 2 / math.sqrt(p)
                for mm in range(m):
                    arg = min(max(math.sqrt(2 * s) * float(np.dot(proj[jj, mm], xh[idx])) - s, -20.0), 20.0)
                    prf = math.exp(arg) / math.sqrt(m)
                    out[idx + (col,)] = math.sqrt(max(float(weights[jj]), 0.0)) * poly * prf
                    col += 1
    return out


def _t(a, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def _close(got, want, rtol):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want)))
    assert err <= rtol * max(float(np.max(np.abs(want))), 1e-30), err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_maclaurin_features_match_oracle(dtype):
    p = rf.maclaurin_projection(5, 12, bias=1.0, epsilon=0.3, nmax=6, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    args = [_t(p[k], dtype) for k in ("omega", "degmask", "scale")]
    xt = _t(x, dtype)
    got = rf.maclaurin_features(ops_for(xt), xt, *args, epsilon=1e-6)
    assert got.dtype == dtype and tuple(got.shape) == (2, 3, 12)
    _close(
        got.numpy(),
        may_oracle(x, p["omega"], p["degmask"], p["scale"], 1e-6),
        1e-5 if dtype == torch.float32 else 1e-12,
    )


@pytest.mark.parametrize("bias", [0.0, 1.0])
def test_radial_features_match_oracle(bias):
    p = rf.radial_projection(4, 3, 2, 5, bias=bias, epsilon=0.5, seed=2)
    x = np.random.default_rng(1).standard_normal((2, 2, 4))
    xt = _t(x, torch.float64)
    args = [_t(p[k], torch.float64) for k in ("w1", "w2", "omega", "phase", "coef")]
    got = rf.radial_features(ops_for(xt), xt, *args, bias=bias, epsilon=1e-6)
    assert tuple(got.shape) == (2, 2, 3 * 2 * 5)
    _close(got.numpy(), ray_oracle(x, *(p[k] for k in ("w1", "w2", "omega", "phase", "coef")), bias, 1e-6), 1e-10)


def test_anchor_features_match_oracle_with_clip():
    p = rf.anchor_projection(4, 3, 2, 5, epsilon=1e-5, seed=3)
    p["proj"] = p["proj"] * 30.0  # drive some exponents past the +-20 clip
    x = np.random.default_rng(2).standard_normal((3, 4))
    xt = _t(x, torch.float64)
    args = [_t(p[k], torch.float64) for k in ("anchors", "proj", "nodes", "weights")]
    got = rf.anchor_features(ops_for(xt), xt, *args, epsilon=1e-6)
    assert tuple(got.shape) == (3, 2 * 5 * 3)
    want = anchor_oracle(x, *(p[k] for k in ("anchors", "proj", "nodes", "weights")), 1e-6)
    _close(got.numpy(), want, 1e-10)


def test_features_differentiable():
    p = rf.maclaurin_projection(3, 4, bias=0.5, epsilon=0.5, nmax=4, seed=4)
    x = torch.tensor(np.random.default_rng(3).standard_normal((2, 3)), dtype=torch.float64, requires_grad=True)
    args = [_t(p[k], torch.float64) for k in ("omega", "degmask", "scale")]
    assert torch.autograd.gradcheck(lambda x: rf.maclaurin_features(ops_for(x), x, *args), (x,))
    q = rf.radial_projection(3, 2, 2, 2, bias=1.0, epsilon=0.5, seed=5)
    args = [_t(q[k], torch.float64) for k in ("w1", "w2", "omega", "phase", "coef")]
    assert torch.autograd.gradcheck(lambda x: rf.radial_features(ops_for(x), x, *args, bias=1.0), (x,))
    a = rf.anchor_projection(3, 2, 2, 2, seed=6)
    args = [_t(a[k], torch.float64) for k in ("anchors", "proj", "nodes", "weights")]
    assert torch.autograd.gradcheck(lambda x: rf.anchor_features(ops_for(x), x, *args), (x,))


def test_maclaurin_projection_law():
    nmax, m = 5, 20000
    p = rf.maclaurin_projection(3, m, bias=1.0, epsilon=0.5, nmax=nmax, seed=7)
    c = 2.5
    beta = [(2 / c) ** n / c for n in range(nmax + 1)]
    a = [beta[n] + 2 * (beta[n - 1] if n >= 1 else 0) + (beta[n - 2] if n >= 2 else 0) for n in range(nmax + 1)]
    assert rf.maclaurin_coeffs(1.0, 0.5, nmax) == pytest.approx(a)
    z = sum(a)
    freq = np.bincount(p["degrees"], minlength=nmax + 1) / m
    assert np.max(np.abs(freq - np.array(a) / z)) < 0.015
    assert p["scale"].dtype == np.float32 and p["scale"][0] == pytest.approx(math.sqrt(z / m), rel=1e-6)
    used = p["degmask"][:, :, None] > 0
    assert set(np.unique(p["omega"][np.broadcast_to(used, p["omega"].shape)])) <= {-1.0, 1.0}
    assert np.all(p["omega"][np.broadcast_to(~used, p["omega"].shape)] == 0)
    again = rf.maclaurin_projection(3, 50, bias=1.0, epsilon=0.5, nmax=nmax, seed=np.random.default_rng(8))
    assert np.array_equal(
        again["omega"], rf.maclaurin_projection(3, 50, bias=1.0, epsilon=0.5, nmax=nmax, seed=8)["omega"]
    )


def test_maclaurin_unbiased_for_truncation_exactly():
    """Average phi(q).phi(k) over every Rademacher sign pattern (D = 2, degree fixed per feature): t^n exactly."""
    d, nmax = 2, 3
    q, k = np.array([0.6, 0.8]), np.array([1.0, 0.0])
    t = float(q @ k)
    for n in range(nmax + 1):
        total, count = 0.0, 0
        for signs in itertools.product([-1.0, 1.0], repeat=n * d):
            w = np.array(signs).reshape(n, d) if n else np.zeros((0, d))
            total += float(np.prod(w @ q) * np.prod(w @ k))
            count += 1
        assert total / count == pytest.approx(t**n)
    # and through the core, with the degree law: E = sum_n a_n t^n (Monte Carlo, many features)
    p = rf.maclaurin_projection(d, 200000, bias=1.0, epsilon=1.0, nmax=nmax, seed=9)
    x = torch.tensor(np.stack([q, k]), dtype=torch.float64)
    f = rf.maclaurin_features(
        ops_for(x), x, *[_t(p[kk], torch.float64) for kk in ("omega", "degmask", "scale")], epsilon=0.0
    )
    est = float((f[0] * f[1]).sum())
    want = sum(a * t**n for n, a in enumerate(rf.maclaurin_coeffs(1.0, 1.0, nmax)))
    assert est == pytest.approx(want, rel=0.03)


def test_gauss_laguerre_constants():
    p = rf.radial_projection(2, 1, 6, 1, epsilon=0.25, seed=0)
    tau, w = np.polynomial.laguerre.laggauss(6)
    assert np.allclose(p["coef"], w / 0.25, rtol=1e-6)
    r2 = 0.7
    approx = float(np.sum(w / 0.25 * np.exp(-tau / 0.25 * r2)))
    assert approx == pytest.approx(1 / (0.25 + r2), rel=0.05)
    a = rf.anchor_projection(5, 2, 3, 4, epsilon=0.5, seed=0)
    x, wx = np.polynomial.laguerre.laggauss(3)
    assert np.allclose(a["nodes"], x / 2.5) and np.allclose(a["weights"], wx / 2.5)
    assert np.allclose(np.linalg.norm(a["anchors"], axis=-1), 1.0, atol=1e-6)


def test_spherical_kappa():
    t = np.linspace(-1, 1, 7)
    assert np.allclose(rf.spherical_kappa(None, t, 0.5, 0.1), (t + 0.5) ** 2 / (2.1 - 2 * t))


def test_linear_readout_epsilon():
    rng = np.random.default_rng(5)
    qf, kf, v = (torch.tensor(rng.standard_normal(s)) for s in [(1, 3, 1, 4), (1, 3, 1, 4), (1, 3, 1, 2)])
    den = np.einsum("blhm,hm->blh", qf.numpy(), kf.numpy().sum(1)[0])
    num = np.einsum("blhm,bkhm,bkhd->blhd", qf.numpy(), kf.numpy(), v.numpy())
    for eps in (1e-6, 0.5):
        want = num / (den + np.sign(den) * eps + (den == 0) * eps)[..., None]
        got = linear_readout(ops_for(qf), qf, kf, v, epsilon=eps).numpy()
        assert np.allclose(got, want, rtol=1e-12)
    assert np.allclose(linear_readout(ops_for(qf), qf, kf, v).numpy(), num / (den + np.sign(den) * 1e-6)[..., None])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rf.maclaurin_projection(4, 8, nmax=0), "maclaurin_projection: nmax must be an int in 1..64, got 0"),
        (lambda: rf.maclaurin_projection(4, 8, bias=-1.0), "maclaurin_projection: bias must be a finite float >= 0"),
        (lambda: rf.radial_projection(4, epsilon=0.0), "radial_projection: epsilon must be a finite float > 0"),
        (lambda: rf.anchor_projection(0), "anchor_projection: head_dim must be an int >= 1, got 0"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_feature_shape_mismatch_raises():
    p = rf.maclaurin_projection(4, 8, seed=0)
    x = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"maclaurin_features: x must have shape \(\.\.\., 4\)"):
        rf.maclaurin_features(ops_for(x), x, *[_t(p[k]) for k in ("omega", "degmask", "scale")])


def test_core_features_match_onnx_functions():
    """The core maps (torch F, float32) against onnxruntime running the nmn functions on the same projections."""
    from tests.random_features_util import ort_run

    x = np.random.default_rng(11).standard_normal((2, 3, 2, 4)).astype(np.float32)
    xt = _t(x)
    F = ops_for(xt)
    may = rf.maclaurin_projection(4, 16, bias=1.0, epsilon=0.3, nmax=7, seed=1)
    args = [may[k] for k in ("omega", "degmask", "scale")]
    got = rf.maclaurin_features(F, xt, *map(_t, args)).numpy()
    _close(got, ort_run("YatMaclaurinFeatures", [x] + args, {"epsilon": 1e-6}).astype(np.float64), 1e-5)
    ray = rf.radial_projection(4, 3, 2, 4, bias=0.5, epsilon=0.5, seed=2)
    args = [ray[k] for k in ("w1", "w2", "omega", "phase", "coef")]
    got = rf.radial_features(F, xt, *map(_t, args), bias=0.5).numpy()
    _close(got, ort_run("YatRadialFeatures", [x] + args, {"bias": 0.5}).astype(np.float64), 1e-5)
    anc = rf.anchor_projection(4, 3, 2, 5, seed=3)
    args = [anc[k] for k in ("anchors", "proj", "nodes", "weights")]
    got = rf.anchor_features(F, xt, *map(_t, args)).numpy()
    _close(
        got,
        ort_run("YatAnchorFeatures", dict(zip(("X", "ANCHORS", "PROJ", "NODES", "WEIGHTS"), [x] + args))).astype(
            np.float64
        ),
        1e-5,
    )


def test_exact_bias_attention_oracle():
    from tests.random_features_util import exact_bias_attention

    rng = np.random.default_rng(12)
    q, k, v = rng.standard_normal((1, 4, 2, 3)), rng.standard_normal((1, 4, 2, 3)), rng.standard_normal((1, 4, 2, 2))
    for causal in (False, True):
        got = exact_bias_attention(q, k, v, 1.0, 0.1, causal)
        for h in range(2):
            for i in range(4):
                keys = range(i + 1) if causal else range(4)
                w = []
                for j in keys:
                    t = float(q[0, i, h] @ k[0, j, h]) / (np.linalg.norm(q[0, i, h]) * np.linalg.norm(k[0, j, h]))
                    w.append((t + 1.0) ** 2 / (2.1 - 2 * t))
                want = sum(wj * v[0, j, h] for wj, j in zip(w, keys)) / sum(w)
                assert np.allclose(got[0, i, h], want)
