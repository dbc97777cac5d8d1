"""nmn 0.3's Keras host idioms on nmn.keras layers: weight regularizers / constraints, DropConnect, positive_init.

Regularizers and constraints (``kernel_regularizer``, ``bias_regularizer``, ``activity_regularizer``,
``kernel_constraint``, ``bias_constraint``) are on the layers 0.3 had them on: ``YatNMN`` and the (transposed)
convolutions (tests/data/v03/api_0_3_5.json). Oracles: the layer's ``losses`` against the regularizer's formula
computed by hand in numpy from the weights; the constraint against the kernel after a real optimizer step; the
config against ``from_config`` and Keras' own serialisation.

DropConnect (``use_dropconnect``, ``drop_rate``, the ``training`` call flag) is on ``YatNMN`` and the (transposed)
convolutions, one surface in every framework (nmn.core.names.YAT_KEYWORDS). Oracles: a twin layer without the option (inference must be identical, and in training the output must
equal the twin run on the masked kernel drawn from the same seed); the mask's statistics (entries ``0`` or
``w / (1 - p)``; the mean of N masked kernels within a bound derived from N, fixed seeds); the exported file,
byte for byte. The mean of N masked *outputs* is not the unmasked output (the Yat product is not linear in the
kernel), so the statistical check is on the kernel, which is what DropConnect defines. ``positive_init`` (on
``YatNMN``): ``abs`` of the kernel initializer's draw under the same seed.

Runs on whatever KERAS_BACKEND this process has; run it with ``KERAS_BACKEND=tensorflow|jax|torch``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import ops

from nmn.keras import YatConv2D, YatConvTranspose1D, YatNMN

RNG = np.random.default_rng(0)


def _np(t):
    return np.asarray(ops.convert_to_numpy(t), np.float64)


# layer factory (with keywords) and an example input, per layer 0.3 gave regularizers / constraints
HOOK_LAYERS = {
    "YatNMN": (lambda **kw: YatNMN(3, **kw), (4, 5)),
    "YatConv2D": (lambda **kw: YatConv2D(3, 2, **kw), (2, 5, 5, 2)),
    "YatConvTranspose1D": (lambda **kw: YatConvTranspose1D(3, 2, strides=2, **kw), (2, 4, 2)),
}
DROP_LAYERS = {
    "YatNMN": (lambda **kw: YatNMN(3, name="layer", **kw), (4, 5)),
    "YatConv2D": (lambda **kw: YatConv2D(3, 2, name="layer", **kw), (2, 5, 5, 2)),
    "YatConvTranspose1D": (lambda **kw: YatConvTranspose1D(3, 2, strides=2, name="layer", **kw), (2, 4, 2)),
}


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _built(make, shape, **kw):
    layer = make(**kw)
    layer(_x(shape))
    return layer


# ------------------------------------------------------------------------------------------ regularizers
@pytest.mark.parametrize("name", sorted(HOOK_LAYERS))
def test_weight_regularizers_add_the_numpy_penalty_to_losses(name):
    make, shape = HOOK_LAYERS[name]
    layer = _built(
        make,
        shape,
        kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.02),
        bias_regularizer=keras.regularizers.L2(0.03),
    )
    layer.bias.assign(RNG.normal(size=tuple(layer.bias.shape)).astype(np.float32))  # not the zero init
    k, b = _np(layer.kernel), _np(layer.bias)
    want = 0.01 * np.abs(k).sum() + 0.02 * (k**2).sum() + 0.03 * (b**2).sum()
    losses = [float(_np(v)) for v in layer.losses]
    assert len(losses) == 2, losses
    np.testing.assert_allclose(sum(losses), want, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(HOOK_LAYERS))
def test_no_regularizer_means_no_losses(name):
    make, shape = HOOK_LAYERS[name]
    assert _built(make, shape).losses == []


@pytest.mark.parametrize("name", sorted(HOOK_LAYERS))
def test_activity_regularizer_penalises_the_output_per_batch_element(name):
    make, shape = HOOK_LAYERS[name]
    layer = make(activity_regularizer=keras.regularizers.L1(0.05))
    y = _np(layer(_x(shape)))
    (loss,) = [float(_np(v)) for v in layer.losses]
    np.testing.assert_allclose(loss, 0.05 * np.abs(y).sum() / shape[0], rtol=1e-5)  # Keras divides by the batch


@pytest.mark.parametrize("name", sorted(HOOK_LAYERS))
def test_constraints_hold_after_an_optimizer_step(name):
    make, shape = HOOK_LAYERS[name]
    layer = make(kernel_constraint="non_neg", bias_constraint=keras.constraints.NonNeg(), bias_initializer="ones")
    x = keras.Input(shape[1:])
    model = keras.Model(x, layer(x))
    assert _np(layer.kernel).min() < 0, "the initial kernel has no negative entry: the test would prove nothing"
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    y = model.predict(_x(shape), verbose=0)
    model.train_on_batch(_x(shape), y + 5.0)  # a large step: it would push bias entries below zero
    assert _np(layer.kernel).min() >= 0.0
    assert _np(layer.bias).min() >= 0.0
    assert np.any(_np(layer.kernel) == 0.0), "NonNeg clips at zero: some entries must sit there"


@pytest.mark.parametrize("name", sorted(HOOK_LAYERS))
def test_regularizers_and_constraints_round_trip_through_config(name):
    make, _ = HOOK_LAYERS[name]
    layer = make(
        kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.02),
        bias_regularizer="l2",
        activity_regularizer=keras.regularizers.L1(0.05),
        kernel_constraint=keras.constraints.MaxNorm(2.0),
        bias_constraint="non_neg",
    )
    config = layer.get_config()
    assert config["kernel_regularizer"] == keras.regularizers.serialize(layer.kernel_regularizer)
    twin = type(layer).from_config(config)
    assert twin.get_config() == config
    assert isinstance(twin.kernel_regularizer, keras.regularizers.L1L2)
    assert math.isclose(twin.kernel_regularizer.l1, 0.01, rel_tol=1e-6)
    assert isinstance(twin.bias_regularizer, keras.regularizers.L2)
    assert isinstance(twin.activity_regularizer, keras.regularizers.L1)
    assert isinstance(twin.kernel_constraint, keras.constraints.MaxNorm) and twin.kernel_constraint.max_value == 2.0
    assert isinstance(twin.bias_constraint, keras.constraints.NonNeg)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.get_config() == config


def test_regularized_model_saves_and_loads_as_a_keras_file(tmp_path):
    x = keras.Input((5,))
    dense = YatNMN(3, kernel_regularizer=keras.regularizers.L2(0.1), kernel_constraint="non_neg", name="d")
    model = keras.Model(x, dense(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    d = loaded.get_layer("d")
    assert isinstance(d.kernel_regularizer, keras.regularizers.L2)
    assert isinstance(d.kernel_constraint, keras.constraints.NonNeg)
    np.testing.assert_allclose(float(_np(d.losses[0])), 0.1 * (_np(d.kernel) ** 2).sum(), rtol=1e-5)


# ----------------------------------------------------------------------------------------------- DropConnect
def _pair(name, rate=0.5, seed=3):
    """A built DropConnect layer and its twin without the option, holding the same weights."""
    make, shape = DROP_LAYERS[name]
    dc = _built(make, shape, use_dropconnect=True, drop_rate=rate, seed=seed, bias_initializer="random_normal")
    plain = _built(make, shape)
    plain.set_weights(dc.get_weights())
    return dc, plain, shape


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_inference_is_identical_with_and_without_dropconnect(name):
    dc, plain, shape = _pair(name)
    x = _x(shape, seed=2)
    np.testing.assert_array_equal(_np(dc(x)), _np(plain(x)))
    np.testing.assert_array_equal(_np(dc(x, training=False)), _np(plain(x)))


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_training_uses_the_masked_kernel(name):
    dc, plain, shape = _pair(name, rate=0.5, seed=3)
    x = _x(shape, seed=2)
    y_train = _np(dc(x, training=True))
    assert np.max(np.abs(y_train - _np(plain(x)))) > 1e-3, "DropConnect in training changed nothing"
    # the same mask, drawn from a fresh generator with the layer's seed: the layer's first draw
    masked = keras.random.dropout(ops.convert_to_tensor(dc.kernel), 0.5, seed=keras.random.SeedGenerator(3))
    k, m = _np(dc.kernel), _np(masked)
    assert np.all((m == 0) | np.isclose(m, k / 0.5, rtol=1e-6)), "entries must be 0 or w / (1 - p)"
    assert 0 < np.mean(m == 0) < 1
    plain.kernel.assign(ops.convert_to_numpy(masked))
    np.testing.assert_allclose(y_train, _np(plain(x)), rtol=1e-5, atol=1e-6)


def test_each_training_call_draws_a_fresh_mask():
    dc, _, shape = _pair("YatConv2D")
    x = _x(shape, seed=2)
    assert np.max(np.abs(_np(dc(x, training=True)) - _np(dc(x, training=True)))) > 1e-4


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_mean_of_many_masked_kernels_approaches_the_kernel(rate):
    """Entry i of the mean of N masks is ``w_i * S_i / (N (1 - p))`` with ``S_i ~ Binomial(N, 1 - p)``: its
    standard deviation is ``|w_i| sqrt(p / ((1 - p) N))``; 6 of them bound every entry (fixed seed: no flake)."""
    from nmn.keras._ops import dropconnect

    dc, _, _ = _pair("YatConv2D", rate=rate, seed=11)
    n = 2000
    k = _np(dc.kernel)
    total = np.zeros_like(k)
    for _ in range(n):
        total += _np(dropconnect(dc, dc.kernel, True))
    mean = total / n
    bound = 6 * np.abs(k) * math.sqrt(rate / ((1 - rate) * n))
    assert np.all(np.abs(mean - k) <= bound), np.max(np.abs(mean - k) / np.maximum(bound, 1e-30))
    # and the bound is tight enough to mean something: a mask without the 1/(1-p) scaling fails it
    assert not np.all(np.abs(mean * (1 - rate) - k) <= bound)


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_export_of_a_dropconnect_layer_is_the_file_without_it(name):
    from nmn.interchange import export

    dc, plain, shape = _pair(name)
    files = []
    for layer in (dc, plain):
        x = keras.Input(shape[1:], name="x")
        model = keras.Model(x, layer(x), name="m")
        files.append(export(model, _x(shape)).SerializeToString())
    assert files[0] == files[1]


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_dropconnect_round_trips_through_config(name):
    make, _ = DROP_LAYERS[name]
    layer = make(use_dropconnect=True, drop_rate=0.3, seed=7)
    config = layer.get_config()
    assert (config["use_dropconnect"], config["drop_rate"], config["seed"]) == (True, 0.3, 7)
    assert type(layer).from_config(config).get_config() == config


def test_fit_runs_with_dropconnect_and_trains():
    x = keras.Input((6, 6, 2))
    conv = YatConv2D(3, 3, use_dropconnect=True, drop_rate=0.2, seed=0)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D()(conv(x)))
    model.compile(optimizer="adam", loss="mse")
    before = _np(conv.kernel)
    data = _x((8, 6, 6, 2))
    model.fit(data, np.zeros((8, 3), np.float32), epochs=1, batch_size=8, verbose=0)
    assert np.max(np.abs(_np(conv.kernel) - before)) > 0


@pytest.mark.parametrize("name", sorted(DROP_LAYERS))
def test_bad_drop_rate_names_the_layer(name):
    make, _ = DROP_LAYERS[name]
    for rate in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"{name}: drop_rate must be in \[0, 1\), got {rate}"):
            make(use_dropconnect=True, drop_rate=rate)
    with pytest.raises(TypeError, match=rf"{name}: use_dropconnect must be True or False"):
        make(use_dropconnect="yes")


def test_dense_dropconnect_drops_no_gradient_of_kept_weights_and_zeroes_dropped_ones():
    """The gradient through a masked dense kernel is zero exactly on the dropped entries (any backend)."""
    dc, _, shape = _pair("YatNMN", rate=0.5, seed=9)
    masked = _np(keras.random.dropout(ops.convert_to_tensor(dc.kernel), 0.5, seed=keras.random.SeedGenerator(9)))
    x = keras.Input(shape[1:])
    model = keras.Model(x, dc(x))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = _np(dc.kernel)
    model.train_on_batch(_x(shape, seed=2), np.full((shape[0], 3), 7.0, np.float32))  # training=True: mask 1
    moved = _np(dc.kernel) != before
    assert np.array_equal(moved, masked != 0), "exactly the kept kernel entries must move in the step"


# --------------------------------------------------------------------------------------------- positive_init
def test_positive_init_is_the_absolute_value_of_the_default_draw():
    kernels = []
    for positive in (False, True):
        layer = YatNMN(6, positive_init=positive, kernel_initializer=keras.initializers.GlorotNormal(seed=4))
        layer.build((None, 5))
        kernels.append(_np(layer.kernel))
    plain, pos = kernels
    assert plain.min() < 0, "the default draw has no negative entry: the test would prove nothing"
    np.testing.assert_array_equal(pos, np.abs(plain))
    # the default initializer ("glorot_normal", unseeded) under the same global seed
    drawn = []
    for positive in (False, True):
        keras.utils.set_random_seed(4)
        layer = YatNMN(6, positive_init=positive)
        layer.build((None, 5))
        drawn.append(_np(layer.kernel))
    assert drawn[0].min() < 0
    np.testing.assert_array_equal(drawn[1], np.abs(drawn[0]))
    config = layer.get_config()
    assert config["positive_init"] is True and YatNMN(6).get_config()["positive_init"] is False
    assert YatNMN.from_config(config).get_config() == config
    # an init choice only: the layer computes the ordinary Yat product of whatever kernel it holds
    twin = YatNMN(6)
    twin.build((None, 5))
    twin.set_weights(layer.get_weights())
    x = _x((3, 5), seed=8)
    np.testing.assert_array_equal(_np(twin(x)), _np(layer(x)))


def test_positive_init_model_saves_and_loads_as_a_keras_file(tmp_path):
    x = keras.Input((5,))
    dense = YatNMN(3, positive_init=True, use_dropconnect=True, drop_rate=0.2, seed=1, name="d")
    model = keras.Model(x, dense(x))
    assert _np(dense.kernel).min() >= 0
    path = tmp_path / "m.keras"
    model.save(path)
    d = keras.saving.load_model(path).get_layer("d")
    assert (d.positive_init, d.use_dropconnect, d.drop_rate, d.seed) == (True, True, 0.2, 1)
    np.testing.assert_array_equal(_np(d.kernel), _np(dense.kernel))
