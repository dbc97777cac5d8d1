"""The reference architectures in Flax Linen (channels-last data, ``N *S C``).

Linen modules hold no weights, so :func:`build` returns a :class:`LinenModel` pair ``(module, variables)``
(Linen export needs ``variables=``; ``nmn.interchange.predict`` accepts the pair as it is).

    >>> from models.linen_models import build, count_parameters
    >>> model, inputs = build("yat_mlp", seed=0)
    >>> count_parameters(model)
    235148
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import nmn.linen as nl
from models import DIM, HEADS, SEQ, VOCAB  # noqa: F401
from models import example_inputs as shared_example_inputs


class LinenModel(NamedTuple):
    """A Linen module with its variables (``{"params": ..., ...}``)."""

    module: nn.Module
    variables: Any

    def __call__(self, *inputs):
        return self.module.apply(self.variables, *inputs)


class YatMLP(nn.Module):
    """The seed post's model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Dense(10)."""

    @nn.compact
    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        h = nl.YatNMN(256, name="fc1")(h)
        h = nl.YatNMN(128, name="fc2")(h)
        return nn.Dense(10, name="out")(h)


class YatCNN(nn.Module):
    """YatConv2D -> max_pool -> grouped YatConv2D -> avg_pool -> flatten -> YatNMN head -> Dense."""

    @nn.compact
    def __call__(self, x):
        h = nn.max_pool(nl.YatConv2D(8, 3, padding="SAME", name="conv1")(x), (2, 2), strides=(2, 2))
        h = nl.YatConv2D(8, 3, padding="SAME", feature_group_count=2, name="conv2")(h)
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = nl.YatNMN(16, name="head")(h.reshape(h.shape[0], -1))
        return nn.Dense(10, name="out")(h)


class YatAutoencoder(nn.Module):
    """YatConv2D encoder (8x8 -> 2x2), YatConvTranspose2D decoder (2x2 -> 8x8)."""

    @nn.compact
    def __call__(self, x):
        h = nl.YatConv2D(4, 3, padding="SAME", name="enc1")(x)
        h = nl.YatConv2D(8, 2, strides=2, padding="VALID", name="enc2")(h)
        h = nl.YatConv2D(8, 2, strides=2, padding="VALID", name="enc3")(h)
        h = nl.YatConvTranspose2D(4, 2, strides=2, padding="VALID", name="dec1")(h)
        return nl.YatConvTranspose2D(1, 2, strides=2, padding="VALID", name="dec2")(h)


class YatSeq(nn.Module):
    """1-D: YatConv1D (same) -> strided YatConv1D -> YatConvTranspose1D back to the input length."""

    @nn.compact
    def __call__(self, x):
        h = nl.YatConv1D(6, 3, padding="SAME", name="conv1")(x)
        h = nl.YatConv1D(6, 2, strides=2, padding="VALID", name="conv2")(h)
        return nl.YatConvTranspose1D(4, 2, strides=2, padding="VALID", name="up")(h)


class YatVolume(nn.Module):
    """3-D: strided YatConv3D -> YatConvTranspose3D back to the input size."""

    @nn.compact
    def __call__(self, x):
        h = nl.YatConv3D(4, 2, strides=2, padding="VALID", name="conv")(x)
        return nl.YatConvTranspose3D(2, 2, strides=2, padding="VALID", name="up")(h)


class YatTransformer(nn.Module):
    """YatEmbed -> [MHA + LayerNorm] -> [rotary attention + LayerNorm] -> YatNMN feed-forward -> embed.attend."""

    use_performer: bool = False

    def setup(self):
        self.embed = nl.YatEmbed(VOCAB, DIM)
        extra = {"use_performer": True, "num_features": 8} if self.use_performer else {}
        self.attn = nl.MultiHeadYatAttention(HEADS, **extra)
        self.norm1 = nn.LayerNorm()
        self.rot = nl.RotaryYatAttention(HEADS, max_seq_len=16)
        self.norm2 = nn.LayerNorm()
        self.ff = nl.YatNMN(DIM)

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
    return shared_example_inputs(name, seed, channels_last=True, ids_dtype="int32")


def build(name: str, seed: int = 0):
    """``(LinenModel(module, variables), [numpy example inputs])``, variables from ``init(jax.random.key(seed))``."""
    module = _CLASSES[name]()
    inputs = example_inputs(name, seed)
    variables = module.init(jax.random.key(seed), *[jnp.asarray(a) for a in inputs])
    return LinenModel(module, variables), inputs


def count_parameters(model) -> int:
    params = model.variables["params"] if isinstance(model, LinenModel) else model["params"]
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
