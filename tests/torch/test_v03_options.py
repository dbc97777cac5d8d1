"""nmn 0.3 options carried over to nmn.torch: the ``*_init`` hooks and ``positive_init`` of ``YatNMN``, and
DropConnect on ``YatNMN`` and the (transposed) convolutions.

Oracles: torch's own initialisers and RNG (same draws for a fixed seed), a hook that fills a known value, the
orthogonality an ``orthogonal_`` kernel must have, the exact structure of a DropConnect mask (each entry 0 or
``w / (1 - p)``), binomial and central-limit bounds derived from the number of draws, and the ONNX file of the
same layer without DropConnect.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from nmn.interchange import torch_io
from nmn.torch import (
    YatConv1D,
    YatConv2D,
    YatConv3D,
    YatConvTranspose1D,
    YatConvTranspose2D,
    YatConvTranspose3D,
    YatNMN,
    functional,
)


# ------------------------------------------------------------------------------------------------ init hooks
def test_default_initialisation_draws_as_before():
    torch.manual_seed(7)
    layer = YatNMN(6, 4)
    torch.manual_seed(7)
    expected = nn.init.xavier_normal_(torch.empty(4, 6))
    assert torch.equal(layer.weight.detach(), expected)
    assert torch.equal(layer.bias.detach(), torch.zeros(4)) and layer.alpha.item() == 1.0


def test_hooks_fill_known_values_and_reset_parameters_applies_them_again():
    layer = YatNMN(
        5,
        3,
        kernel_init=lambda w: nn.init.constant_(w, 0.25),
        bias_init=lambda b: b.fill_(-1.5),
        alpha_init=lambda a: a.fill_(3.0),
    )
    assert torch.equal(layer.weight.detach(), torch.full((3, 5), 0.25))
    assert torch.equal(layer.bias.detach(), torch.full((3,), -1.5))
    assert layer.alpha.item() == 3.0
    with torch.no_grad():
        for p in (layer.weight, layer.bias, layer.alpha):
            p.add_(1.0)
    layer.reset_parameters()
    assert torch.equal(layer.weight.detach(), torch.full((3, 5), 0.25))
    assert torch.equal(layer.bias.detach(), torch.full((3,), -1.5))
    assert layer.alpha.item() == 3.0
    assert all(p.requires_grad for p in (layer.weight, layer.bias, layer.alpha))


def test_a_hook_may_return_the_new_value_instead():
    layer = YatNMN(4, 2, bias_init=lambda b: torch.arange(2.0))
    assert torch.equal(layer.bias.detach(), torch.arange(2.0))
    with pytest.raises(ValueError, match=r"YatNMN: bias_init returned a tensor of shape \(3,\); expected .*\(2,\)"):
        YatNMN(4, 2, bias_init=lambda b: torch.zeros(3))


def test_torch_init_function_as_kernel_init_gives_its_distribution():
    torch.manual_seed(0)
    layer = YatNMN(16, 8, kernel_init=nn.init.orthogonal_)
    w = layer.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(8), atol=1e-5)  # 8 orthonormal rows
    torch.manual_seed(0)
    assert torch.equal(w, nn.init.orthogonal_(torch.empty(8, 16)))


def test_hooks_leave_the_other_parameters_at_their_defaults_and_the_lazy_weight_frozen():
    layer = YatNMN(5, 3, lazy=True, learnable_epsilon=True, kernel_init=nn.init.ones_)
    assert torch.equal(layer.weight.detach(), torch.ones(3, 5)) and not layer.weight.requires_grad
    assert torch.equal(layer.bias.detach(), torch.zeros(3)) and layer.alpha.item() == 1.0
    assert math.isclose(torch.nn.functional.softplus(layer.epsilon_param).item(), 1e-5, rel_tol=1e-3)


def test_hooks_appear_in_the_repr():
    text = repr(YatNMN(4, 2, kernel_init=nn.init.xavier_uniform_, alpha_init=nn.init.ones_))
    assert "kernel_init=xavier_uniform_" in text and "alpha_init=ones_" in text and "bias_init" not in text


@pytest.mark.parametrize(
    "kwargs, keyword",
    [
        ({"bias": False, "bias_init": nn.init.ones_}, "bias_init"),
        ({"constant_bias": 0.5, "bias_init": nn.init.ones_}, "bias_init"),
        ({"use_alpha": False, "alpha_init": nn.init.ones_}, "alpha_init"),
        ({"constant_alpha": True, "alpha_init": nn.init.ones_}, "alpha_init"),
    ],
)
def test_a_hook_for_a_missing_parameter_is_an_error(kwargs, keyword):
    with pytest.raises(ValueError, match=rf"YatNMN: {keyword} is given but the layer has no"):
        YatNMN(4, 2, **kwargs)


def test_a_hook_that_is_not_callable_is_an_error():
    with pytest.raises(TypeError, match=r"YatNMN: kernel_init must be a callable .* got 'xavier'"):
        YatNMN(4, 2, kernel_init="xavier")


# ------------------------------------------------------------------------------------------------ positive_init
def test_positive_init_is_abs_of_the_default_draw_under_the_same_seed():
    torch.manual_seed(7)
    layer = YatNMN(6, 4, positive_init=True)
    torch.manual_seed(7)
    draw = nn.init.xavier_normal_(torch.empty(4, 6))
    assert torch.any(draw < 0)  # the default draw has negative entries, so abs changes it
    assert torch.equal(layer.weight.detach(), draw.abs())
    assert torch.all(layer.weight >= 0) and layer.weight.requires_grad
    assert torch.equal(layer.bias.detach(), torch.zeros(4)) and layer.alpha.item() == 1.0
    torch.manual_seed(8)
    layer.reset_parameters()  # every reset draws again and takes abs again
    torch.manual_seed(8)
    assert torch.equal(layer.weight.detach(), nn.init.xavier_normal_(torch.empty(4, 6)).abs())


def test_positive_init_leaves_the_default_layer_unchanged_and_shows_in_the_repr():
    torch.manual_seed(7)
    plain = YatNMN(6, 4, positive_init=False)
    torch.manual_seed(7)
    assert torch.equal(plain.weight.detach(), nn.init.xavier_normal_(torch.empty(4, 6)))
    assert "positive_init=True" in repr(YatNMN(6, 4, positive_init=True))
    assert "positive_init" not in repr(plain)


def test_a_kernel_init_hook_overrides_positive_init():
    """The documented order: default draw, then abs, then the user's kernel_init replaces both."""
    layer = YatNMN(5, 3, positive_init=True, kernel_init=lambda w: nn.init.constant_(w, -0.5))
    assert torch.equal(layer.weight.detach(), torch.full((3, 5), -0.5))
    torch.manual_seed(1)
    positive = YatNMN(16, 8, positive_init=True, kernel_init=lambda w: nn.init.orthogonal_(w).abs_())
    torch.manual_seed(1)
    assert torch.equal(positive.weight.detach(), nn.init.orthogonal_(torch.empty(8, 16)).abs())


