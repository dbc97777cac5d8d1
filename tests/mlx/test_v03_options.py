"""nmn 0.3 options carried over to nmn.mlx: DropConnect (``use_dropconnect``/``drop_rate``) and ``positive_init``
(the squashers' module forms are in tests/behaviour/test_squasher_layers.py, one table for all six frameworks).

Oracles: the numpy reference of ``onnx_ops.reference`` (the Yat product on the kernel the layer really used),
onnxruntime running the exported ``nmn::`` functions, the same layer without the option, and a Bernoulli bound
derived from the number of draws. Shapes stay tiny: MLX on Linux is the CPU build.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

import nmn.mlx as nm
import nmn.mlx.conv as mconv
import nmn.mlx.conv_transpose as mconvt
import nmn.mlx.dense as mdense

reference = pytest.importorskip("onnx_ops.reference")
pytest.importorskip("onnxruntime")
from nmn.interchange import export, run_onnx

# layer name -> (build(**options), input shape, module whose functional product the layer calls, its name there)
_LAYERS = {
    "YatNMN": (lambda **kw: nm.YatNMN(3, in_features=4, **kw), (2, 4), mdense, "yat_dense"),
    "YatConv1D": (lambda **kw: nm.YatConv1D(3, 2, in_channels=2, **kw), (1, 5, 2), mconv, "yat_conv"),
    "YatConv2D": (lambda **kw: nm.YatConv2D(3, 2, in_channels=2, **kw), (1, 4, 4, 2), mconv, "yat_conv"),
    "YatConv3D": (lambda **kw: nm.YatConv3D(2, 2, in_channels=2, **kw), (1, 3, 3, 3, 2), mconv, "yat_conv"),
    "YatConvTranspose1D": (
        lambda **kw: nm.YatConvTranspose1D(3, 2, in_channels=2, strides=2, **kw),
        (1, 3, 2),
        mconvt,
        "yat_conv_transpose",
    ),
    "YatConvTranspose2D": (
        lambda **kw: nm.YatConvTranspose2D(3, 2, in_channels=2, strides=2, **kw),
        (1, 3, 3, 2),
        mconvt,
        "yat_conv_transpose",
    ),
    "YatConvTranspose3D": (
        lambda **kw: nm.YatConvTranspose3D(2, 2, in_channels=2, **kw),
        (1, 2, 2, 2, 2),
        mconvt,
        "yat_conv_transpose",
    ),
}
_RATE = 0.5


def _input(shape, seed=0):
    return mx.array(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _pair(name, seed=0):
    """``(plain, dropconnect)``: the same layer without and with DropConnect, holding the same weights."""
    build = _LAYERS[name][0]
    mx.random.seed(seed)
    plain = build()
    dropped = build(use_dropconnect=True, drop_rate=_RATE)
    dropped.update(plain.parameters())
    return plain, dropped


class _Recorder:
    """Wraps a layer module's functional product and records the kernel (second argument) of every call."""

    def __init__(self, monkeypatch, module, fname):
        self.kernels = []
        original = getattr(module, fname)

        def wrapped(x, kernel, *args, **kwargs):
            self.kernels.append(np.array(kernel, np.float64))
            return original(x, kernel, *args, **kwargs)

        monkeypatch.setattr(module, fname, wrapped)


# ------------------------------------------------------------------------------------------------ DropConnect
@pytest.mark.parametrize("name", sorted(_LAYERS))
def test_dropconnect_is_the_identity_in_eval_mode(name):
    plain, dropped = _pair(name)
    x = _input(_LAYERS[name][1])
    dropped.eval()
    np.testing.assert_array_equal(np.array(dropped(x)), np.array(plain(x)))
    plain.train()  # a layer without the option computes the same in both modes
    np.testing.assert_array_equal(np.array(plain(x)), np.array(dropped(x)))


