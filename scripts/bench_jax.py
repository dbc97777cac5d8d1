"""Speed of nmn's Flax layers (NNX and Linen) against the plain Flax layers they replace, as ratios.

Under ``jax.jit`` in one process, same device, same shapes: YatNMN vs Linear/Dense + relu, YatConv2D vs Conv +
relu, MultiHeadYatAttention vs Flax's MultiHeadAttention. For each pair: median time of the forward pass and of
forward + backward (gradient of ``sum(out)`` w.r.t. the parameters and the input). Printed as a markdown table;
ratio = Yat / plain (lower is better). Yat and plain are timed in alternating rounds.

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


def _interleaved(fns, repeats, warmup=5):
    """Median seconds of each ``(fn, args)``, timed in alternating rounds so clock drift hits all alike."""
    for fn, args in fns:
        for _ in range(warmup):
            jax.block_until_ready(fn(*args))
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, (fn, args) in enumerate(fns):
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def nnx_fns(layer):
    """Jitted forward and forward+backward over the layer's state as a flat list of arrays (cheap dispatch)."""
    graphdef, state = nnx.split(layer)
    leaves, treedef = jax.tree.flatten(state)

    def run(leaves, x):
        return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))(x)

    fwd = jax.jit(run)
    bwd = jax.jit(jax.grad(lambda lv, x: jnp.sum(run(lv, x)), argnums=(0, 1)))
    return leaves, fwd, bwd


def linen_fns(module, x):
    """Jitted forward and forward+backward over the variables as a flat list of arrays (cheap dispatch)."""
    leaves, treedef = jax.tree.flatten(module.init(jax.random.key(0), x))

    def run(leaves, x):
        return module.apply(jax.tree.unflatten(treedef, leaves), x)

    fwd = jax.jit(run)
    bwd = jax.jit(jax.grad(lambda lv, x: jnp.sum(run(lv, x)), argnums=(0, 1)))
    return leaves, fwd, bwd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per measurement (median)")
    parser.add_argument("--only", choices=["dense", "conv", "attention"], help="one layer family")
    parser.add_argument("--api", choices=["nnx", "linen"], help="one Flax API")
    args = parser.parse_args(argv)
    s = sizes(args.quick)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}\n")
    print("| API | case | Yat fwd ms | plain fwd ms | fwd ratio | Yat fwd+bwd ms | plain fwd+bwd ms | fwd+bwd ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for api, pairs in (("nnx", nnx_pairs(s)), ("linen", linen_pairs(s))):
        if args.api and api != args.api:
            continue
        for name, yat, plain, shape in pairs:
            if args.only and not name.startswith(args.only):
                continue
            x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
            built = [nnx_fns(layer) if api == "nnx" else linen_fns(layer, x) for layer in (yat, plain)]
            yf, pf = _interleaved([(fwd, (state, x)) for state, fwd, _ in built], args.repeats)
            yb, pb = _interleaved([(bwd, (state, x)) for state, _, bwd in built], args.repeats)
            print(f"| {api} | {name} | {yf * 1e3:.3f} | {pf * 1e3:.3f} | {yf / pf:.2f} | {yb * 1e3:.3f} | "
                  f"{pb * 1e3:.3f} | {yb / pb:.2f} |", flush=True)


if __name__ == "__main__":
    main()
