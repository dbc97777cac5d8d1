"""TensorFlow side of the MNIST parity run (``nmn.tf``: ``tf.Module`` layers, no Keras).

TensorFlow itself ships no optimiser outside Keras, so AdamW is written out here (a dozen lines, the same
update as ``torch.optim.AdamW``: decoupled decay ``p -= lr * wd * p``, then the bias-corrected Adam step).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

import nmn.interchange
from _mnist.common import HIDDEN, IMAGE_SHAPE, NUM_CLASSES, LossMeter, batches, package_versions
from nmn.tf import YatNMN


def versions() -> dict:
    out = package_versions("tensorflow-cpu")
    if out.get("tensorflow-cpu") is None:
        out = package_versions("tensorflow")
    out["tf.version"] = tf.__version__
    return out


class Linear(tf.Module):
    """``y = x @ kernel + bias`` with torch's ``nn.Linear`` initialisation (uniform +-1/sqrt(in))."""

    def __init__(self, in_features, out_features, *, seed=None, name=None):
        super().__init__(name=name)
        bound = 1.0 / math.sqrt(in_features)
        rng = tf.random.Generator.from_seed(seed if seed is not None else 0)
        with self.name_scope:
            self.kernel = tf.Variable(rng.uniform((in_features, out_features), -bound, bound), name="kernel")
            self.bias = tf.Variable(rng.uniform((out_features,), -bound, bound), name="bias")

    def __call__(self, x):
        return tf.matmul(x, self.kernel) + self.bias


class MLP(tf.Module):
    def __init__(self, seed):
        super().__init__(name="yat_mlp")
        n_in = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        self.yat1 = YatNMN(HIDDEN[0], seed=seed, name="yat1")
        self.yat2 = YatNMN(HIDDEN[1], seed=seed + 1, name="yat2")
        self.out = Linear(HIDDEN[1], NUM_CLASSES, seed=seed + 2, name="out")
        self(tf.zeros((1, *IMAGE_SHAPE), tf.float32))  # build the lazily created variables
        self.n_in = n_in

    def __call__(self, x):
        x = tf.reshape(x, (-1, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]))
        return self.out(self.yat2(self.yat1(x)))


class AdamW:
    """Decoupled-weight-decay Adam with bias correction (torch.optim.AdamW's update, decay on every variable)."""

    def __init__(self, variables, hp):
        self.vars = list(variables)
        self.lr, self.b1, self.b2, self.eps, self.wd = hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.vars]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.vars]
        self.step = tf.Variable(0.0, trainable=False)

    def apply(self, grads):
        self.step.assign_add(1.0)
        c1 = 1.0 - tf.pow(self.b1, self.step)
        c2 = 1.0 - tf.pow(self.b2, self.step)
        for p, g, m, v in zip(self.vars, grads, self.m, self.v):
            p.assign(p * (1.0 - self.lr * self.wd))
            m.assign(self.b1 * m + (1.0 - self.b1) * g)
            v.assign(self.b2 * v + (1.0 - self.b2) * tf.square(g))
            p.assign_sub(self.lr * (m / c1) / (tf.sqrt(v / c2) + self.eps))


class Trainer:
    def __init__(self, hp, init=None):
        tf.random.set_seed(hp.seed)
        self.model = MLP(hp.seed)
        if init is not None:  # TF kernels are (in, out)
            for name in ("yat1", "yat2", "out"):
                layer = getattr(self.model, name)
                layer.kernel.assign(init[f"{name}.weight"].T)
                layer.bias.assign(init[f"{name}.bias"])
                if f"{name}.alpha" in init:
                    layer.alpha.assign(init[f"{name}.alpha"])
        self.opt = AdamW(self.model.trainable_variables, hp)
        model, opt = self.model, self.opt
        spec = (tf.TensorSpec((None, *IMAGE_SHAPE), tf.float32), tf.TensorSpec((None,), tf.int32))

        @tf.function(input_signature=spec, jit_compile=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            opt.apply(tape.gradient(loss, opt.vars))
            return loss

        self._step = step
        self._forward = tf.function(model.__call__, input_signature=spec[:1], jit_compile=True)

    def param_count(self) -> int:
        return int(sum(v.shape.num_elements() for v in self.model.trainable_variables))

    def train_epoch(self, x, y, batch_size, progress) -> float:
        meter = LossMeter(progress)
        for s in batches(len(x), batch_size):
            meter.add(self._step(tf.constant(x[s]), tf.constant(y[s])), s.stop - s.start)
        return meter.mean()

    def logits(self, x, batch_size) -> np.ndarray:
        return np.concatenate([self._forward(tf.constant(x[s])).numpy() for s in batches(len(x), batch_size)])

    def export(self, path, example):
        return nmn.interchange.export(self.model, tf.constant(example), path, framework="tf")


def load_logits(path, x, batch_size) -> np.ndarray:
    model = nmn.interchange.load(path, "tf")
    fwd = tf.function(model.__call__, reduce_retracing=True)
    return np.concatenate([np.asarray(fwd(tf.constant(x[s]))) for s in batches(len(x), batch_size)])
