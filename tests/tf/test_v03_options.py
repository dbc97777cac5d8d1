"""nmn 0.3 options carried over to nmn.tf: DropConnect (``use_dropconnect``/``drop_rate``, the ``training`` call
flag) on ``YatNMN``, ``YatConv1D/2D/3D`` and ``YatConvTranspose1D/2D/3D``, and ``positive_init`` on ``YatNMN``.

Oracles: a twin module without the option holding the same variables (inference must be identical, and in
training the output must equal the twin run on the masked kernel, re-drawn here from the definition with a fresh
``tf.random.Generator`` of the layer's seed); the mask's statistics (entries ``0`` or ``w / (1 - p)``; the mean of
N masked kernels within a bound derived from N, fixed seeds); the exported file, byte for byte; ``abs`` of the
default draw under the same global seed for ``positive_init``. The mean of N masked *outputs* is not the unmasked
output (the Yat product is not linear in the kernel), so the statistical check is on the kernel.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from nmn.tf import (
    YatConv1D,
    YatConv2D,
    YatConv3D,
    YatConvTranspose1D,
    YatConvTranspose2D,
    YatConvTranspose3D,
    YatNMN,
)
from nmn.tf._ops import dropconnect

# layer factory (with keywords) and an example input (channels-last), per layer that takes DropConnect
DROP_LAYERS = {
    "YatNMN": (lambda **kw: YatNMN(3, name="layer", **kw), (4, 5)),
    "YatConv1D": (lambda **kw: YatConv1D(3, 2, name="layer", **kw), (2, 6, 2)),
    "YatConv2D": (lambda **kw: YatConv2D(3, 2, name="layer", **kw), (2, 5, 5, 2)),
    "YatConv3D": (lambda **kw: YatConv3D(3, 2, name="layer", **kw), (1, 4, 4, 4, 2)),
    "YatConvTranspose1D": (lambda **kw: YatConvTranspose1D(3, 2, strides=2, name="layer", **kw), (2, 4, 2)),
    "YatConvTranspose2D": (lambda **kw: YatConvTranspose2D(3, 2, strides=2, name="layer", **kw), (2, 3, 3, 2)),
    "YatConvTranspose3D": (lambda **kw: YatConvTranspose3D(3, 2, name="layer", **kw), (1, 3, 3, 3, 2)),
}


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _pair(name, rate=0.5, seed=3):
    """A built DropConnect module and its twin without the option, holding the same (non-trivial) variables."""
    make, shape = DROP_LAYERS[name]
    dc, plain = make(use_dropconnect=True, drop_rate=rate, seed=seed), make()
    dc(_x(shape))
    plain(_x(shape))
    dc.bias.assign(np.random.default_rng(5).normal(size=tuple(dc.bias.shape)).astype(np.float32))
    assert len(dc.variables) == len(plain.variables) == 3  # kernel, bias, alpha: the mask generator is no variable
    for a, b in zip(plain.variables, dc.variables):
        a.assign(b)
    return dc, plain, shape


def _masked(kernel, rate, seed):
    """The layer's first mask, from the definition: a fresh generator of ``seed``; keep where uniform >= rate."""
    k = np.asarray(kernel, np.float64)
    keep = tf.random.Generator.from_seed(seed).uniform(k.shape, dtype=tf.float32).numpy() >= rate
    return np.where(keep, k / (1 - rate), 0.0)


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_inference_is_identical_with_and_without_dropconnect(name):
    dc, plain, shape = _pair(name)
    x = _x(shape, seed=2)
    np.testing.assert_array_equal(dc(x).numpy(), plain(x).numpy())
    np.testing.assert_array_equal(dc(x, training=False).numpy(), plain(x).numpy())


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_training_is_the_twin_on_the_masked_kernel(name):
    dc, plain, shape = _pair(name, rate=0.5, seed=3)
    x = _x(shape, seed=2)
    y_plain = plain(x).numpy()
    y_train = dc(x, training=True).numpy()
    assert np.max(np.abs(y_train - y_plain)) > 1e-3, "DropConnect in training changed nothing"
    k = dc.kernel.numpy()
    m = _masked(k, 0.5, 3)
    assert np.all((m == 0) | np.isclose(m, k / 0.5, rtol=1e-6)), "entries must be 0 or w / (1 - p)"
    assert 0 < np.mean(m == 0) < 1
    plain.kernel.assign(m.astype(np.float32))
    np.testing.assert_allclose(y_train, plain(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(dc.kernel.numpy(), k)  # the variable itself is never masked


def test_each_training_call_draws_a_fresh_mask_also_inside_tf_function():
    dc, _, shape = _pair("YatConv2D")
    x = tf.constant(_x(shape, seed=2))
    assert np.max(np.abs(dc(x, training=True).numpy() - dc(x, training=True).numpy())) > 1e-4
    step = tf.function(lambda t: dc(t, training=True))
    assert np.max(np.abs(step(x).numpy() - step(x).numpy())) > 1e-4, "a traced call must not freeze the mask"
    infer = tf.function(lambda t: dc(t))
    np.testing.assert_array_equal(infer(x).numpy(), infer(x).numpy())


def test_dropped_weights_get_no_gradient():
    dc, _, shape = _pair("YatNMN", rate=0.5, seed=9)
    m = _masked(dc.kernel.numpy(), 0.5, 9)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(dc(_x(shape, seed=2), training=True))
    grad = tape.gradient(loss, dc.kernel).numpy()
    assert np.all(grad[m == 0] == 0)
    assert np.all(grad[m != 0] != 0)


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_mean_of_many_masked_kernels_approaches_the_kernel(rate):
    """Entry i of the mean of N masks is ``w_i * S_i / (N (1 - p))`` with ``S_i ~ Binomial(N, 1 - p)``: its
    standard deviation is ``|w_i| sqrt(p / ((1 - p) N))``; 6 of them bound every entry (fixed seed: no flake)."""
    dc, _, _ = _pair("YatConv2D", rate=rate, seed=11)
    n = 2000
    k = dc.kernel.numpy().astype(np.float64)
    total = np.zeros_like(k)
    for _ in range(n):
        total += dropconnect(dc, dc.kernel, True).numpy()
    mean = total / n
    bound = 6 * np.abs(k) * math.sqrt(rate / ((1 - rate) * n))
    assert np.all(np.abs(mean - k) <= bound), np.max(np.abs(mean - k) / np.maximum(bound, 1e-30))
    # and the bound is tight enough to mean something: a mask without the 1/(1-p) scaling fails it
    assert not np.all(np.abs(mean * (1 - rate) - k) <= bound)


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_export_of_a_dropconnect_layer_is_the_file_without_it(name):
    from nmn.interchange import export

    dc, plain, shape = _pair(name)
    x = _x(shape, seed=2)
    files = [export(layer, x).SerializeToString() for layer in (dc, plain)]
    assert files[0] == files[1]


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_options_are_attributes_and_off_by_default(name):
    make, _ = DROP_LAYERS[name]
    layer = make(use_dropconnect=True, drop_rate=0.3, seed=7)
    assert (layer.use_dropconnect, layer.drop_rate, layer.seed) == (True, 0.3, 7)
    off = make()
    assert (off.use_dropconnect, off.drop_rate) == (False, 0.0)
    # a rate without use_dropconnect drops nothing, in training too
    quiet = make(drop_rate=0.5, seed=1)
    _, shape = DROP_LAYERS[name]
    x = _x(shape)
    np.testing.assert_array_equal(quiet(x, training=True).numpy(), quiet(x).numpy())


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_bad_drop_rate_is_the_core_error_naming_the_layer(name):
    make, _ = DROP_LAYERS[name]
    for rate in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"{name}: drop_rate must be in \[0, 1\), got {rate}"):
            make(use_dropconnect=True, drop_rate=rate)
    with pytest.raises(TypeError, match=rf"{name}: use_dropconnect must be True or False"):
        make(use_dropconnect="yes")


# --------------------------------------------------------------------------------------------- positive_init
def test_positive_init_is_the_absolute_value_of_the_default_draw():
    kernels = []
    for positive in (False, True):
        tf.random.set_seed(4)  # the same draw for both (set_seed resets the op-seed counters)
        layer = YatNMN(6, positive_init=positive, seed=2)
        layer(_x((2, 5)))
        kernels.append(layer.kernel.numpy())
    plain, pos = kernels
    assert plain.min() < 0, "the default draw has no negative entry: the test would prove nothing"
    np.testing.assert_array_equal(pos, np.abs(plain))
    assert layer.positive_init is True and YatNMN(6).positive_init is False
    # an init choice only: the layer computes the ordinary Yat product of whatever kernel it holds
    twin = YatNMN(6)
    twin(_x((2, 5)))
    for a, b in zip(twin.variables, layer.variables):
        a.assign(b)
    np.testing.assert_array_equal(twin(_x((3, 5), seed=8)).numpy(), layer(_x((3, 5), seed=8)).numpy())
