"""Load a file into one framework, run it, take one optimizer step: the same checks for all six frameworks.

:func:`train_step` computes ``loss = mean((model(x) - target) ** 2)``, its gradient with the framework's own
autodiff, takes one Adam step (its first step moves every parameter with a non-zero gradient by about ``lr``),
and reports the loss before and after and, per trainable tensor, whether its gradient was non-zero and whether
the step changed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
LR = 1e-4
EPS = 1e-20  # Adam's epsilon: small, so that a parameter whose gradient is tiny (1e-13 in a saturated
# squeeze-excitation gate) still moves by about LR


@dataclass
class Step:
    loss_before: float
    loss_after: float
    zero_grad: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    count: int = 0


def load(path, framework: str):
    from nmn.interchange import load as _load

    return _load(str(path), framework=framework)


def predict(model, framework: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from nmn.interchange import predict as _predict

    return _predict(model, framework, inputs)


def _report(before: float, after: float, names, grads, old, new) -> Step:
    step = Step(before, after, count=len(names))
    for name, g, a, b in zip(names, grads, old, new):
        if g is None or not np.any(np.asarray(g) != 0):
            step.zero_grad.append(name)
        if np.array_equal(np.asarray(a), np.asarray(b)):
            step.unchanged.append(name)
    return step


def train_step(model, framework: str, x: np.ndarray, target: np.ndarray) -> Step:
    return _TRAIN[framework](model, x, target)


def _torch(model, x, target):
    import torch

    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    xs, ts = torch.from_numpy(x), torch.from_numpy(target)
    opt = torch.optim.Adam([p for _, p in named], lr=LR, eps=EPS)
    loss = torch.mean((model(xs) - ts) ** 2)
    opt.zero_grad()
    loss.backward()
    old = [p.detach().clone().numpy() for _, p in named]
    grads = [None if p.grad is None else p.grad.numpy().copy() for _, p in named]
    opt.step()
    with torch.no_grad():
        after = float(torch.mean((model(xs) - ts) ** 2))
    return _report(float(loss), after, [n for n, _ in named], grads, old, [p.detach().numpy().copy() for _, p in named])


def _nnx(model, x, target):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    def loss_fn(m):
        return jnp.mean((m(jnp.asarray(x)) - jnp.asarray(target)) ** 2)

    optimizer = nnx.Optimizer(model, optax.adam(LR, eps=EPS), wrt=nnx.Param)
    old = jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    new = [v for _, v in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))]
    names = [jax.tree_util.keystr(k) for k, _ in old]
    return _report(
        float(loss),
        float(loss_fn(model)),
        names,
        jax.tree_util.tree_leaves(grads),
        [np.asarray(v) for _, v in old],
        [np.asarray(v) for v in new],
    )


def _linen(loaded, x, target):
    import jax
    import jax.numpy as jnp
    import optax

    module, variables = loaded
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss_fn(p):
        return jnp.mean((module.apply({"params": p, **rest}, jnp.asarray(x)) - jnp.asarray(target)) ** 2)

    opt = optax.adam(LR, eps=EPS)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    flat = jax.tree_util.tree_leaves_with_path(params)
    return _report(
        float(loss),
        float(loss_fn(new)),
        [jax.tree_util.keystr(k) for k, _ in flat],
        jax.tree_util.tree_leaves(grads),
        [v for _, v in flat],
        jax.tree_util.tree_leaves(new),
    )


def _keras(model, x, target):
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":  # the test process runs Keras on TensorFlow
        raise RuntimeError(f"the keras train step needs the tensorflow backend, not {keras.backend.backend()}")
    variables = list(model.trainable_variables)
    opt = keras.optimizers.Adam(LR, epsilon=EPS)
    old = [np.array(v.numpy()) for v in variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x) - target) ** 2)
    grads = tape.gradient(loss, variables)
    opt.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
    after = float(tf.reduce_mean((model(x) - target) ** 2))
    return _report(
        float(loss),
        after,
        [v.path for v in variables],
        [None if g is None else g.numpy() for g in grads],
        old,
        [v.numpy() for v in variables],
    )


def _tf(model, x, target):
    import tensorflow as tf

    variables = list(model.trainable_variables)
    old = [np.array(v.numpy()) for v in variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(tf.constant(x)) - target) ** 2)
    grads = tape.gradient(loss, variables)
    for g, v in zip(grads, variables):  # Adam's first step: lr * m / sqrt(v) with bias correction = lr * sign(g)
        if g is not None:
            g = tf.convert_to_tensor(g)
            v.assign_sub(LR * g / (tf.abs(g) + EPS))
    after = float(tf.reduce_mean((model(tf.constant(x)) - target) ** 2))
    return _report(
        float(loss),
        after,
        [v.name for v in variables],
        [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads],
        old,
        [v.numpy() for v in variables],
    )


def _mlx(model, x, target):
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten

    model.train()
    xs, ts = mx.array(x), mx.array(target)

    def loss_fn(m):
        return mx.mean((m(xs) - ts) ** 2)

    old = {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    loss, grads = nn.value_and_grad(model, loss_fn)(model)
    opt = optim.Adam(learning_rate=LR, eps=EPS, bias_correction=True)
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)
    g = dict(tree_flatten(grads))
    new = dict(tree_flatten(model.trainable_parameters()))
    names = sorted(old)
    return _report(
        loss.item(),
        loss_fn(model).item(),
        names,
        [np.array(g[k]) if k in g else None for k in names],
        [old[k] for k in names],
        [np.array(new[k]) for k in names],
    )


_TRAIN = {"torch": _torch, "nnx": _nnx, "linen": _linen, "keras": _keras, "tf": _tf, "mlx": _mlx}
