"""nmn 0.3's softplus_bias / scalar_bias and the conv kernel mask on nmn.tf.

Oracles: the same layer without the option holding the effective values (softplus of the raw bias, kernel * mask),
``tf.GradientTape`` against a central finite difference for the raw bias, and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import nmn.tf as ntf

RNG = np.random.default_rng(13)


@pytest.mark.parametrize(
    "cls, mask_shape, x_shape",
    [(ntf.YatConv2D, (3, 3, 2, 4), (2, 6, 6, 2)), (ntf.YatConvTranspose1D, (3, 4, 2), (2, 5, 2))],
    ids=["conv2d", "convT1d"],
)
def test_mask_and_softplus_equal_a_plain_layer_with_the_effective_values(cls, mask_shape, x_shape):
    x = RNG.normal(size=x_shape).astype(np.float32)
    mask = (RNG.random(mask_shape) > 0.4).astype(np.float32)
    layer = cls(4, 3, mask=mask, softplus_bias=True, seed=0)
    layer(x)
    layer.bias.assign(RNG.normal(size=(4,)).astype(np.float32))
    plain = cls(4, 3, seed=0)
    plain(x)
    plain.kernel.assign(layer.kernel.numpy() * mask)
    plain.bias.assign(np.logaddexp(0.0, layer.bias.numpy()).astype(np.float32))
    np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), rtol=1e-6, atol=1e-6)
    assert sorted(v.name.split("/")[-1].split(":")[0] for v in layer.trainable_variables) == ["alpha", "bias", "kernel"]


def test_gradient_wrt_the_raw_scalar_softplus_bias_matches_a_finite_difference():
    layer = ntf.YatNMN(3, softplus_bias=True, scalar_bias=True, seed=0)
    x = tf.constant(RNG.normal(size=(4, 5)).astype(np.float32))
    cot = tf.constant(RNG.normal(size=(4, 3)).astype(np.float32))
    layer(x)
    assert tuple(layer.bias.shape) == (1,)
    layer.bias.assign([-0.3])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * cot)
    g = float(tape.gradient(loss, layer.bias)[0])

    def loss_at(b):
        layer.bias.assign([b])
        return float(tf.reduce_sum(layer(x) * cot))

    h = 1e-2
    fd = (loss_at(-0.3 + h) - loss_at(-0.3 - h)) / (2 * h)
    assert abs(g - fd) <= 1e-3 * max(1.0, abs(fd))


@pytest.mark.parametrize(
    "make, error, words",
    [
        (
            lambda: ntf.YatNMN(2, use_bias=False, scalar_bias=True),
            ValueError,
            "YatNMN: scalar_bias=True needs a learnable bias",
        ),
        (
            lambda: ntf.YatConv2D(2, 3, constant_bias=0.5, softplus_bias=True),
            ValueError,
            "YatConv2D: softplus_bias=True needs a learnable bias, but constant_bias=0.5 is fixed",
        ),
        (
            lambda: ntf.YatConv1D(2, 3, mask=np.ones((3, 2)))(np.ones((1, 5, 2), np.float32)),
            ValueError,
            "mask must have the kernel's shape (3, 2, 2) (layout (*kernel_size, C/G, M)), got shape (3, 2)",
        ),
        (lambda: ntf.YatNMN(2, softplus_bias=2), TypeError, "YatNMN: softplus_bias must be True or False, got 2"),
    ],
    ids=["scalar-no-bias", "softplus-constant", "mask-shape", "softplus-not-bool"],
)
def test_errors_name_the_layer_and_the_option(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)
