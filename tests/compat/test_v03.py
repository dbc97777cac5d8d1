"""nmn 0.3.5 checkpoints convert and the new layers reproduce the OLD package's outputs (tests/data/v03).

The fixtures were written by ``scripts/make_v03_fixtures.py`` with nmn 0.3.5 (the oracle); the old package is
not needed here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "v03"


def _close(got, want):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))


TORCH = {
    "dense": lambda N: N.YatNMN(6, 4),
    "dense_eps_nobias": lambda N: N.YatNMN(6, 4, bias=False, learnable_epsilon=True),
    "conv1d": lambda N: N.YatConv1D(2, 4, kernel_size=3),
    "conv2d": lambda N: N.YatConv2D(2, 4, kernel_size=3, padding=1),
    "convT2d": lambda N: N.YatConvTranspose2D(2, 4, kernel_size=3, stride=2),
    "mha": lambda N: N.MultiHeadYatAttention(8, 2),
    "embed": lambda N: N.YatEmbed(10, 6),
}


@pytest.mark.parametrize("kind", sorted(TORCH))
def test_torch(kind):
    torch = pytest.importorskip("torch")
    import nmn.torch as N
    from nmn.compat.v03 import convert_torch_state_dict

    entry = torch.load(DATA / "torch.pt", weights_only=True)[kind]
    layer = TORCH[kind](N).eval()
    layer.load_state_dict(convert_torch_state_dict(entry["state_dict"], layer))
    with torch.no_grad():
        if kind == "embed":
            _close(layer(entry["x"].long()), entry["y"])
            _close(layer.attend(entry["q"]), entry["y_attend"])
        else:
            y = layer(entry["x"])
            _close(y[0] if isinstance(y, tuple) else y, entry["y"])


def test_torch_refuses_unknown_keys():
    torch = pytest.importorskip("torch")
    import nmn.torch as N
    from nmn.compat.v03 import convert_torch_state_dict

    old = dict(torch.load(DATA / "torch.pt", weights_only=True)["dense"]["state_dict"])
    old["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"convert_torch_state_dict: .*YatNMN.*\[extra.weight\]"):
        convert_torch_state_dict(old, N.YatNMN(6, 4))


def _part(data, kind, group):
    head = f"{kind}/{group}/"
    return {k[len(head) :]: data[k] for k in data.files if k.startswith(head)}


NNX = {
    "dense": lambda N, r: N.YatNMN(6, 4, rngs=r),
    "dense_eps_nobias": lambda N, r: N.YatNMN(6, 4, use_bias=False, learnable_epsilon=True, rngs=r),
    "conv2d": lambda N, r: N.YatConv2D(2, 4, kernel_size=(3, 3), rngs=r),
    "convT2d": lambda N, r: N.YatConvTranspose2D(2, 4, kernel_size=(3, 3), strides=(2, 2), rngs=r),
    "mha": lambda N, r: N.MultiHeadYatAttention(num_heads=2, in_features=8, rngs=r),
    "rotary": lambda N, r: N.RotaryYatAttention(num_heads=2, in_features=8, max_seq_len=16, use_bias=False, rngs=r),
    "embed": lambda N, r: N.YatEmbed(10, 6, rngs=r),
}


@pytest.mark.parametrize("kind", sorted(NNX))
def test_nnx(kind):
    pytest.importorskip("flax.nnx")
    import jax.numpy as jnp
    from flax import nnx

    import nmn.nnx as N
    from nmn.compat.v03 import convert_nnx_state

    data = np.load(DATA / "nnx.npz")
    layer = convert_nnx_state(_part(data, kind, "state"), NNX[kind](N, nnx.Rngs(0)))
    _close(layer(jnp.asarray(data[f"{kind}/x"])), data[f"{kind}/y"])
    if kind == "embed":
        _close(layer.attend(jnp.asarray(data[f"{kind}/q"])), data[f"{kind}/y_attend"])


def test_nnx_rotary_with_the_new_bias_default_is_refused():
    pytest.importorskip("flax.nnx")
    from flax import nnx

    import nmn.nnx as N
    from nmn.compat.v03 import convert_nnx_state

    data = np.load(DATA / "nnx.npz")
    layer = N.RotaryYatAttention(num_heads=2, in_features=8, max_seq_len=16, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"convert_nnx_state: .*not in the checkpoint: \[.*bias.*use_bias=False"):
        convert_nnx_state(_part(data, "rotary", "state"), layer)


LINEN = {
    "dense": lambda N: N.YatNMN(4),
    "dense_eps_nobias": lambda N: N.YatNMN(4, use_bias=False, learnable_epsilon=True),
    "conv2d": lambda N: N.YatConv2D(4, kernel_size=(3, 3), padding="VALID"),
    "convT2d": lambda N: N.YatConvTranspose2D(4, kernel_size=(3, 3), strides=(2, 2), padding="VALID"),
    "mha": lambda N: N.MultiHeadAttention(num_heads=2, qkv_features=8),
    "embed": lambda N: N.YatEmbed(num_embeddings=10, features=6),
    "embed_lookup": lambda N: N.YatEmbed(num_embeddings=10, features=6),
}


@pytest.mark.parametrize("kind", sorted(LINEN))
def test_linen(kind):
    pytest.importorskip("flax.linen")
    import jax.numpy as jnp

    import nmn.linen as N
    from nmn.compat.v03 import convert_linen_variables

    data = np.load(DATA / "linen.npz")
    layer, x = LINEN[kind](N), jnp.asarray(data[f"{kind}/x"])
    variables = convert_linen_variables(_part(data, kind, "vars"), layer, x)
    _close(layer.apply(variables, x), data[f"{kind}/y"])
    if kind == "embed":
        _close(layer.apply(variables, jnp.asarray(data[f"{kind}/q"]), method="attend"), data[f"{kind}/y_attend"])


def test_linen_refuses_unknown_entries():
    pytest.importorskip("flax.linen")
    import jax.numpy as jnp

    import nmn.linen as N
    from nmn.compat.v03 import convert_linen_variables

    data = np.load(DATA / "linen.npz")
    old = {**_part(data, "dense", "vars"), "params/mask": np.ones(4, np.float32)}
    with pytest.raises(ValueError, match=r"convert_linen_variables: .*\[params/mask\]"):
        convert_linen_variables(old, N.YatNMN(4), jnp.asarray(data["dense/x"]))


MLX = {
    "dense": lambda N: N.YatNMN(4, in_features=6),
    "dense_eps_nobias": lambda N: N.YatNMN(4, in_features=6, use_bias=False, learnable_epsilon=True),
    "conv2d": lambda N: N.YatConv2D(4, 3, in_channels=2),
    "convT2d": lambda N: N.YatConvTranspose2D(4, 3, in_channels=2, strides=2),
    "mha": lambda N: N.MultiHeadYatAttention(8, 2),
    "rotary": lambda N: N.RotaryYatAttention(8, 2, max_seq_len=16),
    "embed": lambda N: N.YatEmbed(10, 6),
}


@pytest.mark.parametrize("kind", sorted(MLX))
def test_mlx(kind):
    mx = pytest.importorskip("mlx.core")
    import nmn.mlx as N
    from nmn.compat.v03 import convert_mlx_weights

    data = np.load(DATA / "mlx.npz")
    layer = MLX[kind](N)
    layer.load_weights(convert_mlx_weights(_part(data, kind, "params"), layer), strict=True)
    _close(layer(mx.array(data[f"{kind}/x"])), data[f"{kind}/y"])
    if kind == "embed":
        _close(layer.attend(mx.array(data[f"{kind}/q"])), data[f"{kind}/y_attend"])


KERAS = {
    "dense": lambda N: N.YatNMN(4),
    "dense_eps_nobias": lambda N: N.YatNMN(4, use_bias=False, learnable_epsilon=True),
    "conv2d": lambda N: N.YatConv2D(4, 3),
    "convT2d": lambda N: N.YatConvTranspose2D(4, 3, strides=2),
    "mha": lambda N: N.MultiHeadYatAttention(8, 2),
    "embed": lambda N: N.YatEmbed(10, 6),
    "dense_lazy": lambda N: N.YatNMN(4, lazy=True),
    "mha_nobias": lambda N: N.MultiHeadYatAttention(8, 2, use_bias=False),
}


def _keras_one(keras, layer):
    """The one-layer model of ``scripts/make_v03_fixtures.py`` (the file's layer group is its attribute)."""

    class One(keras.Model):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, x):
            return self.layer(x)

    return One(layer)


