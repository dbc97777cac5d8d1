"""Host idioms of nmn.linen: the seed README imports, init/apply, collections (params, frozen, constants,
cache), optax training, dtypes, errors, rotary KV-cache decoding and spec round trips. Numerical conformance is
tests/conformance (adapters linen and linen-vmap)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nmn.linen as L

KEY = jax.random.key(0)


def test_readme_imports_and_calls():
    from nmn.linen import MultiHeadAttention, YatConv2D, YatEmbed, YatNMN, soft_tanh, softer_sigmoid, softermax  # noqa: F401

    layer = YatNMN(features=64)
    x = jnp.zeros((32, 128))
    variables = layer.init(KEY, x)
    assert layer.apply(variables, x).shape == (32, 64)
    attn = MultiHeadAttention(num_heads=8)
    q = jnp.ones((2, 5, 64))
    assert attn.apply(attn.init(KEY, q), q).shape == (2, 5, 64)
    x = jnp.array([0.5, 2.0])
    np.testing.assert_allclose(softermax(x, n=2), x**2 / (1e-12 + jnp.sum(x**2)), rtol=1e-6)
    np.testing.assert_allclose(softer_sigmoid(x, sharpness=1), x / (1 + x), rtol=1e-6)
    np.testing.assert_allclose(soft_tanh(x), (x - 1) / (x + 1), rtol=1e-6)


def test_collections_and_shapes():
    x = jnp.ones((2, 4))
    v = L.YatNMN(3, lazy=True, learnable_epsilon=True, constant_alpha=True).init(KEY, x)
    assert set(v["params"]) == {"bias", "epsilon_param"} and v["frozen"]["kernel"].shape == (4, 3)
    v = L.YatConv2D(6, (3, 3), feature_group_count=2).init(KEY, jnp.ones((1, 5, 5, 4)))
    assert v["params"]["kernel"].shape == (3, 3, 2, 6)
    v = L.YatConvTranspose1D(6, 3, strides=2, feature_group_count=3).init(KEY, jnp.ones((1, 5, 3)))
    assert v["params"]["kernel"].shape == (3, 3, 2)
    v = L.MultiHeadYatAttention(2, use_performer=True, num_features=5).init(KEY, jnp.ones((1, 3, 8)))
    assert v["constants"]["proj"].shape == (5, 4) and "proj" not in v["params"]
    assert set(v["params"]) == {"query", "key", "value", "out"}  # alpha cancels under the performer's l1 readout
    v = L.MultiHeadYatAttention(2).init(KEY, jnp.ones((1, 3, 8)))
    assert set(v["params"]) == {"query", "key", "value", "out", "alpha"}  # softmax: alpha scales the scores


def test_bad_input_and_options():
    layer = L.YatNMN(3)
    v = layer.init(KEY, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"YatNMN.*\(4, 3\).*\(2, 5\)"):
        layer.apply(v, jnp.ones((2, 5)))
    conv = L.YatConv2D(4, 3)
    with pytest.raises(ValueError, match=r"YatConv2D.*rank-4.*\(5, 5, 2\)"):
        conv.init(KEY, jnp.ones((5, 5, 2)))
    v = conv.init(KEY, jnp.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match=r"YatConv2D.*\(3, 3, 2, 4\).*\(1, 5, 5, 3\)"):
        conv.apply(v, jnp.ones((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="YatNMN: epsilon must be > 0"):
        L.YatNMN(3, epsilon=0.0)
    with pytest.raises(ValueError, match="YatConv1D.*causal|YatConv2D.*causal"):
        L.YatConv2D(3, 3, padding="causal")
    with pytest.raises(ValueError, match="MultiHeadYatAttention.*normalization"):
        L.MultiHeadYatAttention(2, normalization="max")
    with pytest.raises(ValueError, match="RotaryYatAttention.*rope_style"):
        L.RotaryYatAttention(2, rope_style="neox")
    with pytest.raises(ValueError, match="YatEmbed.*integers"):
        emb = L.YatEmbed(5, 4)
        emb.init(KEY, jnp.ones((2,)))


def test_optax_training_lowers_loss():
    class Net(L.YatNMN.__mro__[1]):  # a plain linen.Module
        @__import__("flax").linen.compact
        def __call__(self, x):
            h = L.YatConv1D(4, 3, padding="CAUSAL")(x)
            return L.YatNMN(2, lazy=True)(h.mean(axis=1))

    net = Net()
    x = jax.random.normal(KEY, (8, 6, 2))
    variables = net.init(KEY, x)
    params, rest = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean(net.apply({"params": p, **rest}, x) ** 2))(params)
        with jax.numpy_dtype_promotion("standard"):  # optax's adam mixes float and int32 step counts
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params, state, loss

    losses = []
    for _ in range(5):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision(dtype):
    layer = L.YatNMN(3)
    x = jax.random.normal(KEY, (4, 6)).astype(dtype)
    v = layer.init(KEY, x)
    assert layer.apply(v, x).dtype == jnp.float32
    np.testing.assert_allclose(layer.apply(v, x), layer.apply(v, x.astype(jnp.float32)), rtol=1e-6)
    low = L.YatConv1D(3, 3, param_dtype=dtype)
    xs = jnp.ones((1, 5, 2), dtype)
    assert low.apply(low.init(KEY, xs), xs).dtype == dtype


def test_dropout_needs_rng_and_deterministic_flag():
    attn = L.MultiHeadYatAttention(2, dropout_rate=0.5)
    x = jax.random.normal(KEY, (1, 5, 8))
    v = attn.init(KEY, x, deterministic=True)
    a = attn.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    b = attn.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(attn.apply(v, x, deterministic=True), attn.apply(v, x, deterministic=True))


@pytest.mark.parametrize(
    "module, shape",
    [
        (L.YatNMN(3, constant_bias=0.25, weight_normalized=True), (2, 4)),
        (L.YatConv3D(4, 2, strides=(1, 2, 1), padding="REFLECT"), (1, 4, 4, 4, 2)),
        (L.YatConvTranspose2D(4, (2, 3), strides=(2, 1), padding="VALID", feature_group_count=2), (1, 3, 3, 2)),
        (L.MultiHeadYatAttention(2, normalization="softermax", power=2.0, use_out_proj=False), (1, 4, 8)),
        (L.YatEmbed(6, 4, spherical=True), None),
    ],
)
def test_spec_round_trip_is_exact(module, shape):
    if shape is None:
        v = module.init(KEY, jnp.array([0, 1]))
        x = jax.random.normal(KEY, (3, 4))
        run = lambda m, vv: m.apply(vv, x, method="attend")
    else:
        x = jax.random.normal(KEY, shape)
        v = module.init(KEY, x)
        run = lambda m, vv: m.apply(vv, x)
    kind, config, params = L.to_spec(module, v)
    clone, cv = L.from_spec(kind, config, params)
    np.testing.assert_array_equal(np.asarray(run(clone, cv)), np.asarray(run(module, v)))
    again = L.to_spec(clone, cv)
    assert again[1] == config and all(np.array_equal(again[2][k], params[k]) for k in params)
