"""The torch fast paths of nmn._torch._fused against finite differences and the numpy oracle."""

from __future__ import annotations

import numpy as np
import torch

from nmn._torch import _fused
from nmn.torch import functional
from onnx_ops import reference


def test_dist_tail_passes_gradcheck_with_broadcast_terms_and_clamped_distances():
    g = torch.Generator().manual_seed(0)
    num = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64)
    energy = torch.rand(2, 2, 1, 4, generator=g, dtype=torch.float64) * 3
    const = torch.randn(1, 2, 3, 1, generator=g, dtype=torch.float64)  # some distances clamp to eps
    alpha = torch.tensor([1.3], dtype=torch.float64)
    eps = torch.tensor([0.2], dtype=torch.float64)
    den = energy + const - 2 * num
    assert (den <= 0).any() and (den > 0.5).any()
    leaves = [t.requires_grad_(True) for t in (num, energy, const, alpha, eps)]
    assert torch.autograd.gradcheck(_fused.YatDistTail.apply, leaves)


def test_conv_fast_path_matches_numpy_oracle_for_grouped_constant_bias():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64)
    got = functional.yat_conv(x, w, 0.4, 1.5, 1e-3, stride=2, padding=1, groups=2)
    want = reference.YatConv(
        x.numpy(),
        w.numpy(),
        np.full(6, 0.4),
        np.array([1.5]),
        np.array([1e-3]),
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        dilations=[1, 1],
        group=2,
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def test_dense_fast_path_gradients_pass_gradcheck_with_a_clamped_distance():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    w = torch.randn(2, 3, generator=g, dtype=torch.float64)
    leaves = [
        t.requires_grad_(True)
        for t in (
            x,
            w,
            torch.randn(2, generator=g, dtype=torch.float64),
            torch.tensor([0.9], dtype=torch.float64),
            torch.tensor([0.1], dtype=torch.float64),
        )
    ]
    assert torch.autograd.gradcheck(lambda *a: functional.yat_dense(*a), leaves)
