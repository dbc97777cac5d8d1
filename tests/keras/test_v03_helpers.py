"""Keras specifics of nmn 0.3's helpers: inside a Keras layer, ``training`` switches their dropout as Keras' own
``Dropout`` layer does (the oracle: the same call without dropout at inference; inverted-dropout scaling when
training)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import nmn.keras as ns


class _Attend(keras.layers.Layer):
    def call(self, x, training=None):
        return ns.yat_attention_weights(x, x, dropout_rate=0.5, training=bool(training))


def test_training_flag_inside_a_model():
    x = keras.random.normal((2, 6, 2, 4), seed=0)
    inputs = keras.Input((6, 2, 4), batch_size=2)
    model = keras.Model(inputs, _Attend()(inputs))
    clean = np.asarray(ns.yat_attention_weights(x, x))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), clean, rtol=1e-6)
    dropped = np.asarray(model(x, training=True))
    kept = dropped != 0
    assert kept.any() and (~kept).any()
    np.testing.assert_allclose(dropped[kept], clean[kept] * 2.0, rtol=1e-5)
