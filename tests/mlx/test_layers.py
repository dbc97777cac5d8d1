"""MLX host idioms: the module dict, save_weights / load_weights, mx.compile, value_and_grad + optimizers,
freeze for lazy layers, the KV cache, dtypes, clear errors. Numbers are checked against the numpy oracle of
``onnx_ops.reference`` (never against values copied from nmn.mlx)."""

from __future__ import annotations

import math

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")
optim = pytest.importorskip("mlx.optimizers")
from mlx.utils import tree_flatten

import nmn.mlx as nm
from nmn.core.options import SQRT2, inverse_softplus
from nmn.mlx.spec import from_spec, to_spec

reference = pytest.importorskip("onnx_ops.reference")


def _np(a):
    return np.array(a, dtype=np.float64)


def _keys(tree):
    return sorted(k for k, _ in tree_flatten(tree))


# ------------------------------------------------------------------------------------------- the module dict
def test_parameters_live_in_the_module_dict_and_absent_ones_are_absent_keys():
    assert _keys(nm.YatNMN(3, in_features=2).parameters()) == ["alpha", "bias", "kernel"]
    assert _keys(nm.YatNMN(3, in_features=2, use_bias=False, constant_alpha=True).parameters()) == ["kernel"]
    assert _keys(nm.YatNMN(3, in_features=2, use_alpha=False, learnable_epsilon=True).parameters()) == [
        "bias",
        "epsilon_param",
        "kernel",
    ]
    conv = nm.YatConv2D(6, 3, in_channels=4, groups=2, use_bias=False)
    assert _keys(conv.parameters()) == ["alpha", "kernel"]
    assert conv.children() == {}
    attn = nm.MultiHeadYatAttention(8, 2, use_bias=False, use_out_proj=False, constant_alpha=2.0)
    assert _keys(attn.parameters()) == ["key_proj.weight", "query_proj.weight", "value_proj.weight"]


def test_weights_use_the_mlx_nn_layouts():
    assert nm.YatNMN(5, in_features=3)["kernel"].shape == nn.Linear(3, 5).weight.shape
    for _rank, cls, ref in ((1, nm.YatConv1D, nn.Conv1d), (2, nm.YatConv2D, nn.Conv2d)):
        got = cls(6, 3, in_channels=4, groups=2)["kernel"].shape
        assert got == ref(4, 6, 3, groups=2).weight.shape
    assert nm.YatConvTranspose2D(6, 3, in_channels=4)["kernel"].shape == nn.ConvTranspose2d(4, 6, 3).weight.shape


def test_learnable_epsilon_init_is_inverse_softplus():
    layer = nm.YatConv1D(2, 3, in_channels=2, learnable_epsilon=True, epsilon=1e-3)
    assert layer["epsilon_param"].item() == pytest.approx(inverse_softplus(1e-3), rel=1e-6)


def test_constant_alpha_true_is_sqrt2():
    x = mx.random.normal((2, 3))
    a = nm.YatNMN(4, in_features=3, constant_alpha=True)
    b = nm.YatNMN(4, in_features=3, use_alpha=False)
    b.update({"kernel": a["kernel"], "bias": a["bias"]})
    np.testing.assert_allclose(_np(a(x)), SQRT2 * _np(b(x)), rtol=1e-6)


# ------------------------------------------------------------------------------------------------- oracles
def test_dense_matches_the_numpy_oracle_for_3d_input():
    rng = np.random.default_rng(0)
    layer = nm.YatNMN(4, in_features=5, learnable_epsilon=True, epsilon=0.1)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    w = np.array(layer["kernel"])
    eps = math.log1p(math.exp(layer["epsilon_param"].item()))
    want = reference.REFERENCE["YatDense"](
        x.astype(np.float64),
        w.astype(np.float64),
        np.zeros(4),
        np.ones(1),
        np.array([eps]),
        spherical=0,
        weight_normalized=0,
    )
    np.testing.assert_allclose(_np(layer(mx.array(x))), want, rtol=1e-5, atol=1e-6)


def test_lazy_dense_freezes_only_the_kernel_and_still_trains():
    layer = nm.YatNMN(3, in_features=4, lazy=True)
    assert _keys(layer.trainable_parameters()) == ["alpha", "bias"]
    kernel = np.array(layer["kernel"])
    x, y = mx.random.normal((8, 4)), mx.random.normal((8, 3))
    loss_and_grad = nn.value_and_grad(layer, lambda m, x, y: mx.mean((m(x) - y) ** 2))
    loss, grads = loss_and_grad(layer, x, y)
    assert _keys(grads) == ["alpha", "bias"]
    optim.SGD(learning_rate=0.1).update(layer, grads)
    np.testing.assert_array_equal(np.array(layer["kernel"]), kernel)


