"""nmn 0.3's convolution keywords in every framework, against onnxruntime running the nmn function (issue 17).

* ``weight_normalized=True`` on the transposed convolutions of all six frameworks: the layer's output equals
  ``nmn::YatConvTranspose(weight_normalized=1)`` on the layer's own (raw) kernel, in the canonical layout.
* ``input_dilation`` on the nnx and Linen convolutions: equals ``nmn::YatConv(input_dilations=...)``.

A missing optional framework is a skip. Shapes are tiny (MLX's CPU path is slow).
"""

from __future__ import annotations

import numpy as np
import pytest

from nmn.core import layouts
from onnx_ops import run_function

C, M, K, S, G, L = 4, 6, 3, 2, 2, 5
TAIL = [np.zeros(M, np.float32), np.ones(1, np.float32), np.full(1, 1e-5, np.float32)]  # use_bias/use_alpha off
OFF = dict(use_bias=False, use_alpha=False)


def _x():
    return np.random.default_rng(0).normal(size=(1, C, L)).astype(np.float32)  # canonical (N, C, L)


def _last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _convt(fw, weight_normalized):
    """(output as (N, M, L'), canonical weight) of framework ``fw``'s YatConvTranspose1D on _x()."""
    x = _x()
    wn = dict(weight_normalized=weight_normalized, **OFF)
    if fw == "torch":
        torch = pytest.importorskip("torch")
        from nmn.torch import YatConvTranspose1D

        layer = YatConvTranspose1D(C, M, K, stride=S, groups=G, **wn)
        with torch.no_grad():
            y = layer(torch.from_numpy(x)).numpy()
        return y, layer.weight.detach().numpy()
    if fw == "nnx":
        pytest.importorskip("flax")
        from flax import nnx

        from nmn.nnx import YatConvTranspose1D

        layer = YatConvTranspose1D(C, M, K, strides=S, padding=0, feature_group_count=G, rngs=nnx.Rngs(0), **wn)
        y, kernel = np.asarray(layer(_last(x))), np.asarray(layer.kernel[...])
    elif fw == "linen":
        pytest.importorskip("flax")
        import jax

        from nmn.linen import YatConvTranspose1D

        module = YatConvTranspose1D(features=M, kernel_size=K, strides=S, padding=0, feature_group_count=G, **wn)
        variables = module.init(jax.random.PRNGKey(0), _last(x))
        y, kernel = np.asarray(module.apply(variables, _last(x))), np.asarray(variables["params"]["kernel"])
    elif fw in ("keras", "tf"):
        pytest.importorskip("tensorflow" if fw == "tf" else "keras")
        from importlib import import_module

        cls = import_module(f"nmn.{fw}").YatConvTranspose1D
        layer = cls(M, K, strides=S, padding=0, groups=G, **wn)
        y = np.asarray(layer(_last(x)))
        kernel = np.asarray(layer.kernel.numpy())
    else:
        mx = pytest.importorskip("mlx.core")
        from nmn.mlx import YatConvTranspose1D

        layer = YatConvTranspose1D(M, K, in_channels=C, strides=S, groups=G, **wn)
        y, kernel = np.asarray(layer(mx.array(_last(x)))), np.asarray(layer["kernel"])
    return np.moveaxis(y, -1, 1), layouts.to_canonical(fw, "conv_transpose", kernel, groups=G)


@pytest.mark.parametrize("fw", layouts.FRAMEWORKS)
def test_conv_transpose_weight_normalized_matches_onnx(fw):
    y, w = _convt(fw, True)
    want = run_function(
        "YatConvTranspose", [_x(), w.astype(np.float32), *TAIL], strides=[S], group=G, weight_normalized=1
    )
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * np.abs(want).max())
    plain = run_function("YatConvTranspose", [_x(), w.astype(np.float32), *TAIL], strides=[S], group=G)
    assert np.abs(plain - want).max() > 1e-3 * np.abs(want).max()  # the option changes the map


@pytest.mark.parametrize("fw", layouts.FRAMEWORKS)
def test_conv_transpose_weight_normalized_default_is_off(fw):
    y, w = _convt(fw, False)
    want = run_function("YatConvTranspose", [_x(), w.astype(np.float32), *TAIL], strides=[S], group=G)
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * np.abs(want).max())
