"""Flax NNX side of the MNIST parity run (``nmn.nnx``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import nmn.interchange
from _mnist.common import HIDDEN, IMAGE_SHAPE, NUM_CLASSES, LossMeter, batches, package_versions
from nmn.nnx import YatNMN


def versions() -> dict:
    return package_versions("jax", "jaxlib", "flax", "optax")


class MLP(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        n_in = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        self.yat1 = YatNMN(n_in, HIDDEN[0], rngs=rngs)
        self.yat2 = YatNMN(HIDDEN[0], HIDDEN[1], rngs=rngs)
        self.out = nnx.Linear(HIDDEN[1], NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return self.out(self.yat2(self.yat1(x)))


def adamw(hp):
    return optax.adamw(hp.lr, b1=hp.beta1, b2=hp.beta2, eps=hp.eps, eps_root=0.0, weight_decay=hp.weight_decay)


@nnx.jit
def _train_step(model, optimizer, x, y):
    def loss_fn(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def _forward(model, x):
    return model(x)


class Trainer:
    def __init__(self, hp, init=None):
        self.model = MLP(rngs=nnx.Rngs(hp.seed))
        if init is not None:
            for name in ("yat1", "yat2", "out"):
                layer = getattr(self.model, name)
                layer.kernel.value = jnp.asarray(init[f"{name}.weight"].T)
                layer.bias.value = jnp.asarray(init[f"{name}.bias"])
                if f"{name}.alpha" in init:
                    layer.alpha.value = jnp.asarray(init[f"{name}.alpha"])
        self.opt = nnx.Optimizer(self.model, adamw(hp), wrt=nnx.Param)

    def param_count(self) -> int:
        return int(sum(x.size for x in jax.tree.leaves(nnx.state(self.model, nnx.Param))))

    def train_epoch(self, x, y, batch_size, progress) -> float:
        meter = LossMeter(progress)
        for s in batches(len(x), batch_size):
            meter.add(_train_step(self.model, self.opt, jnp.asarray(x[s]), jnp.asarray(y[s])), s.stop - s.start)
        return meter.mean()

    def logits(self, x, batch_size) -> np.ndarray:
        return predict(self.model, x, batch_size)

    def export(self, path, example):
        return nmn.interchange.export(self.model, jnp.asarray(example), path, framework="nnx")


def predict(model, x, batch_size) -> np.ndarray:
    return np.concatenate([np.asarray(_forward(model, jnp.asarray(x[s]))) for s in batches(len(x), batch_size)])


def load_logits(path, x, batch_size) -> np.ndarray:
    return predict(nmn.interchange.load(path, "nnx"), x, batch_size)