def test_positive_init_is_not_in_the_exported_file():
    torch.manual_seed(4)
    positive = YatNMN(6, 4, positive_init=True)
    plain = YatNMN(6, 4)
    plain.load_state_dict(positive.state_dict())
    x = torch.randn(3, 6)
    assert torch.equal(positive(x), plain(x))
    assert torch_io.export(positive, x).SerializeToString() == torch_io.export(plain, x).SerializeToString()


# ------------------------------------------------------------------------------------------------ DropConnect
CONVS = [
    (YatNMN, (2, 5, 3)),
    (YatConv1D, (2, 3, 9)),
    (YatConv2D, (2, 3, 6, 6)),
    (YatConv3D, (1, 3, 4, 4, 4)),
    (YatConvTranspose1D, (2, 3, 5)),
    (YatConvTranspose2D, (2, 3, 4, 4)),
    (YatConvTranspose3D, (1, 3, 3, 3, 3)),
]
IDS = [cls.__name__ for cls, _ in CONVS]


def _make(cls, **kwargs):
    """``cls`` with 3 inputs and 4 outputs (and a kernel of size 3 for the convolutions)."""
    return cls(3, 4, **kwargs) if cls is YatNMN else cls(3, 4, 3, **kwargs)


def _pair(cls, rate=0.3):
    torch.manual_seed(3)
    masked = _make(cls, use_dropconnect=True, drop_rate=rate)
    plain = _make(cls)
    plain.load_state_dict(masked.state_dict())
    return masked, plain


