"""nmn 0.3's functional attention helpers for Keras 3, with nmn 0.3.5's signatures (``from nmn.keras import ...``).

The Yat weights are the layers' own scores (:func:`nmn.core.yat.attention_scores`) under nmn 0.3.5's mask rules
(:mod:`nmn.core.attention_helpers`); the masks and RoPE tables are the ones of the other five frameworks.
They run on every Keras backend (``keras.ops``). :mod:`nmn.keras.functional` holds nmn's own functional API.

>>> import numpy as np
>>> q = keras.random.normal((2, 5, 4, 8))
>>> w = np.asarray(yat_attention_weights(q, q, mask=make_causal_mask(keras.ops.zeros((2, 5)))))
>>> w.shape, bool(np.allclose(w.sum(-1), 1.0, atol=1e-6)), float(w[0, 0, 0, 1])
((2, 4, 5, 5), True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from keras import ops

from nmn.core import attention_helpers as core
from nmn.keras._ops import F, Tensor

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


def _from_np(a: np.ndarray, dtype: str) -> Tensor:
    return ops.cast(ops.convert_to_tensor(np.asarray(a, np.float64)), dtype)


def _rows(table, start, n):
    return ops.slice(table, (start, 0), (n, ops.shape(table)[1]))


B = SimpleNamespace(
    F=F,
    expand_dims=ops.expand_dims,
    arange=lambda n: ops.arange(n, dtype="int32"),
    broadcast_to=ops.broadcast_to,
    shape=ops.shape,
    cast=ops.cast,
    to_bool=lambda x: ops.cast(x, "bool"),
    logical_and=ops.logical_and,
    logical_not=ops.logical_not,
    greater_equal=ops.greater_equal,
    isneginf=lambda x: ops.logical_and(ops.isinf(x), x < 0),
    where=ops.where,
    zeros_like=ops.zeros_like,
    rows=_rows,
)


def make_attention_mask(
    query_input: Tensor,
    key_input: Tensor,
    pairwise_fn: Callable[..., Tensor] = ops.multiply,
    extra_batch_dims: int = 0,
    dtype: str = "float32",
) -> Tensor:
    """An attention mask ``[..., 1, Lq, Lk]`` from ``pairwise_fn(query_input[..., i], key_input[..., j])``
    (the meaning of Flax's ``make_attention_mask``, on Keras 3 tensors).

    Args:
        query_input: ``[..., Lq]``, e.g. 1 where a query token is real.
        key_input: ``[..., Lk]``.
        pairwise_fn: combines each (query, key) pair; multiply is a logical AND of 0/1 inputs.
        extra_batch_dims: leading axes of size 1 to add.
        dtype: the mask's dtype.

    >>> np.asarray(make_attention_mask(keras.ops.convert_to_tensor([1, 1, 0]), keras.ops.convert_to_tensor([1, 0]))).tolist()
    [[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    """
    return core.make_attention_mask(
        B, ops.convert_to_tensor(query_input), ops.convert_to_tensor(key_input), pairwise_fn, extra_batch_dims, dtype
    )


def make_causal_mask(x: Tensor, extra_batch_dims: int = 0, dtype: str = "float32") -> Tensor:
    """The causal mask ``[..., 1, L, L]`` (position ``i`` sees ``j <= i``) of ``x [..., L]``.

    >>> tuple(make_causal_mask(keras.ops.zeros((1, 3))).shape)
    (1, 1, 3, 3)
    """
    return core.make_causal_mask(B, ops.convert_to_tensor(x), extra_batch_dims, dtype)


def combine_masks(*masks: Tensor | None, dtype: str = "float32") -> Tensor | None:
    """The logical AND of the masks that are not ``None`` (all of one rank), or ``None`` when none is given.

    >>> np.asarray(combine_masks(keras.ops.convert_to_tensor([[1, 1]]), None, keras.ops.convert_to_tensor([[0, 1]]))).tolist()
    [[0.0, 1.0]]
    """
    return core.combine_masks(B, [None if m is None else ops.convert_to_tensor(m) for m in masks], dtype)


def causal_attention_mask(seq_len: int) -> Tensor:
    """The float32 lower-triangular ``(seq_len, seq_len)`` mask of ones (no batch or head axes).

    >>> np.asarray(causal_attention_mask(2)).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    return _from_np(np.tril(np.ones((int(seq_len), int(seq_len)), np.float32)), "float32")


def precompute_freqs_cis(
    dim: int, max_seq_len: int, theta: float = 10000.0, dtype: str = "float32"
) -> tuple[Tensor, Tensor]:
    """RoPE tables ``(cos, sin)``, each ``(max_seq_len, dim // 2)``: angle ``t / theta**(2i / dim)``.

    >>> cos, sin = precompute_freqs_cis(64, 2048)
    >>> tuple(cos.shape)
    (2048, 32)
    """
    cos, sin = core.rope_tables(dim, max_seq_len, theta)
    return _from_np(np.asarray(cos), dtype), _from_np(np.asarray(sin), dtype)


def apply_rotary_emb(x: Tensor, freqs_cos: Tensor, freqs_sin: Tensor, position_offset: int = 0) -> Tensor:
    """Rotate the interleaved pairs of ``x (batch, seq_len, num_heads, head_dim)`` by the tables' rows
    ``position_offset .. position_offset + seq_len``.

    >>> cos, sin = precompute_freqs_cis(8, 16)
    >>> tuple(apply_rotary_emb(keras.ops.ones((2, 4, 3, 8)), cos, sin, position_offset=2).shape)
    (2, 4, 3, 8)
    """
    return core.apply_rotary_emb(B, ops.convert_to_tensor(x), freqs_cos, freqs_sin, int(position_offset))


def normalize_qk(query: Tensor, key: Tensor, epsilon: float = core.V03_NORMALIZE_EPSILON) -> tuple[Tensor, Tensor]:
    """``(query / sqrt(|query|^2 + epsilon), key / sqrt(|key|^2 + epsilon))`` along the last axis.

    >>> q, k = normalize_qk(keras.ops.convert_to_tensor([[3.0, 4.0]]), keras.ops.convert_to_tensor([[0.0, 2.0]]), epsilon=0.0)
    >>> np.asarray(q, np.float64).round(6).tolist(), np.asarray(k).tolist()
    ([[0.6, 0.8]], [[0.0, 1.0]])
    """
    return core.normalize_qk(B, ops.convert_to_tensor(query), ops.convert_to_tensor(key), epsilon)


def _dropout(rate: float) -> Callable[[Any], Any]:
    return lambda w: keras.random.dropout(w, rate)


def _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, spherical, what):
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"{what}: dropout_rate must be in [0, 1), got {dropout_rate}")
    dropout = _dropout(float(dropout_rate)) if dropout_rate and training else None
    mask = None if mask is None else ops.convert_to_tensor(mask)
    return core.attention_weights(
        B,
        ops.convert_to_tensor(query),
        ops.convert_to_tensor(key),
        mask=mask,
        alpha=alpha,
        scale=scale,
        epsilon=epsilon,
        spherical=spherical,
        dropout=dropout,
    )


def yat_attention_weights(
    query: Tensor,
    key: Tensor,
    mask: Tensor | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: Tensor | float | None = None,
    scale: float | None = None,
    spherical: bool = False,
) -> Tensor:
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

    >>> q = keras.random.normal((1, 3, 2, 4))
    >>> tuple(yat_attention_weights(q, q).shape)
    (1, 2, 3, 3)
    """
    return _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, spherical, "yat_attention_weights")


def yat_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: Tensor | float | None = None,
    scale: float | None = None,
    spherical: bool = False,
) -> Tensor:
    """:func:`yat_attention_weights` applied to ``value (batch, Lk, num_heads, v_dim)`` -> ``(batch, Lq,
    num_heads, v_dim)``.

    >>> q = keras.random.normal((1, 3, 2, 4))
    >>> tuple(yat_attention(q, q, q).shape)
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, spherical, "yat_attention")
    return core.readout(B, w, ops.convert_to_tensor(value))


