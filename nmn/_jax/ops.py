"""The ops namespace ``F`` that :mod:`nmn.core.yat` runs on, bound to ``jax.numpy``.

>>> import jax.numpy as jnp
>>> F.tril(2, 3).tolist()
[[True, True, False], [True, True, True]]
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp


def _tril(lq: int, lk: int):
    """Bool ``(lq, lk)`` lower-triangular mask, offset so the last query sees the last key."""
    return jnp.tril(jnp.ones((lq, lk), dtype=bool), k=lk - lq)


F = SimpleNamespace(
    sum=lambda x, axis, keepdims=False: jnp.sum(x, axis=axis, keepdims=keepdims),
    sqrt=jnp.sqrt,
    relu=jax.nn.relu,
    softplus=jax.nn.softplus,
    exp=jnp.exp,
    abs=jnp.abs,
    sign=jnp.sign,
    matmul=jnp.matmul,
    einsum=jnp.einsum,
    where=jnp.where,
    softmax=lambda x, axis: jax.nn.softmax(x, axis=axis),
    cumsum=lambda x, axis: jnp.cumsum(x, axis=axis),
    tril=_tril,
    logical_and=jnp.logical_and,
    full_like=jnp.full_like,
    to_f32=lambda x: x.astype(jnp.float32),
    cast_like=lambda x, ref: x.astype(ref.dtype),
    reshape=jnp.reshape,
    stack=lambda xs, axis: jnp.stack(xs, axis=axis),
    concat=lambda xs, axis: jnp.concatenate(xs, axis=axis),
)
