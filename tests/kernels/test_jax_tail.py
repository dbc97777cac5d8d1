"""The JAX Yat tail with its hand-written JVP (nmn._jax.ops.yat_tail) against float64 finite differences of the
numpy tail, in reverse mode, forward mode and second order, and the fenced float32 sum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmn._jax import ops
from nmn._jax.functional import yat_dense


def _np_tail(dot, dist, bias, alpha, eps):
    num = dot + bias
    return alpha * num * num / (np.maximum(dist, 0.0) + eps)


def _args(seed=0):
    rng = np.random.default_rng(seed)
    dot = rng.normal(size=(3, 4))
    dist = rng.normal(size=(3, 4)) + 0.5  # some distances negative: clamped by relu
    dist[dist == 0.0] = 0.1
    bias = rng.normal(size=(4,))
    return [dot, dist, bias, np.float64(1.3), np.float64(0.2)]


def _loss_np(args, cot):
    return float(np.sum(np.sin(_np_tail(*args)) * cot))


def _fd(args, cot, i, j, h=1e-6):
    up = [np.array(a, np.float64, copy=True) for a in args]
    down = [np.array(a, np.float64, copy=True) for a in args]
    up[i].reshape(-1)[j] += h
    down[i].reshape(-1)[j] -= h
    return (_loss_np(up, cot) - _loss_np(down, cot)) / (2 * h)


def test_reverse_mode_matches_finite_differences():
    args = _args()
    cot = np.random.default_rng(1).normal(size=(3, 4))
    jargs = [jnp.asarray(a, jnp.float32) for a in args]
    grads = jax.grad(lambda *a: jnp.sum(jnp.sin(ops.yat_tail(*a)) * cot), argnums=tuple(range(5)))(*jargs)
    for i, g in enumerate(grads):
        g = np.asarray(g, np.float64).reshape(-1)
        want = np.array([_fd(args, cot, i, j) for j in range(g.size)])
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4 * max(1.0, np.max(np.abs(want))))


def test_forward_mode_and_second_order_work():
    """jvp / jacfwd / hessian (a custom_vjp would refuse forward mode) agree with reverse mode and with the
    finite difference of the numpy tail's directional derivative."""
    args = _args(2)
    jargs = [jnp.asarray(a, jnp.float32) for a in args]
    direction = [np.random.default_rng(3 + i).normal(size=np.shape(a)) for i, a in enumerate(args)]
    _, tangent = jax.jvp(ops.yat_tail, tuple(jargs), tuple(jnp.asarray(d, jnp.float32) for d in direction))
    h = 1e-6
    up = _np_tail(*[a + h * d for a, d in zip(args, direction)])
    down = _np_tail(*[a - h * d for a, d in zip(args, direction)])
    np.testing.assert_allclose(np.asarray(tangent, np.float64), (up - down) / (2 * h), rtol=1e-4, atol=1e-4)

    def scalar(bias):
        return jnp.sum(ops.yat_tail(jargs[0], jargs[1], bias, jargs[3], jargs[4]))

    hess = jax.hessian(scalar)(jargs[2])  # d2/dbias2 = 2 alpha sum_rows 1/den on the diagonal
    den = np.maximum(args[1], 0.0) + args[4]
    np.testing.assert_allclose(np.asarray(hess), np.diag(2 * args[3] * np.sum(1.0 / den, 0)), rtol=1e-4)


def test_dense_layer_function_supports_jacfwd():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 3)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4)), jnp.float32)
    fwd = jax.jacfwd(lambda x: yat_dense(x, w))(x)
    rev = jax.jacrev(lambda x: yat_dense(x, w))(x)
    np.testing.assert_allclose(np.asarray(fwd), np.asarray(rev), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_fenced_sum_is_the_sum(dtype):
    x = jnp.asarray(np.random.default_rng(6).normal(size=(5, 7)), dtype)
    np.testing.assert_array_equal(np.asarray(ops.F.sum(x, 0), np.float64), np.asarray(jnp.sum(x, 0), np.float64))
    g = jax.grad(lambda x: jnp.sum(ops.F.sum(x * x, -1, True)))(x.astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(g), 2 * np.asarray(x, np.float32), rtol=1e-6)
