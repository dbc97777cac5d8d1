"""nmn 0.3's functional attention helpers for Flax Linen, with nmn 0.3.5's signatures (``from nmn.linen import ...``).

The Yat weights are the layers' own scores (:func:`nmn.core.yat.attention_scores`) under nmn 0.3.5's mask rules
(:mod:`nmn.core.attention_helpers`). nmn 0.3.5's Linen had no mask or RoPE helpers; they are the NNX ones (the
same JAX functions), so code moves between the two Flax APIs unchanged. :mod:`nmn.linen.functional` holds nmn's
own functional API.

>>> import jax
>>> q = jax.random.normal(jax.random.key(0), (1, 4, 2, 8))
>>> yat_attention(q, q, q, spherical=True).shape
(1, 4, 2, 8)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from nmn._jax import attention_helpers as _h
from nmn._jax.attention_helpers import (
    apply_rotary_emb,
    causal_attention_mask,
    combine_masks,
    make_attention_mask,
    make_causal_mask,
    normalize_qk,
    precompute_freqs_cis,
)
from nmn.core.attention_helpers import V03_ATTENTION_EPSILON

_EPS = V03_ATTENTION_EPSILON

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


def _weights(query, key, mask, dropout_rate, deterministic, epsilon, alpha, spherical, dropout_rng, what):
    dropout = None if deterministic else _h.dropout_fn(dropout_rate, dropout_rng, True, jnp.ndim(key), what)
    return _h.weights(query, key, mask=mask, alpha=alpha, epsilon=epsilon, spherical=spherical, dropout=dropout)


def yat_attention_weights(
    query: jax.Array,
    key: jax.Array,
    mask: ArrayLike | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    epsilon: float = _EPS,
    alpha: ArrayLike | None = None,
    spherical: bool = False,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """Yat attention weights ``(batch, num_heads, Lq, Lk)``: ``softmax(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d)))``
    over the keys, as nmn 0.3.5 computed them.

    Args:
        query: ``(batch, Lq, num_heads, head_dim)``.
        key: ``(batch, Lk, num_heads, head_dim)``.
        mask: bool (or 0/1), broadcastable to the weights; False is masked out (weight exactly 0; a row with no
            key left is all zeros).
        dropout_rate: dropout on the weights when ``deterministic=False``.
        deterministic: no dropout (the default).
        epsilon: the Yat epsilon.
        alpha: multiplies the scores (a number or a scalar array); None for none.
        spherical: score the unit vectors ``normalize_qk(query, key, epsilon)``.
        dropout_rng: the PRNG key of the dropout (new; nmn 0.3.5 had no way to pass one).

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> yat_attention_weights(q, q).shape
    (1, 2, 3, 3)
    """
    return _weights(
        query, key, mask, dropout_rate, deterministic, epsilon, alpha, spherical, dropout_rng, "yat_attention_weights"
    )


def yat_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: ArrayLike | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    epsilon: float = _EPS,
    alpha: ArrayLike | None = None,
    spherical: bool = False,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """:func:`yat_attention_weights` applied to ``value (batch, Lk, num_heads, v_dim)`` -> ``(batch, Lq,
    num_heads, v_dim)``.

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> yat_attention(q, q, q).shape
    (1, 3, 2, 4)
    """
    w = _weights(query, key, mask, dropout_rate, deterministic, epsilon, alpha, spherical, dropout_rng, "yat_attention")
    return _h.readout(w, value)


def yat_attention_normalized(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: ArrayLike | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    epsilon: float = _EPS,
    alpha: ArrayLike | None = None,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """:func:`yat_attention` with ``spherical=True`` (the unit vectors' score ``(q.k)^2 / (2 - 2 q.k + eps)``).

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> yat_attention_normalized(q, q, q).shape
    (1, 3, 2, 4)
    """
    w = _weights(
        query, key, mask, dropout_rate, deterministic, epsilon, alpha, True, dropout_rng, "yat_attention_normalized"
    )
    return _h.readout(w, value)


def rotary_yat_attention_weights(
    query: jax.Array,
    key: jax.Array,
    freqs_cos: jax.Array,
    freqs_sin: jax.Array,
    mask: ArrayLike | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    epsilon: float = _EPS,
    alpha: ArrayLike | None = None,
    position_offset: int | jax.Array = 0,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """:func:`yat_attention_weights` of query and key rotated by :func:`apply_rotary_emb` at ``position_offset``
    (new in Linen; nmn 0.3.5 had it in NNX and MLX).

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> rotary_yat_attention_weights(q, q, cos, sin).shape
    (1, 2, 3, 3)
    """
    q = apply_rotary_emb(query, freqs_cos, freqs_sin, position_offset)
    k = apply_rotary_emb(key, freqs_cos, freqs_sin, position_offset)
    return _weights(
        q, k, mask, dropout_rate, deterministic, epsilon, alpha, False, dropout_rng, "rotary_yat_attention_weights"
    )


def rotary_yat_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    freqs_cos: jax.Array,
    freqs_sin: jax.Array,
    mask: ArrayLike | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    epsilon: float = _EPS,
    alpha: ArrayLike | None = None,
    position_offset: int | jax.Array = 0,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """RoPE on query and key, then :func:`yat_attention`.

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> rotary_yat_attention(q, q, q, cos, sin).shape
    (1, 3, 2, 4)
    """
    w = rotary_yat_attention_weights(
        query,
        key,
        freqs_cos,
        freqs_sin,
        mask,
        dropout_rate,
        deterministic,
        epsilon,
        alpha,
        position_offset,
        dropout_rng,
    )
    return _h.readout(w, value)
