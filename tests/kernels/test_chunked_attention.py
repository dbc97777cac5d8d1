"""Tiled Yat attention (nmn._torch._chunked) against the numpy oracle, the reference path and finite differences.

The tiles are query x key blocks combined online (softmax: running max and sum; l1 and softermax: running sums),
with a custom backward pass that recomputes them, so every case runs with key tiles that do not divide the
lengths (odd lengths, cross attention) as well as with whole rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmn._torch import _chunked
from nmn.core import yat as core_yat
from nmn.torch._ops import ops_for
from onnx_ops import reference

NORMS = ("softmax", "l1", "softermax")
CASES = [(norm, causal, masked) for norm in NORMS for causal in (False, True) for masked in (False, True)]
TILINGS = [(3, None), (3, 4), (2, 3)]  # (query rows, key columns); None: whole rows of keys


def _inputs(seed, b=2, lq=7, lk=7, h=2, d=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, n, h, d, generator=g, dtype=dtype) for n in (lq, lk, lk))
    pad = torch.ones(b, 1, 1, lk, dtype=torch.bool)
    pad[0, ..., -3:] = False  # padding: the last keys of the first sequence
    return q, k, v, pad


def _power(normalization):
    return 2.0 if normalization == "softermax" else 1.0


def _oracle(q, k, v, mask, alpha, eps, **kw):
    b, lq, h, _ = q.shape
    lk = k.shape[1]
    full = np.broadcast_to(np.ones((1, 1, 1, lk), bool) if mask is None else mask.numpy(), (b, h, lq, lk))
    kw["causal"] = int(kw.get("causal", False))
    kw["spherical"] = int(kw.get("spherical", False))
    return reference.YatAttention(q.numpy(), k.numpy(), v.numpy(), full, np.array([alpha]), np.array([eps]), **kw)


@pytest.mark.parametrize("tile,key_tile", TILINGS)
@pytest.mark.parametrize("normalization,causal,masked", CASES)
def test_tiles_match_numpy_oracle(normalization, causal, masked, tile, key_tile):
    q, k, v, pad = _inputs(0)
    mask = pad if masked else None
    kw = dict(normalization=normalization, power=_power(normalization), causal=causal)
    got = _chunked.yat_attention(q, k, v, mask, 1.3, 1e-3, tile=tile, key_tile=key_tile, **kw)
    np.testing.assert_allclose(got.numpy(), _oracle(q, k, v, mask, 1.3, 1e-3, **kw), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("lq,lk", [(5, 11), (11, 5), (13, 13)])
def test_key_tiles_cross_lengths_spherical_and_full_masks(normalization, lq, lk):
    """Odd lengths that no tile divides, Lq != Lk both ways, a per-head mask with fully masked rows."""
    q, k, v, _ = _inputs(3, lq=lq, lk=lk)
    mask = torch.rand(2, 2, lq, lk, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[0, 1, 2] = False  # a query that sees nothing attends uniformly
    for spherical in (False, True):
        kw = dict(normalization=normalization, power=_power(normalization), causal=True, spherical=spherical)
        got = _chunked.yat_attention(q, k, v, mask, 0.9, 1e-2, tile=4, key_tile=3, **kw)
        np.testing.assert_allclose(got.numpy(), _oracle(q, k, v, mask, 0.9, 1e-2, **kw), rtol=1e-9, atol=1e-12)


def test_fully_masked_query_rows_and_cross_attention_lengths():
    q, k, v, _ = _inputs(1, lq=5, lk=8)
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[2] = False  # a query that sees nothing attends uniformly
    for key_tile in (None, 3):
        got = _chunked.yat_attention(
            q, k, v, mask, None, 1e-5, normalization="l1", causal=True, tile=2, key_tile=key_tile
        )
        want = _oracle(q, k, v, mask, 1.0, 1e-5, normalization="l1", causal=True)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def _reference(q, k, v, mask, alpha, eps, **kw):
    return core_yat.yat_attention(ops_for(q), q, k, v, mask, alpha, eps, **kw)


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("alpha", [1.3, -0.7, None])
@pytest.mark.parametrize("masked", ["none", "padding", "per-head"])
def test_gradients_match_the_reference_in_float64(normalization, alpha, masked):
    """The tiled backward pass (recomputed tiles) against autograd through the reference path, every input.

    alpha 1.3 is folded into the denominator, -0.7 is not (a negative scale), ``None`` has no alpha input."""
    q, k, v, pad = _inputs(4, lq=9, lk=11)
    mask = {"none": None, "padding": pad, "per-head": torch.rand(2, 2, 9, 11) > 0.5}[masked]
    if mask is not None and masked == "per-head":
        mask[1, 0, 3] = False
    a = None if alpha is None else torch.tensor([alpha], dtype=torch.float64)
    for spherical, causal in ((False, True), (True, False)):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v) + (() if a is None else (a,))]
        kw = dict(normalization=normalization, power=_power(normalization), causal=causal, spherical=spherical)
        alpha_in = leaves[3] if a is not None else None
        got = _chunked.yat_attention(*leaves[:3], mask, alpha_in, 1e-3, tile=4, key_tile=3, **kw)
        want = _reference(*leaves[:3], mask, alpha_in, 1e-3, **kw)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
        g = torch.randn_like(want)
        for x, y in zip(torch.autograd.grad(got, leaves, g), torch.autograd.grad(want, leaves, g)):
            torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("normalization", NORMS)
def test_tiled_gradients_pass_gradcheck(normalization):
    q, k, v, pad = _inputs(2, b=1, lq=5, lk=5, h=1, d=2)
    alpha = torch.tensor([1.2], dtype=torch.float64)
    leaves = [t.requires_grad_(True) for t in (q, k, v, alpha)]

    def f(q, k, v, alpha):
        return _chunked.yat_attention(
            q, k, v, pad, alpha, 1e-2, normalization=normalization, causal=True, tile=2, key_tile=2
        )

    assert torch.autograd.gradcheck(f, leaves)


def test_dropout_gradients_replay_the_forward_masks():
    """Finite differences of a reseeded forward against the backward pass, which must draw the same masks."""
    q, k, v, pad = _inputs(5, b=1, lq=6, lk=7, h=2, d=2)
    leaves = [t.requires_grad_(True) for t in (q, k, v)]

    def f(q, k, v):
        torch.manual_seed(7)
        return _chunked.yat_attention(
            q, k, v, pad, 1.1, 1e-2, dropout=lambda w: torch.nn.functional.dropout(w, 0.4, True), tile=4, key_tile=3
        )

    assert torch.autograd.gradcheck(f, leaves)
    with torch.no_grad():  # the masks really drop something: not the undropped output
        assert not torch.allclose(f(q, k, v), _chunked.yat_attention(q, k, v, pad, 1.1, 1e-2, tile=4, key_tile=3))


@pytest.mark.parametrize("normalization", NORMS)
def test_dropout_acts_on_the_normalised_weights(normalization):
    """The tiles' dropout masks, put back together, give the reference's output with that one full mask."""
    q, k, v, pad = _inputs(6, lq=7, lk=9)
    tile, key_tile = 3, 4
    draws = []
    g = torch.Generator().manual_seed(0)

    def record(w):
        keep = (torch.rand(w.shape, generator=g, dtype=w.dtype) > 0.3).to(w.dtype) / 0.7
        draws.append(keep)
        return w * keep

    kw = dict(normalization=normalization, power=_power(normalization))
    with torch.no_grad():
        got = _chunked.yat_attention(q, k, v, pad, 1.2, 1e-3, dropout=record, tile=tile, key_tile=key_tile, **kw)
    full = torch.empty(2, 2, 7, 9, dtype=torch.float64)
    it = iter(draws)
    for b in range(2):  # the order of the tiles: batch, query tiles, key tiles
        for qs in range(0, 7, tile):
            for ks in range(0, 9, key_tile):
                full[b, :, qs : qs + tile, ks : ks + key_tile] = next(it)
    assert next(it, None) is None
    want = _reference(q, k, v, pad, 1.2, 1e-3, dropout=lambda w: w * full, **kw)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_no_grad_forward_takes_the_same_values():
    """Without autograd one key tile per row takes the fused softmax; with it, the online statistics."""
    q, k, v, pad = _inputs(8, lq=9, lk=9)
    with torch.no_grad():
        fast = _chunked.yat_attention(q, k, v, pad, 1.3, 1e-3, causal=True, tile=4)
    slow = _chunked.yat_attention(q.requires_grad_(True), k, v, pad, 1.3, 1e-3, causal=True, tile=4)
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-12, atol=1e-14)


def test_float32_and_half_inputs_compute_in_float32():
    q, k, v, pad = _inputs(9, lq=33, lk=40, h=2, d=8, dtype=torch.float32)
    want = _reference(q.double(), k.double(), v.double(), pad, 1.0, 1e-5).float()
    got = _chunked.yat_attention(q, k, v, pad, 1.0, 1e-5, tile=16, key_tile=16)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    half = _chunked.yat_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), pad, 1.0, 1e-5, tile=16, key_tile=16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), want, rtol=0.05, atol=0.05)


def test_tiles_follow_the_byte_budget(monkeypatch):
    q = torch.empty(2, 4096, 4, 32, device="meta")
    for budget in (1 << 18, 1 << 20, 1 << 23):
        tq, tk = _chunked.tiles(q, q, budget)
        assert tq * tk * 4 * 4 <= budget and tk <= 512 and tq >= 16  # H = 4 heads of float32
    assert _chunked.tiles(torch.empty(1, 50, 2, 8, device="meta"), torch.empty(1, 30, 2, 8, device="meta")) == (50, 30)
    monkeypatch.setenv("NMN_ATTENTION_TILE_BYTES", "4096")
    assert _chunked.budget() == 4096 and _chunked.tiles(q, q) == (16, 16)
    q, k, v, pad = _inputs(10, lq=40, lk=40)  # a small budget still gives the oracle's values
    np.testing.assert_allclose(
        _chunked.yat_attention(q, k, v, pad, 1.3, 1e-3).numpy(),
        _oracle(q, k, v, pad, 1.3, 1e-3),
        rtol=1e-9,
        atol=1e-12,
    )
    monkeypatch.setenv("NMN_ATTENTION_TILE_BYTES", "lots")
    with pytest.raises(ValueError, match="NMN_ATTENTION_TILE_BYTES: expected a positive number of bytes, got 'lots'"):
        _chunked.budget()


def test_mask_errors_name_the_shapes():
    q, k, v, _ = _inputs(11, lq=5, lk=6)
    with pytest.raises(ValueError, match=r"mask of shape \(5, 5\) does not broadcast to \(B, H, 5, 6\)"):
        _chunked.yat_attention(q, k, v, torch.ones(5, 5, dtype=torch.bool), None, 1e-5)
    with pytest.raises(ValueError, match="the mask must be bool"):
        _chunked.yat_attention(q, k, v, torch.ones(5, 6), None, 1e-5)
    with pytest.raises(ValueError, match="the tiled path takes a fixed eps"):
        _chunked.yat_attention(q, k, v, None, None, torch.tensor(1e-5, requires_grad=True))


def test_environment_switch(monkeypatch):
    big = torch.zeros(1, 1100, 1, 2)
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "reference")
    assert _chunked.pick(big, big) == "reference"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "chunked")
    assert _chunked.pick(big[:, :4], big[:, :4]) == "chunked"
    monkeypatch.delenv("NMN_ATTENTION_IMPL")
    assert _chunked.pick(big, big) == "chunked" and _chunked.pick(big[:, :4], big[:, :4]) == "reference"
    heads = torch.zeros(1, 128, 8, 2)  # H * Lq * Lk = 2**17 scores: from there the tiles are faster
    assert _chunked.by_size(heads, heads) == "chunked" and _chunked.by_size(heads[:, :127], heads) == "reference"
    monkeypatch.setenv("NMN_ATTENTION_IMPL", "fast")
    with pytest.raises(
        ValueError, match="NMN_ATTENTION_IMPL: expected one of auto, triton, chunked, reference, got 'fast'"
    ):
        _chunked.pick(big, big)
