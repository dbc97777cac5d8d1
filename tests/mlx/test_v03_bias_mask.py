"""nmn 0.3's softplus_bias / scalar_bias and the conv kernel mask on nmn.mlx.

Oracles: the same layer without the option holding the effective values (softplus of the raw bias, kernel * mask),
``mx.grad`` against a central finite difference for the raw bias, the config round trip, and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
from mlx.utils import tree_flatten

import nmn.mlx as nm

RNG = np.random.default_rng(17)


@pytest.mark.parametrize(
    "cls, mask_shape, x_shape",
    [(nm.YatConv2D, (4, 3, 3, 2), (2, 6, 6, 2)), (nm.YatConvTranspose1D, (4, 3, 2), (2, 5, 2))],
    ids=["conv2d", "convT1d"],
)
def test_mask_and_scalar_bias_equal_a_plain_layer_with_the_effective_values(cls, mask_shape, x_shape):
    x = mx.array(RNG.normal(size=x_shape).astype(np.float32))
    mask = (RNG.random(mask_shape) > 0.4).astype(np.float32)
    layer = cls(4, 3, in_channels=2, mask=mask, scalar_bias=True)
    layer.bias = mx.array([0.4])
    plain = cls(4, 3, in_channels=2)
    plain.kernel = layer.kernel * mx.array(mask)
    plain.bias = mx.full((4,), 0.4)
    np.testing.assert_allclose(np.array(layer(x)), np.array(plain(x)), rtol=1e-6, atol=1e-6)
    assert sorted(k for k, _ in tree_flatten(layer.trainable_parameters())) == ["alpha", "bias", "kernel"]
    again = cls.from_config(layer.get_config())
    assert np.array_equal(again.mask, mask) and again.yat.scalar_bias


def test_gradient_wrt_the_raw_softplus_bias_matches_a_finite_difference():
    layer = nm.YatNMN(3, in_features=5, softplus_bias=True)
    layer.bias = mx.array([-0.3, 0.2, 1.0])
    x = mx.array(RNG.normal(size=(4, 5)).astype(np.float32))
    cot = mx.array(RNG.normal(size=(4, 3)).astype(np.float32))

    def loss(b):
        layer.bias = b
        return mx.sum(layer(x) * cot)

    b0 = np.array([-0.3, 0.2, 1.0], np.float32)
    g = np.array(mx.grad(loss)(mx.array(b0)))
    h = 1e-2
    for i in range(3):
        up, down = b0.copy(), b0.copy()
        up[i] += h
        down[i] -= h
        fd = (float(loss(mx.array(up))) - float(loss(mx.array(down)))) / (2 * h)
        assert abs(g[i] - fd) <= 1e-3 * max(1.0, abs(fd))


@pytest.mark.parametrize(
    "make, error, words",
    [
        (
            lambda: nm.YatNMN(2, in_features=3, use_bias=False, scalar_bias=True),
            ValueError,
            "YatNMN: scalar_bias=True needs a learnable bias",
        ),
        (
            lambda: nm.YatConv2D(2, 3, constant_bias=0.5, softplus_bias=True),
            ValueError,
            "YatConv2D: softplus_bias=True needs a learnable bias, but constant_bias=0.5 is fixed",
        ),
        (
            lambda: nm.YatConv1D(2, 3, in_channels=2, mask=np.ones((3, 2))),
            ValueError,
            "YatConv1D: mask must have the kernel's shape (2, 3, 2) (layout (filters, *kernel_size, in_channels/groups)), got shape (3, 2)",
        ),
        (
            lambda: nm.YatConvTranspose1D(2, 3, mask=np.ones((2, 3, 5)))(mx.ones((1, 4, 2))),
            ValueError,
            "YatConvTranspose1D: mask must have the kernel's shape (2, 3, 2)",
        ),
    ],
    ids=["scalar-no-bias", "softplus-constant", "mask-shape", "mask-shape-convT-lazy"],
)
def test_errors_name_the_layer_and_the_option(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)
