"""nmn 0.3's DropConnect (``use_dropconnect``/``drop_rate``) on nmn.linen's YatNMN, YatConv*D and YatConvTranspose*D,
in Linen's idiom (``deterministic`` on the module or the call, the ``'dropout'`` rng), and ``positive_init``.
Oracles: the module without DropConnect on the same variables (inference and export identical), the module
without DropConnect on the kernel masked by the same rng, and the binomial bound of the drop fraction."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmn.linen as L
from nmn.interchange import export

RATE = 0.5

LAYERS = {
    "dense": (lambda **kw: L.YatNMN(5, **kw), (4, 3)),
    "conv1d": (lambda **kw: L.YatConv1D(3, 3, **kw), (2, 7, 2)),
    "conv2d": (lambda **kw: L.YatConv2D(4, 3, strides=2, **kw), (2, 6, 6, 2)),
    "convT2d": (lambda **kw: L.YatConvTranspose2D(3, 2, strides=2, **kw), (2, 3, 3, 2)),
}


def _setup(name, seed=0):
    make, shape = LAYERS[name]
    x = jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    plain = make()
    return make, plain, plain.init(jax.random.key(0), x), x


@pytest.mark.parametrize("name", list(LAYERS))
def test_inference_and_export_are_the_layer_without_dropconnect(name):
    make, plain, variables, x = _setup(name)
    dc = make(use_dropconnect=True, drop_rate=RATE)
    want = np.asarray(plain.apply(variables, x))
    np.testing.assert_array_equal(np.asarray(dc.apply(variables, x)), want)  # deterministic unset: inference
    np.testing.assert_array_equal(np.asarray(dc.apply(variables, x, deterministic=True)), want)
    a = export(plain, np.asarray(x), variables=variables)
    b = export(dc, np.asarray(x), variables=variables)
    assert a.graph.SerializeToString() == b.graph.SerializeToString()


@pytest.mark.parametrize("name", list(LAYERS))
def test_training_masks_the_kernel_from_the_dropout_rng(name):
    make, plain, variables, x = _setup(name, 1)
    dc = make(use_dropconnect=True, drop_rate=RATE, deterministic=False)
    key = jax.random.key(7)
    got = np.asarray(dc.apply(variables, x, rngs={"dropout": key}))
    assert not np.allclose(got, np.asarray(plain.apply(variables, x)))
    other = np.asarray(dc.apply(variables, x, rngs={"dropout": jax.random.key(8)}))
    assert not np.allclose(got, other)
    kernel = variables["params"]["kernel"]
    layer_key = dc.bind(variables, rngs={"dropout": key}).make_rng("dropout")  # the key the call draws first
    keep = jax.random.bernoulli(layer_key, 1 - RATE, kernel.shape)
    masked = jax.tree.map(lambda v: v, variables)
    masked["params"]["kernel"] = jnp.where(keep, kernel / (1 - RATE), 0.0)
    np.testing.assert_allclose(got, np.asarray(plain.apply(masked, x)), rtol=1e-6, atol=1e-6)
    dropped = float(jnp.mean(~keep))
    assert abs(dropped - RATE) <= 6 * np.sqrt(RATE * (1 - RATE) / keep.size)


def test_training_without_a_dropout_rng_is_flax_s_error():
    _, _, variables, x = _setup("dense")
    with pytest.raises(Exception, match="dropout"):
        L.YatNMN(5, use_dropconnect=True, drop_rate=RATE).apply(variables, x, deterministic=False)


@pytest.mark.parametrize("name", list(LAYERS))
def test_bad_options_raise_the_core_error_naming_the_layer(name):
    make, _ = LAYERS[name]
    cls = type(make()).__name__
    with pytest.raises(ValueError, match=f"{cls}: drop_rate must be in \\[0, 1\\), got 1.0"):
        make(use_dropconnect=True, drop_rate=1.0)
    with pytest.raises(TypeError, match=f"{cls}: use_dropconnect must be True or False"):
        make(use_dropconnect="yes", drop_rate=0.1)


def test_positive_init_is_the_absolute_value_of_the_kernel_init_draw():
    x = jnp.ones((2, 3))
    pos = L.YatNMN(5, positive_init=True).init(jax.random.key(0), x)["params"]["kernel"]
    base = L.YatNMN(5).init(jax.random.key(0), x)["params"]["kernel"]
    np.testing.assert_array_equal(np.asarray(pos), np.abs(np.asarray(base)))
    assert float(jnp.min(base)) < 0
