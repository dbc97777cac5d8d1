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


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the cotangent of an operand that was broadcast up to ``g.shape``)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return jnp.sum(g, axis=axes).reshape(shape)


@jax.custom_vjp
def _tail_vjp(dot, dist, bias, alpha, eps):
    num = dot + bias
    return num * num / (jax.nn.relu(dist) + eps) * alpha


def _tail_fwd(dot, dist, bias, alpha, eps):
    num = dot + bias
    ratio = num / (jax.nn.relu(dist) + eps)
    return num * ratio * alpha, (num, dist, bias, alpha, eps)


def _tail_bwd(res, ct):
    # saves num and dist only; num / den is recomputed (one fused elementwise pass with the cotangents)
    num, dist, bias, alpha, eps = res
    ratio = num / (jax.nn.relu(dist) + eps)
    scaled = ct * alpha
    d_num = 2.0 * scaled * ratio
    d_den = -scaled * ratio * ratio
    d_dist = jnp.where(dist > 0.0, d_den, 0.0)  # relu'(0) = 0, as jax.nn.relu
    return (
        d_num,
        d_dist,
        _unbroadcast(d_num, jnp.shape(bias)),
        _unbroadcast(ct * num * ratio, jnp.shape(alpha)),
        _unbroadcast(d_den, jnp.shape(eps)),
    )


_tail_vjp.defvjp(_tail_fwd, _tail_bwd)


def yat_tail(dot, dist, bias, alpha, eps):
    """``alpha (dot + bias)^2 / (relu(dist) + eps)`` with a hand-written VJP (:func:`nmn.core.yat.yat_tail`).

    The backward pass keeps ``dot + bias`` and ``dist`` and recomputes the quotient, instead of the
    intermediates autodiff would keep; ``bias``/``alpha`` may be ``None`` and ``eps`` a number or an array.

    >>> y = yat_tail(jnp.array([2.0]), jnp.array([3.0]), None, None, 1.0)
    >>> float(y[0])
    1.0
    """
    dtype = dot.dtype
    bias = jnp.zeros((), dtype) if bias is None else jnp.asarray(bias, dtype)
    alpha = jnp.ones((), dtype) if alpha is None else jnp.asarray(alpha, dtype)
    return _tail_vjp(dot, dist, bias, alpha, jnp.asarray(eps, dtype))


def _tril(lq: int, lk: int):
    """Bool ``(lq, lk)`` lower-triangular mask, offset so the last query sees the last key."""
    return jnp.tril(jnp.ones((lq, lk), dtype=bool), k=lk - lq)


F = SimpleNamespace(
    sum=_sum,
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
    yat_tail=yat_tail,
)
