"""nmn 0.3's functional attention helpers for MLX, with nmn 0.3.5's signatures (``from nmn.mlx import ...``).

The Yat weights are the layers' own scores (:func:`nmn.core.yat.attention_scores`) under nmn 0.3.5's mask rules
(:mod:`nmn.core.attention_helpers`); the masks and RoPE tables are the ones of the other five frameworks.
:mod:`nmn.mlx.functional` holds nmn's own functional API.

>>> import numpy as np
>>> q = mx.random.normal((2, 5, 4, 8))
>>> w = np.asarray(yat_attention_weights(q, q, mask=make_causal_mask(mx.zeros((2, 5)))))
>>> w.shape, bool(np.allclose(w.sum(-1), 1.0, atol=1e-6)), float(w[0, 0, 0, 1])
((2, 4, 5, 5), True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import mlx.core as mx
import numpy as np

from nmn.core import attention_helpers as core
from nmn.mlx._ops import F
from nmn.mlx.functional import yat_dense as _yat_dense

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
    "fused_yat_score",
]


def _as_array(x: Any) -> mx.array:
    return x if isinstance(x, mx.array) else mx.array(x)


def _from_np(a: np.ndarray, dtype: mx.Dtype) -> mx.array:
    return mx.array(np.asarray(a, np.float32)).astype(dtype)


B = SimpleNamespace(
    F=F,
    expand_dims=mx.expand_dims,
    arange=lambda n: mx.arange(n, dtype=mx.int32),
    broadcast_to=mx.broadcast_to,
    shape=lambda x: tuple(x.shape),
    cast=lambda x, dtype: x.astype(dtype),
    to_bool=lambda x: x.astype(mx.bool_),
    logical_and=mx.logical_and,
    logical_not=mx.logical_not,
    greater_equal=mx.greater_equal,
    isneginf=lambda x: mx.logical_and(mx.isinf(x), x < 0),
    where=mx.where,
    zeros_like=mx.zeros_like,
    rows=lambda t, start, n: t[start : start + n],
)


def make_attention_mask(
    query_input: mx.array,
    key_input: mx.array,
    pairwise_fn: Callable[..., mx.array] = mx.multiply,
    extra_batch_dims: int = 0,
    dtype: mx.Dtype = mx.float32,
) -> mx.array:
    """An attention mask ``[..., 1, Lq, Lk]`` from ``pairwise_fn(query_input[..., i], key_input[..., j])``
    (the meaning of Flax's ``make_attention_mask``, on MLX tensors).

    Args:
        query_input: ``[..., Lq]``, e.g. 1 where a query token is real.
        key_input: ``[..., Lk]``.
        pairwise_fn: combines each (query, key) pair; multiply is a logical AND of 0/1 inputs.
        extra_batch_dims: leading axes of size 1 to add.
        dtype: the mask's dtype.

    >>> np.asarray(make_attention_mask(mx.array([1, 1, 0]), mx.array([1, 0]))).tolist()
    [[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    """
    return core.make_attention_mask(
        B, _as_array(query_input), _as_array(key_input), pairwise_fn, extra_batch_dims, dtype
    )


def make_causal_mask(x: mx.array, extra_batch_dims: int = 0, dtype: mx.Dtype = mx.float32) -> mx.array:
    """The causal mask ``[..., 1, L, L]`` (position ``i`` sees ``j <= i``) of ``x [..., L]``.

    >>> tuple(make_causal_mask(mx.zeros((1, 3))).shape)
    (1, 1, 3, 3)
    """
    return core.make_causal_mask(B, _as_array(x), extra_batch_dims, dtype)


def combine_masks(*masks: mx.array | None, dtype: mx.Dtype = mx.float32) -> mx.array | None:
    """The logical AND of the masks that are not ``None`` (all of one rank), or ``None`` when none is given.

    >>> np.asarray(combine_masks(mx.array([[1, 1]]), None, mx.array([[0, 1]]))).tolist()
    [[0.0, 1.0]]
    """
    return core.combine_masks(B, [None if m is None else _as_array(m) for m in masks], dtype)


def causal_attention_mask(seq_len: int) -> mx.array:
    """The float32 lower-triangular ``(seq_len, seq_len)`` mask of ones (no batch or head axes).

    >>> np.asarray(causal_attention_mask(2)).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    return _from_np(np.tril(np.ones((int(seq_len), int(seq_len)), np.float32)), mx.float32)


def precompute_freqs_cis(
    dim: int, max_seq_len: int, theta: float = 10000.0, dtype: mx.Dtype = mx.float32
) -> tuple[mx.array, mx.array]:
    """RoPE tables ``(cos, sin)``, each ``(max_seq_len, dim // 2)``: angle ``t / theta**(2i / dim)``.

    >>> cos, sin = precompute_freqs_cis(64, 2048)
    >>> tuple(cos.shape)
    (2048, 32)
    """
    cos, sin = core.rope_tables(dim, max_seq_len, theta)
    return _from_np(np.asarray(cos), dtype), _from_np(np.asarray(sin), dtype)


def apply_rotary_emb(x: mx.array, freqs_cos: mx.array, freqs_sin: mx.array, position_offset: int = 0) -> mx.array:
    """Rotate the interleaved pairs of ``x (batch, seq_len, num_heads, head_dim)`` by the tables' rows
    ``position_offset .. position_offset + seq_len``.

    >>> cos, sin = precompute_freqs_cis(8, 16)
    >>> tuple(apply_rotary_emb(mx.ones((2, 4, 3, 8)), cos, sin, position_offset=2).shape)
    (2, 4, 3, 8)
    """
    return core.apply_rotary_emb(B, _as_array(x), freqs_cos, freqs_sin, int(position_offset))


def normalize_qk(
    query: mx.array, key: mx.array, epsilon: float = core.V03_NORMALIZE_EPSILON
) -> tuple[mx.array, mx.array]:
    """``(query / sqrt(|query|^2 + epsilon), key / sqrt(|key|^2 + epsilon))`` along the last axis.

    >>> q, k = normalize_qk(mx.array([[3.0, 4.0]]), mx.array([[0.0, 2.0]]), epsilon=0.0)
    >>> np.asarray(q, np.float64).round(6).tolist(), np.asarray(k).tolist()
    ([[0.6, 0.8]], [[0.0, 1.0]])
    """
    return core.normalize_qk(B, _as_array(query), _as_array(key), epsilon)


def _dropout(rate: float) -> Callable[[Any], Any]:
    def apply(w: mx.array) -> mx.array:
        keep = mx.random.bernoulli(1.0 - rate, w.shape)
        return mx.where(keep, w / (1.0 - rate), mx.zeros_like(w))

    return apply


def _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, spherical, what):
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"{what}: dropout_rate must be in [0, 1), got {dropout_rate}")
    dropout = _dropout(float(dropout_rate)) if dropout_rate and training else None
    mask = None if mask is None else _as_array(mask)
    return core.attention_weights(
        B,
        _as_array(query),
        _as_array(key),
        mask=mask,
        alpha=alpha,
        scale=scale,
        epsilon=epsilon,
        spherical=spherical,
        dropout=dropout,
    )


def yat_attention_weights(
    query: mx.array,
    key: mx.array,
    mask: mx.array | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: mx.array | float | None = None,
    scale: float | None = None,
    spherical: bool = False,
) -> mx.array:
    """Yat attention weights ``(batch, num_heads, Lq, Lk)``: ``softmax(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d)))``
    over the keys, as nmn 0.3.5 computed them.

    Args:
        query: ``(batch, Lq, num_heads, head_dim)``.
        key: ``(batch, Lk, num_heads, head_dim)``.
        mask: bool (or 0/1), broadcastable to the weights; False is masked out (weight exactly 0; a row with no
            key left is all zeros).
        dropout_rate: dropout on the weights when ``training``.
        training: apply the dropout.
        epsilon: the Yat epsilon.
        alpha: multiplies the scores (a number or a scalar tensor).
        scale: multiplies the scores when ``alpha`` is None (e.g. sqrt 2 for ``constant_alpha``).
        spherical: score the unit vectors ``normalize_qk(query, key, epsilon)``.

    >>> q = mx.random.normal((1, 3, 2, 4))
    >>> tuple(yat_attention_weights(q, q).shape)
    (1, 2, 3, 3)
    """
    return _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, spherical, "yat_attention_weights")


