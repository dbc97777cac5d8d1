"""Write the nmn 0.3.5 checkpoint fixtures of ``tests/data/v03/`` with the OLD package (run once, by hand).

For every framework and every layer kind whose checkpoint :mod:`nmn.compat.v03` converts, this script builds a
small layer of nmn 0.3.5, gives every parameter random values, runs it on a fixed input and saves, in the old
package's own checkpoint format, the weights, the input and the OLD package's output. ``tests/compat`` converts
the weights, loads them into the new layer and checks that it reproduces the old output: the old package is the
oracle, and the tests never need it installed::

    pip install --no-deps --target /tmp/nmn035 nmn==0.3.5
    python scripts/make_v03_fixtures.py --old /tmp/nmn035 [--frameworks torch nnx ...] [--out DIR]

Files (kilobytes): ``torch.pt`` (``torch.save`` of ``{kind: {"state_dict", "x", "y"}}``), ``nnx.npz`` and
``linen.npz`` (``kind/state/PATH`` leaves of ``nnx.state`` / the Linen variables, ``kind/x``, ``kind/y``),
``keras_<kind>.weights.h5`` (``Model.save_weights`` of a one-layer model) with ``keras.npz`` for inputs and
outputs, ``tf_<kind>.index`` / ``.data-*`` (``tf.train.Checkpoint(layer=...).write``) with ``tf.npz``, and
``mlx.npz`` (``kind/params/PATH`` of ``tree_flatten(layer.parameters())``, ``kind/x``, ``kind/y``).
Embedding kinds store ``x`` as token ids and ``q`` / ``y_attend`` for ``attend``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "v03"
FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
SEED = 3


def _rand(rng, shape, name):
    """A random value for one parameter: alphas near 1, raw epsilons near softplus^-1(1e-2), the rest N(0, 0.5)."""
    if name.endswith("alpha"):
        return (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
    if "epsilon" in name:
        return np.full(shape, -4.6, np.float32) + 0.1 * rng.standard_normal(shape).astype(np.float32)
    return (0.5 * rng.standard_normal(shape)).astype(np.float32)


def _x(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _ids(rng, n, vocab):
    return rng.integers(0, vocab, size=(n,)).astype(np.int32)


# --------------------------------------------------------------------------------------------------------- torch
def _record(arrays, kind, x, y, q=None, y_attend=None):
    """One case's input ``x`` and the old layer's output ``y``; for an embedding also ``q`` and ``attend(q)``.
    Keys in this order (the ``.npz`` files keep it)."""
    arrays[f"{kind}/x"], arrays[f"{kind}/y"] = x, np.asarray(y)
    if q is not None:
        arrays[f"{kind}/q"], arrays[f"{kind}/y_attend"] = q, np.asarray(y_attend)


def make_torch(old_path):
    import torch
    from old_nmn import load_old

    O = load_old(old_path, "torch")
    rng = np.random.default_rng(SEED)
    cases = {
        "dense": (lambda: O.YatNMN(6, 4), (3, 6)),
        "dense_eps_nobias": (lambda: O.YatNMN(6, 4, bias=False, learnable_epsilon=True), (3, 6)),
        "conv1d": (lambda: O.YatConv1D(2, 4, kernel_size=3), (2, 2, 7)),
        "conv2d": (lambda: O.YatConv2D(2, 4, kernel_size=3, padding=1), (1, 2, 5, 5)),
        "convT2d": (lambda: O.YatConvTranspose2D(2, 4, kernel_size=3, stride=2), (1, 2, 4, 4)),
        "mha": (lambda: O.MultiHeadYatAttention(8, 2), (1, 5, 8)),
        "embed": (lambda: O.YatEmbed(10, 6), "embed"),
    }
    out = {}
    torch.manual_seed(SEED)
    for kind, (make, shape) in cases.items():
        layer = make().eval()
        with torch.no_grad():
            for name, p in layer.named_parameters():
                p.copy_(torch.from_numpy(_rand(rng, tuple(p.shape), name)))
            entry = {"state_dict": {k: v.clone() for k, v in layer.state_dict().items()}}
            if shape == "embed":
                ids, q = _ids(rng, 4, 10), _x(rng, (3, 6))
                entry.update(
                    x=torch.from_numpy(ids),
                    y=layer(torch.from_numpy(ids).long()),
                    q=torch.from_numpy(q),
                    y_attend=layer.attend(torch.from_numpy(q)),
                )
            else:
                x = torch.from_numpy(_x(rng, shape))
                y = layer(x)
                entry.update(x=x, y=y[0] if isinstance(y, tuple) else y)
        out[kind] = entry
    torch.save(out, OUT / "torch.pt")
    return sorted(out)


# ----------------------------------------------------------------------------------------------------------- nnx
def make_nnx(old_path):
    import jax.numpy as jnp
    from flax import nnx
    from old_nmn import load_old

    O = load_old(old_path, "nnx")
    rng = np.random.default_rng(SEED)
    cases = {
        "dense": (lambda r: O.YatNMN(6, 4, rngs=r), (3, 6)),
        "dense_eps_nobias": (lambda r: O.YatNMN(6, 4, use_bias=False, learnable_epsilon=True, rngs=r), (3, 6)),
        "conv2d": (lambda r: O.YatConv(2, 4, kernel_size=(3, 3), rngs=r), (1, 5, 5, 2)),
        "convT2d": (lambda r: O.YatConvTranspose(2, 4, kernel_size=(3, 3), strides=(2, 2), rngs=r), (1, 4, 4, 2)),
        "mha": (lambda r: O.MultiHeadAttention(2, 8, decode=False, rngs=r), (1, 5, 8)),
        "rotary": (lambda r: O.RotaryYatAttention(8, 2, max_seq_len=16, rngs=r), (1, 5, 8)),
        "embed": (lambda r: O.Embed(10, 6, rngs=r), "embed"),
    }
    arrays = {}
    for kind, (make, shape) in cases.items():
        layer = make(nnx.Rngs(SEED))
        for path, var in nnx.to_flat_state(nnx.state(layer, nnx.Param)):
            name = "/".join(map(str, path))
            var.set_value(jnp.asarray(_rand(rng, var.get_value().shape, name)))
        nnx.update(layer, nnx.state(layer))
        for path, var in nnx.to_flat_state(nnx.state(layer)):
            arrays[f"{kind}/state/" + "/".join(map(str, path))] = np.asarray(var.get_value())
        if shape == "embed":
            ids, q = _ids(rng, 4, 10), _x(rng, (3, 6))
            _record(arrays, kind, ids, layer(jnp.asarray(ids)), q, layer.attend(jnp.asarray(q)))
        else:
            x = _x(rng, shape)
            y = layer(jnp.asarray(x), deterministic=True) if kind in ("mha", "rotary") else layer(jnp.asarray(x))
            _record(arrays, kind, x, y)
    np.savez(OUT / "nnx.npz", **arrays)
    return sorted({k.split("/")[0] for k in arrays})


# --------------------------------------------------------------------------------------------------------- linen
def make_linen(old_path):
    import jax
    import jax.numpy as jnp
    from flax.traverse_util import flatten_dict, unflatten_dict
    from old_nmn import load_old

    O = load_old(old_path, "linen")
    rng = np.random.default_rng(SEED)
    cases = {
        "dense": (lambda: O.YatNMN(4), (3, 6)),
        "dense_eps_nobias": (lambda: O.YatNMN(4, use_bias=False, learnable_epsilon=True), (3, 6)),
        "conv2d": (lambda: O.YatConv2D(4, kernel_size=(3, 3)), (1, 5, 5, 2)),
        "convT2d": (lambda: O.YatConvTranspose2D(4, kernel_size=(3, 3), strides=(2, 2)), (1, 4, 4, 2)),
        "mha": (lambda: O.MultiHeadAttention(num_heads=2, qkv_features=8), (1, 5, 8)),
        "embed": (lambda: O.YatEmbed(num_embeddings=10, features=6), "embed"),
        "embed_lookup": (lambda: O.YatEmbed(num_embeddings=10, features=6), "lookup"),
    }
    arrays = {}
    for kind, (make, shape) in cases.items():
        layer = make()
        if shape in ("embed", "lookup"):
            ids, q = _ids(rng, 4, 10), _x(rng, (3, 6))
            if shape == "embed":
                variables = layer.init(jax.random.key(SEED), jnp.asarray(q), method="attend")
            else:
                variables = layer.init(jax.random.key(SEED), jnp.asarray(ids))
        else:
            x = _x(rng, shape)
            variables = layer.init(jax.random.key(SEED), jnp.asarray(x))
        flat = {k: jnp.asarray(_rand(rng, v.shape, "/".join(k))) for k, v in flatten_dict(variables).items()}
        variables = unflatten_dict(flat)
        for k, v in flat.items():
            arrays[f"{kind}/vars/" + "/".join(k)] = np.asarray(v)
        if shape == "embed":
            y_attend = layer.apply(variables, jnp.asarray(q), method="attend")
            _record(arrays, kind, ids, layer.apply(variables, jnp.asarray(ids)), q, y_attend)
        elif shape == "lookup":
            _record(arrays, kind, ids, layer.apply(variables, jnp.asarray(ids)))
        else:
            _record(arrays, kind, x, layer.apply(variables, jnp.asarray(x)))
    np.savez(OUT / "linen.npz", **arrays)
    return sorted({k.split("/")[0] for k in arrays})


# --------------------------------------------------------------------------------------------------------- keras
def make_keras(old_path):
    import keras
    from old_nmn import load_old

    O = load_old(old_path, "keras")
    rng = np.random.default_rng(SEED)
    to_np = keras.ops.convert_to_numpy

    class One(keras.Model):
        """The one-layer model whose ``save_weights`` file a test reloads (same class in tests/compat)."""

        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, x):
            return self.layer(x)

    cases = {
        "dense": (lambda: O.YatNMN(4), (3, 6)),
        "dense_eps_nobias": (lambda: O.YatNMN(4, use_bias=False, learnable_epsilon=True), (3, 6)),
        "conv2d": (lambda: O.YatConv2D(4, 3), (1, 5, 5, 2)),
        "convT2d": (lambda: O.YatConvTranspose2D(4, 3, strides=2), (1, 4, 4, 2)),
        "mha": (lambda: O.MultiHeadYatAttention(8, 2), (1, 5, 8)),
        "embed": (lambda: O.YatEmbed(10, 6), "embed"),
        # appended (the cases above keep their random values): a frozen kernel is stored after the trainable
        # weights, and an attention without biases
        "dense_lazy": (lambda: O.YatNMN(4, lazy=True), (3, 6)),
        "mha_nobias": (lambda: O.MultiHeadYatAttention(8, 2, use_bias=False), (1, 5, 8)),
    }
    arrays = {}
    for kind, (make, shape) in cases.items():
        layer = make()
        model = One(layer)
        if shape == "embed":
            ids, q = _ids(rng, 4, 10), _x(rng, (3, 6))
            model(ids)
            layer.attend(q)
        else:
            x = _x(rng, shape)
            model(x)
        for v in layer.weights:
            v.assign(_rand(rng, tuple(v.shape), v.path))
        model.save_weights(OUT / f"keras_{kind}.weights.h5")
        if shape == "embed":
            _record(arrays, kind, ids, to_np(model(ids)), q, to_np(layer.attend(q)))
        else:
            _record(arrays, kind, x, to_np(model(x)))
    np.savez(OUT / "keras.npz", **arrays)
    return sorted({k.split("/")[0] for k in arrays})


# ------------------------------------------------------------------------------------------------------------ tf
def make_tf(old_path):
    import tensorflow as tf
    from old_nmn import load_old

    O = load_old(old_path, "tf")
    rng = np.random.default_rng(SEED)
    cases = {
        "dense": (lambda: O.YatNMN(4), (3, 6)),
        "dense_eps_nobias": (lambda: O.YatNMN(4, use_bias=False, learnable_epsilon=True), (3, 6)),
        "conv2d": (lambda: O.YatConv2D(4, 3), (1, 5, 5, 2)),
        "convT2d": (lambda: O.YatConvTranspose2D(4, 3, strides=2), (1, 4, 4, 2)),
        "mha": (lambda: O.MultiHeadYatAttention(8, 2), (1, 5, 8)),
        "embed": (lambda: O.YatEmbed(10, 6), "embed"),
        "dense_lazy": (lambda: O.YatNMN(4, lazy=True), (3, 6)),  # appended: the cases above keep their values
        "mha_nobias": (lambda: O.MultiHeadYatAttention(8, 2, use_bias=False), (1, 5, 8)),
    }
    arrays = {}
    for kind, (make, shape) in cases.items():
        layer = make()
        if shape == "embed":
            ids, q = _ids(rng, 4, 10), _x(rng, (3, 6))
            layer(tf.constant(ids))
            layer.attend(tf.constant(q))
        else:
            x = _x(rng, shape)
            layer(tf.constant(x))
        for path, v in layer._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True):
            v.assign(_rand(rng, tuple(v.shape), "/".join(map(str, path))))
        for old in OUT.glob(f"tf_{kind}.*"):
            old.unlink()
        tf.train.Checkpoint(layer=layer).write(str(OUT / f"tf_{kind}"))
        if shape == "embed":
            _record(arrays, kind, ids, layer(tf.constant(ids)), q, layer.attend(tf.constant(q)))
        else:
            _record(arrays, kind, x, layer(tf.constant(x)))
    np.savez(OUT / "tf.npz", **arrays)
    return sorted({k.split("/")[0] for k in arrays})


# ----------------------------------------------------------------------------------------------------------- mlx
def make_mlx(old_path):
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from old_nmn import load_old

    O = load_old(old_path, "mlx")
    rng = np.random.default_rng(SEED)
    cases = {
        "dense": (lambda: O.YatNMN(4), (3, 6)),
        "dense_eps_nobias": (lambda: O.YatNMN(4, use_bias=False, learnable_epsilon=True), (3, 6)),
        "conv2d": (lambda: O.YatConv2D(4, 3), (1, 5, 5, 2)),
        "convT2d": (lambda: O.YatConvTranspose2D(4, 3, strides=2), (1, 4, 4, 2)),
        "mha": (lambda: O.MultiHeadYatAttention(8, 2), (1, 5, 8)),
        "rotary": (lambda: O.RotaryYatAttention(8, 2, max_seq_len=16), (1, 5, 8)),
        "embed": (lambda: O.YatEmbed(10, 6), "embed"),
    }
    arrays = {}
    for kind, (make, shape) in cases.items():
        layer = make()
        if shape == "embed":
            ids, q = _ids(rng, 4, 10), _x(rng, (3, 6))
        else:
            x = _x(rng, shape)
            layer(mx.array(x))
        params = [
            (k, v if k.startswith("freqs_") else mx.array(_rand(rng, tuple(v.shape), k)))
            for k, v in tree_flatten(layer.parameters())
        ]
        layer.update(tree_unflatten(params))
        for k, v in params:
            arrays[f"{kind}/params/{k}"] = np.asarray(v)
        if shape == "embed":
            _record(arrays, kind, ids, layer(mx.array(ids)), q, layer.attend(mx.array(q)))
        else:
            _record(arrays, kind, x, layer(mx.array(x)))
    np.savez(OUT / "mlx.npz", **arrays)
    return sorted({k.split("/")[0] for k in arrays})


def main(argv=None) -> int:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="directory holding nmn 0.3.5 (pip install --target DIR)")
    parser.add_argument("--frameworks", nargs="*", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if not (Path(args.old) / "nmn" / "__init__.py").is_file():
        parser.error(f"--old {args.old}: no nmn/ package there (pip install --no-deps --target DIR nmn==0.3.5)")
    sys.path.insert(0, str(ROOT / "scripts"))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    for fw in args.frameworks:
        kinds = globals()[f"make_{fw}"](args.old)
        print(f"{fw}: {', '.join(kinds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
