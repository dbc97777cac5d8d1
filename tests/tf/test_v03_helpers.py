"""TensorFlow specifics of nmn 0.3's helpers: they trace inside ``tf.function`` (the oracle: the eager result) and
take their gradients (against ``tf.test.compute_gradient``'s finite differences)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import nmn.tf as ns


def test_tf_function_matches_eager():
    q = tf.random.stateless_normal((2, 5, 2, 4), seed=(1, 2))
    cos, sin = ns.precompute_freqs_cis(4, 8)
    mask = tf.cast(ns.make_causal_mask(tf.ones((2, 5))), tf.bool)
    eager = ns.rotary_yat_attention(q, q, q, cos, sin, mask=mask, position_offset=2)
    traced = tf.function(lambda q: ns.rotary_yat_attention(q, q, q, cos, sin, mask=mask, position_offset=2))(q)
    np.testing.assert_allclose(traced.numpy(), eager.numpy(), rtol=1e-6)


def test_gradients_match_finite_differences():
    q = tf.random.stateless_normal((1, 3, 1, 4), seed=(3, 4), dtype=tf.float64)
    theoretical, numerical = tf.test.compute_gradient(lambda q: ns.yat_attention(q, q, q, alpha=1.2), [q])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-6)