def test_build_on_first_call_when_in_features_is_absent():
    layer = nm.YatNMN(4)
    assert "kernel" not in layer
    assert layer(mx.ones((2, 7))).shape == (2, 4)
    assert layer["kernel"].shape == (4, 7)
    conv = nm.YatConvTranspose1D(3, 2, strides=2)
    assert conv(mx.ones((1, 4, 5))).shape == (1, 8, 3)


# --------------------------------------------------------------------------------------------- host idioms
def _model():
    return nn.Sequential(
        nm.YatConv2D(4, 3, in_channels=2, padding="same"),
        nm.YatConvTranspose2D(3, 2, in_channels=4, strides=2, groups=1),
        lambda x: mx.mean(x, axis=(1, 2)),
        nm.YatNMN(2, in_features=3, learnable_epsilon=True),
    )


def test_save_weights_load_weights_round_trip(tmp_path):
    model = _model()
    x = mx.random.normal((2, 4, 4, 2))
    want = np.array(model(x))
    for name in ("w.safetensors", "w.npz"):
        model.save_weights(str(tmp_path / name))
        other = _model()
        other.load_weights(str(tmp_path / name))
        np.testing.assert_array_equal(np.array(other(x)), want)


def test_compile_matches_eager_and_a_training_step_lowers_the_loss():
    mx.random.seed(3)
    model = nn.Sequential(nm.YatNMN(6, in_features=4), nm.YatNMN(2, in_features=6))
    x, y = mx.random.normal((16, 4)), mx.random.normal((16, 2))
    np.testing.assert_allclose(np.array(mx.compile(model)(x)), np.array(model(x)), rtol=1e-6)

    def loss_fn(m, x, y):
        return mx.mean((m(x) - y) ** 2)

    opt = optim.Adam(learning_rate=1e-2)
    step_fn = nn.value_and_grad(model, loss_fn)
    state = [model.state, opt.state]

    @partial_compile(state)
    def step(x, y):
        loss, grads = step_fn(model, x, y)
        opt.update(model, grads)
        return loss

    first = step(x, y).item()
    for _ in range(5):
        last = step(x, y).item()
    assert last < first


def partial_compile(state):
    from functools import partial

    return partial(mx.compile, inputs=state, outputs=state)


def test_attention_dropout_only_in_training_mode():
    attn = nm.MultiHeadYatAttention(8, 2, dropout=0.5)
    x = mx.random.normal((1, 4, 8))
    attn.eval()
    np.testing.assert_array_equal(np.array(attn(x)), np.array(attn(x)))
    attn.train()
    assert not np.allclose(np.array(attn(x)), np.array(attn(x)))


def test_performer_projection_is_a_frozen_parameter():
    attn = nm.MultiHeadYatAttention(8, 2, use_performer=True, num_features=5)
    assert attn["proj"].shape == (5, 4)
    assert "proj" not in dict(tree_flatten(attn.trainable_parameters()))
    assert attn(mx.random.normal((2, 3, 8))).shape == (2, 3, 8)


def test_reset_cache_returns_to_the_full_pass():
    attn = nm.RotaryYatAttention(8, 2, max_seq_len=16, causal=True)
    x = mx.random.normal((2, 5, 8))
    full = np.array(attn(x))
    attn.init_cache(2)
    attn(x[:, :3])
    attn.reset_cache()  # decoding rows live in tests/behaviour; here only MLX's own reset
    np.testing.assert_allclose(np.array(attn(x)), full, rtol=1e-6)


def test_rotary_positions_are_absolute():
    attn = nm.RotaryYatAttention(4, 1, max_seq_len=8, rope_style="interleaved")
    q = mx.array(np.tile(np.array([[1.0, 0.0, 0.0, 1.0]], np.float32), (3, 1))[None, :, None, :])
    cos, sin = nm.precompute_freqs_cis(4, 8)
    rot = np.array(nm.apply_rotary_emb(q, cos[:3], sin[:3]))[0, :, 0]
    # pair (x0, x1) = (1, 0) rotated by t * theta^0 = t radians
    np.testing.assert_allclose(rot[:, 0], np.cos(np.arange(3)), atol=1e-6)
    np.testing.assert_allclose(rot[:, 1], np.sin(np.arange(3)), atol=1e-6)
    assert attn._rotate(mx.zeros((1, 2, 1, 4)), 6).shape == (1, 2, 1, 4)
    with pytest.raises(ValueError, match="max_seq_len"):
        attn._rotate(mx.zeros((1, 3, 1, 4)), 6)


