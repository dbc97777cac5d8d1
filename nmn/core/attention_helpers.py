"""nmn 0.3's attention helpers (masks, rotary tables, Yat attention weights), written once against an ops namespace.

Each framework's ``nmn.<framework>.attention_helpers`` binds these to its arrays and gives them nmn 0.3.5's
signatures; the Yat scores and their normalisation are :func:`nmn.core.yat.attention_scores` and
:func:`nmn.core.yat.normalize_scores` (the layers' own code), so the helpers compute what the layers compute.

``B`` extends the :mod:`nmn.core.yat` ops protocol ``F`` (``B.F``) with ``expand_dims(x, axis)``,
``arange(n)`` (int32), ``broadcast_to(x, shape)``, ``shape(x)``, ``cast(x, dtype)``, ``to_bool(x)``,
``logical_and``, ``logical_not``, ``greater_equal``, ``isneginf``, ``where``, ``zeros_like``, ``ones_tril(n)`` (float32) and
``rows(table, start, n)`` (``table[start:start + n]``; a traced ``start`` where the host allows one).

nmn 0.3.5's rules kept here (they differ from nmn's layers only where said): a boolean mask is True = attend;
masked weights are exact zeros and a query row with no key left has all-zero weights (the layers give such a
row uniform weights, as the ONNX functions do); an additive ``bias`` of ``-inf`` masks like False; ``alpha``
multiplies the scores, else ``scale`` does (never both).

>>> rope_cos, rope_sin = rope_tables(4, 3)
>>> len(rope_cos), len(rope_cos[0]), rope_cos[0]
(3, 2, [1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nmn.core import yat
from nmn.core.options import DEFAULT_EPSILON

#: nmn 0.3.5's default epsilon of the attention helpers (and of ``normalize_qk`` when called on its own: 1e-6).
V03_ATTENTION_EPSILON = DEFAULT_EPSILON
V03_NORMALIZE_EPSILON = 1e-6


def make_attention_mask(
    B: Any, query_input: Any, key_input: Any, pairwise_fn: Callable, extra_batch_dims: int, dtype: Any
) -> Any:
    """``pairwise_fn(q[..., :, None], k[..., None, :])`` with a head axis at -3 and ``extra_batch_dims`` leading
    axes, cast to ``dtype``: shape ``(1,) * extra_batch_dims + (..., 1, Lq, Lk)``."""
    mask = pairwise_fn(B.expand_dims(query_input, -1), B.expand_dims(key_input, -2))
    mask = B.expand_dims(mask, -3)
    for _ in range(int(extra_batch_dims)):
        mask = B.expand_dims(mask, 0)
    return B.cast(mask, dtype)


def make_causal_mask(B: Any, x: Any, extra_batch_dims: int, dtype: Any) -> Any:
    """The lower-triangular mask ``[..., 1, L, L]`` (``j <= i``) of ``x [..., L]``'s last axis."""
    shape = tuple(B.shape(x))
    idxs = B.broadcast_to(B.arange(shape[-1]), shape)
    return make_attention_mask(B, idxs, idxs, B.greater_equal, extra_batch_dims, dtype)


