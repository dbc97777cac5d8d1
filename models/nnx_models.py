"""The reference architectures in Flax NNX (channels-last data, ``N *S C``).

>>> from models.nnx_models import build, count_parameters
>>> model, inputs = build("yat_mlp", seed=0)
>>> count_parameters(model)
235148
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

import nmn.nnx as nx
from models import DIM, HEADS, SEQ, VOCAB  # noqa: F401
from models import example_inputs as shared_example_inputs


class YatMLP(nnx.Module):
    """The seed post's model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10)."""

    def __init__(self, rngs: nnx.Rngs):
        self.fc1 = nx.YatNMN(28 * 28, 256, rngs=rngs)
        self.fc2 = nx.YatNMN(256, 128, rngs=rngs)
        self.out = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(self.fc2(self.fc1(x.reshape(x.shape[0], -1))))


class YatCNN(nnx.Module):
    """YatConv2D -> max_pool -> grouped YatConv2D -> avg_pool -> flatten -> YatNMN head -> Linear."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nx.YatConv2D(3, 8, 3, padding="SAME", rngs=rngs)
        self.conv2 = nx.YatConv2D(8, 8, 3, padding="SAME", feature_group_count=2, rngs=rngs)
        self.head = nx.YatNMN(8 * 2 * 2, 16, rngs=rngs)
        self.out = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        h = nnx.max_pool(self.conv1(x), (2, 2), strides=(2, 2))
        h = nnx.avg_pool(self.conv2(h), (2, 2), strides=(2, 2))
        return self.out(self.head(h.reshape(h.shape[0], -1)))


class YatAutoencoder(nnx.Module):
    """YatConv2D encoder (8x8 -> 2x2), YatConvTranspose2D decoder (2x2 -> 8x8)."""

    def __init__(self, rngs: nnx.Rngs):
        self.enc1 = nx.YatConv2D(1, 4, 3, padding="SAME", rngs=rngs)
        self.enc2 = nx.YatConv2D(4, 8, 2, strides=2, padding="VALID", rngs=rngs)
        self.enc3 = nx.YatConv2D(8, 8, 2, strides=2, padding="VALID", rngs=rngs)
        self.dec1 = nx.YatConvTranspose2D(8, 4, 2, strides=2, padding="VALID", rngs=rngs)
        self.dec2 = nx.YatConvTranspose2D(4, 1, 2, strides=2, padding="VALID", rngs=rngs)

    def __call__(self, x):
        return self.dec2(self.dec1(self.enc3(self.enc2(self.enc1(x)))))


class YatSeq(nnx.Module):
    """1-D: YatConv1D (same) -> strided YatConv1D -> YatConvTranspose1D back to the input length."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nx.YatConv1D(3, 6, 3, padding="SAME", rngs=rngs)
        self.conv2 = nx.YatConv1D(6, 6, 2, strides=2, padding="VALID", rngs=rngs)
        self.up = nx.YatConvTranspose1D(6, 4, 2, strides=2, padding="VALID", rngs=rngs)

    def __call__(self, x):
        return self.up(self.conv2(self.conv1(x)))


class YatVolume(nnx.Module):
    """3-D: strided YatConv3D -> YatConvTranspose3D back to the input size."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nx.YatConv3D(2, 4, 2, strides=2, padding="VALID", rngs=rngs)
        self.up = nx.YatConvTranspose3D(4, 2, 2, strides=2, padding="VALID", rngs=rngs)

    def __call__(self, x):
        return self.up(self.conv(x))


class YatTransformer(nnx.Module):
    """YatEmbed -> [MHA + LayerNorm] -> [rotary attention + LayerNorm] -> YatNMN feed-forward -> embed.attend."""

    def __init__(self, rngs: nnx.Rngs, use_performer: bool = False):
        self.embed = nx.YatEmbed(VOCAB, DIM, rngs=rngs)
        extra = {"use_performer": True, "num_features": 8} if use_performer else {}
        self.attn = nx.MultiHeadYatAttention(HEADS, DIM, rngs=rngs, **extra)
        self.norm1 = nnx.LayerNorm(DIM, rngs=rngs)
        self.rot = nx.RotaryYatAttention(HEADS, DIM, max_seq_len=16, rngs=rngs)
        self.norm2 = nnx.LayerNorm(DIM, rngs=rngs)
        self.ff = nx.YatNMN(DIM, DIM, rngs=rngs)

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
    "yat_performer": lambda rngs: YatTransformer(rngs, use_performer=True),
}


def example_inputs(name: str, seed: int = 0) -> list[np.ndarray]:
    return shared_example_inputs(name, seed, channels_last=True, ids_dtype="int32")


def build(name: str, seed: int = 0):
    """``(model in eval mode, [numpy example inputs])`` with weights drawn from ``nnx.Rngs(seed)``."""
    model = _CLASSES[name](nnx.Rngs(seed))
    model.eval()
    return model, example_inputs(name, seed)


def count_parameters(model) -> int:
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