@pytest.mark.parametrize("kind", sorted(KERAS))
def test_keras(kind):
    keras = pytest.importorskip("keras")
    import nmn.keras as N
    from nmn.compat.v03 import convert_keras_weights

    data = np.load(DATA / "keras.npz")
    layer = KERAS[kind](N)
    model = _keras_one(keras, layer)
    x = data[f"{kind}/x"]
    model(x)
    convert_keras_weights(DATA / f"keras_{kind}.weights.h5", model)
    _close(keras.ops.convert_to_numpy(model(x)), data[f"{kind}/y"])
    if kind == "embed":
        _close(keras.ops.convert_to_numpy(layer.attend(data[f"{kind}/q"])), data[f"{kind}/y_attend"])


def test_keras_attention_file_does_not_load_without_the_converter():
    """The finding the converter fixes: the 0.3 file's values sit at other positions (Keras refuses the shapes)."""
    keras = pytest.importorskip("keras")
    import nmn.keras as N

    model = _keras_one(keras, N.MultiHeadYatAttention(8, 2))
    model(np.load(DATA / "keras.npz")["mha/x"])
    with pytest.raises(ValueError, match=r"could not be loaded|shape"):
        model.load_weights(DATA / "keras_mha.weights.h5")


def test_keras_refuses_a_file_of_another_model():
    keras = pytest.importorskip("keras")
    import nmn.keras as N
    from nmn.compat.v03 import convert_keras_weights

    model = _keras_one(keras, N.YatNMN(4, use_bias=False))
    model(np.load(DATA / "keras.npz")["dense/x"])
    with pytest.raises(ValueError, match=r"convert_keras_weights: .*One.*layer/vars 3 values -> 2 values"):
        convert_keras_weights(DATA / "keras_dense.weights.h5", model)
    unbuilt = _keras_one(keras, N.YatNMN(4))
    with pytest.raises(ValueError, match=r"convert_keras_weights: One is not built"):
        convert_keras_weights(DATA / "keras_dense.weights.h5", unbuilt)


