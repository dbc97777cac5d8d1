"""The reference architectures in Keras 3 functional models (channels-last data), on any Keras backend.

>>> from models.keras_models import build, count_parameters
>>> model, inputs = build("yat_mlp", seed=0)
>>> count_parameters(model)
235148
"""

from __future__ import annotations

import keras
import numpy as np

import nmn.keras as nk
from models import DIM, HEADS, SEQ, VOCAB
from models import example_inputs as shared_example_inputs


def yat_mlp():
    """The seed post's model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Dense(10)."""
    x = keras.Input((28, 28), name="x")
    h = keras.layers.Flatten(name="flatten")(x)
    h = nk.YatNMN(256, name="fc1")(h)
    h = nk.YatNMN(128, name="fc2")(h)
    return keras.Model(x, keras.layers.Dense(10, name="out")(h), name="yat_mlp")


def yat_cnn():
    """YatConv2D -> MaxPooling -> grouped YatConv2D -> AveragePooling -> Flatten -> YatNMN head -> Dense."""
    x = keras.Input((8, 8, 3), name="x")
    h = nk.YatConv2D(8, 3, padding="same", name="conv1")(x)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = nk.YatConv2D(8, 3, padding="same", groups=2, name="conv2")(h)
    h = keras.layers.AveragePooling2D(2, name="pool2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = nk.YatNMN(16, name="head")(h)
    return keras.Model(x, keras.layers.Dense(10, name="out")(h), name="yat_cnn")


def yat_autoencoder():
    """YatConv2D encoder (8x8 -> 2x2), YatConvTranspose2D decoder (2x2 -> 8x8)."""
    x = keras.Input((8, 8, 1), name="x")
    h = nk.YatConv2D(4, 3, padding="same", name="enc1")(x)
    h = nk.YatConv2D(8, 2, strides=2, name="enc2")(h)
    h = nk.YatConv2D(8, 2, strides=2, name="enc3")(h)
    h = nk.YatConvTranspose2D(4, 2, strides=2, name="dec1")(h)
    return keras.Model(x, nk.YatConvTranspose2D(1, 2, strides=2, name="dec2")(h), name="yat_autoencoder")


def yat_seq():
    """1-D: YatConv1D (same) -> strided YatConv1D -> YatConvTranspose1D back to the input length."""
    x = keras.Input((8, 3), name="x")
    h = nk.YatConv1D(6, 3, padding="same", name="conv1")(x)
    h = nk.YatConv1D(6, 2, strides=2, name="conv2")(h)
    return keras.Model(x, nk.YatConvTranspose1D(4, 2, strides=2, name="up")(h), name="yat_seq")


def yat_volume():
    """3-D: strided YatConv3D -> YatConvTranspose3D back to the input size."""
    x = keras.Input((4, 4, 4, 2), name="x")
    h = nk.YatConv3D(4, 2, strides=2, name="conv")(x)
    return keras.Model(x, nk.YatConvTranspose3D(2, 2, strides=2, name="up")(h), name="yat_volume")


def yat_transformer(use_performer: bool = False, seed: int = 0):
    """YatEmbed -> [MHA + LayerNorm] -> [rotary attention + LayerNorm] -> YatNMN feed-forward -> embed.attend."""
    ids = keras.Input((SEQ,), dtype="int32", name="ids")
    embed = nk.YatEmbed(VOCAB, DIM, name="embed")
    extra = {"use_performer": True, "num_features": 8, "seed": seed} if use_performer else {}
    h = embed(ids)
    h = keras.layers.LayerNormalization(name="norm1")(
        keras.layers.Add(name="res1")([h, nk.MultiHeadYatAttention(DIM, HEADS, name="attn", **extra)(h)])
    )
    rot = nk.RotaryYatAttention(DIM, HEADS, max_seq_len=16, name="rot")
    h = keras.layers.LayerNormalization(name="norm2")(keras.layers.Add(name="res2")([h, rot(h)]))
    h = keras.layers.Add(name="res3")([h, nk.YatNMN(DIM, name="ff")(h)])
    name = "yat_performer" if use_performer else "yat_transformer"
    return keras.Model(ids, embed.attend(h), name=name)


_BUILDERS = {
    "yat_mlp": yat_mlp,
    "yat_cnn": yat_cnn,
    "yat_autoencoder": yat_autoencoder,
    "yat_seq": yat_seq,
    "yat_volume": yat_volume,
    "yat_transformer": yat_transformer,
    "yat_performer": lambda seed=0: yat_transformer(True, seed),
}


def example_inputs(name: str, seed: int = 0) -> list[np.ndarray]:
    return shared_example_inputs(name, seed, channels_last=True, ids_dtype="int32")


def build(name: str, seed: int = 0):
    """``(keras.Model, [numpy example inputs])``, weights drawn after ``keras.utils.set_random_seed(seed)``."""
    keras.utils.set_random_seed(seed)
    builder = _BUILDERS[name]
    model = builder(seed=seed) if name == "yat_performer" else builder()
    return model, example_inputs(name, seed)


def count_parameters(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
