"""MLX side of the MNIST parity run (``nmn.mlx``)."""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten, tree_unflatten

import nmn.interchange
from _mnist.common import HIDDEN, IMAGE_SHAPE, NUM_CLASSES, LossMeter, batches, package_versions
from nmn.mlx import YatNMN


def versions() -> dict:
    out = package_versions("mlx")
    out["mlx_device"] = str(mx.default_device())
    return out


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        n_in = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        self.yat1 = YatNMN(HIDDEN[0], in_features=n_in)
        self.yat2 = YatNMN(HIDDEN[1], in_features=HIDDEN[0])
        self.out = nn.Linear(HIDDEN[1], NUM_CLASSES)

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        return self.out(self.yat2(self.yat1(x)))


def _loss(model, x, y):
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


class Trainer:
    def __init__(self, hp, init=None):
        mx.random.seed(hp.seed)
        self.model = MLP()
        if init is not None:  # MLX kernels / weights are (out, in), the canonical layout
            keys = {"yat1.weight": "yat1.kernel", "yat2.weight": "yat2.kernel"}
            self.model.update(tree_unflatten([(keys.get(k, k), mx.array(v)) for k, v in init.items()]))
        mx.eval(self.model.parameters())
        # MLX's AdamW skips bias correction unless asked: pin it on, like every other framework.
        self.opt = optim.AdamW(
            learning_rate=hp.lr,
            betas=[hp.beta1, hp.beta2],
            eps=hp.eps,
            weight_decay=hp.weight_decay,
            bias_correction=True,
        )
        model, opt = self.model, self.opt
        loss_and_grad = nn.value_and_grad(model, _loss)
        state = [model.state, opt.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def step(x, y):
            loss, grads = loss_and_grad(model, x, y)
            opt.update(model, grads)
            return loss

        self._step, self._state = step, state

    def param_count(self) -> int:
        return int(sum(v.size for _, v in tree_flatten(self.model.trainable_parameters())))

    def train_epoch(self, x, y, batch_size, progress) -> float:
        self.model.train()
        meter = LossMeter(progress)
        for s in batches(len(x), batch_size):
            loss = self._step(mx.array(x[s]), mx.array(y[s]))
            mx.eval(self._state, loss)
            meter.add(loss, s.stop - s.start)
        return meter.mean()

    def logits(self, x, batch_size) -> np.ndarray:
        return predict(self.model, x, batch_size)

    def export(self, path, example):
        return nmn.interchange.export(self.model, mx.array(example), path, framework="mlx")


def predict(model, x, batch_size) -> np.ndarray:
    model.eval()
    out = []
    for s in batches(len(x), batch_size):
        y = model(mx.array(x[s]))
        mx.eval(y)
        out.append(np.array(y))
    return np.concatenate(out)


def load_logits(path, x, batch_size) -> np.ndarray:
    return predict(nmn.interchange.load(path, "mlx"), x, batch_size)