def combine_masks(B: Any, masks: Sequence[Any], dtype: Any) -> Any:
    """Logical AND of the masks that are not ``None`` (all of one rank), cast to ``dtype``; ``None`` if none."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    ranks = [len(B.shape(m)) for m in present]
    if len(set(ranks)) != 1:
        raise ValueError(f"combine_masks: masks must have the same rank, got ranks {tuple(ranks)}")
    mask = B.to_bool(present[0])
    for other in present[1:]:
        mask = B.logical_and(mask, B.to_bool(other))
    return B.cast(mask, dtype)


def rope_tables(dim: int, max_seq_len: int, theta: float = 10000.0) -> tuple[list, list]:
    """nmn 0.3.5's ``precompute_freqs_cis`` tables as float64 nested lists ``(max_seq_len, dim // 2)``:
    ``cos(t / theta**(2i / dim))`` and ``sin(...)`` (the same tables the rotary layers use)."""
    if int(dim) <= 0 or int(dim) % 2:
        raise ValueError(f"precompute_freqs_cis: dim must be a positive even head size, got {dim}")
    return yat.rope_tables(int(dim), int(max_seq_len), float(theta))


def apply_rotary_emb(B: Any, x: Any, freqs_cos: Any, freqs_sin: Any, position_offset: Any) -> Any:
    """Rotate the interleaved pairs ``(x[..., 2i], x[..., 2i+1])`` of ``x (B, L, H, D)`` by the table rows
    ``position_offset .. position_offset + L`` (nmn 0.3.5's ``apply_rotary_emb``)."""
    shape = tuple(B.shape(x))
    if len(shape) != 4:
        raise ValueError(f"apply_rotary_emb: x must be (batch, seq_len, num_heads, head_dim), got shape {shape}")
    seq_len, table_len = shape[1], tuple(B.shape(freqs_cos))[0]
    if isinstance(position_offset, int) and position_offset + seq_len > table_len:
        raise ValueError(
            f"apply_rotary_emb: the tables hold max_seq_len={table_len} positions, but position_offset + seq_len "
            f"= {position_offset + seq_len}; precompute_freqs_cis with a larger max_seq_len"
        )
    cos = B.rows(freqs_cos, position_offset, seq_len)
    sin = B.rows(freqs_sin, position_offset, seq_len)
    return yat.rope(B.F, x, B.F.cast_like(cos, x), B.F.cast_like(sin, x), interleaved=True)


def normalize_qk(B: Any, query: Any, key: Any, epsilon: Any) -> tuple[Any, Any]:
    """``(q / sqrt(|q|^2 + epsilon), k / sqrt(|k|^2 + epsilon))`` along the last axis."""
    F = B.F
    return query / F.sqrt(F.sum(query * query, -1, True) + epsilon), key / F.sqrt(F.sum(key * key, -1, True) + epsilon)


def attention_weights(
    B: Any,
    query: Any,
    key: Any,
    *,
    mask: Any = None,
    bias: Any = None,
    alpha: Any = None,
    scale: Any = None,
    epsilon: Any = V03_ATTENTION_EPSILON,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    dropout: Callable[[Any], Any] | None = None,
) -> Any:
    """Yat attention weights ``(B, H, Lq, Lk)`` of heads ``(B, L, H, D)`` under nmn 0.3.5's rules (module doc):
    :func:`nmn.core.yat.attention_scores` x ``alpha`` (or ``scale``) + ``bias``, masked, normalised by
    :func:`nmn.core.yat.normalize_scores`, masked entries zeroed, then ``dropout``; in the query's dtype."""
    F = B.F
    for name, t in (("query", query), ("key", key)):
        if len(tuple(B.shape(t))) != 4:
            raise ValueError(
                f"yat_attention_weights: {name} must be (batch, seq_len, num_heads, head_dim), got shape "
                f"{tuple(B.shape(t))}"
            )
    factor = alpha if alpha is not None else scale
    if factor is not None and not isinstance(factor, (int, float)):
        factor = F.to_f32(factor)
    scores = yat.attention_scores(F, F.to_f32(query), F.to_f32(key), factor, epsilon, spherical=spherical)
    keep = None if mask is None else B.broadcast_to(B.to_bool(mask), tuple(B.shape(scores)))
    if bias is not None:
        bias = F.to_f32(bias)
        scores = scores + bias
        finite = B.broadcast_to(B.logical_not(B.isneginf(bias)), tuple(B.shape(scores)))
        keep = finite if keep is None else B.logical_and(keep, finite)
        scores = B.where(finite, scores, B.zeros_like(scores))  # -inf is a mask, not a score
    weights = yat.normalize_scores(F, scores, keep, epsilon, normalization=normalization, power=power)
    if keep is not None:
        weights = B.where(keep, weights, B.zeros_like(weights))
    if dropout is not None:
        weights = dropout(weights)
    return F.cast_like(weights, query)


def readout(B: Any, weights: Any, value: Any) -> Any:
    """``weights (B, H, Lq, Lk) . value (B, Lk, H, D) -> (B, Lq, H, D)`` in the value's dtype."""
    F = B.F
    return F.einsum("bhqk,bkhd->bqhd", F.cast_like(weights, value), value)