@pytest.mark.parametrize("name", sorted(_LAYERS))
def test_dropconnect_in_training_masks_the_kernel(name, monkeypatch):
    """Each training call applies a fresh mask: every kernel entry is 0 or w / (1 - rate), about a fraction ``rate``
    is dropped, the output differs from inference, and the mean of the applied kernels over N calls approaches
    the kernel within a bound derived from N. (The *outputs* do not average to the unmasked output: the Yat
    product is not linear in the kernel, so only the kernel is unbiased.)"""
    _, dropped = _pair(name, seed=1)
    build, shape, module, fname = _LAYERS[name]
    x = _input(shape, seed=1)
    w = np.array(dropped["kernel"], np.float64)
    dropped.eval()
    inference = np.array(dropped(x))
    dropped.train()
    recorder = _Recorder(monkeypatch, module, fname)
    mx.random.seed(7)
    n = 400
    outputs = [np.array(dropped(x)) for _ in range(n)]
    kernels = np.stack(recorder.kernels)
    assert kernels.shape == (n, *w.shape)
    keep = 1.0 - _RATE
    scaled = np.isclose(kernels, w / keep, rtol=1e-6, atol=0.0)
    zero = kernels == 0.0
    assert np.all(scaled | zero), "a masked kernel entry is neither 0 nor w / (1 - rate)"
    # dropped fraction: Binomial(n * size, rate) / (n * size), 6 standard deviations
    frac = zero.mean()
    assert abs(frac - _RATE) <= 6 * math.sqrt(_RATE * keep / kernels[0].size / n), frac
    assert len({k.tobytes() for k in kernels[:20]}) == 20, "the mask is not drawn afresh at every call"
    assert max(np.max(np.abs(o - inference)) for o in outputs[:5]) > 1e-3, "training output equals inference"
    # each entry's mean over n masks: mean w, standard deviation |w| sqrt(rate / (keep n)); 6 deviations
    bound = 6 * np.abs(w) * math.sqrt(_RATE / (keep * n))
    assert np.all(np.abs(kernels.mean(axis=0) - w) <= bound + 1e-12), np.max(np.abs(kernels.mean(axis=0) - w))


def test_dropconnect_forward_is_the_yat_product_of_the_masked_kernel(monkeypatch):
    """The numpy oracle on the kernel the layer applied gives the layer's training output."""
    _, layer = _pair("YatNMN", seed=2)
    layer.update({"bias": mx.array([0.1, -0.2, 0.3]), "alpha": mx.array([1.5])})
    recorder = _Recorder(monkeypatch, mdense, "yat_dense")
    x = _input((2, 4), seed=2)
    y = np.array(layer(x), np.float64)
    (w,) = recorder.kernels
    want = reference.REFERENCE["YatDense"](
        np.array(x, np.float64),
        w,
        np.array([0.1, -0.2, 0.3]),
        np.array([1.5]),
        np.array([1e-5]),
        spherical=0,
        weight_normalized=0,
    )
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_dropconnect_gradient_is_zero_on_dropped_weights(monkeypatch):
    _, layer = _pair("YatNMN", seed=3)
    recorder = _Recorder(monkeypatch, mdense, "yat_dense")
    x = _input((2, 4), seed=3)
    mx.random.seed(11)
    _, grads = nn.value_and_grad(layer, lambda m, a: mx.sum(m(a)))(layer, x)
    (applied,) = recorder.kernels
    g = np.array(grads["kernel"])
    assert np.all(g[applied == 0.0] == 0.0)
    assert np.all(g[applied != 0.0] != 0.0)


@pytest.mark.parametrize("name", ["YatNMN", "YatConv2D", "YatConvTranspose1D"])
def test_dropconnect_exports_the_file_of_the_layer_without_it(name):
    plain, dropped = _pair(name, seed=4)
    shape = _LAYERS[name][1]
    x = np.array(_input(shape, seed=4))
    dropped.train()
    with_option = export(nn.Sequential(dropped), x, framework="mlx")
    without = export(nn.Sequential(plain), x, framework="mlx")
    assert with_option.graph.SerializeToString() == without.graph.SerializeToString()
    assert dropped.training, "export did not give the layer back its training mode"
    fresh = np.array(_input((2, *shape[1:]), seed=5))
    (got,) = run_onnx(with_option, {with_option.graph.input[0].name: fresh})
    dropped.eval()
    want = np.array(dropped(mx.array(fresh)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(want))))


@pytest.mark.parametrize("name", sorted(_LAYERS))
def test_dropconnect_round_trips_through_the_config_and_shows_in_the_repr(name):
    _, dropped = _pair(name)
    config = dropped.get_config()
    assert (config["use_dropconnect"], config["drop_rate"]) == (True, _RATE)
    rebuilt = type(dropped).from_config(config)
    assert rebuilt.get_config() == config
    assert "use_dropconnect=True, drop_rate=0.5" in repr(dropped)
    assert "dropconnect" not in repr(_pair(name)[0])
    assert "use_dropconnect" not in nm.to_spec(dropped)[1], "the spec carries a training-only option"


