"""nmn 0.3's conv options through files (issue 17): Flax's ``input_dilation`` and weight-normalised transposed convs.

``nmn::YatConv`` carries ``input_dilations`` and ``nmn::YatConvTranspose`` ``weight_normalized``; the oracle of
every comparison is onnxruntime running the exported file. A file whose conv dilates its input loads into the
Flax frameworks, which have the option, and is refused by the others, which would compute a different function.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.frameworks import require

FRAMEWORKS = ["torch", "keras", "tf", "nnx", "linen", "mlx"]


def _ort(proto, x):
    from nmn.interchange import run_onnx

    (y,) = run_onnx(proto, {proto.graph.input[0].name: x})
    return np.asarray(y, np.float64)


def _close(got, want, what, rtol=1e-5):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, onnxruntime {want.shape}"
    err, scale = float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))
    assert err <= rtol * scale, f"{what}: max|diff| {err:.3g} > {rtol} x output scale {scale:.3g}"


def _attr(proto, op, name):
    node = next(n for n in proto.graph.node if n.op_type == op)
    return next(a for a in node.attribute if a.name == name)


@pytest.fixture(scope="module")
def dilated_file():
    """An NNX ``YatConv2D(input_dilation=2)`` (explicit pads, as Flax requires) exported, with its forward."""
    require("nnx")
    from flax import nnx

    import nmn.nnx as N
    from nmn.interchange import export

    layer = N.YatConv2D(3, 4, (3, 3), padding=[(1, 1), (2, 0)], input_dilation=(2, 1), rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    return export(layer, [x], framework="nnx"), layer


def test_input_dilation_reaches_the_file(dilated_file):
    proto, layer = dilated_file
    assert list(_attr(proto, "YatConv", "input_dilations").ints) == [2, 1]
    x = np.random.default_rng(1).normal(size=(3, 5, 6, 3)).astype(np.float32)
    _close(np.asarray(layer(x)), _ort(proto, x), "nnx YatConv2D(input_dilation=(2, 1)) vs onnxruntime")


@pytest.mark.parametrize("target", FRAMEWORKS)
def test_input_dilation_loads_into_flax_and_is_refused_elsewhere(dilated_file, target):
    require(target)
    from nmn.interchange import load, predict

    proto, _ = dilated_file
    x = np.random.default_rng(2).normal(size=(3, 5, 6, 3)).astype(np.float32)
    if target in ("nnx", "linen"):
        (got,) = predict(load(proto, target), target, [x])
        _close(got, _ort(proto, x), f"the dilated conv loaded into {target}")
    else:
        with pytest.raises(Exception, match="input_dilations=\\[2, 1\\]"):
            load(proto, target)


@pytest.fixture(scope="module")
def weight_normalized_file():
    """A torch ``YatConvTranspose2D(weight_normalized=True, groups=2)`` exported, with its forward."""
    require("torch")
    import torch

    import nmn.torch as nt
    from nmn.interchange import export

    torch.manual_seed(0)
    layer = nt.YatConvTranspose2D(4, 6, 3, stride=2, groups=2, weight_normalized=True).eval()
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 3)).astype(np.float32)
    return export(layer, [x], framework="torch"), layer


@pytest.mark.parametrize("target", FRAMEWORKS)
def test_weight_normalized_transposed_conv_round_trips(weight_normalized_file, target):
    require(target)
    import torch

    from nmn.interchange import load, predict

    proto, layer = weight_normalized_file
    assert _attr(proto, "YatConvTranspose", "weight_normalized").i == 1
    x = np.random.default_rng(3).normal(size=(3, 4, 3, 3)).astype(np.float32)
    want = _ort(proto, x)
    _close(layer(torch.as_tensor(x)).detach().numpy(), want, "torch vs onnxruntime on its file")
    (got,) = predict(load(proto, target), target, [x])
    _close(got, want, f"the weight-normalised transposed conv loaded into {target}")
