"""Benchmark nmn Yat layers against their standard counterparts on Keras (any backend) and raw TF.

    KERAS_BACKEND=tensorflow python scripts/bench_keras_tf.py [--quick]

Forward and forward+backward, compiled (Keras: jit_compile through a compiled train/predict step is backend
specific, so we time `tf.function(jit_compile=True)` on TF and `jax.jit` on JAX); medians of N runs; ratios
Yat / standard.
"""

import argparse
import statistics
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--quick", action="store_true")
p.add_argument("--reps", type=int, default=10)
args = p.parse_args()
import keras
from keras import ops

import nmn.keras as nk

BACKEND = keras.backend.backend()

CASES = [
    ("dense 256x784->256", lambda: nk.YatNMN(256), lambda: keras.layers.Dense(256, activation="relu"), (256, 784)),
    ("dense 512x4096->4096", lambda: nk.YatNMN(4096), lambda: keras.layers.Dense(4096, activation="relu"), (512, 4096)),
    (
        "conv 32x32x32x64 3x3",
        lambda: nk.YatConv2D(64, 3, padding="same"),
        lambda: keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        (32, 32, 32, 64),
    ),
    (
        "mha B8 L512 E256 H8",
        lambda: nk.MultiHeadYatAttention(256, 8),
        lambda: keras.layers.MultiHeadAttention(8, 32),
        (8, 512, 256),
    ),
]
if args.quick:
    CASES = [(n, a, b, (min(s[0], 8),) + s[1:]) for n, a, b, s in CASES]


def call(layer, x):
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer(x, x)
    return layer(x)


def timed(fn, x, reps):
    out = fn(x)
    _block(out)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        _block(fn(x))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _block(o):
    o = o[0] if isinstance(o, (list, tuple)) else o
    if hasattr(o, "block_until_ready"):
        o.block_until_ready()
    else:
        np.asarray(ops.convert_to_numpy(o)).ravel()[:1]


def compiled(layer, x, backward):
    call(layer, x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        if backward:

            @tf.function(jit_compile=True)
            def f(x):
                with tf.GradientTape() as tape:
                    y = tf.reduce_sum(call(layer, x))
                return tape.gradient(y, layer.trainable_variables)
        else:
            f = tf.function(lambda x: call(layer, x), jit_compile=True)
        return f
    if BACKEND == "jax":
        import jax

        tv = [v.value for v in layer.trainable_variables]
        ntv = [v.value for v in layer.non_trainable_variables]

        def fwd(tv, ntv, x):
            y, _ = (
                layer.stateless_call(tv, ntv, x)
                if not isinstance(layer, keras.layers.MultiHeadAttention)
                else layer.stateless_call(tv, ntv, x, x)
            )
            return y

        if backward:
            g = jax.jit(jax.grad(lambda tv, ntv, x: fwd(tv, ntv, x).sum()))
            return lambda x: g(tv, ntv, x)
        f = jax.jit(fwd)
        return lambda x: f(tv, ntv, x)
    import torch

    def f(x):
        if backward:
            for v in layer.trainable_variables:
                v.value.grad = None
            y = call(layer, x).sum()
            y.backward()
            return y
        with torch.no_grad():
            return call(layer, x)

    return f


print(f"backend {BACKEND}")
print("| case | pass | yat ms | standard ms | ratio |")
print("|---|---|---|---|---|")
for name, yat, std, shape in CASES:
    x = ops.convert_to_tensor(np.random.default_rng(0).normal(size=shape).astype("float32"))
    for backward in (False, True):
        ty = timed(compiled(yat(), x, backward), x, args.reps)
        ts = timed(compiled(std(), x, backward), x, args.reps)
        print(
            f"| {name} | {'fwd+bwd' if backward else 'fwd'} | {ty * 1e3:.2f} | {ts * 1e3:.2f} | {ty / ts:.2f} |",
            flush=True,
        )
