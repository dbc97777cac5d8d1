"""Keras host idioms for nmn.keras: build on first call, get_config/from_config, .keras save and load,
compute_output_shape, channels_first, fit, errors. Runs on whatever KERAS_BACKEND this process has
(tests/keras/test_backends.py runs this file again on the other two backends)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import ops

import onnx_ops
from nmn.core.conv import conv_pads, onnx_pads
from nmn.keras import (
    MultiHeadYatAttention,
    RotaryYatAttention,
    YatConv1D,
    YatConv2D,
    YatConv3D,
    YatConvTranspose1D,
    YatConvTranspose2D,
    YatEmbed,
    YatNMN,
    soft_tanh,
    softer_sigmoid,
    softermax,
)
from nmn.keras.spec import to_spec

RNG = np.random.default_rng(0)


def _np(t):
    return np.asarray(ops.convert_to_numpy(t))


def test_readme_example():
    layer = YatNMN(features=64, epsilon=1e-5)
    x = keras.ops.zeros((32, 128))
    y = layer(x)
    assert tuple(y.shape) == (32, 64)
    from nmn.keras import MultiHeadYatAttention as M  # noqa: F401


def test_dense_matches_onnx_function():
    layer = YatNMN(5, learnable_epsilon=True, epsilon=0.1)
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    y = _np(layer(x))
    _, _, p = to_spec(layer)
    eps = np.log1p(np.exp(p["epsilon_param"].astype(np.float64))).astype(np.float32)
    ref = onnx_ops.run_function("YatDense", [x, p["weight"], p["bias"], p["alpha"], eps])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,rank", [(YatConv1D, 1), (YatConv2D, 2), (YatConv3D, 3)])
def test_conv_channels_first_matches_onnx(cls, rank):
    layer = cls(4, 3, padding="same", strides=2, groups=2, data_format="channels_first")
    x = RNG.normal(size=(2, 4, *(6,) * rank)).astype(np.float32)
    y = _np(layer(x))
    _, cfg, p = to_spec(layer)
    pads = conv_pads("same", x.shape[2:], cfg["kernel_size"], cfg["strides"], cfg["dilations"])
    ref = onnx_ops.run_function(
        "YatConv",
        [x, p["weight"], p["bias"], p["alpha"], np.array([1e-5], np.float32)],
        strides=cfg["strides"],
        dilations=cfg["dilations"],
        group=2,
        pads=onnx_pads(pads),
    )
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_causal_conv1d_is_causal_and_shape():
    layer = YatConv1D(3, 3, padding="causal", dilation_rate=2)
    x = RNG.normal(size=(1, 10, 2)).astype(np.float32)
    y = _np(layer(x))
    assert y.shape == (1, 10, 3)
    x2 = x.copy()
    x2[:, 6:] += 1.0  # the future must not change the past
    np.testing.assert_allclose(_np(layer(x2))[:, :6], y[:, :6], rtol=1e-6)


@pytest.mark.parametrize(
    "layer,shape",
    [
        (YatNMN(3), (2, 5, 4)),
        (YatConv2D(3, 3, strides=2, padding="same"), (2, 7, 7, 2)),
        (YatConv2D(4, 2, padding=((1, 0), (0, 2)), padding_mode="reflect", groups=2), (1, 5, 6, 2)),
        (YatConvTranspose2D(3, 3, strides=2, padding="same"), (2, 4, 4, 2)),
        (YatConvTranspose1D(4, 4, strides=3, groups=2, output_padding=1), (1, 5, 2)),
        (YatConvTranspose2D(2, 3, strides=2, data_format="channels_first"), (1, 3, 4, 4)),
        (MultiHeadYatAttention(8, 2), (2, 5, 8)),
    ],
)
def test_compute_output_shape_matches_call(layer, shape):
    x = RNG.normal(size=shape).astype(np.float32)
    y = layer(x)
    assert tuple(layer.compute_output_shape(shape)) == tuple(y.shape)


def test_get_config_roundtrip_keeps_output():
    layers = [
        YatNMN(4, constant_alpha=True, spherical=True),
        YatConv1D(3, 2, padding="causal", padding_mode="zeros", constant_bias=0.5),
        YatConvTranspose2D(4, 3, strides=2, groups=2, padding=((1, 0), (0, 1))),
        MultiHeadYatAttention(8, 2, normalization="l1", causal=True),
        RotaryYatAttention(8, 2, max_seq_len=16, rope_style="half"),
    ]
    shapes = [(2, 3), (1, 6, 2), (1, 3, 3, 2), (2, 4, 8), (2, 4, 8)]
    for layer, shape in zip(layers, shapes):
        x = RNG.normal(size=shape).astype(np.float32)
        y = _np(layer(x))
        clone = type(layer).from_config(layer.get_config())
        clone(x)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(_np(clone(x)), y, rtol=1e-6, err_msg=type(layer).__name__)


def test_keras_file_save_and_load(tmp_path):
    inp = keras.Input((6, 6, 3))
    h = YatConv2D(4, 3, padding="same", groups=1)(inp)
    h = YatConvTranspose2D(2, 2, strides=2)(h)
    h = keras.layers.Reshape((12 * 12, 2))(h)
    h = MultiHeadYatAttention(4, 2, use_performer=True, num_features=8, seed=1)(h)
    out = YatNMN(3, learnable_epsilon=True)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inp, out)
    x = RNG.normal(size=(2, 6, 6, 3)).astype(np.float32)
    y = _np(model(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded(x)), y, rtol=1e-5, atol=1e-6)


def test_embed_lookup_attend_and_save(tmp_path):
    keras.utils.set_random_seed(0)
    embed = YatEmbed(10, 4, constant_alpha=True)
    ids = np.array([[1, 2, 9]])
    e = _np(embed(ids))
    np.testing.assert_array_equal(e, _np(embed.embedding)[ids])
    q = RNG.normal(size=(2, 4)).astype(np.float32)
    ref = onnx_ops.run_function(
        "YatEmbedAttend", [q, _np(embed.embedding), np.array([np.sqrt(2)], np.float32), np.array([1e-5], np.float32)]
    )
    got = _np(embed.attend(q))  # within 1e-5 of the output scale, as the conformance contract says
    assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref))
    model = keras.Sequential([keras.Input((3,), dtype="int32"), embed, YatNMN(2)])
    y = _np(model(ids))
    model.save(tmp_path / "e.keras")
    np.testing.assert_allclose(_np(keras.saving.load_model(tmp_path / "e.keras")(ids)), y, rtol=1e-6)


def test_fit_lowers_loss_and_lazy_freezes_kernel():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), YatNMN(8, lazy=True), YatNMN(1)])
    frozen = model.layers[0]
    trainable = {id(v) for v in model.trainable_weights}
    assert id(frozen.kernel) not in trainable and id(frozen.alpha) in trainable
    x = RNG.normal(size=(64, 4)).astype(np.float32)
    t = (x[:, :1] ** 2).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    kernel = _np(frozen.kernel).copy()
    before = model.evaluate(x, t, verbose=0)
    model.fit(x, t, epochs=3, batch_size=64, verbose=0)
    assert model.evaluate(x, t, verbose=0) < before
    np.testing.assert_array_equal(_np(frozen.kernel), kernel)


def test_float16_input_computes_in_float32():
    layer = YatNMN(3)
    x = RNG.normal(size=(2, 4)).astype(np.float16)
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    _, _, p = to_spec(layer)
    ref = onnx_ops.run_function(
        "YatDense", [x.astype(np.float32), p["weight"], p["bias"], p["alpha"], np.array([1e-5], np.float32)]
    )
    np.testing.assert_allclose(_np(y), ref, rtol=1e-5)


def test_squashers():
    x = np.array([[0.5, 1.0, 2.0]], np.float32)
    np.testing.assert_allclose(_np(softermax(x, n=2)), x**2 / (1e-12 + (x**2).sum(-1, keepdims=True)), rtol=1e-6)
    np.testing.assert_allclose(_np(softer_sigmoid(x)), x / (1 + x), rtol=1e-6)
    np.testing.assert_allclose(_np(soft_tanh(x, n=2)), (x**2 - 1) / (x**2 + 1), rtol=1e-6)
    with pytest.raises(ValueError, match="n must be > 0"):
        softermax(x, n=0)


def test_bad_input_names_layer_and_shapes():
    layer = YatNMN(3, name="dense_a")
    layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"YatNMN 'dense_a'.*\(\.\.\., 4\).*\(2, 5\)"):
        layer(np.ones((2, 5), np.float32))
    conv = YatConv2D(2, 3, name="c")
    conv(np.ones((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"YatConv2D 'c'.*rank-4.*\(1, 5, 5\)"):
        conv(np.ones((1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"YatConv2D 'c'.*\(1, 5, 5, 4\)"):
        conv(np.ones((1, 5, 5, 4), np.float32))
    attn = MultiHeadYatAttention(8, 2, name="a")
    attn(np.ones((1, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention 'a'.*query.*\(1, 3, 6\)"):
        attn(np.ones((1, 3, 6), np.float32))
    embed = YatEmbed(5, 4, name="e")
    with pytest.raises(ValueError, match=r"YatEmbed 'e'.*integer"):
        embed(np.ones((2,), np.float32))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: YatNMN(4, epsilon=0.0), "epsilon must be > 0"),
        (lambda: YatNMN(0), "units must be a positive int"),
        (lambda: YatNMN(4, features=5), "disagree"),
        (lambda: YatConv2D(4, 3, groups=3), "divisible by groups"),
        (lambda: YatConv2D(4, 3, padding="causal"), "only defined for 1-D"),
        (lambda: YatConv1D(4, 3, padding_mode="mirror"), "padding_mode"),
        (lambda: YatConv2D(4, 3, data_format="NHWC"), "data_format"),
        (lambda: YatConvTranspose1D(4, 3, padding="causal"), "causal"),
        (lambda: YatConvTranspose1D(4, 3, strides=2, output_padding=2), "output_padding"),
        (lambda: MultiHeadYatAttention(10, 3), "divisible by num_heads"),
        (lambda: MultiHeadYatAttention(8, 2, normalization="max"), "normalization"),
        (lambda: RotaryYatAttention(6, 2), "even"),
        (lambda: RotaryYatAttention(8, 2, use_performer=True), "use_performer"),
        (lambda: YatEmbed(5, 4, epsilon=-1.0), "epsilon"),
    ],
)
def test_invalid_options_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()