def yat_attention_normalized(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: Tensor | float | None = None,
    scale: float | None = None,
) -> Tensor:
    """:func:`yat_attention` with ``spherical=True`` (the unit vectors' score ``(q.k)^2 / (2 - 2 q.k + eps)``).

    >>> q = keras.random.normal((1, 3, 2, 4))
    >>> tuple(yat_attention_normalized(q, q, q).shape)
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_rate, training, epsilon, alpha, scale, True, "yat_attention_normalized")
    return core.readout(B, w, ops.convert_to_tensor(value))


def rotary_yat_attention_weights(
    query: Tensor,
    key: Tensor,
    freqs_cos: Tensor,
    freqs_sin: Tensor,
    mask: Tensor | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: Tensor | float | None = None,
    scale: float | None = None,
    position_offset: int = 0,
) -> Tensor:
    """:func:`yat_attention_weights` of query and key rotated by :func:`apply_rotary_emb` at ``position_offset``
    (nmn 0.3.5 had it in NNX and MLX).

    >>> q = keras.random.normal((1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> tuple(rotary_yat_attention_weights(q, q, cos, sin).shape)
    (1, 2, 3, 3)
    """
    q = apply_rotary_emb(query, freqs_cos, freqs_sin, position_offset)
    k = apply_rotary_emb(key, freqs_cos, freqs_sin, position_offset)
    return _weights(q, k, mask, dropout_rate, training, epsilon, alpha, scale, False, "rotary_yat_attention_weights")


def rotary_yat_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    freqs_cos: Tensor,
    freqs_sin: Tensor,
    mask: Tensor | None = None,
    dropout_rate: float = 0.0,
    training: bool = False,
    epsilon: float = _EPS,
    alpha: Tensor | float | None = None,
    scale: float | None = None,
    position_offset: int = 0,
) -> Tensor:
    """RoPE on query and key, then :func:`yat_attention`.

    >>> q = keras.random.normal((1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> tuple(rotary_yat_attention(q, q, q, cos, sin).shape)
    (1, 3, 2, 4)
    """
    w = rotary_yat_attention_weights(
        query, key, freqs_cos, freqs_sin, mask, dropout_rate, training, epsilon, alpha, scale, position_offset
    )
    return core.readout(B, w, ops.convert_to_tensor(value))
