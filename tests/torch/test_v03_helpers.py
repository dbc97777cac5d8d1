"""PyTorch specifics of nmn 0.3's attention helpers (``nmn.torch.yat_attention`` ...; the shared checks against
the ONNX function and numpy are in ``tests/compat/test_v03_helpers.py``).

Oracles: torch's own finite differences (``torch.autograd.gradcheck`` in float64), the float32 computation for
half-precision inputs, and nmn 0.3.5's documented default ``training=True``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from nmn.torch import (
    apply_rotary_emb,
    precompute_freqs_cis,
    yat_attention,
    yat_attention_weights,
)


def test_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[True, True, False], [True, True, True], [False, True, True]])
    assert torch.autograd.gradcheck(lambda q, k, v: yat_attention(q, k, v, mask=mask, alpha=1.3), (q, k, v))


def test_half_inputs_score_in_float32():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 4, 2, 8, generator=g), torch.randn(2, 5, 2, 8, generator=g)
    half = yat_attention_weights(q.half(), k.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(
        half.float(), yat_attention_weights(q.half().float(), k.half().float()), atol=2e-3, rtol=2e-3
    )


def test_dropout_applies_by_default_as_in_nmn_0_3():
    q = torch.randn(1, 6, 2, 4)
    torch.manual_seed(0)
    w = yat_attention_weights(q, q, dropout_p=0.5)  # training=True is 0.3.5's default
    assert (w == 0).any()
    torch.testing.assert_close(yat_attention_weights(q, q, dropout_p=0.5, training=False), yat_attention_weights(q, q))
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got 1.5"):
        yat_attention_weights(q, q, dropout_p=1.5)


def test_rope_tables_follow_the_device_and_dtype():
    cos, sin = precompute_freqs_cis(8, 4, dtype=torch.float64, device="cpu")
    assert cos.dtype == sin.dtype == torch.float64 and tuple(cos.shape) == (4, 4)
    x = torch.randn(1, 4, 1, 8, dtype=torch.float64)
    rotated = apply_rotary_emb(x, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))  # a rotation keeps every head's norm
    torch.testing.assert_close(rotated[:, 0], x[:, 0])  # position 0 is not rotated