@pytest.mark.parametrize("name", ["YatNMN", "YatConv1D", "YatConvTranspose2D"])
@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_bad_drop_rate_is_the_core_error_naming_the_layer(name, rate):
    with pytest.raises(ValueError, match=rf"^{name}: drop_rate must be in \[0, 1\), got {rate}"):
        _LAYERS[name][0](use_dropconnect=True, drop_rate=rate)


def test_use_dropconnect_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^YatConv2D: use_dropconnect must be True or False, got 'yes'"):
        _LAYERS["YatConv2D"][0](use_dropconnect="yes", drop_rate=0.1)


def test_drop_rate_without_use_dropconnect_drops_nothing():
    plain, _ = _pair("YatNMN")
    off = nm.YatNMN(3, in_features=4, drop_rate=0.5)
    off.update(plain.parameters())
    x = _input((2, 4))
    np.testing.assert_array_equal(np.array(off(x)), np.array(plain(x)))


# --------------------------------------------------------------------------------------------- positive_init
def test_positive_init_is_the_absolute_value_of_the_default_draw():
    mx.random.seed(5)
    plain = nm.YatNMN(6, in_features=5)
    mx.random.seed(5)
    positive = nm.YatNMN(6, in_features=5, positive_init=True)
    np.testing.assert_array_equal(np.array(positive["kernel"]), np.abs(np.array(plain["kernel"])))
    assert np.any(np.array(plain["kernel"]) < 0)
    lazy = nm.YatNMN(6, positive_init=True)
    lazy(mx.ones((1, 5)))
    assert float(mx.min(lazy["kernel"])) >= 0.0
    assert nm.YatNMN.from_config(positive.get_config()).get_config() == positive.get_config()
    assert "positive_init=True" in repr(positive)


# ------------------------------------------------------------------------------------------- refused keywords
@pytest.mark.parametrize(
    "build",
    [
        lambda **kw: nm.YatNMN(3, in_features=4, **kw),
        lambda **kw: nm.MultiHeadYatAttention(8, 2, **kw),
        lambda **kw: nm.RotaryYatAttention(8, 2, max_seq_len=8, **kw),
    ],
    ids=["YatNMN", "MultiHeadYatAttention", "RotaryYatAttention"],
)
def test_refused_and_unknown_keywords_name_the_layer(build, monkeypatch):
    from nmn.core import names

    layer = type(build()).__name__
    with pytest.raises(TypeError, match=rf"^{layer}: kernel_bank= \(nmn 0.3\) is not supported: .*reuse one layer"):
        build(kernel_bank=True)
    with pytest.raises(TypeError, match=rf"^{layer}: unexpected keyword argument\(s\) \['colour'\]"):
        build(colour=1)
    monkeypatch.setitem(names.REFUSED_KEYWORDS, layer, {"old_option": "because; use new_option instead"})
    with pytest.raises(TypeError, match=rf"^{layer}: old_option= \(nmn 0.3\) is not supported: because; use new"):
        build(old_option=True)


# ---------------------------------------------------------------------------------------------------- fused
def test_fused_dense_computes_the_plain_product_and_trains():
    mx.random.seed(8)
    plain = nm.YatNMN(3, in_features=4, learnable_epsilon=True)
    fused = nm.YatNMN(3, in_features=4, learnable_epsilon=True, fused=True)
    fused.update(plain.parameters())
    x = _input((5, 4), seed=8)
    np.testing.assert_allclose(np.array(fused(x)), np.array(plain(x)), rtol=1e-6, atol=1e-7)

    def loss(m, a):
        return mx.sum(m(a) ** 2)

    _, g_plain = nn.value_and_grad(plain, loss)(plain, x)
    _, g_fused = nn.value_and_grad(fused, loss)(fused, x)
    for key in ("kernel", "bias", "alpha", "epsilon_param"):
        np.testing.assert_allclose(np.array(g_fused[key]), np.array(g_plain[key]), rtol=1e-5, atol=1e-7)
    config = fused.get_config()
    assert config["fused"] is True and nm.YatNMN.from_config(config).get_config() == config
    assert "fused=True" in repr(fused)
    proto = export(nn.Sequential(fused), np.array(x), framework="mlx")
    assert (
        proto.graph.SerializeToString()
        == export(nn.Sequential(plain), np.array(x), framework="mlx").graph.SerializeToString()
    )


def test_freeze_kernel_is_the_0_3_alias_of_lazy():
    layer = nm.YatNMN(3, in_features=2, freeze_kernel=True)
    assert layer.lazy and sorted(k for k, _ in layer.trainable_parameters().items()) == ["alpha", "bias"]
    assert not nm.YatNMN(3, in_features=2).lazy
