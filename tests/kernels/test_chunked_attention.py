"""Tiled Yat attention (nmn.torch._chunked) against the numpy oracle and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmn.torch import _chunked
from onnx_ops import reference

CASES = [
    (norm, causal, masked)
    for norm in ("softmax", "l1", "softermax")
    for causal in (False, True)
    for masked in (False, True)
]


def _inputs(seed, b=2, lq=7, lk=7, h=2, d=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, n, h, d, generator=g, dtype=dtype) for n in (lq, lk, lk))
    pad = torch.ones(b, 1, 1, lk, dtype=torch.bool)
    pad[0, ..., -3:] = False  # padding: the last keys of the first sequence
    return q, k, v, pad


@pytest.mark.parametrize("normalization,causal,masked", CASES)
def test_tiles_match_numpy_oracle(normalization, causal, masked):
    q, k, v, pad = _inputs(0)
    mask = pad if masked else None
    got = _chunked.yat_attention(
        q,
        k,
        v,
        mask,
        1.3,
        1e-3,
        normalization=normalization,
        power=2.0 if normalization == "softermax" else 1.0,
        causal=causal,
        tile=3,
    )
    full = np.broadcast_to(pad.numpy() if masked else np.ones((1, 1, 1, 7), bool), (2, 2, 7, 7))
    want = reference.YatAttention(
        q.numpy(),
        k.numpy(),
        v.numpy(),
        full,
        np.array([1.3]),
        np.array([1e-3]),
        normalization=normalization,
        power=2.0 if normalization == "softermax" else 1.0,
        causal=int(causal),
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def test_fully_masked_query_rows_and_cross_attention_lengths():
    q, k, v, _ = _inputs(1, lq=5, lk=8)
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[2] = False  # a query that sees nothing attends uniformly
    got = _chunked.yat_attention(q, k, v, mask, None, 1e-5, normalization="l1", causal=True, tile=2)
    full = np.broadcast_to(mask.numpy(), (2, 2, 5, 8))
    want = reference.YatAttention(
        q.numpy(), k.numpy(), v.numpy(), full, np.array([1.0]), np.array([1e-5]), normalization="l1", causal=1
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("normalization", ["softmax", "l1", "softermax"])
def test_tiled_gradients_pass_gradcheck(normalization):
    q, k, v, pad = _inputs(2, b=1, lq=5, lk=5, h=1, d=2)
    alpha = torch.tensor([1.2], dtype=torch.float64)
    leaves = [t.requires_grad_(True) for t in (q, k, v, alpha)]

    def f(q, k, v, alpha):
        return _chunked.yat_attention(q, k, v, pad, alpha, 1e-2, normalization=normalization, causal=True, tile=2)

    assert torch.autograd.gradcheck(f, leaves)


def test_environment_switch(monkeypatch):
    big = torch.zeros(1, 1100, 1, 2)
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "reference")
    assert _chunked.pick(big, big) == "reference"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "chunked")
    assert _chunked.pick(big[:, :4], big[:, :4]) == "chunked"
    monkeypatch.delenv("NMN_ATTENTION_IMPL")
    assert _chunked.pick(big, big) == "chunked" and _chunked.pick(big[:, :4], big[:, :4]) == "reference"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "fast")
    with pytest.raises(
        ValueError, match="NMN_ATTENTION_IMPL: expected one of auto, triton, chunked, reference, got 'fast'"
    ):
        _chunked.pick(big, big)