def _captured_kernels(layer, x, n, monkeypatch):
    """The kernels ``layer`` hands to the functional op over ``n`` training forwards."""
    seen = []
    kind = type(layer).__name__
    name = "yat_dense" if kind == "YatNMN" else "yat_conv_transpose" if "Transpose" in kind else "yat_conv"
    real = getattr(functional, name)

    def spy(x, weight, *args, **kwargs):
        seen.append(weight.detach().clone())
        return real(x, weight, *args, **kwargs)

    monkeypatch.setattr(functional, name, spy)
    for _ in range(n):
        layer(x)
    return torch.stack(seen)


@pytest.mark.parametrize("cls, shape", CONVS, ids=IDS)
def test_dropconnect_is_the_identity_at_inference(cls, shape):
    masked, plain = _pair(cls)
    x = torch.randn(shape)
    masked.eval()
    assert torch.equal(masked(x), plain(x))
    off = _make(cls, use_dropconnect=False, drop_rate=0.5)
    off.load_state_dict(plain.state_dict())
    off.train()
    assert torch.equal(off(x), plain(x))  # drop_rate without use_dropconnect drops nothing, as in 0.3


@pytest.mark.parametrize("cls, shape", CONVS, ids=IDS)
def test_dropconnect_masks_the_kernel_in_training(cls, shape, monkeypatch):
    rate = 0.3
    masked, plain = _pair(cls, rate)
    x = torch.randn(shape)
    masked.train()
    torch.manual_seed(11)
    y = masked(x)
    assert not torch.allclose(y, plain(x))
    torch.manual_seed(11)
    kernels = _captured_kernels(masked, x, 1, monkeypatch)
    w = masked.weight.detach()
    kept = kernels[0] != 0
    assert torch.allclose(kernels[0][kept], (w / (1 - rate))[kept])  # each entry: 0 or w / (1 - p)
    # the training output is the Yat product of that masked kernel (the same draw, seed 11)
    twin = _make(type(plain))
    twin.load_state_dict({**plain.state_dict(), "weight": kernels[0]})
    assert torch.allclose(y, twin(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, shape", CONVS[:3] + CONVS[4:6], ids=IDS[:3] + IDS[4:6])
def test_dropconnect_mask_rate_and_mean_follow_the_bernoulli_law(cls, shape, monkeypatch):
    """Over N forwards: the dropped fraction is within 5 binomial sigmas of p, and the mean masked kernel is
    within 5 sigmas (per entry, ``|w| sqrt(p / ((1 - p) N))``) of the kernel. (The mean of the Yat *outputs*
    is not the unmasked output: the Yat product is not linear in the kernel; its unbiased input is.)"""
    rate, n = 0.25, 400
    masked, _ = _pair(cls, rate)
    masked.train()
    torch.manual_seed(5)
    kernels = _captured_kernels(masked, torch.randn(shape), n, monkeypatch)
    w = masked.weight.detach()
    dropped = (kernels == 0).double().mean().item()
    count = kernels.numel()
    assert abs(dropped - rate) <= 5 * math.sqrt(rate * (1 - rate) / count)
    sigma = w.abs() * math.sqrt(rate / ((1 - rate) * n))
    assert torch.all((kernels.mean(0) - w).abs() <= 5 * sigma + 1e-7)


@pytest.mark.parametrize("cls, shape", [CONVS[0], CONVS[2]], ids=[IDS[0], IDS[2]])
def test_dropconnect_gradients_flow_only_through_kept_entries(cls, shape, monkeypatch):
    masked, _ = _pair(cls, 0.5)
    masked.train()
    x = torch.randn(shape)
    torch.manual_seed(2)
    kernels = _captured_kernels(masked, x, 1, monkeypatch)
    torch.manual_seed(2)
    masked(x).sum().backward()
    grad = masked.weight.grad
    assert torch.any(kernels[0] == 0)  # the mask dropped something
    assert torch.all(grad[kernels[0] == 0] == 0)
    assert torch.any(grad[kernels[0] != 0] != 0)


@pytest.mark.parametrize("cls, shape", [CONVS[0], CONVS[2], CONVS[5]], ids=[IDS[0], IDS[2], IDS[5]])
def test_dropconnect_exports_as_the_layer_without_it(cls, shape):
    masked, plain = _pair(cls)
    masked.train()  # the exporter runs the model in eval mode and gives the flag back
    x = torch.randn(shape)
    a = torch_io.export(masked, x)
    b = torch_io.export(plain, x)
    assert masked.training
    assert a.SerializeToString() == b.SerializeToString()


@pytest.mark.parametrize("cls", [YatNMN, YatConv2D])
def test_dropconnect_is_kept_in_the_repr(cls):
    text = repr(_make(cls, use_dropconnect=True, drop_rate=0.2))
    assert text.endswith("use_dropconnect=True, drop_rate=0.2)")
    assert "dropconnect" not in repr(_make(cls))


@pytest.mark.parametrize("cls", [YatNMN, YatConv2D, YatConvTranspose1D])
@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_bad_drop_rate_raises_naming_the_layer(cls, rate):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: drop_rate must be in \[0, 1\)"):
        _make(cls, use_dropconnect=True, drop_rate=rate)


@pytest.mark.parametrize("cls", [YatNMN, YatConv1D])
def test_use_dropconnect_must_be_a_switch(cls):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: use_dropconnect must be True or False, got 0.5"):
        _make(cls, use_dropconnect=0.5)


def test_dropconnect_on_a_lazy_dense_layer_masks_the_frozen_weight(monkeypatch):
    torch.manual_seed(3)
    layer = YatNMN(3, 4, lazy=True, use_dropconnect=True, drop_rate=0.5)
    x = torch.randn(2, 3)
    torch.manual_seed(6)
    kernels = _captured_kernels(layer, x, 1, monkeypatch)
    w = layer.weight.detach()
    kept = kernels[0] != 0
    assert not torch.all(kept) and torch.any(kept)
    assert torch.allclose(kernels[0][kept], 2 * w[kept])
    assert not layer.weight.requires_grad


# ------------------------------------------------------------- softplus_bias, scalar_bias and the conv kernel mask
def _conv_cases():
    mask = torch.ones(4, 3, 3, 3)
    mask[:, :, 0] = 0.0
    return [
        (YatConv2D, (3, 4, 3), mask, (2, 3, 6, 6)),
        (YatConvTranspose1D, (3, 4, 3), torch.rand(3, 4, 3).round(), (2, 3, 5)),
    ]


def test_softplus_bias_adds_softplus_of_the_raw_parameter():
    torch.manual_seed(0)
    plain = YatNMN(5, 4)
    soft = YatNMN(5, 4, softplus_bias=True)
    soft.load_state_dict(plain.state_dict())  # same names and shapes: the raw bias stays under ``bias``
    with torch.no_grad():
        soft.bias.normal_()
        plain.bias.copy_(nn.functional.softplus(soft.bias))
    x = torch.randn(3, 5)
    torch.testing.assert_close(soft(x), plain(x), rtol=1e-6, atol=1e-6)
    assert "softplus_bias=True" in repr(soft)


def test_scalar_bias_is_one_parameter_broadcast_over_outputs():
    torch.manual_seed(0)
    shared = YatConv2D(3, 4, 3, scalar_bias=True)
    assert shared.bias.shape == (1,) and shared.state_dict()["bias"].shape == (1,)
    plain = YatConv2D(3, 4, 3)
    with torch.no_grad():
        shared.bias.fill_(0.3)
        plain.weight.copy_(shared.weight)
        plain.bias.fill_(0.3)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(shared(x), plain(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls, args, mask, shape", _conv_cases(), ids=["conv2d", "convT1d"])
def test_mask_multiplies_the_weight(cls, args, mask, shape):
    torch.manual_seed(0)
    masked = cls(*args, mask=mask)
    plain = cls(*args)
    with torch.no_grad():
        plain.weight.copy_(masked.weight * mask)
    x = torch.randn(*shape)
    torch.testing.assert_close(masked(x), plain(x), rtol=1e-6, atol=1e-6)
    assert torch.equal(masked.state_dict()["mask"], mask) and "mask" not in dict(masked.named_parameters())
    assert masked.to(torch.float64).mask.dtype == torch.float64  # a buffer: moves with the module


def test_gradient_wrt_the_raw_bias_matches_a_finite_difference():
    """softplus' and the broadcast's chain rule: d loss / d b of a softplus scalar bias (float64 central difference)."""
    torch.manual_seed(1)
    layer = YatConv1D(2, 3, 3, softplus_bias=True, scalar_bias=True, mask=torch.tensor([1.0, 0.0, 1.0]).expand(3, 2, 3))
    layer = layer.double()
    with torch.no_grad():
        layer.bias.fill_(-0.4)
    x = torch.randn(2, 2, 7, dtype=torch.float64)
    cot = torch.randn(2, 3, 5, dtype=torch.float64)
    (layer(x) * cot).sum().backward()
    h = 1e-6
    with torch.no_grad():
        layer.bias += h
        up = (layer(x) * cot).sum().item()
        layer.bias -= 2 * h
        down = (layer(x) * cot).sum().item()
    assert layer.bias.grad.shape == (1,)
    assert abs(layer.bias.grad.item() - (up - down) / (2 * h)) <= 1e-6 * max(1.0, abs(layer.bias.grad.item()))
    assert torch.all(layer.weight.grad[:, :, 1] == 0)  # the masked tap never moves


def test_export_carries_the_effective_bias_and_kernel():
    mask = torch.ones(4, 3, 3, 3)
    mask[:, :, 1, 1] = 0.0
    layer = YatConv2D(3, 4, 3, mask=mask, softplus_bias=True, scalar_bias=True).eval()
    with torch.no_grad():
        layer.bias.fill_(0.25)
    params = layer._export_params()
    assert params["bias"].shape == (4,)
    assert abs(float(params["bias"][0]) - math.log1p(math.exp(0.25))) < 1e-6
    assert (params["weight"][:, :, 1, 1] == 0).all()
    assert YatNMN(3, 2)._export_params() == {}  # no option: nothing replaced
    loaded = torch_io.load(torch_io.export(layer, torch.randn(2, 3, 5, 5)))
    x = torch.randn(2, 3, 5, 5)
    (got,) = torch_io.predict(loaded, [x.numpy()])
    torch.testing.assert_close(torch.as_tensor(got), layer(x).detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (
            lambda: YatNMN(3, 2, bias=False, scalar_bias=True),
            ValueError,
            "YatNMN: scalar_bias=True needs a learnable bias, but use_bias=False",
        ),
        (
            lambda: YatConv2D(3, 4, 3, constant_bias=0.5, softplus_bias=True),
            ValueError,
            "YatConv2D: softplus_bias=True needs a learnable bias, but constant_bias=0.5 is fixed",
        ),
        (
            lambda: YatNMN(3, 2, softplus_bias="yes"),
            TypeError,
            "YatNMN: softplus_bias must be True or False, got 'yes'",
        ),
        (
            lambda: YatConv2D(3, 4, 3, mask=torch.ones(4, 3, 3)),
            ValueError,
            "YatConv2D: mask must have the kernel's shape (4, 3, 3, 3) (layout (out_channels, in_channels/groups, *kernel_size)), got shape (4, 3, 3)",
        ),
        (
            lambda: YatConvTranspose2D(3, 4, 3, mask=torch.ones(4, 4, 3, 3)),
            ValueError,
            "YatConvTranspose2D: mask must have the kernel's shape (3, 4, 3, 3)",
        ),
        (
            lambda: YatConv3D(1, 1, 2, mask=torch.full((1, 1, 2, 2, 2), float("nan"))),
            ValueError,
            "YatConv3D: mask must be finite",
        ),
        (lambda: YatConv1D(1, 1, 2, mask="abc"), TypeError, "YatConv1D: mask must be an array of numbers"),
    ],
    ids=[
        "scalar-no-bias",
        "softplus-constant",
        "softplus-not-bool",
        "mask-shape",
        "mask-shape-convT",
        "mask-nan",
        "mask-text",
    ],
)
def test_bias_and_mask_errors_name_the_layer_the_option_and_what_came(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)
