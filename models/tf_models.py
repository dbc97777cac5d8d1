"""The reference architectures as TensorFlow ``tf.Module`` s of ``nmn.tf`` layers (channels-last data).

TensorFlow has no standard layer classes outside Keras, so the two standard pieces the architectures need - a
dense layer and a layer normalisation - are small ``tf.Module`` s here, written with plain TF ops.

    >>> from models.tf_models import build, count_parameters
    >>> model, inputs = build("yat_mlp", seed=0)
    >>> count_parameters(model)
    235148
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import nmn.tf as nt
from models import DIM, HEADS, SEQ, VOCAB  # noqa: F401
from models import example_inputs as shared_example_inputs


class Dense(tf.Module):
    """``x @ kernel + bias`` with ``kernel (in, out)`` (glorot-uniform, seeded) and a zero bias."""

    def __init__(self, in_features: int, out_features: int, *, seed: int = 0, name=None):
        super().__init__(name=name)
        limit = float(np.sqrt(6.0 / (in_features + out_features)))
        init = tf.random.stateless_uniform((in_features, out_features), (seed, 17), -limit, limit)
        self.kernel = tf.Variable(init, name="kernel")
        self.bias = tf.Variable(tf.zeros((out_features,)), name="bias")

    def __call__(self, x):
        return tf.matmul(x, self.kernel) + self.bias


class LayerNorm(tf.Module):
    """Layer normalisation over the last axis (``epsilon`` 1e-5), scale and offset."""

    def __init__(self, features: int, *, epsilon: float = 1e-5, name=None):
        super().__init__(name=name)
        self.epsilon = epsilon
        self.scale = tf.Variable(tf.ones((features,)), name="scale")
        self.offset = tf.Variable(tf.zeros((features,)), name="offset")

    def __call__(self, x):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, self.offset, self.scale, self.epsilon)


def _flatten(x):
    return tf.reshape(x, (-1, int(np.prod(x.shape[1:]))))  # static feature size: the batch stays symbolic


class YatMLP(tf.Module):
    """The seed post's model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Dense(10)."""

    def __init__(self, seed: int = 0):
        super().__init__(name="yat_mlp")
        self.fc1 = nt.YatNMN(256, seed=seed, name="fc1")
        self.fc2 = nt.YatNMN(128, seed=seed + 1, name="fc2")
        self.out = Dense(128, 10, seed=seed + 2, name="out")

    def __call__(self, x):
        return self.out(self.fc2(self.fc1(_flatten(x))))


class YatCNN(tf.Module):
    """YatConv2D -> max_pool -> grouped YatConv2D -> avg_pool -> flatten -> YatNMN head -> Dense."""

    def __init__(self, seed: int = 0):
        super().__init__(name="yat_cnn")
        self.conv1 = nt.YatConv2D(8, 3, padding="same", seed=seed, name="conv1")
        self.conv2 = nt.YatConv2D(8, 3, padding="same", groups=2, seed=seed + 1, name="conv2")
        self.head = nt.YatNMN(16, seed=seed + 2, name="head")
        self.out = Dense(16, 10, seed=seed + 3, name="out")

    def __call__(self, x):
        h = tf.nn.max_pool2d(self.conv1(x), 2, 2, "VALID")
        h = tf.nn.avg_pool2d(self.conv2(h), 2, 2, "VALID")
        return self.out(self.head(_flatten(h)))


class YatAutoencoder(tf.Module):
    """YatConv2D encoder (8x8 -> 2x2), YatConvTranspose2D decoder (2x2 -> 8x8)."""

    def __init__(self, seed: int = 0):
        super().__init__(name="yat_autoencoder")
        self.enc1 = nt.YatConv2D(4, 3, padding="same", seed=seed, name="enc1")
        self.enc2 = nt.YatConv2D(8, 2, strides=2, seed=seed + 1, name="enc2")
        self.enc3 = nt.YatConv2D(8, 2, strides=2, seed=seed + 2, name="enc3")
        self.dec1 = nt.YatConvTranspose2D(4, 2, strides=2, seed=seed + 3, name="dec1")
        self.dec2 = nt.YatConvTranspose2D(1, 2, strides=2, seed=seed + 4, name="dec2")

    def __call__(self, x):
        return self.dec2(self.dec1(self.enc3(self.enc2(self.enc1(x)))))


class YatSeq(tf.Module):
    """1-D: YatConv1D (same) -> strided YatConv1D -> YatConvTranspose1D back to the input length."""

    def __init__(self, seed: int = 0):
        super().__init__(name="yat_seq")
        self.conv1 = nt.YatConv1D(6, 3, padding="same", seed=seed, name="conv1")
        self.conv2 = nt.YatConv1D(6, 2, strides=2, seed=seed + 1, name="conv2")
        self.up = nt.YatConvTranspose1D(4, 2, strides=2, seed=seed + 2, name="up")

    def __call__(self, x):
        return self.up(self.conv2(self.conv1(x)))


class YatVolume(tf.Module):
    """3-D: strided YatConv3D -> YatConvTranspose3D back to the input size."""

    def __init__(self, seed: int = 0):
        super().__init__(name="yat_volume")
        self.conv = nt.YatConv3D(4, 2, strides=2, seed=seed, name="conv")
        self.up = nt.YatConvTranspose3D(2, 2, strides=2, seed=seed + 1, name="up")

    def __call__(self, x):
        return self.up(self.conv(x))


class YatTransformer(tf.Module):
    """YatEmbed -> [MHA + LayerNorm] -> [rotary attention + LayerNorm] -> YatNMN feed-forward -> embed.attend."""

    def __init__(self, seed: int = 0, use_performer: bool = False):
        super().__init__(name="yat_performer" if use_performer else "yat_transformer")
        self.embed = nt.YatEmbed(VOCAB, DIM, seed=seed, name="embed")
        extra = {"use_performer": True, "num_features": 8} if use_performer else {}
        self.attn = nt.MultiHeadYatAttention(DIM, HEADS, seed=seed + 1, name="attn", **extra)
        self.norm1 = LayerNorm(DIM, name="norm1")
        self.rot = nt.RotaryYatAttention(DIM, HEADS, max_seq_len=16, seed=seed + 2, name="rot")
        self.norm2 = LayerNorm(DIM, name="norm2")
        self.ff = nt.YatNMN(DIM, seed=seed + 3, name="ff")

    def __call__(self, ids):
        h = self.embed(ids)
        h = self.norm1(h + self.attn(h))
        h = self.norm2(h + self.rot(h))
        h = h + self.ff(h)
        return self.embed.attend(h)


_CLASSES = {
    "yat_mlp": YatMLP,
    "yat_cnn": YatCNN,
    "yat_autoencoder": YatAutoencoder,
    "yat_seq": YatSeq,
    "yat_volume": YatVolume,
    "yat_transformer": YatTransformer,
    "yat_performer": lambda seed=0: YatTransformer(seed, use_performer=True),
}


def example_inputs(name: str, seed: int = 0) -> list[np.ndarray]:
    return shared_example_inputs(name, seed, channels_last=True, ids_dtype="int32")


def build(name: str, seed: int = 0):
    """``(tf.Module, [numpy example inputs])``; layers are seeded and built by one call on the example inputs."""
    model = _CLASSES[name](seed=seed)
    inputs = example_inputs(name, seed)
    model(*[tf.constant(a) for a in inputs])  # nmn.tf layers create their variables on the first call
    return model, inputs


def count_parameters(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
