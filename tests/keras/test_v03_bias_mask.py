"""nmn 0.3's softplus_bias / scalar_bias and the conv kernel mask on nmn.keras (current backend; the suite runs the
other backends in a child process elsewhere).

Oracles: the same layer without the option holding the effective values (softplus of the raw bias, the kernel times
the mask), Keras' own config and ``.keras`` round trips, and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import nmn.keras as nk

RNG = np.random.default_rng(5)


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def test_softplus_scalar_bias_equals_a_plain_layer_with_the_effective_bias():
    x = RNG.normal(size=(3, 5)).astype(np.float32)
    layer = nk.YatNMN(4, softplus_bias=True, scalar_bias=True)
    layer(x)
    assert tuple(layer.bias.shape) == (1,)
    layer.bias.assign(np.array([-0.6], np.float32))
    plain = nk.YatNMN(4)
    plain(x)
    plain.kernel.assign(_np(layer.kernel))
    plain.bias.assign(np.full(4, np.logaddexp(0.0, -0.6), np.float32))
    np.testing.assert_allclose(_np(layer(x)), _np(plain(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "cls, mask_shape, x_shape",
    [
        (nk.YatConv2D, (3, 3, 2, 4), (2, 6, 6, 2)),
        (nk.YatConvTranspose1D, (3, 4, 2), (2, 5, 2)),
    ],
    ids=["conv2d", "convT1d"],
)
def test_mask_multiplies_the_kernel_and_survives_config_and_keras_files(cls, mask_shape, x_shape, tmp_path):
    x = RNG.normal(size=x_shape).astype(np.float32)
    mask = (RNG.random(mask_shape) > 0.4).astype(np.float32)
    layer = cls(4, 3, mask=mask, softplus_bias=True)
    want = _np(layer(x))
    plain = cls(4, 3)
    plain(x)
    plain.kernel.assign(_np(layer.kernel) * mask)
    plain.bias.assign(np.logaddexp(0.0, _np(layer.bias)).astype(np.float32))
    np.testing.assert_allclose(want, _np(plain(x)), rtol=1e-6, atol=1e-6)

    config = layer.get_config()
    assert config["softplus_bias"] is True and config["scalar_bias"] is False
    assert np.array_equal(np.asarray(config["mask"], np.float32), mask)  # a nested list: JSON keeps it
    again = cls.from_config(config)
    again(x)
    again.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(again(x)), want, rtol=1e-6, atol=1e-6)

    model = keras.Sequential([keras.Input(x_shape[1:]), layer])
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(restored(x)), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (
            lambda: nk.YatNMN(2, use_bias=False, scalar_bias=True),
            ValueError,
            "YatNMN: scalar_bias=True needs a learnable bias",
        ),
        (
            lambda: nk.YatConv2D(2, 3, constant_bias=1.0, softplus_bias=True),
            ValueError,
            "YatConv2D: softplus_bias=True needs a learnable bias, but constant_bias=1 is fixed",
        ),
        (
            lambda: nk.YatConv1D(2, 3, mask=np.ones((3, 2)))(np.ones((1, 5, 2), np.float32)),
            ValueError,
            "mask must have the kernel's shape (3, 2, 2) (layout (*kernel_size, C/G, M)), got shape (3, 2)",
        ),
        (
            lambda: nk.YatConvTranspose1D(2, 3, mask=np.ones((3, 2, 5)))(np.ones((1, 5, 2), np.float32)),
            ValueError,
            "mask must have the kernel's shape (3, 2, 2)",
        ),
    ],
    ids=["scalar-no-bias", "softplus-constant", "mask-shape", "mask-shape-convT"],
)
def test_errors_name_the_layer_and_the_option(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)
