"""nmn 0.3's DropConnect (``use_dropconnect``/``drop_rate``) on nmn.nnx's YatNMN, YatConv and YatConvTranspose,
in the ``nnx.Dropout`` idiom (a ``'dropout'`` rng stream, ``deterministic`` on the constructor and the call,
``model.eval()``). Oracles: the layer without DropConnect (inference and export must be identical), a numpy Yat
dense product on the kernel masked by the same key, and the binomial bounds of the mask's mean over N draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nmn.nnx as N
from nmn.interchange import export
from nmn.nnx._ops import dropconnect

RATE = 0.5


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


LAYERS = {
    "dense": (lambda **kw: N.YatNMN(3, 5, rngs=nnx.Rngs(0), **kw), (4, 3)),
    "conv1d": (lambda **kw: N.YatConv1D(2, 3, 3, rngs=nnx.Rngs(1), **kw), (2, 7, 2)),
    "conv2d": (lambda **kw: N.YatConv2D(2, 4, 3, strides=2, rngs=nnx.Rngs(2), **kw), (2, 6, 6, 2)),
    "convT2d": (lambda **kw: N.YatConvTranspose2D(2, 3, 2, strides=2, rngs=nnx.Rngs(3), **kw), (2, 3, 3, 2)),
    "convT3d": (lambda **kw: N.YatConvTranspose3D(1, 2, 2, rngs=nnx.Rngs(4), **kw), (1, 3, 3, 3, 1)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_inference_is_the_layer_without_dropconnect(name):
    make, shape = LAYERS[name]
    x = _x(shape)
    plain, dc = make(), make(use_dropconnect=True, drop_rate=RATE)
    np.testing.assert_array_equal(np.asarray(dc(x, deterministic=True)), np.asarray(plain(x)))
    assert make(drop_rate=RATE).dropconnect_rngs is None  # use_dropconnect=False: off, no rng state
    dc.eval()
    np.testing.assert_array_equal(np.asarray(dc(x)), np.asarray(plain(x)))
    np.testing.assert_array_equal(
        np.asarray(make(deterministic=True, use_dropconnect=True, drop_rate=RATE)(x)), plain(x)
    )


@pytest.mark.parametrize("name", list(LAYERS))
def test_export_is_the_file_of_the_layer_without_dropconnect(name):
    make, shape = LAYERS[name]
    x = np.asarray(_x(shape))
    dc = make(use_dropconnect=True, drop_rate=RATE)
    a, b = export(make(), x), export(dc, x)
    assert a.graph.SerializeToString() == b.graph.SerializeToString()
    assert dc.deterministic is False  # export put the model in eval mode and restored it
    assert not np.array_equal(np.asarray(dc(x)), np.asarray(make()(x)))


@pytest.mark.parametrize("name", list(LAYERS))
def test_training_masks_the_kernel_with_a_fresh_mask_per_call(name):
    make, shape = LAYERS[name]
    x = _x(shape, 1)
    dc = make(use_dropconnect=True, drop_rate=RATE)
    infer = np.asarray(dc(x, deterministic=True))
    first, second = np.asarray(dc(x)), np.asarray(dc(x))
    assert not np.allclose(first, infer) and not np.allclose(first, second)
    # the same key gives the same mask: the layer with that masked kernel, deterministic, is the oracle
    key = jax.random.key(7)
    masked = make()
    keep = jax.random.bernoulli(key, 1 - RATE, dc.kernel.shape)
    masked.kernel[...] = jnp.where(keep, dc.kernel[...] / (1 - RATE), 0.0)
    np.testing.assert_allclose(np.asarray(dc(x, rngs=key)), np.asarray(masked(x)), rtol=1e-6, atol=1e-6)


def test_dense_training_output_is_the_numpy_yat_product_of_the_masked_kernel():
    layer = N.YatNMN(3, 5, use_dropconnect=True, drop_rate=0.25, rngs=nnx.Rngs(0))
    x, key = np.asarray(_x((4, 3), 2)), jax.random.key(11)
    w = np.asarray(layer.kernel[...]) * np.asarray(jax.random.bernoulli(key, 0.75, (3, 5))) / 0.75
    dot = x @ w + np.asarray(layer.bias[...])
    dist = np.maximum((x * x).sum(-1, keepdims=True) + (w * w).sum(0) - 2 * x @ w, 0.0)
    want = np.asarray(layer.alpha[...]) * dot**2 / (dist + 1e-5)
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x), rngs=key)), want, rtol=1e-5, atol=1e-5)


def test_mean_of_masked_kernels_approaches_the_kernel_and_the_drop_fraction_the_rate():
    layer = N.YatNMN(4, 6, use_dropconnect=True, drop_rate=RATE, rngs=nnx.Rngs(0))
    w, n = layer.kernel[...], 4000
    draws = jax.vmap(lambda k: dropconnect(layer, w, False, k))(jax.random.split(jax.random.key(3), n))
    # each entry of the mean is w / p * Binomial(n, p) / n: standard deviation |w| sqrt((1 - p) / (p n))
    bound = 6 * np.abs(np.asarray(w)) * np.sqrt(RATE / ((1 - RATE) * n))
    assert np.all(np.abs(np.asarray(draws.mean(0) - w)) <= bound)
    dropped = float(jnp.mean(draws == 0))
    assert abs(dropped - RATE) <= 6 * np.sqrt(RATE * (1 - RATE) / draws.size)


def test_jitted_training_steps_draw_new_masks():
    layer = N.YatNMN(3, 5, use_dropconnect=True, drop_rate=RATE, rngs=nnx.Rngs(0))
    step = nnx.jit(lambda m, x: m(x))
    x = _x((4, 3))
    assert not np.allclose(np.asarray(step(layer, x)), np.asarray(step(layer, x)))


@pytest.mark.parametrize("name", list(LAYERS))
def test_bad_options_raise_the_core_error_naming_the_layer(name):
    make, _ = LAYERS[name]
    layer = type(make())
    with pytest.raises(ValueError, match=f"{layer.__name__}: drop_rate must be in \\[0, 1\\), got 1.0"):
        make(use_dropconnect=True, drop_rate=1.0)
    with pytest.raises(TypeError, match=f"{layer.__name__}: use_dropconnect must be True or False"):
        make(use_dropconnect="yes", drop_rate=0.1)


def test_positive_init_is_the_absolute_value_of_the_kernel_init_draw():
    pos = N.YatNMN(3, 5, positive_init=True, rngs=nnx.Rngs(0)).kernel[...]
    base = N.YatNMN(3, 5, rngs=nnx.Rngs(0)).kernel[...]
    np.testing.assert_array_equal(np.asarray(pos), np.abs(np.asarray(base)))
    assert float(jnp.min(base)) < 0
