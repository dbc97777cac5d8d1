"""nmn 0.3's functional attention helpers for PyTorch, with nmn 0.3.5's signatures (``from nmn.torch import ...``).

nmn 0.3.5 kept ``yat_attention``, ``yat_attention_weights``, ``yat_attention_normalized`` and ``normalize_qk`` in
``nmn.torch.attention``; they are at the package root now (``nmn.torch.attention`` holds the layers). The Yat
weights are the layers' own scores (:func:`nmn.core.yat.attention_scores`) under nmn 0.3.5's mask rules
(:mod:`nmn.core.attention_helpers`); the masks and RoPE tables are the ones of the other five frameworks.
:mod:`nmn.torch.functional` holds nmn's own functional API.

>>> import torch
>>> q = k = v = torch.randn(2, 5, 4, 8)
>>> w = yat_attention_weights(q, k, mask=make_causal_mask(torch.zeros(2, 5)).bool())
>>> tuple(w.shape), bool(torch.allclose(w.sum(-1), torch.ones(()))), float(w[0, 0, 0, 1])
((2, 4, 5, 5), True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch
import torch.nn.functional as _nnf

from nmn.core import attention_helpers as core
from nmn.torch._ops import ops_for

_EPS = core.V03_ATTENTION_EPSILON

__all__ = [
    "make_attention_mask",
    "make_causal_mask",
    "combine_masks",
    "causal_attention_mask",
    "precompute_freqs_cis",
    "apply_rotary_emb",
    "normalize_qk",
    "yat_attention_weights",
    "yat_attention",
    "yat_attention_normalized",
    "rotary_yat_attention_weights",
    "rotary_yat_attention",
]


def _B(ref: torch.Tensor) -> SimpleNamespace:
    device = ref.device
    return SimpleNamespace(
        F=ops_for(ref),
        expand_dims=torch.unsqueeze,
        arange=lambda n: torch.arange(n, dtype=torch.int32, device=device),
        broadcast_to=torch.broadcast_to,
        shape=lambda x: tuple(x.shape),
        cast=lambda x, dtype: x.to(dtype),
        to_bool=lambda x: x.to(torch.bool),
        logical_and=torch.logical_and,
        logical_not=torch.logical_not,
        greater_equal=torch.greater_equal,
        isneginf=torch.isneginf,
        where=torch.where,
        zeros_like=torch.zeros_like,
        rows=lambda t, start, n: t[start : start + n],
    )


def make_attention_mask(
    query_input: torch.Tensor,
    key_input: torch.Tensor,
    pairwise_fn: Callable[..., torch.Tensor] = torch.mul,
    extra_batch_dims: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """An attention mask ``[..., 1, Lq, Lk]`` from ``pairwise_fn(query_input[..., i], key_input[..., j])``
    (the meaning of Flax's ``make_attention_mask``, on tensors).

    Args:
        query_input: ``[..., Lq]``, e.g. 1 where a query token is real.
        key_input: ``[..., Lk]``.
        pairwise_fn: combines each (query, key) pair; multiply is a logical AND of 0/1 inputs.
        extra_batch_dims: leading axes of size 1 to add.
        dtype: the mask's dtype.

    >>> make_attention_mask(torch.tensor([1, 1, 0]), torch.tensor([1, 0])).tolist()
    [[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    """
    return core.make_attention_mask(_B(query_input), query_input, key_input, pairwise_fn, extra_batch_dims, dtype)


def make_causal_mask(x: torch.Tensor, extra_batch_dims: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The causal mask ``[..., 1, L, L]`` (position ``i`` sees ``j <= i``) of ``x [..., L]``.

    >>> tuple(make_causal_mask(torch.zeros(1, 3)).shape)
    (1, 1, 3, 3)
    """
    return core.make_causal_mask(_B(x), x, extra_batch_dims, dtype)


def combine_masks(*masks: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """The logical AND of the masks that are not ``None`` (all of one rank), or ``None`` when none is given.

    >>> combine_masks(torch.tensor([[1, 1]]), None, torch.tensor([[0, 1]])).tolist()
    [[0.0, 1.0]]
    """
    present = [m for m in masks if m is not None]
    return None if not present else core.combine_masks(_B(present[0]), present, dtype)


def causal_attention_mask(seq_len: int) -> torch.Tensor:
    """The float32 lower-triangular ``(seq_len, seq_len)`` mask of ones (no batch or head axes).

    >>> causal_attention_mask(2).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    return torch.tril(torch.ones(int(seq_len), int(seq_len)))


def precompute_freqs_cis(
    dim: int,
    max_seq_len: int,
    theta: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables ``(cos, sin)``, each ``(max_seq_len, dim // 2)``: angle ``t / theta**(2i / dim)``.

    >>> cos, sin = precompute_freqs_cis(64, 2048)
    >>> tuple(cos.shape)
    (2048, 32)
    """
    cos, sin = core.rope_tables(dim, max_seq_len, theta)
    as_t = lambda t: torch.tensor(t, dtype=torch.float64, device=device).to(dtype)
    return as_t(cos), as_t(sin)


def apply_rotary_emb(
    x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor, position_offset: int = 0
) -> torch.Tensor:
    """Rotate the interleaved pairs of ``x (batch, seq_len, num_heads, head_dim)`` by the tables' rows
    ``position_offset .. position_offset + seq_len``.

    >>> cos, sin = precompute_freqs_cis(8, 16)
    >>> tuple(apply_rotary_emb(torch.ones(2, 4, 3, 8), cos, sin, position_offset=2).shape)
    (2, 4, 3, 8)
    """
    return core.apply_rotary_emb(_B(x), x, freqs_cos, freqs_sin, int(position_offset))


def normalize_qk(
    query: torch.Tensor, key: torch.Tensor, epsilon: float = core.V03_NORMALIZE_EPSILON
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(query / sqrt(|query|^2 + epsilon), key / sqrt(|key|^2 + epsilon))`` along the last axis.

    >>> q, k = normalize_qk(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 2.0]]), epsilon=0.0)
    >>> q.tolist(), k.tolist()
    ([[0.6000000238418579, 0.800000011920929]], [[0.0, 1.0]])
    """
    return core.normalize_qk(_B(query), query, key, epsilon)


def _weights(query, key, mask, dropout_p, training, epsilon, alpha, scale, spherical, what):
    if not 0.0 <= float(dropout_p) < 1.0:
        raise ValueError(f"{what}: dropout_p must be in [0, 1), got {dropout_p}")
    dropout = (lambda w: _nnf.dropout(w, p=float(dropout_p), training=True)) if dropout_p and training else None
    return core.attention_weights(
        _B(query),
        query,
        key,
        mask=mask,
        alpha=alpha,
        scale=scale,
        epsilon=epsilon,
        spherical=spherical,
        dropout=dropout,
    )


def yat_attention_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    epsilon: float = _EPS,
    alpha: torch.Tensor | float | None = None,
    scale: float | None = None,
    spherical: bool = False,
) -> torch.Tensor:
    """Yat attention weights ``(batch, num_heads, Lq, Lk)``: ``softmax(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d)))``
    over the keys, as nmn 0.3.5's ``nmn.torch.attention.yat_attention_weights`` computed them.

    Args:
        query: ``(batch, Lq, num_heads, head_dim)``.
        key: ``(batch, Lk, num_heads, head_dim)``.
        mask: bool, broadcastable to the weights; False is masked out (weight exactly 0; a row with no key left
            is all zeros).
        dropout_p: dropout on the weights when ``training``.
        training: apply the dropout (nmn 0.3.5's default, True; it only matters when ``dropout_p > 0``).
        epsilon: the Yat epsilon.
        alpha: multiplies the scores (a number or a scalar tensor).
        scale: multiplies the scores when ``alpha`` is None (e.g. sqrt 2 for ``constant_alpha``).
        spherical: score the unit vectors ``normalize_qk(query, key, epsilon)``.

    >>> q = torch.randn(1, 3, 2, 4)
    >>> tuple(yat_attention_weights(q, q).shape)
    (1, 2, 3, 3)
    """
    return _weights(query, key, mask, dropout_p, training, epsilon, alpha, scale, spherical, "yat_attention_weights")


def yat_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    epsilon: float = _EPS,
    alpha: torch.Tensor | float | None = None,
    scale: float | None = None,
    spherical: bool = False,
) -> torch.Tensor:
    """:func:`yat_attention_weights` applied to ``value (batch, Lk, num_heads, v_dim)`` -> ``(batch, Lq,
    num_heads, v_dim)``.

    >>> q = torch.randn(1, 3, 2, 4)
    >>> tuple(yat_attention(q, q, q).shape)
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_p, training, epsilon, alpha, scale, spherical, "yat_attention")
    return core.readout(_B(value), w, value)