def yat_attention(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    mask: mx.array | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: mx.array | float | None = None,
    scale: float | None = None,
    spherical: bool = False,
) -> mx.array:
    """:func:`yat_attention_weights` applied to ``value (batch, Lk, num_heads, v_dim)`` -> ``(batch, Lq,
    num_heads, v_dim)``.

    >>> q = mx.random.normal((1, 3, 2, 4))
    >>> tuple(yat_attention(q, q, q).shape)
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, spherical, "yat_attention")
    return core.readout(B, w, _as_array(value))


def yat_attention_normalized(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    mask: mx.array | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: mx.array | float | None = None,
    scale: float | None = None,
) -> mx.array:
    """:func:`yat_attention` with ``spherical=True`` (the unit vectors' score ``(q.k)^2 / (2 - 2 q.k + eps)``).

    >>> q = mx.random.normal((1, 3, 2, 4))
    >>> tuple(yat_attention_normalized(q, q, q).shape)
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, True, "yat_attention_normalized")
    return core.readout(B, w, _as_array(value))


def rotary_yat_attention_weights(
    query: mx.array,
    key: mx.array,
    freqs_cos: mx.array,
    freqs_sin: mx.array,
    mask: mx.array | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: mx.array | float | None = None,
    scale: float | None = None,
    position_offset: int = 0,
) -> mx.array:
    """:func:`yat_attention_weights` of query and key rotated by :func:`apply_rotary_emb` at ``position_offset``
    (as in nmn 0.3.5's MLX).

    >>> q = mx.random.normal((1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> tuple(rotary_yat_attention_weights(q, q, cos, sin).shape)
    (1, 2, 3, 3)
    """
    q = apply_rotary_emb(query, freqs_cos, freqs_sin, position_offset)
    k = apply_rotary_emb(key, freqs_cos, freqs_sin, position_offset)
    return _weights(q, k, mask, dropout_rate, training, epsilon, alpha, scale, False, "rotary_yat_attention_weights")


