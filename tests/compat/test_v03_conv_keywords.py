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


def _conv_dilated(fw, input_dilation, padding):
    """(output as (N, M, L'), canonical weight) of ``fw``'s YatConv1D(input_dilation=...) on _x()."""
    x = _last(_x())
    pytest.importorskip("flax")
    if fw == "nnx":
        from flax import nnx

        from nmn.nnx import YatConv1D

        layer = YatConv1D(
            C, M, K, padding=padding, input_dilation=input_dilation, feature_group_count=G, rngs=nnx.Rngs(0), **OFF
        )
        y, kernel = np.asarray(layer(x)), np.asarray(layer.kernel[...])
    else:
        import jax

        from nmn.linen import YatConv1D

        module = YatConv1D(
            features=M, kernel_size=K, padding=padding, input_dilation=input_dilation, feature_group_count=G, **OFF
        )
        variables = module.init(jax.random.PRNGKey(0), x)
        y, kernel = np.asarray(module.apply(variables, x)), np.asarray(variables["params"]["kernel"])
    return np.moveaxis(y, -1, 1), layouts.to_canonical(fw, "conv", kernel, groups=G)


@pytest.mark.parametrize("fw", ["nnx", "linen"])
@pytest.mark.parametrize("dil, padding, pads", [(2, [(1, 2)], [1, 2]), (3, "VALID", [0, 0]), (1, "SAME", [1, 1])])
def test_conv_input_dilation_matches_onnx(fw, dil, padding, pads):
    y, w = _conv_dilated(fw, dil, padding)
    args = [_x(), w.astype(np.float32), *TAIL]
    want = run_function("YatConv", args, pads=pads, group=G, input_dilations=[dil])
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * np.abs(want).max())
    # the host's geometry: Flax's own Conv with the same input_dilation gives the same output length
    from flax import nnx

    host_padding = [(0, 0)] if padding == "VALID" else padding  # Flax takes only explicit pads with a dilation
    ref = nnx.Conv(C, M, K, padding=host_padding, input_dilation=dil, feature_group_count=G, rngs=nnx.Rngs(0))
    assert y.shape[-1] == ref(_last(_x())).shape[1]


@pytest.mark.parametrize("fw", ["nnx", "linen"])
def test_conv_input_dilation_with_string_padding_is_refused(fw):
    with pytest.raises(ValueError, match=r"YatConv1D: input_dilation=\(2,\) needs explicit padding"):
        _conv_dilated(fw, 2, "SAME")


