"""nmn 0.3's MAY / RAY / tensor-product helpers and ``MultiHeadYatAttention(performer_kind=...)`` on TensorFlow.

Oracles: onnxruntime running the nmn ONNX functions (``tests/random_features_util.ort_run``) on the same projection,
a masked numpy readout written from the formula (causal), central finite differences in float64 (gradients) and
nmn 0.3.5's recorded API (``tests/data/v03/api_0_3_5.json``).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

import nmn.tf as nk
from nmn.tf import random_features as rfk

NAMES = (
    "maclaurin_coeffs",
    "create_maclaurin_projection",
    "maclaurin_features",
    "maclaurin_yat_attention",
    "create_radial_projection",
    "radial_features",
    "radial_yat_attention",
    "create_yat_tp_projection",
    "yat_tp_features",
    "yat_tp_attention",
    "spherical_kappa",
    "linear_attention",
    "linear_attention_readout",
)


def _np(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def _one(out):
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _projection(kind, dtype=tf.float32, bias=1.0):
    if kind == "maclaurin":
        return rfk.create_maclaurin_projection(4, num_features=12, bias=bias, epsilon=0.5, nmax=5, seed=0, dtype=dtype)
    if kind == "radial":
        return rfk.create_radial_projection(4, 3, 2, 4, bias=bias, epsilon=0.5, seed=0, dtype=dtype)
    return rfk.create_yat_tp_projection(4, 3, 2, 5, epsilon=0.5, seed=0, dtype=dtype)


FEATURES = {"maclaurin": rfk.maclaurin_features, "radial": rfk.radial_features, "anchor": rfk.yat_tp_features}
ATTENTIONS = {
    "maclaurin": rfk.maclaurin_yat_attention,
    "radial": rfk.radial_yat_attention,
    "anchor": rfk.yat_tp_attention,
}


def ort_run(op, inputs, attrs):
    """onnxruntime running ``nmn::<op>`` (a one-node model with the nmn function attached)."""
    from tests.random_features_util import ort_run as run

    return run(op, inputs, attrs)


def _ort_features(kind, p, x, epsilon=1e-6):
    if kind == "maclaurin":
        ins = [x, _np(p["omega"]), _np(p["degmask"]), _np(p["scale"])]
        return _one(ort_run("YatMaclaurinFeatures", ins, {"epsilon": epsilon}))
    if kind == "radial":
        ins = [x] + [_np(p[k]) for k in ("w1", "w2", "omega", "phase", "coef")]
        return _one(ort_run("YatRadialFeatures", ins, {"epsilon": epsilon, "bias": float(p["b"])}))
    ins = [x] + [_np(p[k]) for k in ("anchors", "proj", "nodes", "weights")]
    return _one(ort_run("YatAnchorFeatures", ins, {"epsilon": epsilon}))


@pytest.mark.parametrize("kind", ["maclaurin", "radial", "anchor"])
def test_features_match_onnx(kind):
    p = _projection(kind)
    x = _x((2, 3, 2, 4))
    got = _np(FEATURES[kind](x, p))
    want = _ort_features(kind, p, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * np.abs(want).max())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ["maclaurin", "radial", "anchor"])
def test_attention_matches_onnx(kind, causal):
    p = _projection(kind)
    q, k, v = _x((1, 4, 2, 4), 1), _x((1, 4, 2, 4), 2), _x((1, 4, 2, 3), 3)
    got = _np(ATTENTIONS[kind](q, k, v, p, causal=causal, epsilon=1e-6))
    qf, kf = _ort_features(kind, p, q), _ort_features(kind, p, k)
    want = _one(ort_run("YatLinearAttention", [qf, kf, v], {"causal": int(causal), "epsilon": 1e-6}))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def _masked_readout(qf, kf, v, eps):
    """``out_i = sum_(j <= i) (qf_i . kf_j) v_j / (sum_(j <= i) qf_i . kf_j +- eps)`` by explicit loops (float64)."""
    b, lq, h, _ = qf.shape
    out = np.zeros((b, lq, h, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            for i in range(lq):
                w = np.array([qf[bi, i, hi] @ kf[bi, j, hi] for j in range(i + 1)], np.float64)
                den = w.sum()
                den += eps * (np.sign(den) if den != 0 else 1.0)
                out[bi, i, hi] = (w[:, None] * v[bi, : i + 1, hi]).sum(0) / den
    return out


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_causal_readout_is_the_masked_sum(kind):
    p = _projection(kind)
    q, k, v = _x((1, 5, 1, 4), 4), _x((1, 5, 1, 4), 5), _x((1, 5, 1, 2), 6)
    qf, kf = (_np(FEATURES[kind](t, p)).astype(np.float64) for t in (q, k))
    got = _np(rfk.linear_attention_readout(qf, kf, v.astype(np.float64), causal=True, epsilon=1e-6))
    np.testing.assert_allclose(got, _masked_readout(qf, kf, v, 1e-6), rtol=1e-5, atol=1e-8)
    # nmn 0.3 Linen's name, same readout
    np.testing.assert_allclose(_np(rfk.linear_attention(qf, kf, v.astype(np.float64), True, 1e-6)), got, rtol=1e-12)


@pytest.mark.parametrize("kind", ["maclaurin", "radial", "anchor"])
def test_gradient_wrt_query_matches_finite_differences(kind):
    p = _projection(kind, dtype=tf.float64)
    q, k, v = (tf.constant(_x(shape, seed, np.float64)) for shape, seed in (((1, 3, 1, 4), 7), ((1, 3, 1, 4), 8),
                                                                              ((1, 3, 1, 2), 9)))  # fmt: skip
    theoretical, numerical = tf.test.compute_gradient(
        lambda q: ATTENTIONS[kind](q, k, v, p, causal=True, epsilon=1e-6), [q], delta=1e-6
    )
    scale = max(np.abs(numerical[0]).max(), 1.0)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=0, atol=1e-6 * scale)


def test_helpers_trace_in_tf_function():
    """Inside ``tf.function`` with an unknown batch (as the exporter traces) the helpers give the eager result."""
    p = _projection("maclaurin")
    q = _x((2, 3, 2, 4), 12)
    fn = tf.function(
        lambda q: rfk.maclaurin_yat_attention(q, q, q, p, causal=True),
        input_signature=[tf.TensorSpec([None, 3, 2, 4], tf.float32)],
    )
    np.testing.assert_allclose(fn(q).numpy(), _np(rfk.maclaurin_yat_attention(q, q, q, p, causal=True)), rtol=1e-6)


def test_kappa_and_coefficients_match_the_formula():
    s = np.linspace(-0.9, 0.9, 7).astype(np.float32)
    np.testing.assert_allclose(_np(rfk.spherical_kappa(s, 0.5, 1e-3)), (s + 0.5) ** 2 / (2.001 - 2 * s), rtol=1e-5)
    # the coefficients are the Taylor series of kappa: sum_n a_n t^n at small t
    a = rfk.maclaurin_coeffs(0.5, 0.1, 30)
    t = 0.3
    np.testing.assert_allclose(sum(c * t**n for n, c in enumerate(a)), (t + 0.5) ** 2 / (2.1 - 2 * t), rtol=1e-9)


def test_a_0_3_5_dict_is_accepted():
    """A projection dict as nmn 0.3.5 made it (``omegas``, ``degrees``, ``Z`` only) gives the same features."""
    p = _projection("maclaurin")
    old = {k: p[k] for k in ("omegas", "degrees", "Z", "num_features", "nmax")}
    x = _x((2, 4))
    np.testing.assert_allclose(_np(rfk.maclaurin_features(x, old)), _np(rfk.maclaurin_features(x, p)), rtol=1e-6)


def _recorded():
    path = pathlib.Path(__file__).resolve().parents[1] / "data" / "v03" / "api_0_3_5.json"
    return json.loads(path.read_text())


def test_0_3_5_signatures_are_accepted():
    """Every parameter of nmn 0.3.5's Keras helper of the same name is a parameter here, with the same default."""
    import inspect

    record = _recorded()["tf"]["signatures"]
    checked = 0
    for name in NAMES:
        if name not in record:
            continue
        ours = inspect.signature(getattr(rfk, name)).parameters
        for param, default in record[name].items():
            assert param in ours, f"nmn.tf.{name} lacks nmn 0.3.5's parameter {param!r}"
            mine = "<required>" if ours[param].default is inspect.Parameter.empty else repr(ours[param].default)
            assert mine == default, f"nmn.tf.{name}({param}=...): default {mine}, nmn 0.3.5 had {default}"
        positional = [n for n in ours if n in record[name]]
        if name in ORDER_0_3_5:
            assert positional == ORDER_0_3_5[name], f"nmn.tf.{name}: positional order {positional}"
        checked += 1
    assert checked >= 7  # the MAY and RAY helpers 0.3.5's TensorFlow package had


