"""nmn 0.3's MAY / RAY / tensor-product helpers and ``MultiHeadYatAttention(performer_kind=...)`` on Keras 3.

Oracles: onnxruntime running the nmn ONNX functions (``tests/random_features_util.ort_run``) on the same projection,
a masked numpy readout written from the formula (causal), central finite differences (gradients) and nmn 0.3.5's
recorded API (``tests/data/v03/api_0_3_5.json``). A Keras backend is fixed per process: run this file once per
backend (``KERAS_BACKEND=jax|torch|tensorflow``).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("onnxruntime")

from keras import ops

import nmn.keras as nk
from nmn.keras import random_features as rfk

BACKEND = keras.backend.backend()
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
    return np.asarray(ops.convert_to_numpy(t))


def _one(out):
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _projection(kind, dtype="float32", bias=1.0):
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


def _grad(fn, x):
    """d sum(fn(x)) / dx on the active backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = ops.sum(fn(t))
        return tape.gradient(y, t).numpy()
    if BACKEND == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        ops.sum(fn(t)).backward()
        return t.grad.detach().cpu().numpy()
    import jax

    return np.asarray(jax.grad(lambda t: ops.sum(fn(t)))(x))


@pytest.mark.parametrize("target", ["features", "attention"])
@pytest.mark.parametrize("kind", ["maclaurin", "radial", "anchor"])
def test_gradient_wrt_query_matches_finite_differences(kind, target):
    # float64 on the TensorFlow and torch backends; Keras' JAX backend computes einsum in float32 even for float64
    # inputs (its result_type maps float64 to float32), so there: float32 with a wider step and a looser tolerance
    f64 = BACKEND != "jax"
    if not f64 and kind == "radial" and target == "attention":
        pytest.skip("RAY's tiny sign-indefinite readout is too ill-conditioned for a float32 central difference")
    np_dtype = np.float64 if f64 else np.float32
    p = _projection(kind, dtype="float64" if f64 else "float32")
    q, v = _x((1, 3, 1, 4), 7, np_dtype), _x((1, 3, 1, 2), 9, np_dtype)
    k = q + 0.1 * _x((1, 3, 1, 4), 8, np_dtype)  # keys near the queries: denominators well away from 0
    width = 2 if target == "attention" else int(FEATURES[kind](q, p).shape[-1])
    cot = ops.convert_to_tensor(_x((1, 3, 1, width), 10, np_dtype))

    def fn(t):
        y = ATTENTIONS[kind](t, k, v, p, epsilon=1e-6) if target == "attention" else FEATURES[kind](t, p)
        return ops.multiply(y, cot)

    g = _grad(fn, q)
    h = 1e-6 if f64 else 1e-2
    fd = np.zeros(q.shape)
    for idx in np.ndindex(q.shape):
        e = np.zeros_like(q)
        e[idx] = h
        fd[idx] = (float(_np(ops.sum(fn(q + e)))) - float(_np(ops.sum(fn(q - e))))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=0, atol=(1e-6 if f64 else 2e-2) * max(np.abs(fd).max(), 1.0))


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

    record = _recorded()["keras"]["signatures"]
    checked = 0
    for name in NAMES:
        if name not in record:
            continue
        ours = inspect.signature(getattr(rfk, name)).parameters
        for param, default in record[name].items():
            assert param in ours, f"nmn.keras.{name} lacks nmn 0.3.5's parameter {param!r}"
            mine = "<required>" if ours[param].default is inspect.Parameter.empty else repr(ours[param].default)
            assert mine == default, f"nmn.keras.{name}({param}=...): default {mine}, nmn 0.3.5 had {default}"
        positional = [n for n in ours if n in record[name]]
        if name in ORDER_0_3_5:
            assert positional == ORDER_0_3_5[name], f"nmn.keras.{name}: positional order {positional}"
        checked += 1
    assert checked >= 7  # the MAY and RAY helpers 0.3.5's Keras package had


# nmn 0.3.5's positional order (read from its nmn/keras/performer_yat.py), where a positional call could go wrong
ORDER_0_3_5 = {
    "create_maclaurin_projection": ["head_dim", "num_features", "bias", "epsilon", "nmax", "seed", "dtype"],
    "create_radial_projection": [
        "head_dim",
        "sketch_m",
        "num_radial",
        "radial_dim",
        "bias",
        "epsilon",
        "seed",
        "dtype",
    ],
    "maclaurin_yat_attention": ["query", "key", "value", "params", "causal", "epsilon", "normalize"],
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
def _layer(kind, **kw):
    sizes = (
        dict(num_features=12, performer_nmax=5, performer_bias=1.0)
        if kind == "maclaurin"
        else dict(performer_sketch_m=3, performer_num_radial=2, performer_radial_dim=4, performer_bias=0.5)
    )
    return nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind=kind, seed=3, **sizes, **kw)


PREFIX = {"maclaurin": "may_", "radial": "ray_"}


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_layer_projections_are_frozen_and_saved(kind, tmp_path):
    layer = _layer(kind)
    x = _x((2, 4, 8), 11)
    y = _np(layer(x))
    frozen = sorted(w.name for w in layer.non_trainable_weights)
    assert frozen and all(n.startswith(PREFIX[kind]) for n in frozen)
    assert not any(w.name.startswith(PREFIX[kind]) for w in layer.trainable_weights)
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(_np(loaded(x)), y, rtol=1e-5, atol=1e-6)
    again = [w for w in loaded.layers[-1].non_trainable_weights]
    for w, v in zip(sorted(again, key=lambda w: w.name), sorted(layer.non_trainable_weights, key=lambda w: w.name)):
        np.testing.assert_array_equal(_np(w), _np(v))


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_layer_config_round_trips(kind):
    layer = _layer(kind, causal=True)
    config = layer.get_config()
    assert config["performer_kind"] == kind
    clone = nk.MultiHeadYatAttention.from_config(config)
    assert clone.get_config() == config


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


def test_unseeded_projection_is_drawn_from_keras_rng():
    """Without ``seed`` the sampler's seed comes from Keras' RNG: ``keras.utils.set_random_seed`` reproduces it."""

    def omega():
        keras.utils.set_random_seed(5)
        layer = nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=6)
        layer.build((None, 3, 8))
        return _np(layer.may_omega)

    first, second = omega(), omega()
    np.testing.assert_array_equal(first, second)
    other = nk.MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=6)
    other.build((None, 3, 8))
    assert not np.array_equal(_np(other.may_omega), first)