# ------------------------------------------------------------------ Flax idioms of nnx/linen convolutions (issue 17)
@pytest.mark.parametrize("cls_name", ["YatConv1D", "YatConvTranspose1D"])
def test_nnx_conv_flax_keywords(cls_name):
    pytest.importorskip("flax")
    import jax.numpy as jnp
    from flax import nnx
    from jax import lax

    import nmn.nnx as nmn_nnx

    cls = getattr(nmn_nnx, cls_name)
    layer = cls(C, M, K, alpha_init=nnx.initializers.constant(2.5), positive_init=True, rngs=nnx.Rngs(0))
    assert layer.alpha[...].tolist() == [2.5]
    assert float(jnp.min(layer.kernel[...])) >= 0.0
    x = _last(_x())
    plain = cls(C, M, K, rngs=nnx.Rngs(1))
    want = np.asarray(plain(x))
    seen = []

    def promote(args, *, dtype=None):
        seen.append(dtype)
        return tuple(None if a is None else jnp.asarray(a, jnp.float32) for a in args)

    for kw in (dict(precision=lax.Precision.HIGHEST), dict(precision="highest"), dict(promote_dtype=promote)):
        other = cls(C, M, K, rngs=nnx.Rngs(1), **kw)
        np.testing.assert_allclose(np.asarray(other(x)), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert seen == [None]
    with pytest.raises(TypeError, match=f"{cls_name}: alpha_init must be a Flax initializer"):
        cls(C, M, K, alpha_init=2.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=f"{cls_name}: precision must be"):
        cls(C, M, K, precision=(lax.Precision.HIGH, lax.Precision.HIGHEST), rngs=nnx.Rngs(0))


def test_nnx_conv_general_dilated_only_the_default():
    pytest.importorskip("flax")
    from flax import nnx
    from jax import lax

    from nmn.nnx import YatConv1D

    YatConv1D(C, M, K, conv_general_dilated=lax.conv_general_dilated, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"YatConv1D: conv_general_dilated=.*\(nmn 0\.3\) is not supported"):
        YatConv1D(C, M, K, conv_general_dilated=lambda *a, **k: None, rngs=nnx.Rngs(0))


def test_nnx_conv_transpose_transpose_kernel():
    pytest.importorskip("flax")
    import jax.numpy as jnp
    from flax import nnx

    from nmn.nnx import YatConvTranspose1D

    layer = YatConvTranspose1D(C, M, K, strides=S, padding=0, transpose_kernel=True, rngs=nnx.Rngs(0), **OFF)
    kernel = np.asarray(layer.kernel[...])
    assert kernel.shape == (K, M, C)  # Flax's transpose_kernel layout
    # Flax itself: ConvTranspose(transpose_kernel=True) on K equals ConvTranspose on K flipped, channels swapped
    flax_t = nnx.ConvTranspose(C, M, K, strides=S, padding="VALID", transpose_kernel=True, rngs=nnx.Rngs(0))
    flax_p = nnx.ConvTranspose(C, M, K, strides=S, padding="VALID", rngs=nnx.Rngs(0))
    flax_t.kernel[...] = jnp.asarray(kernel)
    flax_p.kernel[...] = jnp.flip(jnp.swapaxes(jnp.asarray(kernel), -1, -2), axis=0)
    x = _last(_x())
    np.testing.assert_allclose(np.asarray(flax_t(x)), np.asarray(flax_p(x)), rtol=1e-5, atol=1e-6)
    # the layer against onnxruntime on the weight its export carries
    w = layer._export_params()["weight"]
    assert w.shape == (C, M, K)
    want = run_function("YatConvTranspose", [_x(), w, *TAIL], strides=[S])
    y = np.moveaxis(np.asarray(layer(x)), -1, 1)
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * np.abs(want).max())
    with pytest.raises(ValueError, match="YatConvTranspose1D: transpose_kernel=True takes feature_group_count=1"):
        YatConvTranspose1D(C, M, K, feature_group_count=2, transpose_kernel=True, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("cls_name", ["YatConv1D", "YatConvTranspose1D"])
def test_linen_conv_alpha_init(cls_name):
    pytest.importorskip("flax")
    import jax
    from flax import linen as nn

    import nmn.linen as nmn_linen

    module = getattr(nmn_linen, cls_name)(features=M, kernel_size=K, alpha_init=nn.initializers.constant(2.5))
    variables = module.init(jax.random.PRNGKey(0), _last(_x()))
    assert np.asarray(variables["params"]["alpha"]).tolist() == [2.5]


@pytest.mark.parametrize("transposed", [False, True])
def test_torch_conv_param_dtype(transposed):
    torch = pytest.importorskip("torch")
    import nmn.torch as nt

    cls = nt.YatConvTranspose1D if transposed else nt.YatConv1D
    layer = cls(C, M, K, groups=G, param_dtype=torch.float32, dtype=torch.float64, **OFF)
    assert layer.weight.dtype == torch.float32 and layer.param_dtype == torch.float32
    with torch.no_grad():
        y = layer(torch.from_numpy(_x()).double())
    assert y.dtype == torch.float64  # computed in dtype, stored in param_dtype
    name = "YatConvTranspose" if transposed else "YatConv"
    want = run_function(name, [_x(), layer.weight.detach().numpy(), *TAIL], group=G)
    np.testing.assert_allclose(y.numpy(), want, rtol=0, atol=2e-5 * np.abs(want).max())
    with pytest.raises(TypeError, match=f"{cls.__name__}: param_dtype must be a torch.dtype"):
        cls(C, M, K, param_dtype="float32")
