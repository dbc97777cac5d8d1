"""MLX specifics of nmn 0.3's helpers: ``fused_yat_score`` (nmn 0.3.5's fused dense score) against numpy written
from its docstring, ``alpha (x.w_o + b_o)^2 / (|x - w_o|^2 + eps)`` with ``w`` in the ``(out, in)`` layout."""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from nmn.mlx import fused_yat_score


def _numpy(x, w, b=0.0, alpha=1.0, eps=1e-5):
    x, w = x.astype(np.float64), w.astype(np.float64)
    dot = x @ w.T
    dist = (x * x).sum(-1, keepdims=True) + (w * w).sum(-1) - 2 * dot
    return alpha * (dot + b) ** 2 / (np.maximum(dist, 0.0) + eps)


def test_fused_yat_score_matches_the_formula():
    r = np.random.default_rng(0)
    x, w, b = r.standard_normal((2, 3, 5)), r.standard_normal((4, 5)), r.standard_normal(4)
    x, w, b = (a.astype(np.float32) for a in (x, w, b))
    got = fused_yat_score(mx.array(x), mx.array(w), mx.array(b), mx.array([1.7]), 1e-3)
    np.testing.assert_allclose(np.asarray(got), _numpy(x, w, b, 1.7, 1e-3), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(fused_yat_score(mx.array(x), mx.array(w))), _numpy(x, w), rtol=1e-4)


def test_fused_yat_score_checks_the_layout():
    with pytest.raises(ValueError, match=r"w must be \(out_features, in_features\) with in_features = x.shape\[-1\]"):
        fused_yat_score(mx.ones((2, 5)), mx.ones((5, 4)))