def rotary_yat_attention(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    freqs_cos: mx.array,
    freqs_sin: mx.array,
    mask: mx.array | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: mx.array | float | None = None,
    scale: float | None = None,
    position_offset: int = 0,
) -> mx.array:
    """RoPE on query and key, then :func:`yat_attention`.

    >>> q = mx.random.normal((1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> tuple(rotary_yat_attention(q, q, q, cos, sin).shape)
    (1, 3, 2, 4)
    """
    w = rotary_yat_attention_weights(
        query, key, freqs_cos, freqs_sin, mask, dropout_rate, training, epsilon, alpha, scale, position_offset
    )
    return core.readout(B, w, _as_array(value))


def fused_yat_score(
    x: mx.array,
    w: mx.array,
    bias: mx.array | None = None,
    alpha: mx.array | float | None = None,
    epsilon: mx.array | float = _EPS,
) -> mx.array:
    """nmn 0.3.5's ``fused_yat_score``: ``alpha (x.w_o + b_o)^2 / (|x - w_o|^2 + epsilon)`` of ``x (..., in)`` with
    the rows ``w_o`` of ``w (out, in)`` (the MLX ``YatNMN.kernel`` layout of nmn 0.3.5), bias 0 and alpha 1 when
    None -> ``(..., out)``. It is :func:`nmn.mlx.functional.yat_dense`, which takes the same layout; nmn 0.3.5's
    hand-written Metal kernel is not carried over (``YatNMN(fused=True)`` picks MLX's compiled path).

    >>> x, w = mx.ones((2, 3)), mx.ones((4, 3))
    >>> fused_yat_score(x, w).tolist()[0]
    [900000.0, 900000.0, 900000.0, 900000.0]
    """
    x, w = _as_array(x), _as_array(w)
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"fused_yat_score: w must be (out_features, in_features) with in_features = x.shape[-1] = {x.shape[-1]}, "
            f"got w of shape {tuple(w.shape)}"
        )
    return _yat_dense(x, w, bias, alpha, epsilon)