def yat_attention_normalized(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    epsilon: float = _EPS,
    alpha: torch.Tensor | float | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """:func:`yat_attention` with ``spherical=True`` (the unit vectors' score ``(q.k)^2 / (2 - 2 q.k + eps)``).

    >>> q = torch.randn(1, 3, 2, 4)
    >>> tuple(yat_attention_normalized(q, q, q).shape)
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_p, training, epsilon, alpha, scale, True, "yat_attention_normalized")
    return core.readout(_B(value), w, value)


def rotary_yat_attention_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    freqs_cos: torch.Tensor,
    freqs_sin: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    epsilon: float = _EPS,
    alpha: torch.Tensor | float | None = None,
    scale: float | None = None,
    position_offset: int = 0,
) -> torch.Tensor:
    """:func:`yat_attention_weights` of query and key rotated by :func:`apply_rotary_emb` at ``position_offset``
    (nmn 0.3.5 had it in NNX and MLX).

    >>> q = torch.randn(1, 3, 2, 4)
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> tuple(rotary_yat_attention_weights(q, q, cos, sin).shape)
    (1, 2, 3, 3)
    """
    q = apply_rotary_emb(query, freqs_cos, freqs_sin, position_offset)
    k = apply_rotary_emb(key, freqs_cos, freqs_sin, position_offset)
    return _weights(q, k, mask, dropout_p, training, epsilon, alpha, scale, False, "rotary_yat_attention_weights")


def rotary_yat_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    freqs_cos: torch.Tensor,
    freqs_sin: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    epsilon: float = _EPS,
    alpha: torch.Tensor | float | None = None,
    scale: float | None = None,
    position_offset: int = 0,
) -> torch.Tensor:
    """RoPE on query and key, then :func:`yat_attention`.

    >>> q = torch.randn(1, 3, 2, 4)
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> tuple(rotary_yat_attention(q, q, q, cos, sin).shape)
    (1, 3, 2, 4)
    """
    w = rotary_yat_attention_weights(
        query, key, freqs_cos, freqs_sin, mask, dropout_p, training, epsilon, alpha, scale, position_offset
    )
    return core.readout(_B(value), w, value)
