"""Benchmark nmn Yat layers against their standard counterparts on Keras (any backend) and raw TF.

    KERAS_BACKEND=tensorflow python scripts/bench_keras_tf.py [--quick]
    pip install --no-deps --target /tmp/nmn035 "nmn==0.3.5"
    KERAS_BACKEND=tensorflow python scripts/bench_keras_tf.py --old /tmp/nmn035   # nmn 0.3.5 beside them
    python scripts/bench_keras_tf.py --api tf --old /tmp/nmn035   # the tf.Module layers of nmn.tf
    KERAS_BACKEND=torch python scripts/bench_keras_tf.py --threads 1 --cpu-time   # eager torch, steadier

With ``--api tf`` the rows are ``nmn.tf``'s ``tf.Module`` layers against plain ``tf.Module`` equivalents
(``tf.matmul`` + bias + relu, ``tf.nn.conv2d`` + bias + relu) and, for attention, TensorFlow's own
``keras.layers.MultiHeadAttention``; the TensorFlow backend is then implied.

Forward and forward+backward, compiled (Keras: jit_compile through a compiled train/predict step is backend
specific, so we time `tf.function(jit_compile=True)` on TF and `jax.jit` on JAX); medians of N runs; ratios
Yat / standard. With ``--old PATH`` the earlier release nmn 0.3.5 (imported as ``nmn_old`` by
``scripts/old_nmn.py``, never a dependency) is timed too, and the three of each row run in interleaved rounds.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--quick", action="store_true")
p.add_argument("--only", default="", help="run the cases whose name contains this text")
p.add_argument("--api", choices=("keras", "tf"), default="keras", help="nmn.keras layers (default) or nmn.tf modules")
p.add_argument("--reps", type=int, default=10)
p.add_argument(
    "--old",
    metavar="PATH",
    help="also time the earlier release installed with pip install --no-deps --target PATH nmn==0.3.5",
)
p.add_argument(
    "--threads",
    type=int,
    help="torch backend: torch.set_num_threads(N) (1 gives steadier ratios on a shared CPU: each eager op "
    "otherwise waits at the thread pool's barrier for a descheduled worker)",
)
p.add_argument("--cpu-time", action="store_true", help="time by the process's CPU time instead of the wall clock")
args = p.parse_args()
CLOCK = time.process_time if args.cpu_time else time.perf_counter
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if args.api == "tf":
    os.environ["KERAS_BACKEND"] = "tensorflow"  # nmn.tf's attention is timed against TF's keras MHA
import keras
from keras import ops

import nmn.keras as nk

OLD = None
if args.old:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from old_nmn import load_old

    OLD = load_old(args.old, args.api)

BACKEND = keras.backend.backend()
if args.threads:
    if BACKEND != "torch":
        p.error(f"--threads is for the torch backend (this is {BACKEND})")
    import torch

    torch.set_num_threads(args.threads)

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
# nmn 0.3.5's layer for each case (same shapes; its attention returns one tensor from a self-attention call)
OLD_CASES = {
    "dense 256x784->256": lambda: OLD.YatNMN(256),
    "dense 512x4096->4096": lambda: OLD.YatNMN(4096),
    "conv 32x32x32x64 3x3": lambda: OLD.YatConv2D(64, 3, padding="same"),
    "mha B8 L512 E256 H8": lambda: OLD.MultiHeadYatAttention(256, 8),
}
if args.api == "tf":
    import tensorflow as tf

    import nmn.tf as ntf

    class PlainDense(tf.Module):
        """``relu(x W + b)``: the plain dense layer nmn.tf's YatNMN replaces, as a tf.Module."""

        def __init__(self, n_in, n_out):
            super().__init__()
            self.w = tf.Variable(tf.keras.initializers.GlorotNormal(0)((n_in, n_out)))
            self.b = tf.Variable(tf.zeros((n_out,)))

        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.w) + self.b)

    class PlainConv(tf.Module):
        """``relu(conv2d(x, K) + b)``, 'SAME' padding, NHWC."""

        def __init__(self, c_in, c_out, k):
            super().__init__()
            self.k = tf.Variable(tf.keras.initializers.GlorotNormal(0)((k, k, c_in, c_out)))
            self.b = tf.Variable(tf.zeros((c_out,)))

        def __call__(self, x):
            return tf.nn.relu(tf.nn.conv2d(x, self.k, 1, "SAME") + self.b)

    CASES = [
        ("dense 256x784->256", lambda: ntf.YatNMN(256), lambda: PlainDense(784, 256), (256, 784)),
        ("dense 512x4096->4096", lambda: ntf.YatNMN(4096), lambda: PlainDense(4096, 4096), (512, 4096)),
        (
            "conv 32x32x32x64 3x3",
            lambda: ntf.YatConv2D(64, 3, padding="same"),
            lambda: PlainConv(64, 64, 3),
            (32, 32, 32, 64),
        ),
        (
            "mha B8 L512 E256 H8",
            lambda: ntf.MultiHeadYatAttention(256, 8),
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


def timed(fns, x, reps):
    """Median seconds of each function of ``fns`` on ``x``, in interleaved rounds (one call of each per round)."""
    for fn in fns:
        _block(fn(x))
    ts = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = CLOCK()
            _block(fn(x))
            ts[i].append(CLOCK() - t)
    return [statistics.median(t) for t in ts]


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
                return tape.gradient(y, layer.trainable_variables)  # a Keras layer's or a tf.Module's
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


print(f"backend {BACKEND}, api {args.api}")
if OLD is None:
    print("| case | pass | yat ms | standard ms | ratio |")
    print("|---|---|---|---|---|")
else:
    print("| case | pass | yat ms | standard ms | ratio | 0.3.5 ms | 0.3.5 ratio | nmn speed-up over 0.3.5 |")
    print("|---|---|---|---|---|---|---|---|")
for name, yat, std, shape in CASES:
    if args.only not in name:
        continue
    x = ops.convert_to_tensor(np.random.default_rng(0).normal(size=shape).astype("float32"))
    for backward in (False, True):
        makers = [yat, std] + ([OLD_CASES[name]] if OLD is not None else [])
        times = timed([compiled(make(), x, backward) for make in makers], x, args.reps)
        ty, ts = times[:2]
        row = f"| {name} | {'fwd+bwd' if backward else 'fwd'} | {ty * 1e3:.2f} | {ts * 1e3:.2f} | {ty / ts:.2f} |"
        if OLD is not None:
            row += f" {times[2] * 1e3:.2f} | {times[2] / ts:.2f} | {times[2] / ty:.2f}x |"
        print(row, flush=True)
