"""nmn 0.3's functional attention helpers for Flax NNX, with nmn 0.3.5's signatures (``from nmn.nnx import ...``).

The Yat weights are the layers' own scores (:func:`nmn.core.yat.attention_scores`) under nmn 0.3.5's mask rules
(:mod:`nmn.core.attention_helpers`); the masks, RoPE tables and the standard dot-product attention follow Flax's
own functions of the same names (``dot_product_attention(_weights)`` call Flax's).
:mod:`nmn.nnx.functional` holds nmn's own functional API (``yat_attention(q, k, v, mask, alpha, epsilon, ...)``).

>>> import jax, jax.numpy as jnp
>>> q = k = v = jax.random.normal(jax.random.key(0), (2, 5, 4, 8))
>>> w = yat_attention_weights(q, k, mask=make_causal_mask(jnp.zeros((2, 5))))
>>> w.shape, bool(jnp.allclose(w.sum(-1), 1.0)), float(w[0, 0, 0, 1])
((2, 4, 5, 5), True, 0.0)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import attention as _flax_attention
from flax.nnx.nn.linear import canonicalize_padding
from jax.typing import ArrayLike, DTypeLike

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
from nmn.core.options import SQRT2
from nmn.nnx.dense import default_bias_init, default_kernel_init

#: The initial value of a learnable alpha (nmn 0.3.5's ``default_alpha_init``: ones).
default_alpha_init = nnx.initializers.ones_init()
#: ``constant_alpha=True`` means this value (sqrt 2) in the attention and the convolutions alike.
ATTENTION_DEFAULT_CONSTANT_ALPHA = SQRT2
CONV_DEFAULT_CONSTANT_ALPHA = SQRT2

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
    "dot_product_attention",
    "dot_product_attention_weights",
    "canonicalize_padding",
    "default_kernel_init",
    "default_bias_init",
    "default_alpha_init",
    "ATTENTION_DEFAULT_CONSTANT_ALPHA",
    "CONV_DEFAULT_CONSTANT_ALPHA",
]


def _weights(
    query,
    key,
    *,
    what,
    bias,
    mask,
    broadcast_dropout,
    dropout_rng,
    dropout_rate,
    deterministic,
    dtype,
    precision,
    module,
    epsilon,
    use_softermax,
    power,
    alpha,
    normalization,
    spherical=False,
):
    if precision is not None:
        raise ValueError(
            f"{what}: precision={precision!r} is not supported: nmn computes the Yat scores in float32 at JAX's "
            "default matmul precision (set jax.default_matmul_precision around the call to change it)"
        )
    if dtype is not None:
        query, key = jnp.asarray(query, dtype), jnp.asarray(key, dtype)
    if use_softermax:
        normalization = "softermax"
    dropout = None if deterministic else _h.dropout_fn(dropout_rate, dropout_rng, broadcast_dropout, key.ndim, what)
    w = _h.weights(
        query,
        key,
        mask=mask,
        bias=bias,
        alpha=alpha,
        epsilon=epsilon,
        spherical=spherical,
        normalization=normalization,
        power=power,
        dropout=None,
    )
    if module is not None:
        module.sow(nnx.Intermediate, "attention_weights", w)
    return w if dropout is None else dropout(w)


def yat_attention_weights(
    query: jax.Array,
    key: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
    epsilon: float = _EPS,
    use_softermax: bool = False,
    power: float = 1.0,
    alpha: ArrayLike | None = None,
    normalization: str = "softmax",
) -> jax.Array:
    """Yat attention weights ``(batch, num_heads, Lq, Lk)``: ``normalise(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d))
    + bias)`` over the keys, as nmn 0.3.5 computed them.

    Args:
        query: ``(batch, Lq, num_heads, head_dim)``.
        key: ``(batch, Lk, num_heads, head_dim)``.
        bias: added to the scores; ``-inf`` entries mask like False.
        mask: bool (or 0/1), broadcastable to the weights; False is masked out (weight exactly 0; a row with no
            key left is all zeros).
        broadcast_dropout: one dropout mask for every batch and head.
        dropout_rng: the PRNG key of the dropout (needed when ``dropout_rate > 0`` and not ``deterministic``).
        dropout_rate: dropout on the weights.
        deterministic: no dropout.
        dtype: the dtype to cast query and key to first (the scores always run in float32).
        precision: only ``None`` (nmn's scores use JAX's default precision; other values raise).
        module: an ``nnx.Module`` that sows the weights as ``nnx.Intermediate`` ``"attention_weights"``.
        epsilon: the Yat epsilon.
        use_softermax: same as ``normalization="softermax"``.
        power: softermax's power.
        alpha: multiplies the scores (a number or a scalar array); None for none.
        normalization: ``"softmax"``, ``"softermax"`` or ``"l1"``.

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> yat_attention_weights(q, q, normalization="l1").shape
    (1, 2, 3, 3)
    """
    return _weights(
        query,
        key,
        what="yat_attention_weights",
        bias=bias,
        mask=mask,
        broadcast_dropout=broadcast_dropout,
        dropout_rng=dropout_rng,
        dropout_rate=dropout_rate,
        deterministic=deterministic,
        dtype=dtype,
        precision=precision,
        module=module,
        epsilon=epsilon,
        use_softermax=use_softermax,
        power=power,
        alpha=alpha,
        normalization=normalization,
    )


def yat_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
    epsilon: float = _EPS,
    use_softermax: bool = False,
    power: float = 1.0,
    alpha: ArrayLike | None = None,
    normalization: str = "softmax",
) -> jax.Array:
    """:func:`yat_attention_weights` applied to ``value (batch, Lk, num_heads, v_dim)`` -> ``(batch, Lq, num_heads,
    v_dim)`` (arguments as there).

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> yat_attention(q, q, q).shape
    (1, 3, 2, 4)
    """
    w = _weights(
        query,
        key,
        what="yat_attention",
        bias=bias,
        mask=mask,
        broadcast_dropout=broadcast_dropout,
        dropout_rng=dropout_rng,
        dropout_rate=dropout_rate,
        deterministic=deterministic,
        dtype=dtype,
        precision=precision,
        module=module,
        epsilon=epsilon,
        use_softermax=use_softermax,
        power=power,
        alpha=alpha,
        normalization=normalization,
    )
    return _h.readout(w, value if dtype is None else jnp.asarray(value, dtype))


def yat_attention_normalized(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
    epsilon: float = _EPS,
    use_softermax: bool = False,
    power: float = 1.0,
    alpha: ArrayLike | None = None,
) -> jax.Array:
    """:func:`yat_attention` on ``normalize_qk(query, key, epsilon)``: the spherical Yat score
    ``(q.k)^2 / ((2 - 2 q.k + eps) sqrt(d))`` (nmn's ``spherical=True``), softmax-normalised.

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> yat_attention_normalized(q, q, q).shape
    (1, 3, 2, 4)
    """
    w = _weights(
        query,
        key,
        what="yat_attention_normalized",
        bias=bias,
        mask=mask,
        broadcast_dropout=broadcast_dropout,
        dropout_rng=dropout_rng,
        dropout_rate=dropout_rate,
        deterministic=deterministic,
        dtype=dtype,
        precision=precision,
        module=module,
        epsilon=epsilon,
        use_softermax=use_softermax,
        power=power,
        alpha=alpha,
        normalization="softmax",
        spherical=True,
    )
    return _h.readout(w, value if dtype is None else jnp.asarray(value, dtype))


def rotary_yat_attention_weights(
    query: jax.Array,
    key: jax.Array,
    freqs_cos: jax.Array,
    freqs_sin: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
    epsilon: float = _EPS,
    use_softermax: bool = False,
    power: float = 1.0,
    position_offset: int | jax.Array = 0,
    alpha: ArrayLike | None = None,
    normalization: str = "softmax",
    key_position_offset: int | jax.Array | None = None,
) -> jax.Array:
    """:func:`yat_attention_weights` of ``apply_rotary_emb(query, ..., position_offset)`` and
    ``apply_rotary_emb(key, ..., key_position_offset)`` (``None``: the query's offset).

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> cos, sin = precompute_freqs_cis(4, 8)
    >>> rotary_yat_attention_weights(q, q, cos, sin).shape
    (1, 2, 3, 3)
    """
    kpos = position_offset if key_position_offset is None else key_position_offset
    return _weights(
        apply_rotary_emb(query, freqs_cos, freqs_sin, position_offset),
        apply_rotary_emb(key, freqs_cos, freqs_sin, kpos),
        what="rotary_yat_attention_weights",
        bias=bias,
        mask=mask,
        broadcast_dropout=broadcast_dropout,
        dropout_rng=dropout_rng,
        dropout_rate=dropout_rate,
        deterministic=deterministic,
        dtype=dtype,
        precision=precision,
        module=module,
        epsilon=epsilon,
        use_softermax=use_softermax,
        power=power,
        alpha=alpha,
        normalization=normalization,
    )


def rotary_yat_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    freqs_cos: jax.Array,
    freqs_sin: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
    epsilon: float = _EPS,
    use_softermax: bool = False,
    power: float = 1.0,
    position_offset: int | jax.Array = 0,
    alpha: ArrayLike | None = None,
    normalization: str = "softmax",
    key_position_offset: int | jax.Array | None = None,
) -> jax.Array:
    """RoPE on query and key, then :func:`yat_attention` (arguments as :func:`rotary_yat_attention_weights`).

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
        bias,
        mask,
        broadcast_dropout,
        dropout_rng,
        dropout_rate,
        deterministic,
        dtype,
        precision,
        module,
        epsilon,
        use_softermax,
        power,
        position_offset,
        alpha,
        normalization,
        key_position_offset,
    )
    return _h.readout(w, value if dtype is None else jnp.asarray(value, dtype))


def dot_product_attention_weights(
    query: jax.Array,
    key: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
) -> jax.Array:
    """Standard attention weights ``softmax(q.k / sqrt(d) + bias)``: Flax's
    ``flax.nnx.nn.attention.dot_product_attention_weights`` (nmn 0.3.5's had the same meaning and arguments).

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> dot_product_attention_weights(q, q).shape
    (1, 2, 3, 3)
    """
    return _flax_attention.dot_product_attention_weights(
        query, key, bias, mask, broadcast_dropout, dropout_rng, dropout_rate, deterministic, dtype, precision, module
    )


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    bias: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: DTypeLike | None = None,
    precision: Any = None,
    module: nnx.Module | None = None,
) -> jax.Array:
    """Standard scaled dot-product attention: Flax's ``flax.nnx.dot_product_attention``.

    >>> import jax
    >>> q = jax.random.normal(jax.random.key(0), (1, 3, 2, 4))
    >>> dot_product_attention(q, q, q).shape
    (1, 3, 2, 4)
    """
    return _flax_attention.dot_product_attention(
        query,
        key,
        value,
        bias,
        mask,
        broadcast_dropout,
        dropout_rng,
        dropout_rate,
        deterministic,
        dtype,
        precision,
        module,
    )
