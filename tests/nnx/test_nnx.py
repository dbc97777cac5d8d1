"""Host idioms of nmn.nnx: the seed README examples, split/merge/state, nnx.jit training, dtypes, errors,
rotary KV-cache decoding, and spec round trips. Numerical conformance is tests/conformance (adapters nnx and
nnx-vmap)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import nmn.nnx as N
from nmn.core.options import SQRT2


def test_readme_examples_run_as_written():
    from nmn.nnx import YatNMN

    layer = YatNMN(in_features=128, out_features=64, rngs=nnx.Rngs(0))
    x = jnp.zeros((32, 128))
    y = layer(x)
    assert y.shape == (32, 64)

    from nmn.nnx import RotaryYatAttention

    attn = RotaryYatAttention(num_heads=8, in_features=512, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 6, 512))
    assert attn(x).shape == (2, 6, 512)

    from nmn.nnx import MultiHeadAttention

    attn = MultiHeadAttention(num_heads=8, in_features=512, use_performer=True, rngs=nnx.Rngs(0))
    output = attn(x)
    assert output.shape == (2, 6, 512) and bool(jnp.all(jnp.isfinite(output)))

    from nmn.nnx import Embed

    embed = Embed(num_embeddings=10000, features=128, constant_alpha=True, rngs=nnx.Rngs(0))
    token_ids = jnp.array([[1, 2, 3]])
    output = embed(token_ids)
    scores = embed.attend(output)
    assert output.shape == (1, 3, 128) and scores.shape == (1, 3, 10000)
    assert embed.alpha is None and embed.opts.alpha.value == SQRT2

    from nmn.nnx import Embed, MultiHeadAttention, RotaryYatAttention, YatConv, soft_tanh, softer_sigmoid, softermax  # noqa: F401

    x = jnp.array([[0.5, 1.0, 2.0]])
    y1 = softermax(x, n=2)
    y2 = softer_sigmoid(x, sharpness=1)
    y3 = soft_tanh(x)
    np.testing.assert_allclose(y1, x**2 / (1e-12 + jnp.sum(x**2)), rtol=1e-6)
    np.testing.assert_allclose(y2, x / (1 + x), rtol=1e-6)
    np.testing.assert_allclose(y3, (x - 1) / (x + 1), rtol=1e-6)


def test_rank_classes_are_subclasses_that_check_rank():
    assert issubclass(N.YatConv2D, N.YatConv) and N.YatConv2D is not N.YatConv
    conv = N.YatConv2D(3, 4, 3, rngs=nnx.Rngs(0))
    assert conv.kernel.shape == (3, 3, 3, 4)
    with pytest.raises(ValueError, match=r"YatConv2D.*rank-4.*\(2, 5, 3\)"):
        conv(jnp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"YatConv2D.*last axis 3.*\(1, 5, 5, 2\)"):
        conv(jnp.ones((1, 5, 5, 2)))
    generic = N.YatConv(2, 4, kernel_size=(3,), rngs=nnx.Rngs(0))
    assert generic.rank == 1 and generic(jnp.ones((1, 7, 2))).shape == (1, 7, 4)
    up = N.YatConvTranspose1D(2, 4, 3, strides=2, feature_group_count=2, rngs=nnx.Rngs(0))
    assert up.kernel.shape == (3, 2, 2)
    with pytest.raises(ValueError, match=r"YatConvTranspose1D.*\(1, 5, 5, 2\)"):
        up(jnp.ones((1, 5, 5, 2)))


def test_bad_input_names_layer_and_shapes():
    dense = N.YatNMN(4, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"YatNMN.*\(4, 3\).*\(2, 5\)"):
        dense(jnp.ones((2, 5)))
    attn = N.MultiHeadYatAttention(2, 8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention.*\(B, L, 8\).*\(1, 4, 6\)"):
        attn(jnp.ones((1, 4, 6)))
    embed = N.YatEmbed(5, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="YatEmbed.*integers"):
        embed(jnp.ones((2,)))
    with pytest.raises(ValueError, match=r"YatEmbed.*\(5, 4\).*\(2, 3\)"):
        embed.attend(jnp.ones((2, 3)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda r: N.YatNMN(3, 2, epsilon=0.0, rngs=r), "YatNMN: epsilon must be > 0"),
        (lambda r: N.YatNMN(3, 0, rngs=r), "YatNMN: out_features"),
        (lambda r: N.YatConv2D(3, 4, 3, feature_group_count=2, rngs=r), "YatConv2D.*divisible"),
        (lambda r: N.YatConv2D(4, 4, 3, padding="causal", rngs=r), "YatConv2D.*causal"),
        (lambda r: N.YatConv1D(4, 4, 3, padding_mode="mirror", rngs=r), "YatConv1D.*padding_mode"),
        (lambda r: N.YatConvTranspose2D(4, 4, 3, padding="causal", rngs=r), "YatConvTranspose2D.*padding"),
        (lambda r: N.MultiHeadYatAttention(3, 8, rngs=r), "MultiHeadYatAttention.*divisible"),
        (lambda r: N.MultiHeadYatAttention(2, 8, normalization="max", rngs=r), "normalization"),
        (lambda r: N.RotaryYatAttention(2, 6, rngs=r), "RotaryYatAttention.*even"),
        (lambda r: N.RotaryYatAttention(2, 8, rope_style="neox", rngs=r), "rope_style"),
        (lambda r: N.YatEmbed(4, 3, epsilon=-1.0, rngs=r), "YatEmbed: epsilon"),
    ],
)
def test_invalid_options_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make(nnx.Rngs(0))


def test_split_merge_state_and_variable_kinds():
    layer = N.YatNMN(4, 3, lazy=True, learnable_epsilon=True, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(layer)
    x = jax.random.normal(jax.random.key(1), (2, 4))
    np.testing.assert_array_equal(nnx.merge(graphdef, state)(x), layer(x))
    trainable = nnx.state(layer, nnx.Param)
    assert set(trainable.keys()) == {"bias", "alpha", "epsilon_param"}  # the lazy kernel is frozen
    assert set(nnx.state(layer, N.FrozenParam).keys()) == {"kernel"}
    attn = N.MultiHeadYatAttention(2, 8, use_performer=True, num_features=6, rngs=nnx.Rngs(0))
    assert "proj" not in nnx.state(attn, nnx.Param)
    assert nnx.state(attn, N.Buffer)["proj"].shape == (6, 4)


def test_nnx_jit_training_step_lowers_loss_and_keeps_frozen_kernel():
    model = nnx.Sequential(
        N.YatConv2D(2, 4, 3, rngs=nnx.Rngs(0)),
        lambda h: h.mean(axis=(1, 2)),
        N.YatNMN(4, 2, lazy=True, rngs=nnx.Rngs(1)),
    )
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(0), (8, 6, 6, 2))
    target = jnp.zeros((8, 2))
    frozen = model.layers[2].kernel[...].copy()

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(m):
            return jnp.mean((m(x) - target) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        with jax.numpy_dtype_promotion("standard"):  # optax's adam mixes float and int32 step counts
            optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(5)]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(model.layers[2].kernel[...], frozen)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype):
    layer = N.YatNMN(6, 3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (4, 6)).astype(dtype)
    y = layer(x)
    assert y.dtype == jnp.float32  # promoted with the float32 params
    ref = layer(x.astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(y), np.asarray(ref), rtol=1e-6)
    low = N.YatNMN(6, 3, param_dtype=dtype, rngs=nnx.Rngs(0))
    assert low(x).dtype == dtype
    conv = N.YatConv2D(2, 3, 3, dtype=dtype, rngs=nnx.Rngs(0))
    assert conv(jnp.ones((1, 4, 4, 2), dtype)).dtype == dtype
    attn = N.MultiHeadYatAttention(2, 8, rngs=nnx.Rngs(0))
    out = attn(jnp.ones((1, 3, 8), dtype))
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    assert N.softermax(jnp.ones((3,), dtype)).dtype == dtype


def test_rotary_rotates_at_absolute_positions():
    """A query at position t sees a different rotation than at 0: shifting the same tokens changes scores."""
    attn = N.RotaryYatAttention(1, 4, causal=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (1, 3, 4))
    attn.init_cache((1, 3, 4))
    attn(x[:, :2], decode=True)
    last = attn(x[:, 2:3], decode=True)
    np.testing.assert_allclose(np.asarray(last), np.asarray(attn(x)[:, 2:3]), rtol=2e-5, atol=2e-6)


def test_dropout_on_attention_weights_train_and_eval():
    attn = N.MultiHeadYatAttention(2, 8, dropout_rate=0.5, rngs=nnx.Rngs(0, dropout=1))
    x = jax.random.normal(jax.random.key(0), (1, 5, 8))
    a, b = attn(x), attn(x)
    assert not np.allclose(a, b)  # fresh masks while training
    attn.eval()
    np.testing.assert_array_equal(attn(x), attn(x))


@pytest.mark.parametrize(
    "make, x",
    [
        (lambda: N.YatNMN(4, 3, constant_bias=0.5, learnable_epsilon=True, rngs=nnx.Rngs(0)), (2, 4)),
        (
            lambda: N.YatConv2D(4, 6, 3, strides=2, padding="CIRCULAR", feature_group_count=2, rngs=nnx.Rngs(0)),
            (1, 6, 6, 4),
        ),
        (
            lambda: N.YatConvTranspose2D(
                4, 6, (3, 2), strides=2, feature_group_count=2, padding=1, output_padding=1, rngs=nnx.Rngs(0)
            ),
            (1, 3, 3, 4),
        ),
        (
            lambda: N.MultiHeadYatAttention(2, 8, use_performer=True, num_features=4, causal=True, rngs=nnx.Rngs(0)),
            (1, 5, 8),
        ),
        (lambda: N.RotaryYatAttention(2, 8, rope_style="half", constant_alpha=0.5, rngs=nnx.Rngs(0)), (1, 5, 8)),
    ],
)
def test_spec_round_trip_is_exact(make, x):
    layer = make()
    kind, config, params = N.to_spec(layer)
    clone = N.from_spec(kind, config, params, rngs=nnx.Rngs(42))
    x = jax.random.normal(jax.random.key(0), x)
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))
    again = N.to_spec(clone)
    assert again[0] == kind and again[1] == config
    for name in params:
        np.testing.assert_array_equal(again[2][name], params[name])


def test_nnx_and_linen_agree_through_the_spec():
    import nmn.linen as L

    layer = N.YatConv1D(4, 6, 3, kernel_dilation=2, padding="CAUSAL", feature_group_count=2, rngs=nnx.Rngs(0))
    module, variables = L.from_spec(*N.to_spec(layer))
    x = jax.random.normal(jax.random.key(0), (2, 9, 4))
    np.testing.assert_allclose(np.asarray(module.apply(variables, x)), np.asarray(layer(x)), rtol=1e-6)
