"""The ops namespace ``F`` that :mod:`nmn.core.yat` runs on, bound to ``jax.numpy``.

>>> import jax.numpy as jnp
>>> F.tril(2, 3).tolist()
[[True, True, False], [True, True, True]]
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
from jax import lax


def _sum(x, axis, keepdims=False):
    """``jnp.sum`` whose float32 result is fenced off from the consumers' fusion.

    ``reduce_precision`` to float32's own 8 exponent / 23 mantissa bits is the identity on float32 values, but
    XLA keeps it as an op, so the reduction is not fused into the elementwise epilogue of the matmul that
    consumes it. Without it, XLA:CPU (the YNNPACK dot fusion of jax 0.10) folds ``sum(w * w, 0)`` into the Yat
    dense matmul's fusion and materialises ``w * w`` there each call: 512x4096->4096 ran 1.6x Linear+relu
    forward; fenced, 1.03x (scripts/bench_jax.py). Other dtypes (float64 under x64) pass through unchanged.

    >>> float(_sum(jnp.arange(4.0), 0))
    6.0
    """
    out = jnp.sum(x, axis=axis, keepdims=keepdims)
    return lax.reduce_precision(out, exponent_bits=8, mantissa_bits=23) if out.dtype == jnp.float32 else out


@jax.custom_jvp
def _tail_rule(dot, dist, bias, alpha, eps):
    num = dot + bias
    return num * num / (jax.nn.relu(dist) + eps) * alpha


@_tail_rule.defjvp
def _tail_jvp(primals, tangents):
    # one quotient ``ratio = num / den`` serves the value and every partial: d/dnum = 2 alpha ratio,
    # d/dden = -alpha ratio^2, d/dalpha = num ratio; reverse mode transposes this linear map (residuals: ratio,
    # num ratio, alpha and the relu mask), and forward mode (jvp, jacfwd, hessian) keeps working
    dot, dist, bias, alpha, eps = primals
    t_dot, t_dist, t_bias, t_alpha, t_eps = tangents
    num = dot + bias
    ratio = num / (jax.nn.relu(dist) + eps)
    plain = num * ratio
    t_den = jnp.where(dist > 0.0, t_dist, 0.0) + t_eps  # relu'(0) = 0, as jax.nn.relu
    return plain * alpha, alpha * (2.0 * ratio * (t_dot + t_bias) - ratio * ratio * t_den) + plain * t_alpha


def yat_tail(dot, dist, bias, alpha, eps):
    """``alpha (dot + bias)^2 / (relu(dist) + eps)`` with a hand-written JVP (:func:`nmn.core.yat.yat_tail`).

    The derivative shares the one quotient ``(dot + bias) / (relu(dist) + eps)`` with the value, instead of the
    chain of intermediates autodiff of the plain formula keeps; ``bias``/``alpha`` may be ``None`` and ``eps``
    a number or an array.

    >>> y = yat_tail(jnp.array([2.0]), jnp.array([3.0]), None, None, 1.0)
    >>> float(y[0])
    1.0
    """
    dtype = dot.dtype
    bias = jnp.zeros((), dtype) if bias is None else jnp.asarray(bias, dtype)
    alpha = jnp.ones((), dtype) if alpha is None else jnp.asarray(alpha, dtype)
    return _tail_rule(dot, dist, bias, alpha, jnp.asarray(eps, dtype))


def dropconnect_kernel(key: jax.Array, kernel: jax.Array, rate: float) -> jax.Array:
    """``kernel`` with nmn 0.3's DropConnect mask drawn from ``key``: kept entries (Bernoulli ``1 - rate``) scaled by
    ``1 / (1 - rate)``, dropped ones 0 (the one mask formula of nmn.nnx and nmn.linen).

    >>> w = dropconnect_kernel(jax.random.key(0), jnp.ones((4, 4)), 0.5)
    >>> sorted(set(w.ravel().tolist())) in ([0.0, 2.0], [2.0], [0.0])
    True
    """
    keep = 1.0 - rate
    mask = jax.random.bernoulli(key, keep, kernel.shape)
    return jnp.where(mask, kernel / jnp.asarray(keep, kernel.dtype), jnp.zeros((), kernel.dtype))


def _tril(lq: int, lk: int):
    """Bool ``(lq, lk)`` lower-triangular mask, offset so the last query sees the last key."""
    return jnp.tril(jnp.ones((lq, lk), dtype=bool), k=lk - lq)


F = SimpleNamespace(
    sum=_sum,
    sqrt=jnp.sqrt,
    relu=jax.nn.relu,
    softplus=jax.nn.softplus,
    exp=jnp.exp,
    cos=jnp.cos,
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
    yat_tail=yat_tail,
)
