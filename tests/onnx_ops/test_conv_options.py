"""nmn 0.3's convolution options as attributes of the nmn functions (issue 17), against the numpy oracle.

* ``nmn::YatConvTranspose(weight_normalized=1)``: every filter (its group's ``W[c, m', :]``) unit-normalised.
* ``nmn::YatConv(input_dilations=d)``: ``d - 1`` zeros inserted between input samples before the padding
  (``jax.lax.conv_general_dilated``'s ``lhs_dilation``, Flax's ``input_dilation``).

Files written before these attributes (``data/*_v1.onnx``, one-node models made with the earlier bodies) still
run and mean the attribute's default.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnx_ops import run_function
from onnx_ops.reference import conv as ref

DATA = Path(__file__).parent / "data"
TOL = 2e-5


def _inputs(rng, x_shape, w_shape, m, eps=1e-3):
    x = rng.normal(size=x_shape).astype(np.float32)
    w = (0.5 * rng.normal(size=w_shape)).astype(np.float32)
    b = rng.normal(size=m).astype(np.float32)
    return [x, w, b, np.full(1, 0.7, np.float32), np.full(1, eps, np.float32)]


def _close(got, want):
    scale = np.abs(want).max()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= TOL * scale, np.abs(got - want).max() / scale


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 4, 5), (4, 3, 3), dict(strides=[2], pads=[1, 0], group=2)),
        ((1, 2, 4), (2, 3, 2), dict(strides=[1], dilations=[2], output_padding=[0])),
        ((1, 2, 3, 4), (2, 2, 2, 3), dict(strides=[2, 1], pads=[0, 1, 1, 0], output_padding=[1, 0])),
        ((1, 4, 2, 2, 3), (4, 1, 2, 1, 2), dict(strides=[1, 2, 1], group=4)),
    ],
)
def test_conv_transpose_weight_normalized_matches_oracle(x_shape, w_shape, attrs):
    rng = np.random.default_rng(len(x_shape))
    args = _inputs(rng, x_shape, w_shape, w_shape[1] * attrs.get("group", 1))
    got = run_function("YatConvTranspose", args, weight_normalized=1, **attrs)
    _close(got, ref.YatConvTranspose(*args, weight_normalized=1, **attrs))
    # scaling the kernel does not change a weight-normalised layer (and does change a plain one)
    scaled = [args[0], 3.0 * args[1], *args[2:]]
    _close(run_function("YatConvTranspose", scaled, weight_normalized=1, **attrs), got)
    plain = run_function("YatConvTranspose", args, weight_normalized=0, **attrs)
    assert np.abs(plain - got).max() > 1e-3 * np.abs(got).max()


def test_conv_transpose_weight_normalized_oracle_is_unit_filters():
    # the oracle from its definition: explicit unit filters through the plain oracle give the same map
    rng = np.random.default_rng(7)
    x, w, b, a, e = _inputs(rng, (1, 4, 3), (4, 1, 3), 2)
    units = w.astype(np.float64).copy()
    for g in range(2):
        blk = units[2 * g : 2 * g + 2, 0]
        units[2 * g : 2 * g + 2, 0] = blk / (np.sqrt((blk * blk).sum()) + 1e-8)
    want = ref.YatConvTranspose(x, units, b, a, e, group=2)
    np.testing.assert_allclose(ref.YatConvTranspose(x, w, b, a, e, group=2, weight_normalized=1), want, rtol=1e-6)


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 4, 5), (6, 2, 3), dict(input_dilations=[2], pads=[1, 2], group=2)),
        ((1, 2, 4), (3, 2, 2), dict(input_dilations=[3], strides=[2], dilations=[2])),
        ((1, 2, 5), (3, 2, 3), dict(input_dilations=[2], pads=[2, 2], pad_mode="reflect")),
        ((1, 2, 5), (3, 2, 3), dict(input_dilations=[2], pads=[1, 3], pad_mode="wrap", weight_normalized=1)),
        ((1, 2, 3, 4), (2, 2, 2, 3), dict(input_dilations=[2, 1], pads=[1, 0, 0, 1], strides=[1, 2])),
        ((1, 1, 2, 3, 2), (2, 1, 2, 2, 2), dict(input_dilations=[2, 3, 2], pad_mode="edge", pads=[1, 0, 1, 0, 1, 0])),
    ],
)
def test_conv_input_dilations_matches_oracle(x_shape, w_shape, attrs):
    rng = np.random.default_rng(len(x_shape) + len(attrs))
    args = _inputs(rng, x_shape, w_shape, w_shape[0])
    _close(run_function("YatConv", args, **attrs), ref.YatConv(*args, **attrs))


def test_conv_input_dilations_is_zero_insertion():
    # the oracle from its definition: a hand-stuffed input through the plain function
    rng = np.random.default_rng(3)
    x, w, b, a, e = _inputs(rng, (1, 2, 4), (3, 2, 3), 3)
    stuffed = np.zeros((1, 2, 10), np.float32)
    stuffed[:, :, ::3] = x
    want = run_function("YatConv", [stuffed, w, b, a, e], pads=[1, 1])
    _close(run_function("YatConv", [x, w, b, a, e], pads=[1, 1], input_dilations=[3]), want)
    _close(run_function("YatConv", [x, w, b, a, e], input_dilations=[1]), ref.YatConv(x, w, b, a, e))


@pytest.mark.parametrize("name", ["YatConv", "YatConvTranspose"])
def test_files_without_the_attribute_still_run_and_mean_the_default(name):
    import onnxruntime as ort

    model = onnx.load(DATA / f"{name}_v1.onnx")
    node = model.graph.node[0]
    new = "input_dilations" if name == "YatConv" else "weight_normalized"
    assert new not in {a.name for a in node.attribute}
    rng = np.random.default_rng(11)
    w_shape = (6, 2, 3) if name == "YatConv" else (4, 3, 3)
    args = _inputs(rng, (1, 4, 5), w_shape, 6)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, dict(zip(["X", "W", "B", "ALPHA", "EPS"], args)))[0]
    _close(got, getattr(ref, name)(*args, group=2, pads=[1, 0]))


@pytest.mark.parametrize("name", ["YatConv", "YatConvTranspose"])
def test_legacy_body_is_the_files_body(name):
    from nmn.interchange.validate import _raw_bytes
    from onnx_ops.conv import legacy_conv_versions
    from onnx_ops.conv_transpose import legacy_conv_transpose_versions

    versions = {**legacy_conv_versions(), **legacy_conv_transpose_versions()}
    model = onnx.load(DATA / f"{name}_v1.onnx")
    carried = next(f for f in model.functions if f.name == name)
    assert [_raw_bytes(p) for p in versions[name]] == [_raw_bytes(carried)]


@pytest.mark.parametrize("name", ["YatConv", "YatConvTranspose"])
def test_files_without_the_attribute_still_validate(name):
    from nmn.interchange.validate import legacy_functions, validate_model

    assert legacy_functions(name), f"the validator knows no earlier body of nmn::{name}"
    validate_model(onnx.load(DATA / f"{name}_v1.onnx"))