# nmn 0.3.5's positional order (read from its nmn/tf/performer_yat.py), where a positional call could go wrong
ORDER_0_3_5 = {
    "create_maclaurin_projection": ["head_dim", "num_features", "bias", "epsilon", "nmax", "dtype", "seed"],
    "create_radial_projection": [
        "head_dim",
        "sketch_m",
        "num_radial",
        "radial_dim",
        "bias",
        "epsilon",
        "dtype",
        "seed",
    ],
    "maclaurin_yat_attention": ["query", "key", "value", "params", "causal", "epsilon"],
    "maclaurin_coeffs": ["b", "eps", "nmax"],
}


def test_names_are_exported():
    for name in NAMES:
        assert getattr(nk, name) is getattr(rfk, name)
        assert getattr(nk.attention, name) is getattr(rfk, name)
        assert name in nk.attention.__all__ and name in rfk.__all__


def test_bad_arguments_say_what_is_wrong():
    p = _projection("maclaurin")
    x = _x((2, 4))
    with pytest.raises(ValueError, match="maclaurin_features: normalize=False is not offered"):
        rfk.maclaurin_features(x, p, normalize=False)
    with pytest.raises(ValueError, match="radial_features: params lacks"):
        rfk.radial_features(x, {"b": 1.0})
    with pytest.raises(ValueError, match="linear_attention_readout: epsilon must be a finite number >= 0"):
        rfk.linear_attention_readout(_x((1, 2, 1, 3)), _x((1, 2, 1, 3)), _x((1, 2, 1, 2)), epsilon=-1.0)
    with pytest.raises(ValueError, match=r"maclaurin_yat_attention: expected query of rank 4"):
        rfk.maclaurin_yat_attention(x, x, x, p)
    with pytest.raises(ValueError, match="nmax"):
        rfk.create_maclaurin_projection(4, nmax=0)