TF = {
    "dense": lambda N: N.YatNMN(4),
    "dense_eps_nobias": lambda N: N.YatNMN(4, use_bias=False, learnable_epsilon=True),
    "conv2d": lambda N: N.YatConv2D(4, 3),
    "convT2d": lambda N: N.YatConvTranspose2D(4, 3, strides=2, padding="same"),
    "mha": lambda N: N.MultiHeadYatAttention(8, 2),
    "embed": lambda N: N.YatEmbed(10, 6),
    "dense_lazy": lambda N: N.YatNMN(4, lazy=True),
    "mha_nobias": lambda N: N.MultiHeadYatAttention(8, 2, use_bias=False),
}


@pytest.mark.parametrize("kind", sorted(TF))
def test_tf(kind):
    tf = pytest.importorskip("tensorflow")
    import nmn.tf as N
    from nmn.compat.v03 import convert_tf_checkpoint

    data = np.load(DATA / "tf.npz")
    layer = TF[kind](N)
    x = tf.constant(data[f"{kind}/x"])
    layer(x)
    convert_tf_checkpoint(str(DATA / f"tf_{kind}"), layer)
    _close(layer(x).numpy(), data[f"{kind}/y"])
    if kind == "embed":
        _close(layer.attend(tf.constant(data[f"{kind}/q"])).numpy(), data[f"{kind}/y_attend"])


