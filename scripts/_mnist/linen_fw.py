"""Flax Linen side of the MNIST parity run (``nmn.linen``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

import nmn.interchange
from _mnist.common import HIDDEN, IMAGE_SHAPE, NUM_CLASSES, LossMeter, batches, package_versions
from _mnist.nnx_fw import adamw
from nmn.linen import YatNMN


def versions() -> dict:
    return package_versions("jax", "jaxlib", "flax", "optax")


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        x = YatNMN(HIDDEN[0], name="yat1")(x)
        x = YatNMN(HIDDEN[1], name="yat2")(x)
        return nn.Dense(NUM_CLASSES, name="out")(x)


class Trainer:
    def __init__(self, hp, init=None):
        self.model = MLP()
        self.variables = self.model.init(jax.random.PRNGKey(hp.seed), jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))
        if init is not None:
            params = {
                name: {
                    "kernel": jnp.asarray(init[f"{name}.weight"].T),
                    "bias": jnp.asarray(init[f"{name}.bias"]),
                    **({"alpha": jnp.asarray(init[f"{name}.alpha"])} if f"{name}.alpha" in init else {}),
                }
                for name in ("yat1", "yat2", "out")
            }
            assert jax.tree.structure(params) == jax.tree.structure(self.variables["params"])
            self.variables = {**self.variables, "params": params}
        self.tx = adamw(hp)
        self.opt_state = self.tx.init(self.variables["params"])
        model, tx = self.model, self.tx

        def step(variables, opt_state, x, y):
            def loss_fn(params):
                logits = model.apply({**variables, "params": params}, x)
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

            loss, grads = jax.value_and_grad(loss_fn)(variables["params"])
            updates, opt_state = tx.update(grads, opt_state, variables["params"])
            return {**variables, "params": optax.apply_updates(variables["params"], updates)}, opt_state, loss

        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._forward = jax.jit(model.apply)

    def param_count(self) -> int:
        return int(sum(x.size for x in jax.tree.leaves(self.variables["params"])))

    def train_epoch(self, x, y, batch_size, progress) -> float:
        meter = LossMeter(progress)
        for s in batches(len(x), batch_size):
            self.variables, self.opt_state, loss = self._step(
                self.variables, self.opt_state, jnp.asarray(x[s]), jnp.asarray(y[s])
            )
            meter.add(loss, s.stop - s.start)
        return meter.mean()

    def logits(self, x, batch_size) -> np.ndarray:
        return predict(self._forward, self.variables, x, batch_size)

    def export(self, path, example):
        return nmn.interchange.export(
            self.model, jnp.asarray(example), path, framework="linen", variables=self.variables
        )


def predict(apply, variables, x, batch_size) -> np.ndarray:
    return np.concatenate([np.asarray(apply(variables, jnp.asarray(x[s]))) for s in batches(len(x), batch_size)])


def load_logits(path, x, batch_size) -> np.ndarray:
    loaded = nmn.interchange.load(path, "linen")
    if isinstance(loaded, tuple):  # (module, variables)
        module, variables = loaded
    else:  # an object carrying both
        module, variables = loaded.module, loaded.variables
    return predict(jax.jit(module.apply), variables, x, batch_size)
