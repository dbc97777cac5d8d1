"""nmn 0.3's attention helpers on ``jax.numpy``, shared by ``nmn.nnx`` and ``nmn.linen``.

The math is :mod:`nmn.core.attention_helpers` (and through it :mod:`nmn.core.yat`, the layers' own code); this
module binds it to JAX arrays. ``nmn.nnx.attention_helpers`` and ``nmn.linen.attention_helpers`` give each host
its nmn 0.3.5 signatures.

>>> import jax.numpy as jnp
>>> causal_attention_mask(3).tolist()
[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike

from nmn._jax.ops import F
from nmn.core import attention_helpers as core


def _rows(table, start, n):
    if isinstance(start, int):
        return table[start : start + n]
    return lax.dynamic_slice_in_dim(table, start, n, axis=0)  # a traced decode position (under jit)


B = SimpleNamespace(
    F=F,
    expand_dims=jnp.expand_dims,
    arange=lambda n: jnp.arange(n, dtype=jnp.int32),
    broadcast_to=jnp.broadcast_to,
    shape=jnp.shape,
    cast=lambda x, dtype: jnp.asarray(x).astype(dtype),
    to_bool=lambda x: jnp.asarray(x).astype(bool),
    logical_and=jnp.logical_and,
    logical_not=jnp.logical_not,
    greater_equal=jnp.greater_equal,
    isneginf=jnp.isneginf,
    where=jnp.where,
    zeros_like=jnp.zeros_like,
    rows=_rows,
)


def make_attention_mask(
    query_input: ArrayLike,
    key_input: ArrayLike,
    pairwise_fn: Callable[..., jax.Array] = jnp.multiply,
    extra_batch_dims: int = 0,
    dtype: DTypeLike = jnp.float32,
) -> jax.Array:
    """An attention mask ``[..., 1, Lq, Lk]`` from ``pairwise_fn(query_input[..., i], key_input[..., j])``.

    Args:
        query_input: ``[..., Lq]``, e.g. 1 where a query token is real.
        key_input: ``[..., Lk]``.
        pairwise_fn: combines each (query, key) pair; multiply is a logical AND of 0/1 inputs.
        extra_batch_dims: leading axes of size 1 to add.
        dtype: the mask's dtype.

    >>> make_attention_mask(jnp.array([1, 1, 0]), jnp.array([1, 0])).tolist()
    [[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    """
    return core.make_attention_mask(
        B, jnp.asarray(query_input), jnp.asarray(key_input), pairwise_fn, extra_batch_dims, dtype
    )


def make_causal_mask(x: ArrayLike, extra_batch_dims: int = 0, dtype: DTypeLike = jnp.float32) -> jax.Array:
    """The causal mask ``[..., 1, L, L]`` (position ``i`` sees ``j <= i``) of ``x [..., L]``.

    >>> make_causal_mask(jnp.zeros((1, 3))).shape
    (1, 1, 3, 3)
    """
    return core.make_causal_mask(B, jnp.asarray(x), extra_batch_dims, dtype)


def combine_masks(*masks: ArrayLike | None, dtype: DTypeLike = jnp.float32) -> jax.Array | None:
    """The logical AND of the masks that are not ``None`` (all of one rank), or ``None`` when none is given.

    >>> combine_masks(jnp.array([[1, 1]]), None, jnp.array([[0, 1]])).tolist()
    [[0.0, 1.0]]
    """
    return core.combine_masks(B, [None if m is None else jnp.asarray(m) for m in masks], dtype)


def causal_attention_mask(seq_len: int) -> jax.Array:
    """The float32 lower-triangular ``(seq_len, seq_len)`` mask of ones (no batch or head axes).

    >>> causal_attention_mask(2).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    return jnp.tril(jnp.ones((int(seq_len), int(seq_len)), jnp.float32))


def precompute_freqs_cis(
    dim: int, max_seq_len: int, theta: float = 10000.0, dtype: DTypeLike = jnp.float32
) -> tuple[jax.Array, jax.Array]:
    """RoPE tables ``(cos, sin)``, each ``(max_seq_len, dim // 2)``: angle ``t / theta**(2i / dim)``.

    >>> cos, sin = precompute_freqs_cis(64, 2048)
    >>> cos.shape
    (2048, 32)
    """
    cos, sin = core.rope_tables(dim, max_seq_len, theta)
    return jnp.asarray(np.asarray(cos), dtype), jnp.asarray(np.asarray(sin), dtype)


def apply_rotary_emb(
    x: jax.Array, freqs_cos: jax.Array, freqs_sin: jax.Array, position_offset: int | jax.Array = 0
) -> jax.Array:
    """Rotate the interleaved pairs of ``x (batch, seq_len, num_heads, head_dim)`` by the tables' rows
    ``position_offset .. position_offset + seq_len`` (a traced offset works under ``jit``).

    >>> cos, sin = precompute_freqs_cis(8, 16)
    >>> apply_rotary_emb(jnp.ones((2, 4, 3, 8)), cos, sin, position_offset=2).shape
    (2, 4, 3, 8)
    """
    offset = int(position_offset) if isinstance(position_offset, (int, np.integer)) else position_offset
    return core.apply_rotary_emb(B, x, freqs_cos, freqs_sin, offset)


def normalize_qk(
    query: jax.Array, key: jax.Array, epsilon: float = core.V03_NORMALIZE_EPSILON
) -> tuple[jax.Array, jax.Array]:
    """``(query / sqrt(|query|^2 + epsilon), key / sqrt(|key|^2 + epsilon))`` along the last axis.

    >>> q, k = normalize_qk(jnp.array([[3.0, 4.0]]), jnp.array([[0.0, 2.0]]), epsilon=0.0)
    >>> q.tolist(), k.tolist()
    ([[0.6000000238418579, 0.800000011920929]], [[0.0, 1.0]])
    """
    return core.normalize_qk(B, query, key, epsilon)


def weights(query, key, *, dropout=None, **kw) -> jax.Array:
    """:func:`nmn.core.attention_helpers.attention_weights` on JAX arrays (``dropout``: a callable or None)."""
    return core.attention_weights(B, query, key, dropout=dropout, **kw)


def readout(w, value) -> jax.Array:
    """``w (B, H, Lq, Lk) . value (B, Lk, H, D)``."""
    return core.readout(B, w, value)


def dropout_fn(rate: float, rng, broadcast: bool, key_ndim: int, what: str):
    """A callable applying inverted dropout of ``rate`` to attention weights with ``rng`` (nmn 0.3.5's: the mask
    broadcast over the batch and head axes when ``broadcast``), or None when ``rate`` is 0."""
    if not rate:
        return None
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{what}: dropout_rate must be in [0, 1), got {rate}")
    if rng is None:
        raise ValueError(f"{what}: dropout_rate={rate} with deterministic=False needs dropout_rng=<jax PRNG key>")
    keep_prob = 1.0 - float(rate)

    def apply(w):
        shape = (1,) * (key_ndim - 2) + w.shape[-2:] if broadcast else w.shape
        keep = jax.random.bernoulli(rng, keep_prob, shape)
        return w * (keep.astype(w.dtype) / jnp.asarray(keep_prob, w.dtype))

    return apply