def test_tf_refuses_a_checkpoint_of_another_layer():
    tf = pytest.importorskip("tensorflow")
    import nmn.tf as N
    from nmn.compat.v03 import convert_tf_checkpoint

    data = np.load(DATA / "tf.npz")
    layer = N.YatNMN(4, use_bias=False)
    layer(tf.constant(data["dense/x"]))
    with pytest.raises(
        ValueError, match=r"convert_tf_checkpoint: .*YatNMN.*1 0.3 entry match no parameter: \[layer/bias\]"
    ):
        convert_tf_checkpoint(str(DATA / "tf_dense"), layer)
    with pytest.raises(ValueError, match=r"convert_tf_checkpoint: YatNMN has no variables yet"):
        convert_tf_checkpoint(str(DATA / "tf_dense"), N.YatNMN(4))


def test_keras_nested_model(tmp_path):
    """A Sequential with an attention and a dense: a file laid out as 0.3 wrote it (the attention's values in 0.3's
    order, made here from a 1.x model) converts back to that model's outputs."""
    keras = pytest.importorskip("keras")
    h5py = pytest.importorskip("h5py")
    import nmn.keras as N
    from nmn.compat.v03 import _KERAS_OLD_ATTENTION_ORDER, convert_keras_weights

    def make():
        return keras.Sequential([keras.Input((5, 8)), N.MultiHeadYatAttention(8, 2, name="att"), N.YatNMN(4)])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    model = make()
    for w in model.weights:
        w.assign(0.3 * rng.standard_normal(tuple(w.shape)).astype(np.float32) + (w.name == "alpha"))
    want = keras.ops.convert_to_numpy(model(x))
    path = tmp_path / "old.weights.h5"
    model.save_weights(path)
    attention = model.get_layer("att")
    names = [v.name for v in attention.trainable_weights + attention.non_trainable_weights]
    with h5py.File(path, "r+") as h5:
        groups = []
        h5.visititems(lambda n, o: groups.append(n) if n.endswith("vars") and o.attrs.get("name") == "att" else None)
        group = h5[groups[0]]
        values = [group[str(i)][()] for i in range(len(group))]
        for i in list(group):
            del group[i]
        for i, name in enumerate(sorted(names, key=_KERAS_OLD_ATTENTION_ORDER.index)):
            group.create_dataset(str(i), data=values[names.index(name)])
    new = make()
    new(x)
    convert_keras_weights(path, new)
    _close(keras.ops.convert_to_numpy(new(x)), want)


def test_tf_nested_module(tmp_path):
    """Dense layers in a list of a module, saved as ``Checkpoint(model=...)`` with 0.3's (out, in) kernels."""
    tf = pytest.importorskip("tensorflow")
    import nmn.tf as N
    from nmn.compat.v03 import convert_tf_checkpoint

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.blocks = [N.YatNMN(4), N.YatNMN(3)]

        def __call__(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    x = tf.constant(np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32))
    net = Net()
    want = net(x).numpy()
    old = tf.Module()
    old.blocks = []
    for block in net.blocks:
        entry = tf.Module()
        entry.kernel = tf.Variable(tf.transpose(block.kernel))
        entry.bias, entry.alpha = tf.Variable(block.bias), tf.Variable(block.alpha)
        old.blocks.append(entry)
    prefix = tf.train.Checkpoint(model=old).write(str(tmp_path / "old"))
    new = Net()
    new(x)
    convert_tf_checkpoint(prefix, new)
    _close(new(x).numpy(), want)
