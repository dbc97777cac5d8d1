"""nmn 0.3's softplus_bias / scalar_bias and the conv kernel mask on nmn.nnx and nmn.linen.

Oracles: Flax's own ``nnx.Conv(mask=...)`` / ``nn.Conv(mask=...)`` masking rule (the same kernel with masked
entries zeroed, in a plain layer), the same layer without the option holding the effective bias, ``jax.grad``
against a central finite difference for the raw bias, and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp
from flax import linen as lnn
from flax import nnx

import nmn.linen as L
import nmn.nnx as N

RNG = np.random.default_rng(9)


def test_nnx_mask_is_a_buffer_and_equals_a_plain_conv_on_the_masked_kernel():
    mask = (RNG.random((3, 3, 2, 4)) > 0.4).astype(np.float32)
    masked = N.YatConv2D(2, 4, 3, mask=mask, rngs=nnx.Rngs(0))
    plain = N.YatConv2D(2, 4, 3, rngs=nnx.Rngs(0))
    plain.kernel[...] = masked.kernel[...] * mask
    x = jnp.asarray(RNG.normal(size=(2, 6, 6, 2)), jnp.float32)
    np.testing.assert_allclose(masked(x), plain(x), rtol=1e-6, atol=1e-6)
    assert "mask" not in nnx.to_pure_dict(nnx.state(masked, nnx.Param))  # not trained
    graphdef, state = nnx.split(masked)
    jitted = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))
    np.testing.assert_allclose(jitted(state, x), masked(x), rtol=1e-6, atol=1e-6)


def test_nnx_gradient_wrt_the_raw_scalar_softplus_bias_matches_a_finite_difference():
    layer = N.YatNMN(5, 3, softplus_bias=True, scalar_bias=True, rngs=nnx.Rngs(0))
    layer.bias[...] = jnp.array([-0.3], jnp.float32)
    x = jnp.asarray(RNG.normal(size=(4, 5)), jnp.float32)
    cot = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
    g = float(nnx.to_pure_dict(nnx.grad(lambda m: jnp.sum(m(x) * cot))(layer))["bias"][0])

    def loss_at(b):
        layer.bias[...] = jnp.array([b], jnp.float32)
        return float(jnp.sum(layer(x) * cot))

    h = 1e-2
    fd = (loss_at(-0.3 + h) - loss_at(-0.3 - h)) / (2 * h)
    assert abs(g - fd) <= 1e-3 * max(1.0, abs(fd))


def test_linen_mask_follows_flax_nn_conv():
    """Flax's own ``nn.Conv(mask=...)`` on the same kernel computes the plain contraction with the kernel our
    module exports as effective (``kernel * mask``): the mask means what it means in Flax."""
    mask = (RNG.random((3, 2, 4)) > 0.4).astype(np.float32)
    x = jnp.asarray(RNG.normal(size=(2, 7, 2)), jnp.float32)
    ours = L.YatConv1D(features=4, kernel_size=3, padding="VALID", mask=mask)
    flax_conv = lnn.Conv(features=4, kernel_size=(3,), padding="VALID", mask=mask, use_bias=False)
    v = ours.init(jax.random.key(0), x)
    fv = flax_conv.init(jax.random.key(0), x)
    fv = {"params": {"kernel": v["params"]["kernel"]}}
    kernel = ours.bind(v)._export_params()["weight"]  # canonical (M, C, k)
    np.testing.assert_allclose(
        np.asarray(flax_conv.apply(fv, x)),
        np.einsum("nlkc,mck->nlm", np.stack([np.asarray(x)[:, i : i + 3] for i in range(5)], 1), kernel),
        rtol=1e-5,
        atol=1e-5,
    )


def test_linen_softplus_bias_equals_a_plain_module_with_the_effective_bias():
    x = jnp.asarray(RNG.normal(size=(3, 5)), jnp.float32)
    soft = L.YatNMN(features=4, softplus_bias=True)
    v = soft.init(jax.random.key(0), x)
    raw = jnp.asarray(RNG.normal(size=(4,)), jnp.float32)
    v = {"params": {**v["params"], "bias": raw}}
    plain_v = {"params": {**v["params"], "bias": jax.nn.softplus(raw)}}
    np.testing.assert_allclose(soft.apply(v, x), L.YatNMN(features=4).apply(plain_v, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (
            lambda: N.YatNMN(3, 2, use_bias=False, scalar_bias=True, rngs=nnx.Rngs(0)),
            ValueError,
            "YatNMN: scalar_bias=True needs a learnable bias",
        ),
        (
            lambda: N.YatConv2D(2, 4, 3, constant_bias=0.5, softplus_bias=True, rngs=nnx.Rngs(0)),
            ValueError,
            "YatConv2D: softplus_bias=True needs a learnable bias, but constant_bias=0.5 is fixed",
        ),
        (
            lambda: N.YatConv2D(2, 4, 3, mask=np.ones((4, 2, 3, 3)), rngs=nnx.Rngs(0)),
            ValueError,
            "YatConv2D: mask must have the kernel's shape (3, 3, 2, 4) (layout (*kernel_size, C/G, M)), got shape (4, 2, 3, 3)",
        ),
        (
            lambda: N.YatConvTranspose1D(2, 4, 3, mask=np.ones((3, 4, 2)), rngs=nnx.Rngs(0)),
            ValueError,
            "YatConvTranspose1D: mask must have the kernel's shape (3, 2, 4)",
        ),
        (
            lambda: L.YatNMN(features=2, use_bias=False, softplus_bias=True),
            ValueError,
            "YatNMN: softplus_bias=True needs a learnable bias",
        ),
        (
            lambda: L.YatConv1D(features=2, kernel_size=3, mask=np.ones((3, 2))).init(
                jax.random.key(0), jnp.ones((1, 5, 2))
            ),
            ValueError,
            "YatConv1D: mask must have the kernel's shape (3, 2, 2)",
        ),
    ],
    ids=[
        "nnx-scalar-no-bias",
        "nnx-softplus-constant",
        "nnx-mask-shape",
        "nnx-mask-shape-convT",
        "linen-softplus-no-bias",
        "linen-mask-shape",
    ],
)
def test_errors_name_the_layer_and_the_option(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)
