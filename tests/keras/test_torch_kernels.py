"""Keras on the torch backend runs nmn.torch's kernels (nmn._torch): checked here against the independent oracles.

On that backend ``nmn.keras.functional`` sends the plain dense product to the fused dense kernel (on the kernel's
own ``(I, O)`` memory), the conv tails to the fused distance tail with the one-pass channel energy, and attention
to :func:`nmn._torch._chunked.fast_attention`. The dense and conv rows of the conformance table reach the first
two on every Keras call (tests/keras/test_backends.py runs them on this backend); the attention rows are too small
for the tiles, so here the attention rows run with the tiles forced (``NMN_ATTENTION_IMPL=chunked``), forward
against onnxruntime and gradients against the finite differences of the numpy oracle, and the spies below prove
the kernels ran. The file runs on the torch backend only (test_backends.py runs tests/keras there).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("the torch kernels serve Keras' torch backend only", allow_module_level=True)

import torch

import nmn.keras as nk
from nmn._torch import _chunked, _fused
from onnx_ops import reference
from tests.conformance import cases as case_table
from tests.conformance import test_conformance as conformance
from tests.conformance.adapter_keras import ADAPTER

ATTENTION_ROWS = [
    pytest.param(c, id=c.id)
    for c in case_table.CASES
    if c.kind == "MultiHeadYatAttention" and not c.config.get("use_performer") and not c.config.get("random_features")
]


@pytest.fixture
def tiles_counted(monkeypatch):
    """Force the tiled attention and count its calls."""
    calls = []
    tiled = _chunked.yat_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("normalization"))
        return tiled(*args, **kwargs)

    monkeypatch.setenv("NMN_ATTENTION_IMPL", "chunked")
    monkeypatch.setattr(_chunked, "yat_attention", spy)
    return calls


@pytest.mark.parametrize("case", ATTENTION_ROWS)
def test_attention_rows_on_the_tiles_match_onnxruntime(case, tiles_counted):
    conformance.test_forward_matches_onnxruntime(ADAPTER, case)
    assert tiles_counted, f"{case.id}: the tiled attention did not run"


@pytest.mark.parametrize("case", [c for c in ATTENTION_ROWS if c.values[0].grad])
def test_attention_rows_on_the_tiles_match_finite_differences(case, tiles_counted):
    conformance.test_gradients_match_finite_differences(ADAPTER, case)
    assert tiles_counted, f"{case.id}: the tiled attention did not run"


def test_dropout_keeps_the_formula(tiles_counted):
    """Keras' dropout draws from its own seed generator, which the tiles' recomputing backward cannot replay."""
    layer = nk.MultiHeadYatAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    layer(x, training=True)
    assert not tiles_counted
    layer(x, training=False)
    assert tiles_counted


def test_long_sequences_take_the_tiles_by_themselves(monkeypatch):
    """Without NMN_ATTENTION_IMPL the tiles run from H * Lq * Lk >= 2**17 scores, as in nmn.torch."""
    monkeypatch.delenv("NMN_ATTENTION_IMPL", raising=False)
    calls = []
    tiled = _chunked.yat_attention
    monkeypatch.setattr(_chunked, "yat_attention", lambda *a, **k: calls.append(1) or tiled(*a, **k))
    layer = nk.MultiHeadYatAttention(16, 2)
    layer(torch.randn(1, 64, 16))  # 2 x 64 x 64 scores: the formula
    assert not calls
    layer(torch.randn(1, 256, 16))  # 2 x 256 x 256 = 2**17: the tiles
    assert calls


def test_dense_runs_the_fused_kernel_on_the_kernel_layout(monkeypatch):
    """The layer's (I, O) kernel goes in as its own .t() view: the value and every gradient match the float64
    numpy oracle (values) and its finite differences (kernel gradient), and the kernel's gradient is contiguous in
    the kernel's layout (no transposing copy)."""
    seen = []
    fused = _fused.YatDense.apply
    monkeypatch.setattr(_fused.YatDense, "apply", lambda *a: seen.append(a[1]) or fused(*a))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5)).astype(np.float32)
    layer = nk.YatNMN(4)
    layer.build((None, 5))
    kernel = layer.kernel.value
    y = layer(torch.from_numpy(x))
    assert seen and not seen[0].is_contiguous() and seen[0].t().data_ptr() == kernel.data_ptr()
    bias = layer.bias.value.detach().numpy().astype(np.float64)
    alpha = layer.alpha.value.detach().numpy().reshape(1).astype(np.float64)
    w = kernel.detach().numpy().T.astype(np.float64)
    eps = np.array([1e-5])
    want = reference.YatDense(x.astype(np.float64), w, bias, alpha, eps)
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=2e-5, atol=1e-6 * np.abs(want).max())
    cot = rng.normal(size=want.shape)
    (y * torch.from_numpy(cot).float()).sum().backward()
    g = kernel.grad
    assert g.shape == kernel.shape and g.is_contiguous()
    for i, o in ((0, 0), (4, 3), (2, 1)):
        h = 1e-6
        up, down = w.copy(), w.copy()
        up[o, i] += h
        down[o, i] -= h
        x64 = x.astype(np.float64)
        fd = (
            np.sum(reference.YatDense(x64, up, bias, alpha, eps) * cot)
            - np.sum(reference.YatDense(x64, down, bias, alpha, eps) * cot)
        ) / (2 * h)
        assert abs(float(g[i, o]) - fd) <= 2e-3 * float(g.abs().max()) + 1e-6, (i, o, float(g[i, o]), fd)
