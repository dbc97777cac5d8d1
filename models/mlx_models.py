"""The reference architectures in MLX (channels-last data, ``N *S C``).

>>> from models.mlx_models import build, count_parameters
>>> model, inputs = build("yat_mlp", seed=0)
>>> count_parameters(model)
235148
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten

import nmn.mlx as nm
from models import DIM, HEADS, SEQ, VOCAB  # noqa: F401
from models import example_inputs as shared_example_inputs


class YatMLP(nn.Module):
    """The seed post's model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nm.YatNMN(256, in_features=28 * 28)
        self.fc2 = nm.YatNMN(128, in_features=256)
        self.out = nn.Linear(128, 10)

    def __call__(self, x):
        return self.out(self.fc2(self.fc1(x.flatten(1))))


class YatCNN(nn.Module):
    """YatConv2D -> MaxPool -> grouped YatConv2D -> AvgPool -> Flatten -> YatNMN head -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nm.YatConv2D(8, 3, in_channels=3, padding="same")
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nm.YatConv2D(8, 3, in_channels=8, padding="same", groups=2)
        self.pool2 = nn.AvgPool2d(2)
        self.head = nm.YatNMN(16, in_features=8 * 2 * 2)
        self.out = nn.Linear(16, 10)

    def __call__(self, x):
        h = self.pool1(self.conv1(x))
        h = self.pool2(self.conv2(h))
        return self.out(self.head(h.flatten(1)))


class YatAutoencoder(nn.Module):
    """YatConv2D encoder (8x8 -> 2x2), YatConvTranspose2D decoder (2x2 -> 8x8)."""

    def __init__(self):
        super().__init__()
        self.enc1 = nm.YatConv2D(4, 3, in_channels=1, padding="same")
        self.enc2 = nm.YatConv2D(8, 2, in_channels=4, strides=2)
        self.enc3 = nm.YatConv2D(8, 2, in_channels=8, strides=2)
        self.dec1 = nm.YatConvTranspose2D(4, 2, in_channels=8, strides=2)
        self.dec2 = nm.YatConvTranspose2D(1, 2, in_channels=4, strides=2)

    def __call__(self, x):
        return self.dec2(self.dec1(self.enc3(self.enc2(self.enc1(x)))))


class YatSeq(nn.Module):
    """1-D: YatConv1D (same) -> strided YatConv1D -> YatConvTranspose1D back to the input length."""

    def __init__(self):
        super().__init__()
        self.conv1 = nm.YatConv1D(6, 3, in_channels=3, padding="same")
        self.conv2 = nm.YatConv1D(6, 2, in_channels=6, strides=2)
        self.up = nm.YatConvTranspose1D(4, 2, in_channels=6, strides=2)

    def __call__(self, x):
        return self.up(self.conv2(self.conv1(x)))


class YatVolume(nn.Module):
    """3-D: strided YatConv3D -> YatConvTranspose3D back to the input size."""

    def __init__(self):
        super().__init__()
        self.conv = nm.YatConv3D(4, 2, in_channels=2, strides=2)
        self.up = nm.YatConvTranspose3D(2, 2, in_channels=4, strides=2)

    def __call__(self, x):
        return self.up(self.conv(x))


class YatTransformer(nn.Module):
    """YatEmbed -> [MHA + LayerNorm] -> [rotary attention + LayerNorm] -> YatNMN feed-forward -> embed.attend."""

    def __init__(self, use_performer: bool = False):
        super().__init__()
        self.embed = nm.YatEmbed(VOCAB, DIM)
        extra = {"use_performer": True, "num_features": 8} if use_performer else {}
        self.attn = nm.MultiHeadYatAttention(DIM, HEADS, **extra)
        self.norm1 = nn.LayerNorm(DIM)
        self.rot = nm.RotaryYatAttention(DIM, HEADS, max_seq_len=16)
        self.norm2 = nn.LayerNorm(DIM)
        self.ff = nm.YatNMN(DIM, in_features=DIM)

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
    "yat_performer": lambda: YatTransformer(use_performer=True),
}


def example_inputs(name: str, seed: int = 0) -> list[np.ndarray]:
    return shared_example_inputs(name, seed, channels_last=True)


def build(name: str, seed: int = 0):
    """``(model in eval mode, [numpy example inputs])`` with weights drawn after ``mx.random.seed(seed)``."""
    mx.random.seed(seed)
    model = _CLASSES[name]()
    model.eval()
    mx.eval(model.parameters())
    return model, example_inputs(name, seed)


def count_parameters(model) -> int:
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
