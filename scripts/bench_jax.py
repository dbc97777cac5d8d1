"""Speed of nmn's Flax layers (NNX and Linen) against the plain Flax layers they replace, as ratios.

Under ``jax.jit`` in one process, same device, same shapes: YatNMN vs Linear/Dense + relu, YatConv2D vs Conv +
relu, MultiHeadYatAttention vs Flax's MultiHeadAttention. For each pair: median time of the forward pass and of
forward + backward (gradient of ``sum(out)`` w.r.t. the parameters and the input). Printed as a markdown table;
ratio = Yat / plain (lower is better).

    python scripts/bench_jax.py            # full sizes of issue 4
    python scripts/bench_jax.py --quick    # small sizes (a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen as nn  # noqa: E402
from flax import nnx  # noqa: E402

import nmn.linen as L  # noqa: E402
import nmn.nnx as N  # noqa: E402


def sizes(quick):
    if quick:
        return dict(dense=[(64, 784, 256)], conv=(8, 16, 16, 16, 16), attn=(2, 128, 64, 4))
    return dict(dense=[(256, 784, 256), (512, 4096, 4096)], conv=(32, 32, 32, 64, 64), attn=(8, 512, 256, 8))


def nnx_pairs(s):
    r = nnx.Rngs(0)
    out = []
    for b, i, o in s["dense"]:
        out.append((f"dense {i}->{o}, batch {b}", N.YatNMN(i, o, rngs=r),
                    nnx.Sequential(nnx.Linear(i, o, rngs=r), jax.nn.relu), (b, i)))
    n, h, w, c, m = s["conv"]
    out.append((f"conv 3x3 {c}->{m}, {n}x{h}x{w}", N.YatConv2D(c, m, 3, rngs=r),
                nnx.Sequential(nnx.Conv(c, m, (3, 3), rngs=r), jax.nn.relu), (n, h, w, c)))
    b, length, e, heads = s["attn"]
    out.append((f"attention E{e} H{heads}, B{b} L{length}", N.MultiHeadYatAttention(heads, e, rngs=r),
                nnx.MultiHeadAttention(heads, e, decode=False, rngs=r), (b, length, e)))
    return out


def linen_pairs(s):
    class DenseReLU(nn.Module):
        features: int

        @nn.compact
        def __call__(self, x):
            return jax.nn.relu(nn.Dense(self.features)(x))

    class ConvReLU(nn.Module):
        features: int

        @nn.compact
        def __call__(self, x):
            return jax.nn.relu(nn.Conv(self.features, (3, 3))(x))

    out = []
    for b, i, o in s["dense"]:
        out.append((f"dense {i}->{o}, batch {b}", L.YatNMN(o), DenseReLU(o), (b, i)))
    n, h, w, c, m = s["conv"]
    out.append((f"conv 3x3 {c}->{m}, {n}x{h}x{w}", L.YatConv2D(m, 3), ConvReLU(m), (n, h, w, c)))
    b, length, e, heads = s["attn"]
    out.append((f"attention E{e} H{heads}, B{b} L{length}", L.MultiHeadYatAttention(heads),
                nn.MultiHeadDotProductAttention(heads), (b, length, e)))
    return out


def _time(fn, args, repeats):
    jax.block_until_ready(fn(*args))          # compile
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def nnx_fns(layer):
    graphdef, state = nnx.split(layer)
    fwd = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))
    bwd = jax.jit(jax.grad(lambda st, x: jnp.sum(nnx.merge(graphdef, st)(x)), argnums=(0, 1)))
    return state, fwd, bwd


def linen_fns(module, x):
    variables = module.init(jax.random.key(0), x)
    fwd = jax.jit(lambda v, x: module.apply(v, x))
    bwd = jax.jit(jax.grad(lambda v, x: jnp.sum(module.apply(v, x)), argnums=(0, 1)))
    return variables, fwd, bwd


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    s = sizes(args.quick)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}\n")
    print("| API | case | Yat fwd ms | plain fwd ms | fwd ratio | Yat fwd+bwd ms | plain fwd+bwd ms | fwd+bwd ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for api, pairs in (("nnx", nnx_pairs(s)), ("linen", linen_pairs(s))):
        for name, yat, plain, shape in pairs:
            x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
            row = []
            for layer in (yat, plain):
                state, fwd, bwd = nnx_fns(layer) if api == "nnx" else linen_fns(layer, x)
                row.append((_time(fwd, (state, x), args.repeats), _time(bwd, (state, x), args.repeats)))
            (yf, yb), (pf, pb) = row
            print(f"| {api} | {name} | {yf * 1e3:.3f} | {pf * 1e3:.3f} | {yf / pf:.2f} | {yb * 1e3:.3f} | "
                  f"{pb * 1e3:.3f} | {yb / pb:.2f} |", flush=True)


if __name__ == "__main__":
    main()
