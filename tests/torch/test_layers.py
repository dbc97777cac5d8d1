"""Host idioms of nmn.torch: README examples, options, state_dict, spec round trips, dtypes, errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import nmn.torch as nt
from nmn.core.options import SQRT2, inverse_softplus
from nmn.torch import (
    MultiHeadYatAttention,
    RotaryYatAttention,
    YatConv1D,
    YatConv2D,
    YatConv3D,
    YatConvTranspose1D,
    YatConvTranspose2D,
    YatConvTranspose3D,
    YatEmbed,
    YatNMN,
    functional,
)
from nmn.torch.spec import from_spec, to_spec


def every_layer():
    """One small instance of every layer kind with its input."""
    return [
        (YatNMN(5, 4), torch.randn(3, 5)),
        (YatNMN(5, 4, learnable_epsilon=True, constant_bias=0.3), torch.randn(2, 3, 5)),
        (YatConv1D(2, 4, 3, padding="causal", dilation=2), torch.randn(2, 2, 9)),
        (YatConv2D(4, 6, 3, stride=2, padding=1, groups=2, padding_mode="reflect"), torch.randn(2, 4, 7, 7)),
        (YatConv3D(2, 2, 2, padding="same"), torch.randn(1, 2, 4, 4, 4)),
        (YatConvTranspose1D(2, 4, 4, stride=2), torch.randn(2, 2, 5)),
        (YatConvTranspose2D(4, 6, 3, stride=2, padding="same", groups=2), torch.randn(2, 4, 3, 3)),
        (YatConvTranspose3D(2, 2, 2, stride=2, output_padding=1), torch.randn(1, 2, 2, 2, 2)),
        (MultiHeadYatAttention(8, 2), torch.randn(2, 5, 8)),
        (MultiHeadYatAttention(8, 2, use_performer=True, num_features=16, causal=True), torch.randn(2, 5, 8)),
        (RotaryYatAttention(8, 2, max_seq_len=16, causal=True), torch.randn(2, 5, 8)),
    ]


# --------------------------------------------------------------------------------------------- seed README
def test_readme_pytorch_examples_run_as_written():
    from nmn.torch import (  # noqa: F401  # noqa: F401
        MultiHeadYatAttention,
        YatConv2D,
        YatEmbed,
        YatNMN,
        soft_tanh,
        softer_sigmoid,
        softermax,
    )

    layer = YatNMN(in_features=128, out_features=64, epsilon=1e-5)
    x = torch.randn(32, 128)
    y = layer(x)
    assert y.shape == (32, 64)

    attn = MultiHeadYatAttention(embed_dim=512, num_heads=8)
    query = key = value = torch.randn(2, 6, 512)
    output = attn(query, key, value)
    assert output.shape == (2, 6, 512)

    embed = YatEmbed(num_embeddings=10000, embedding_dim=128)
    token_ids = torch.randint(0, 10000, (2, 7))
    output = embed(token_ids)
    assert output.shape == (2, 7, 128)
    assert embed.attend(torch.randn(2, 128)).shape == (2, 10000)

    x = torch.rand(3, 5)
    assert softermax(x, n=2).shape == x.shape
    assert softer_sigmoid(x, n=1).shape == x.shape
    assert soft_tanh(x).shape == x.shape


def test_parameter_count_of_the_reference_mlp():
    model = nn.Sequential(nn.Flatten(), YatNMN(784, 256), YatNMN(256, 128), nn.Linear(128, 10))
    assert sum(p.numel() for p in model.parameters()) == 235_148
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ------------------------------------------------------------------------------------------------- options
def test_yat_options_make_the_right_parameters():
    assert set(dict(YatNMN(3, 2).named_parameters())) == {"weight", "bias", "alpha"}
    assert set(dict(YatNMN(3, 2, bias=False, alpha=False).named_parameters())) == {"weight"}
    assert set(dict(YatNMN(3, 2, use_bias=False, use_alpha=False).named_parameters())) == {"weight"}
    const = YatNMN(3, 2, constant_alpha=True, constant_bias=0.5)
    assert set(dict(const.named_parameters())) == {"weight"}
    assert const.constant_alpha == pytest.approx(SQRT2) and const.constant_bias == 0.5
    eps = YatNMN(3, 2, learnable_epsilon=True)
    assert float(eps.epsilon_param.detach()) == pytest.approx(inverse_softplus(1e-5), rel=1e-6)
    assert YatNMN(3, 2).alpha.item() == 1.0 and torch.all(YatNMN(3, 2).bias == 0)


def test_constant_alpha_and_bias_enter_the_formula():
    x, layer = torch.randn(4, 3), YatNMN(3, 2, constant_alpha=0.7, constant_bias=0.25, epsilon=0.1)
    w = layer.weight
    dot = x @ w.t()
    dist = (x[:, None, :] - w[None]).pow(2).sum(-1)
    expected = 0.7 * (dot + 0.25) ** 2 / (dist + 0.1)  # independent: explicit x - w distance
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_lazy_freezes_only_the_weight():
    layer = YatNMN(3, 2, lazy=True, learnable_epsilon=True)
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"bias", "alpha", "epsilon_param"}
    layer(torch.randn(4, 3)).sum().backward()
    assert layer.weight.grad is None and layer.alpha.grad is not None


def test_reset_parameters_and_repr():
    layer = YatNMN(50, 40)
    std = float(layer.weight.detach().std())
    assert abs(std - math.sqrt(2 / 90)) < 0.02
    with torch.no_grad():
        layer.bias.fill_(3.0)
    layer.reset_parameters()
    assert torch.all(layer.bias == 0)
    assert "in_features=50" in repr(layer) and "out_features=40" in repr(layer)
    assert "padding_mode='reflect'" in repr(YatConv2D(2, 3, 3, padding=1, padding_mode="reflect"))
    assert "use_performer=True" in repr(MultiHeadYatAttention(8, 2, use_performer=True))


def test_device_and_dtype_factory_arguments():
    layer = YatConv2D(2, 3, 3, dtype=torch.float64, device="cpu")
    assert layer.weight.dtype == torch.float64 and layer.alpha.dtype == torch.float64
    assert layer(torch.randn(1, 2, 5, 5, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "make, bad",
    [
        (lambda: YatNMN(3, 2, epsilon=0.0), "epsilon"),
        (lambda: YatNMN(3, 2, epsilon=-1.0), "epsilon"),
        (lambda: YatNMN(0, 2), "in_features"),
        (lambda: YatNMN(3, 2, bias=True, use_bias=False), "use_bias"),
        (lambda: YatConv2D(3, 4, 3, groups=2), "groups"),
        (lambda: YatConv2D(2, 4, 3, padding="full"), "padding"),
        (lambda: YatConv2D(2, 4, 3, padding="causal"), "causal"),
        (lambda: YatConv2D(2, 4, 3, padding_mode="mirror"), "padding_mode"),
        (lambda: YatConv2D(2, 4, (3, 3, 3)), "kernel_size"),
        (lambda: YatConvTranspose2D(2, 4, 3, padding_mode="reflect"), "padding_mode"),
        (lambda: YatConvTranspose1D(2, 4, 3, output_padding=-1), "output_padding"),
        (lambda: MultiHeadYatAttention(10, 3), "num_heads"),
        (lambda: MultiHeadYatAttention(8, 2, normalization="sparsemax"), "normalization"),
        (lambda: MultiHeadYatAttention(8, 2, dropout=1.5), "dropout"),
        (lambda: MultiHeadYatAttention(8, 2, epsilon=0), "epsilon"),
        (lambda: RotaryYatAttention(6, 2), "even"),
        (lambda: RotaryYatAttention(8, 2, rope_style="neox"), "rope_style"),
        (lambda: YatEmbed(10, 4, epsilon=0), "epsilon"),
        (lambda: nt.Softermax(n=0), "n must"),
    ],
)
def test_invalid_options_raise_at_construction(make, bad):
    with pytest.raises(ValueError, match=bad):
        make()


@pytest.mark.parametrize(
    "layer, x, words",
    [
        (YatNMN(4, 3), torch.randn(2, 5), ["YatNMN", "(..., 4)", "(2, 5)"]),
        (YatConv2D(2, 3, 3), torch.randn(1, 3, 5, 5), ["YatConv2D", "2 input channels", "(1, 3, 5, 5)"]),
        (YatConv2D(2, 3, 3), torch.randn(3, 5, 5), ["YatConv2D", "unbatched", "(3, 5, 5)"]),
        (YatConv2D(2, 3, 3), torch.randn(5, 5), ["YatConv2D", "4-D", "(5, 5)"]),
        (YatConv1D(2, 3, 3), torch.randn(1, 2, 5, 5), ["YatConv1D", "3-D", "(1, 2, 5, 5)"]),
        (
            YatConvTranspose2D(2, 3, 3),
            torch.randn(1, 3, 4, 4),
            ["YatConvTranspose2D", "2 input channels", "(1, 3, 4, 4)"],
        ),
        (MultiHeadYatAttention(8, 2), torch.randn(2, 5, 6), ["MultiHeadYatAttention", "(B, L, 8)", "(2, 5, 6)"]),
        (RotaryYatAttention(8, 2), torch.randn(2, 5), ["RotaryYatAttention", "(B, L, 8)", "(2, 5)"]),
    ],
)
def test_bad_input_names_layer_and_shapes(layer, x, words):
    with pytest.raises(ValueError) as err:
        layer(x)
    for word in words:
        assert word in str(err.value)


def test_embed_rejects_float_ids_and_bad_query():
    embed = YatEmbed(10, 4)
    with pytest.raises(ValueError, match="integer"):
        embed(torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\).*\(2, 3\)"):
        embed.attend(torch.zeros(2, 3))


def test_unbatched_conv_input():
    layer = YatConv2D(2, 3, 3, padding="same")
    x = torch.randn(2, 5, 5)
    torch.testing.assert_close(layer(x), layer(x[None])[0])


# ---------------------------------------------------------------------------------------- state and specs
@pytest.mark.parametrize("index", range(len(every_layer())))
def test_state_dict_round_trip(index):
    torch.manual_seed(index)
    layer, x = every_layer()[index]
    layer.eval()
    twin = copy.deepcopy(layer)
    for p in twin.parameters():
        nn.init.normal_(p) if p.requires_grad else None
    persistent = twin.state_dict()
    for name, buf in twin.named_buffers():
        if name in persistent:  # derived tables (RoPE cos/sin) are not state
            buf.normal_()
    twin.load_state_dict(layer.state_dict())
    torch.testing.assert_close(twin(x), layer(x))


@pytest.mark.parametrize("index", range(len(every_layer())))
def test_spec_round_trip_keeps_outputs(index):
    torch.manual_seed(index)
    layer, x = every_layer()[index]
    layer.eval()
    kind, config, params = to_spec(layer)
    import json

    config = json.loads(json.dumps(config))  # plain JSON
    rebuilt = from_spec(kind, config, params).eval()
    torch.testing.assert_close(rebuilt(x), layer(x))
    assert to_spec(rebuilt)[1] == config


def test_performer_projection_is_a_buffer_not_a_parameter():
    attn = MultiHeadYatAttention(8, 2, use_performer=True, num_features=12)
    assert "proj" in attn.state_dict() and attn.proj.shape == (12, 4)
    assert "proj" not in dict(attn.named_parameters())
    assert to_spec(attn)[2]["proj"].shape == (12, 4)


def test_from_spec_rejects_wrong_params():
    kind, config, params = to_spec(YatNMN(3, 2))
    params["weight"] = np.zeros((3, 2), np.float32)
    params["extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match=r"unexpected extra.*weight: expected shape \(2, 3\), got \(3, 2\)"):
        from_spec(kind, config, params)


# ----------------------------------------------------------------------------------------------- attention


def test_rotary_half_style_and_absolute_positions():
    x = torch.randn(1, 4, 1, 6)
    cos, sin = functional.rope_tables(6, 4)
    y = functional.rope(x, cos, sin, interleaved=False)
    a, b = x[..., :3], x[..., 3:]
    c, s = cos[None, :, None], sin[None, :, None]
    torch.testing.assert_close(y, torch.cat([a * c - b * s, a * s + b * c], -1))
    yi = functional.rope(x, cos, sin)
    torch.testing.assert_close(yi[..., 0::2], x[..., 0::2] * c - x[..., 1::2] * s)
    torch.testing.assert_close(yi.norm(dim=-1), x.norm(dim=-1))  # rotations keep norms


def test_fully_masked_row_is_finite_and_mask_forms():
    attn = MultiHeadYatAttention(8, 2).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.rand(2, 5, 5) > 0.3
    mask[0, 1] = False
    y = attn(x, mask=mask)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, attn(x, mask=mask[:, None]))
    with pytest.raises(ValueError, match="bool"):
        attn(x, mask=mask.float())


def test_causal_attention_ignores_future_tokens():
    for attn in (
        MultiHeadYatAttention(8, 2, causal=True),
        MultiHeadYatAttention(8, 2, causal=True, use_performer=True),
    ):
        x = torch.randn(1, 6, 8)
        x2 = x.clone()
        x2[:, 4:] = torch.randn(1, 2, 8)
        torch.testing.assert_close(attn(x)[:, :4], attn(x2)[:, :4], rtol=1e-5, atol=1e-6)


def test_performer_rejects_a_mask():
    attn = MultiHeadYatAttention(8, 2, use_performer=True)
    with pytest.raises(ValueError, match="mask"):
        attn(torch.randn(1, 3, 8), mask=torch.ones(3, 3, dtype=torch.bool))


def test_attention_dropout_only_in_training():
    attn = MultiHeadYatAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))
    attn.train()
    assert not torch.allclose(attn(x), attn(x))


def test_cross_attention_shapes():
    attn = MultiHeadYatAttention(8, 2)
    assert attn(torch.randn(2, 3, 8), torch.randn(2, 7, 8)).shape == (2, 3, 8)


# --------------------------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("index", [0, 3, 6, 8])
def test_half_inputs_compute_in_float32(dtype, index):
    torch.manual_seed(index)
    layer, x = every_layer()[index]
    layer.eval()
    xh = x.to(dtype)
    ref = layer(xh.float())
    got = layer(xh)  # float32 params: promoted to float32
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref)
    half = copy.deepcopy(layer).to(dtype)  # half params: result in half, arithmetic in float32
    got = half(xh)
    assert got.dtype == dtype
    exact = copy.deepcopy(half).float()(xh.float())
    torch.testing.assert_close(got.float(), exact.to(dtype).float(), rtol=2e-2, atol=2e-2 * float(exact.abs().max()))


def test_squashers_match_formulas():
    x = torch.rand(3, 4) + 0.1
    torch.testing.assert_close(nt.softermax(x, n=2, dim=0), x**2 / (1e-12 + (x**2).sum(0, keepdim=True)))
    torch.testing.assert_close(nt.softer_sigmoid(x, n=1.5), x**1.5 / (1 + x**1.5))
    torch.testing.assert_close(nt.soft_tanh(x, n=2.0), (x**2 - 1) / (x**2 + 1))
    with pytest.raises(ValueError, match="n must"):
        nt.softermax(x, n=-1)


def test_gradients_reach_every_parameter():
    for layer, x in every_layer():
        out = layer(x)
        out.sum().backward()
        for name, p in layer.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (type(layer).__name__, name)