# ---------------------------------------------------------------------------------------------------- the layer
def _kwargs(kind):
    sizes = (
        dict(num_features=12, performer_nmax=5, performer_bias=1.0)
        if kind == "maclaurin"
        else dict(performer_sketch_m=3, performer_num_radial=2, performer_radial_dim=4, performer_bias=0.5)
    )
    return dict(embed_dim=8, num_heads=2, use_performer=True, performer_kind=kind, **sizes)


def _layer(kind, **kw):
    return nk.MultiHeadYatAttention(**_kwargs(kind), seed=3, **kw)


PREFIX = {"maclaurin": "may_", "radial": "ray_"}


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_layer_projections_are_frozen_and_saved(kind, tmp_path):
    layer = _layer(kind)
    x = _x((2, 4, 8), 11)
    y = layer(x).numpy()
    frozen = sorted(v.name.split("/")[-1].split(":")[0] for v in layer.variables if not v.trainable)
    assert frozen and all(n.startswith(PREFIX[kind]) for n in frozen)
    assert not any(PREFIX[kind] in v.name for v in layer.trainable_variables)
    tf.train.Checkpoint(layer=layer).write(str(tmp_path / "ckpt"))
    other = nk.MultiHeadYatAttention(**_kwargs(kind), seed=99)  # another draw of the projections
    other(x)
    assert not np.allclose(other(x).numpy(), y)
    tf.train.Checkpoint(layer=other).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_allclose(other(x).numpy(), y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_layer_spec_round_trips(kind):
    from nmn.tf.spec import from_spec, to_spec

    layer = _layer(kind, causal=True)
    x = _x((1, 3, 8), 13)
    y = layer(x).numpy()
    name, config, params = to_spec(layer)
    assert config["performer_kind"] == kind and any(p.startswith(PREFIX[kind]) for p in params)
    np.testing.assert_allclose(from_spec(name, config, params)(x).numpy(), y, rtol=1e-6, atol=1e-7)


def test_layer_bad_keywords_name_the_layer_and_keyword():
    with pytest.raises(ValueError, match="MultiHeadYatAttention.*performer_kind"):
        nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="gaussian")
    with pytest.raises(ValueError, match="MultiHeadYatAttention.*performer_sketch_m"):
        nk.MultiHeadYatAttention(8, 2, performer_sketch_m=4)
    with pytest.raises(ValueError, match="MultiHeadYatAttention.*performer_radial_dim"):
        nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", performer_radial_dim=4)
    with pytest.raises(ValueError, match="MultiHeadYatAttention.*performer_nmax"):
        nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", performer_nmax=65)
    with pytest.raises(ValueError, match="RotaryYatAttention.*performer_kind"):
        nk.RotaryYatAttention(8, 2, performer_kind="maclaurin")


def test_unseeded_projection_is_drawn_from_tf_random():
    """Without ``seed`` the sampler's seed comes from ``tf.random``: ``tf.random.set_seed`` reproduces it."""

    def omega():
        tf.random.set_seed(5)
        return nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=6).may_omega

    first, second = omega().numpy(), omega().numpy()
    np.testing.assert_array_equal(first, second)
    other = nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=6)
    assert not np.array_equal(other.may_omega.numpy(), first)