def test_low_precision_inputs_use_float32_math():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4)).astype(np.float32) * 10
    layer = nm.YatNMN(3, in_features=4, dtype=mx.float16, epsilon=1e-3)
    out = layer(mx.array(x).astype(mx.float16))
    assert out.dtype == mx.float16
    w = np.array(layer["kernel"].astype(mx.float32), np.float64)
    x16 = np.array(mx.array(x).astype(mx.float16).astype(mx.float32), np.float64)
    want = reference.REFERENCE["YatDense"](
        x16, w, np.zeros(3), np.ones(1), np.array([1e-3]), spherical=0, weight_normalized=0
    )
    np.testing.assert_allclose(np.array(out.astype(mx.float32)), want, rtol=2e-3, atol=1e-3 * np.abs(want).max())
    assert nm.YatNMN(3, in_features=4)(mx.array(x).astype(mx.bfloat16)).dtype == mx.float32


def test_embed_lookup_and_attend():
    emb = nm.YatEmbed(6, 4, constant_alpha=True)
    ids = mx.array([[0, 5], [2, 2]])
    np.testing.assert_array_equal(np.array(emb(ids)), np.array(emb["embedding"])[np.array(ids)])
    q = mx.random.normal((2, 4))
    want = reference.REFERENCE["YatEmbedAttend"](
        _np(q), _np(emb["embedding"]), np.array([SQRT2]), np.array([1e-5]), spherical=0
    )
    np.testing.assert_allclose(_np(emb.attend(q)), want, rtol=1e-4)


