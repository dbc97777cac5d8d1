"""Behaviour the docs promise beyond agreement: the clamp, masked rows, causal alignment, alpha in the performer."""

import numpy as np
import pytest

from onnx_ops import reference, run_function

ONE = np.ones(1, np.float32)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_dense_clamp_coincident(scale):
    """x == w exactly: float32 may round the expanded distance below 0; relu keeps y = alpha (x.x + b)^2 / eps."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((16, 32)) * scale).astype(np.float32)
    eps = np.full(1, 1e-5, np.float32)
    y = run_function("YatDense", [x, x, np.zeros(16, np.float32), ONE, eps]).astype(np.float64)
    xd = x.astype(np.float64)
    bound = np.einsum("ij,kj->ik", xd, xd) ** 2 / 1e-5  # the clamped maximum
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    assert np.all(y <= bound * (1 + 1e-5) + 1e-30)
    # the diagonal is exactly coincident: its distance is 0 up to float32 rounding of |x|^2 + |w|^2 - 2x.w,
    # whose error (~1e-7 * |x|^2) may dominate eps; the result is finite and never above the clamped value
    diag = np.diag(y)
    assert np.all(diag > 0)


def test_conv_clamp_coincident_patch():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((1, 3, 3, 3)) * 100).astype(np.float32)
    w = x.copy()  # the single valid patch equals the filter
    y = run_function("YatConv", [x, w, np.zeros(1, np.float32), ONE, np.full(1, 1e-5, np.float32)])
    dot = float(np.sum(x.astype(np.float64) ** 2))
    assert y.shape == (1, 1, 1, 1) and np.isfinite(y).all()
    assert 0 < y[0, 0, 0, 0] <= dot**2 / 1e-5 * (1 + 1e-5)


@pytest.mark.parametrize("normalization", ["softmax", "l1", "softermax"])
def test_fully_masked_row_is_uniform(normalization):
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((2, 2, 4, 3, 5)).astype(np.float32)
    v = rng.standard_normal((2, 4, 3, 2)).astype(np.float32)
    mask = np.ones((2, 3, 4, 4), bool)  # (B, H, Lq, Lk)
    mask[:, :, 1, :] = False
    y = run_function("YatAttention", [q, k, v, mask, ONE, np.full(1, 1e-5, np.float32)], normalization=normalization)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[:, 1], v.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_causal_is_bottom_right_aligned_decode_equals_full_pass():
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 1, 6, 2, 4)).astype(np.float32)
    v = rng.standard_normal((1, 6, 2, 3)).astype(np.float32)
    args = [ONE, np.full(1, 1e-5, np.float32)]
    mask = np.ones((1, 1, 1, 1), bool)
    full = run_function("YatAttention", [q, k, v, mask] + args, causal=1)
    for t in range(6):  # decode step t: query t against keys 0..t
        step = run_function("YatAttention", [q[:, t : t + 1], k[:, : t + 1], v[:, : t + 1], mask] + args, causal=1)
        np.testing.assert_allclose(step[:, 0], full[:, t], rtol=1e-5, atol=1e-6)


def test_performer_alpha_cancels():
    rng = np.random.default_rng(4)
    E = 8
    x = rng.standard_normal((1, 5, E)).astype(np.float32)
    w = [rng.standard_normal(s).astype(np.float32) for s in [(E, E), (E,)] * 4]
    proj = rng.standard_normal((32, 4)).astype(np.float32)  # signed features: few of them can put a row sum near 0
    mask = np.ones((1, 1, 1, 1), bool)
    y = [
        run_function(
            "YatPerformerMultiHeadAttention",
            [x, x, x, mask] + w + [np.full(1, a, np.float32), np.full(1, 1e-5, np.float32), proj],
            num_heads=2,
        )
        for a in (1.0, 3.0)
    ]
    np.testing.assert_allclose(y[0], y[1], rtol=1e-4, atol=1e-5)


def test_rotary_preserves_norms_and_relative_scores():
    rng = np.random.default_rng(5)
    T, D = 9, 6
    ang = np.arange(T)[:, None] * (10000.0 ** (-2 * np.arange(D // 2) / D))[None]
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    x = rng.standard_normal((1, 7, 2, D)).astype(np.float32)
    for il in (0, 1):
        y = run_function("RotaryEmbedding", [x, cos, sin], interleaved=il)
        np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
        np.testing.assert_allclose(y[:, 0], x[:, 0], rtol=1e-6)  # position 0 is not rotated


def test_oracle_detects_a_wrong_distance():
    """The oracle computes sum((x - w)^2): a function that dropped |w|^2 would disagree with it."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 3, 4))
    dot = x @ w.T
    wrong = dot**2 / (np.maximum(np.sum(x * x, -1, keepdims=True) - 2 * dot, 0) + 1e-5)
    right = reference.YatDense(x, w, np.zeros(1), np.ones(1), np.full(1, 1e-5))
    assert not np.allclose(wrong, right)
