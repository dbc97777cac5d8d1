"""The MLX fast paths of nmn.mlx._ops (the attention contractions and the projection product with its own
backward) equal the plain MLX forms to float32 rounding, forward and backward."""

from __future__ import annotations

import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from nmn.mlx import MultiHeadYatAttention
from nmn.mlx._ops import _EINSUM_FAST, F, linear

TOL = dict(rtol=2e-5, atol=2e-5)


def _close(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert mx.allclose(a, b, **TOL).item(), float(mx.max(mx.abs(a - b)).item())


@pytest.mark.parametrize("spec", sorted(_EINSUM_FAST))
def test_einsum_fast_equals_einsum(spec):
    mx.random.seed(1)
    lhs, rhs = spec.split("->")[0].split(",")
    sizes = dict(b=2, q=5, k=7, h=3, d=4)
    a = mx.random.normal([sizes[c] for c in lhs])
    b = a if lhs == rhs else mx.random.normal([sizes[c] for c in rhs])
    _close(F.einsum(spec, a, b), mx.einsum(spec, a, b))
    grad_fast = mx.grad(lambda a, b: (F.einsum(spec, a, b) ** 2).sum(), argnums=(0, 1))(a, b)
    grad_ref = mx.grad(lambda a, b: (mx.einsum(spec, a, b) ** 2).sum(), argnums=(0, 1))(a, b)
    for got, want in zip(grad_fast, grad_ref):
        _close(got, want)


def test_einsum_other_specs_fall_back():
    a, b = mx.ones((2, 3)), mx.ones((3, 4))
    _close(F.einsum("ij,jk->ik", a, b), mx.einsum("ij,jk->ik", a, b))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("compiled", [False, True])
def test_linear_equals_nn_linear(bias, compiled):
    mx.random.seed(2)
    x = mx.random.normal((2, 3, 6))
    params = nn.Linear(6, 5, bias=bias).parameters()

    def loss(use_fast):
        def f(params, x):
            layer = nn.Linear(6, 5, bias=bias)  # a fresh module per trace: the function stays pure
            layer.update(params)
            return ((linear(layer, x) if use_fast else layer(x)) ** 2).sum()

        return f

    _close(loss(True)(params, x), loss(False)(params, x))
    grad = mx.grad(loss(True), argnums=(0, 1))
    got = (mx.compile(grad) if compiled else grad)(params, x)
    want = mx.grad(loss(False), argnums=(0, 1))(params, x)
    for key in want[0]:
        _close(got[0][key], want[0][key])
    _close(got[1], want[1])


def test_linear_leaves_other_layers_alone():
    class Doubled(nn.Linear):
        def __call__(self, x):
            return 2.0 * super().__call__(x)

    layer = Doubled(4, 3)
    x = mx.ones((2, 4))
    _close(linear(layer, x), layer(x))
    quantized = nn.QuantizedLinear.from_linear(nn.Linear(64, 64))
    x = mx.random.normal((2, 64))
    _close(linear(quantized, x), quantized(x))


def test_attention_gradients_unchanged():
    """The layer's parameter gradients equal those of the plain forms (nn.Linear, mx.einsum)."""
    mx.random.seed(3)
    attn = MultiHeadYatAttention(8, 2, causal=True)
    x = mx.random.normal((2, 5, 8))
    fast = nn.value_and_grad(attn, lambda m, x: (m(x) ** 2).sum())(attn, x)

    import nmn.mlx._ops as ops
    import nmn.mlx.attention as attention

    saved = ops.F.einsum, attention.linear
    ops.F.einsum, attention.linear = mx.einsum, lambda layer, x: layer(x)
    try:
        plain = nn.value_and_grad(attn, lambda m, x: (m(x) ** 2).sum())(attn, x)
    finally:
        ops.F.einsum, attention.linear = saved
    _close(fast[0], plain[0])
    from mlx.utils import tree_flatten

    flat_fast, flat_plain = dict(tree_flatten(fast[1])), dict(tree_flatten(plain[1]))
    assert flat_fast.keys() == flat_plain.keys() and flat_fast
    for key in flat_plain:
        _close(flat_fast[key], flat_plain[key])
