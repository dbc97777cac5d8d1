"""TensorFlow host idioms for nmn.tf: tf.Module variables built on first call, tf.function, SavedModel,
GradientTape training, channels_first, errors."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import onnx_ops
from nmn.core.conv import conv_pads, onnx_pads, transpose_geometry
from nmn.tf import (
    MultiHeadYatAttention,
    RotaryYatAttention,
    YatConv1D,
    YatConv2D,
    YatConvTranspose2D,
    YatConvTranspose3D,
    YatEmbed,
    YatNMN,
    softermax,
)
from nmn.tf.spec import from_spec, to_spec

RNG = np.random.default_rng(0)
EPS = np.array([1e-5], np.float32)


def test_readme_example():
    layer = YatNMN(features=64)
    x = tf.zeros((32, 128))
    y = layer(x)
    assert tuple(y.shape) == (32, 64)
    from nmn.tf import MultiHeadYatAttention as M, YatConv2D as C, YatEmbed as E, soft_tanh, softer_sigmoid  # noqa


def test_variables_built_on_first_call_inside_tf_function():
    layer = YatNMN(3, learnable_epsilon=True, name="d")
    fn = tf.function(lambda x: layer(x))
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    y = fn(x).numpy()
    assert sorted(v.name for v in layer.trainable_variables) == [
        "d/alpha:0",
        "d/bias:0",
        "d/epsilon_param:0",
        "d/kernel:0",
    ]
    _, _, p = to_spec(layer)
    eps = np.log1p(np.exp(p["epsilon_param"].astype(np.float64))).astype(np.float32)
    ref = onnx_ops.run_function("YatDense", [x, p["weight"], p["bias"], p["alpha"], eps])
    np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_conv_channels_first_and_transpose_match_onnx():
    conv = YatConv2D(4, 3, strides=2, padding="same", groups=2, data_format="channels_first")
    x = RNG.normal(size=(2, 4, 7, 7)).astype(np.float32)
    y = conv(x).numpy()
    _, cfg, p = to_spec(conv)
    pads = onnx_pads(conv_pads("same", (7, 7), (3, 3), (2, 2), (1, 1)))
    ref = onnx_ops.run_function(
        "YatConv", [x, p["weight"], p["bias"], p["alpha"], EPS], strides=[2, 2], dilations=[1, 1], group=2, pads=pads
    )
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    convt = YatConvTranspose3D(2, 2, strides=2, padding="same", data_format="channels_first", use_alpha=False)
    x = RNG.normal(size=(1, 3, 2, 3, 2)).astype(np.float32)
    y = convt(x).numpy()
    _, cfg, p = to_spec(convt)
    pairs, outpad = transpose_geometry("same", (2, 2, 2), (2, 2, 2), (1, 1, 1))
    ref = onnx_ops.run_function(
        "YatConvTranspose",
        [x, p["weight"], p["bias"], np.ones(1, np.float32), EPS],
        strides=[2, 2, 2],
        dilations=[1, 1, 1],
        pads=onnx_pads(pairs),
        output_padding=outpad,
    )
    assert y.shape == ref.shape == (1, 2, 4, 6, 4)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_saved_model_roundtrip(tmp_path):
    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.conv = YatConv1D(4, 3, padding="causal")
            self.attn = MultiHeadYatAttention(4, 2, use_performer=True, num_features=8, seed=0)
            self.head = YatNMN(2, constant_alpha=True)
            self.embed = YatEmbed(7, 4)

        @tf.function(input_signature=[tf.TensorSpec([None, 6, 3], tf.float32)])
        def __call__(self, x):
            h = self.attn(self.conv(x))
            return self.head(tf.reduce_mean(h, axis=1)), self.embed.attend(h)

    net = Net()
    x = RNG.normal(size=(2, 6, 3)).astype(np.float32)
    y1, y2 = (t.numpy() for t in net(x))
    tf.saved_model.save(net, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    z1, z2 = (t.numpy() for t in loaded(tf.constant(x)))
    np.testing.assert_allclose(z1, y1, rtol=1e-6)
    np.testing.assert_allclose(z2, y2, rtol=1e-6)
    np.testing.assert_array_equal(loaded.attn.proj.numpy(), net.attn.proj.numpy())  # the buffer travels


def test_lazy_kernel_not_trainable():
    layer = YatNMN(3, lazy=True)
    layer(tf.ones((1, 2)))
    assert layer.kernel.trainable is False and layer.alpha.trainable


def test_spec_roundtrip_is_bitwise():
    layer = YatConvTranspose2D(4, 3, strides=2, groups=2, learnable_epsilon=True)
    layer(tf.ones((1, 3, 3, 2)))
    kind, cfg, params = to_spec(layer)
    again = to_spec(from_spec(kind, cfg, params))
    assert again[1] == cfg
    for k, v in params.items():
        np.testing.assert_array_equal(again[2][k], v)


def test_squasher_checks_n():
    with pytest.raises(ValueError, match="n must be > 0"):
        softermax(tf.ones((2,)), n=-1.0)


def test_bad_input_names_layer_and_shapes():
    layer = YatNMN(3, name="dense_a")
    layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"YatNMN 'dense_a'.*\(\.\.\., 4\).*\(2, 5\)"):
        layer(np.ones((2, 5), np.float32))
    conv = YatConv2D(2, 3, name="c")
    with pytest.raises(ValueError, match=r"YatConv2D 'c'.*rank-4.*\(1, 5, 5\)"):
        conv(np.ones((1, 5, 5), np.float32))
    conv(np.ones((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"YatConv2D 'c'.*\(1, 5, 5, 4\)"):
        conv(np.ones((1, 5, 5, 4), np.float32))
    attn = MultiHeadYatAttention(8, 2, name="a")
    attn(np.ones((1, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention 'a'.*key.*\(1, 3, 6\)"):
        attn(np.ones((1, 3, 8), np.float32), np.ones((1, 3, 6), np.float32))
    with pytest.raises(ValueError, match=r"YatEmbed.*integer"):
        YatEmbed(5, 4)(np.ones((2,), np.float32))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: YatNMN(4, epsilon=0.0), "epsilon must be > 0"),
        (lambda: YatNMN(-1), "features must be a positive int"),
        (lambda: YatConv2D(4, 3, groups=3), "divisible by groups"),
        (lambda: YatConv2D(4, 3, padding="causal"), "only defined for 1-D"),
        (lambda: YatConv1D(4, 3, padding_mode="mirror"), "padding_mode"),
        (lambda: YatConvTranspose2D(4, 3, padding="bogus"), "padding"),
        (lambda: MultiHeadYatAttention(10, 3), "divisible by num_heads"),
        (lambda: MultiHeadYatAttention(8, 2, dropout=1.5), "dropout"),
        (lambda: RotaryYatAttention(6, 2), "even"),
        (lambda: YatEmbed(0, 4), "num_embeddings"),
    ],
)
def test_invalid_options_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()