def test_squashers():
    x = mx.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(np.array(nm.softermax(x, n=2.0)), [0.0, 0.1, 0.9], rtol=1e-6)
    np.testing.assert_allclose(np.array(nm.softer_sigmoid(x)), [0.0, 0.5, 0.75], rtol=1e-6)
    np.testing.assert_allclose(np.array(nm.soft_tanh(x)), [-1.0, 0.0, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="n must be > 0"):
        nm.softermax(x, n=0)


# ------------------------------------------------------------------------------------------------ spec round trip
@pytest.mark.parametrize(
    "layer",
    [
        lambda: nm.YatNMN(3, in_features=4, learnable_epsilon=True, lazy=True),
        lambda: nm.YatConv1D(4, 3, in_channels=2, padding="causal", dilation_rate=2, constant_bias=0.5),
        lambda: nm.YatConv3D(4, 2, in_channels=2, groups=2, padding_mode="circular", padding=1),
        lambda: nm.YatConvTranspose2D(6, 3, in_channels=4, strides=2, groups=2, padding=1, output_padding=1),
        lambda: nm.MultiHeadYatAttention(8, 2, use_performer=True, num_features=4, causal=True),
        lambda: nm.RotaryYatAttention(8, 2, max_seq_len=8, rope_style="half", use_bias=False),
        lambda: nm.YatEmbed(5, 4, spherical=True),
    ],
    ids=["dense", "conv1d", "conv3d", "convT2d", "performer", "rotary", "embed"],
)
def test_spec_round_trip_is_bit_exact(layer):
    layer = layer()
    kind, config, params = to_spec(layer)
    again = from_spec(kind, config, params)
    k2, c2, p2 = to_spec(again)
    assert (k2, c2) == (kind, config)
    assert sorted(p2) == sorted(params)
    for name in params:
        np.testing.assert_array_equal(p2[name], params[name])
    assert _keys(again.trainable_parameters()) == _keys(layer.trainable_parameters())


def test_conv_transpose_groups1_dot_map_is_mlx_conv_transpose():
    """With use_alpha=False, no bias, the Yat numerator is (d)^2 where d is mlx's own transposed conv."""
    layer = nm.YatConvTranspose2D(
        3, 3, in_channels=2, strides=2, padding=1, use_bias=False, use_alpha=False, epsilon=1.0
    )
    x = mx.random.normal((1, 3, 3, 2))
    d = mx.conv_transpose2d(x, layer["kernel"], stride=2, padding=1)
    ones = mx.ones_like(layer["kernel"])
    energy = mx.conv_transpose2d(x * x, ones, stride=2, padding=1)
    ww = mx.sum(layer["kernel"] ** 2, axis=(1, 2, 3))
    want = d * d / (mx.maximum(energy + ww - 2 * d, 0) + 1.0)
    np.testing.assert_allclose(np.array(layer(x)), np.array(want), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, x, match",
    [
        (lambda: nm.YatNMN(4, in_features=3), (2, 5), r"YatNMN: expected input of shape \(\.\.\., 3\).*\(2, 5\)"),
        (lambda: nm.YatConv2D(4, 3, in_channels=2), (1, 5, 5), r"YatConv2D: .*rank 4.*\(1, 5, 5\)"),
        (lambda: nm.YatConv2D(4, 3, in_channels=2), (1, 5, 5, 3), r"YatConv2D: .*\(N, H, W, 2\).*\(1, 5, 5, 3\)"),
        (lambda: nm.YatConvTranspose1D(4, 3, in_channels=2), (1, 5, 3), r"YatConvTranspose1D: .*\(1, 5, 3\)"),
        (lambda: nm.MultiHeadYatAttention(8, 2), (1, 3, 6), r"MultiHeadYatAttention: .*\(B, L, 8\).*\(1, 3, 6\)"),
        (lambda: nm.YatEmbed(5, 4).attend, (2, 3), r"YatEmbed: .*\(\.\.\., 4\).*\(2, 3\)"),
    ],
)
def test_bad_input_shapes_name_the_layer_and_both_shapes(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(mx.zeros(x))


def test_embed_needs_integer_ids():
    with pytest.raises(ValueError, match="YatEmbed: ids must be integers"):
        nm.YatEmbed(5, 4)(mx.zeros((2,)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nm.YatNMN(4, epsilon=0.0), "YatNMN: epsilon must be > 0"),
        (lambda: nm.YatConv2D(4, 3, epsilon=-1), "YatConv2D: epsilon must be > 0"),
        (lambda: nm.YatConvTranspose2D(4, 3, epsilon=0), "YatConvTranspose2D: epsilon must be > 0"),
        (lambda: nm.MultiHeadYatAttention(8, 2, epsilon=0), "MultiHeadYatAttention: epsilon must be > 0"),
        (lambda: nm.YatEmbed(4, 2, epsilon=0), "YatEmbed: epsilon must be > 0"),
        (lambda: nm.YatConv2D(5, 3, groups=2), r"filters \(5\) must be divisible by groups \(2\)"),
        (lambda: nm.YatConv2D(4, 3, in_channels=3, groups=2), r"in_channels \(3\) must be divisible"),
        (lambda: nm.YatConv2D(4, 3, padding="causal"), "only defined for 1-D"),
        (lambda: nm.YatConv1D(4, 3, padding_mode="mirror"), "padding_mode must be one of"),
        (lambda: nm.YatConvTranspose1D(4, 3, strides=2, output_padding=2), "output_padding"),
        (lambda: nm.MultiHeadYatAttention(8, 3), r"embed_dim \(8\) must be divisible by num_heads \(3\)"),
        (lambda: nm.MultiHeadYatAttention(8, 2, normalization="sparsemax"), "normalization must be one of"),
        (lambda: nm.RotaryYatAttention(6, 2), "head_dim .* must be even"),
        (lambda: nm.RotaryYatAttention(8, 2, rope_style="neox"), "rope_style must be one of"),
        (lambda: nm.YatNMN(0), "features must be a positive int"),
    ],
)
def test_invalid_options_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_cache_errors():
    attn = nm.RotaryYatAttention(8, 2, max_seq_len=4)
    attn.init_cache(1, max_length=3)
    attn(mx.zeros((1, 2, 8)))
    with pytest.raises(ValueError, match="cache full"):
        attn(mx.zeros((1, 2, 8)))
    with pytest.raises(ValueError, match="max_length"):
        attn.init_cache(1, max_length=5)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nm.YatConv2D(3, 3, in_channels=2, strides=2, padding="same", padding_mode="reflect"), (1, 5, 5, 2)),
        (lambda: nm.YatConvTranspose2D(4, 3, in_channels=2, strides=2, groups=2, padding="same"), (1, 3, 3, 2)),
        (lambda: nm.MultiHeadYatAttention(8, 2, causal=True, normalization="l1"), (2, 3, 8)),
        (lambda: nm.MultiHeadYatAttention(8, 2, use_performer=True, num_features=4), (2, 3, 8)),
        (lambda: nm.RotaryYatAttention(8, 2, max_seq_len=8), (2, 3, 8)),
    ],
    ids=["conv", "convT", "mha", "performer", "rotary"],
)
def test_mx_compile_matches_eager(make, shape):
    layer = make()
    x = mx.random.normal(shape)
    np.testing.assert_allclose(np.array(mx.compile(layer)(x)), np.array(layer(x)), rtol=1e-5, atol=1e-6)
