"""The reference architectures in PyTorch (channels-first data).

>>> from models.torch_models import build, count_parameters
>>> model, inputs = build("yat_mlp", seed=0)
>>> count_parameters(model)
235148
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import nmn.torch as nt
from models import DIM, HEADS, SEQ, VOCAB  # noqa: F401
from models import example_inputs as shared_example_inputs


class YatMLP(nn.Module):
    """The seed post's model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10)."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nt.YatNMN(28 * 28, 256)
        self.fc2 = nt.YatNMN(256, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        return self.out(self.fc2(self.fc1(self.flatten(x))))


class YatCNN(nn.Module):
    """YatConv2D -> MaxPool -> grouped YatConv2D -> AvgPool -> Flatten -> YatNMN head -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nt.YatConv2D(3, 8, 3, padding="same")
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nt.YatConv2D(8, 8, 3, padding="same", groups=2)
        self.pool2 = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.head = nt.YatNMN(8 * 2 * 2, 16)
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        h = self.pool1(self.conv1(x))
        h = self.pool2(self.conv2(h))
        return self.out(self.head(self.flatten(h)))


class YatAutoencoder(nn.Module):
    """YatConv2D encoder (8x8 -> 2x2), YatConvTranspose2D decoder (2x2 -> 8x8)."""

    def __init__(self):
        super().__init__()
        self.enc1 = nt.YatConv2D(1, 4, 3, padding="same")
        self.enc2 = nt.YatConv2D(4, 8, 2, stride=2)
        self.enc3 = nt.YatConv2D(8, 8, 2, stride=2)
        self.dec1 = nt.YatConvTranspose2D(8, 4, 2, stride=2)
        self.dec2 = nt.YatConvTranspose2D(4, 1, 2, stride=2)

    def forward(self, x):
        return self.dec2(self.dec1(self.enc3(self.enc2(self.enc1(x)))))


class YatSeq(nn.Module):
    """1-D: YatConv1D (same) -> strided YatConv1D -> YatConvTranspose1D back to the input length."""

    def __init__(self):
        super().__init__()
        self.conv1 = nt.YatConv1D(3, 6, 3, padding="same")
        self.conv2 = nt.YatConv1D(6, 6, 2, stride=2)
        self.up = nt.YatConvTranspose1D(6, 4, 2, stride=2)

    def forward(self, x):
        return self.up(self.conv2(self.conv1(x)))


class YatVolume(nn.Module):
    """3-D: strided YatConv3D -> YatConvTranspose3D back to the input size."""

    def __init__(self):
        super().__init__()
        self.conv = nt.YatConv3D(2, 4, 2, stride=2)
        self.up = nt.YatConvTranspose3D(4, 2, 2, stride=2)

    def forward(self, x):
        return self.up(self.conv(x))


class YatTransformer(nn.Module):
    """YatEmbed -> [MHA + LayerNorm] -> [rotary attention + LayerNorm] -> YatNMN feed-forward -> embed.attend."""

    def __init__(self, use_performer: bool = False):
        super().__init__()
        self.embed = nt.YatEmbed(VOCAB, DIM)
        extra = {"use_performer": True, "num_features": 8} if use_performer else {}
        self.attn = nt.MultiHeadYatAttention(DIM, HEADS, **extra)
        self.norm1 = nn.LayerNorm(DIM)
        self.rot = nt.RotaryYatAttention(DIM, HEADS, max_seq_len=16)
        self.norm2 = nn.LayerNorm(DIM)
        self.ff = nt.YatNMN(DIM, DIM)

    def forward(self, ids):
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
    return shared_example_inputs(name, seed, channels_last=False)


def build(name: str, seed: int = 0):
    """``(model in eval mode, [numpy example inputs])`` with weights drawn from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    model = _CLASSES[name]().eval()
    return model, example_inputs(name, seed)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
