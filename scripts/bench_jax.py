"""Speed of nmn's Flax layers (NNX and Linen) against the plain Flax layers they replace, as ratios.

Under ``jax.jit`` in one process, same device, same shapes: YatNMN vs Linear/Dense + relu, YatConv2D vs Conv +
relu, MultiHeadYatAttention vs Flax's MultiHeadAttention. For each pair: median time of the forward pass and of
forward + backward (gradient of ``sum(out)`` w.r.t. the parameters and the input). Printed as a markdown table;
ratio = Yat / plain (lower is better). Plain, nmn (and, with --old, the earlier release nmn 0.3.5 imported as
``nmn_old``) are timed in alternating rounds in one process.

    python scripts/bench_jax.py            # full sizes of issue 4
    python scripts/bench_jax.py --quick    # small sizes (a smoke run)
    pip install --no-deps --target /tmp/nmn035 "nmn==0.3.5"
    python scripts/bench_jax.py --old /tmp/nmn035
    python scripts/bench_jax.py --old /tmp/nmn035 --cpu-time   # process CPU time, steadier on a shared machine
    python scripts/bench_jax.py --memory --lengths 1024 4096   # attention peak memory, a subprocess per case
    python scripts/bench_jax.py --profile --repeats 10        # dense: x @ w alone vs Linear+relu vs Yat

``--memory`` measures Yat attention heads ``(B, L, H, D)`` through the reference path (the whole
``(B, H, L, L)`` score block), through the flash kernel of ``nmn._jax._flash`` (Pallas; interpreter mode on
CPU, so its time there means nothing) and ``jax.nn.dot_product_attention``, forward and forward+backward, each
in a fresh process: the growth of the process's peak resident memory (``VmHWM``, reset just before the call,
inputs and compiled program already in memory) and XLA's temporary-buffer size of the compiled program
(``memory_analysis().temp_size_in_bytes``, the same figure on any device). Ratios are to
``dot_product_attention``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx

import nmn.linen as L
import nmn.nnx as N


def sizes(quick):
    if quick:
        return dict(dense=[(64, 784, 256)], conv=(8, 16, 16, 16, 16), attn=(2, 128, 64, 4))
    return dict(dense=[(256, 784, 256), (512, 4096, 4096)], conv=(32, 32, 32, 64, 64), attn=(8, 512, 256, 8))


def nnx_pairs(s, old=None):
    """``(name, nmn layer, plain layer, nmn 0.3.5 layer or None, input shape)`` for NNX."""
    r = nnx.Rngs(0)
    out = []
    for b, i, o in s["dense"]:
        out.append(
            (
                f"dense {i}->{o}, batch {b}",
                N.YatNMN(i, o, rngs=r),
                nnx.Sequential(nnx.Linear(i, o, rngs=r), jax.nn.relu),
                old and old.YatNMN(i, o, rngs=r),
                (b, i),
            )
        )
    n, h, w, c, m = s["conv"]
    out.append(
        (
            f"conv 3x3 {c}->{m}, {n}x{h}x{w}",
            N.YatConv2D(c, m, 3, rngs=r),
            nnx.Sequential(nnx.Conv(c, m, (3, 3), rngs=r), jax.nn.relu),
            old and old.YatConv(c, m, (3, 3), padding="SAME", rngs=r),
            (n, h, w, c),
        )
    )
    b, length, e, heads = s["attn"]
    out.append(
        (
            f"attention E{e} H{heads}, B{b} L{length}",
            N.MultiHeadYatAttention(heads, e, rngs=r),
            nnx.MultiHeadAttention(heads, e, decode=False, rngs=r),
            old and old.MultiHeadAttention(heads, e, decode=False, rngs=r),
            (b, length, e),
        )
    )
    return out


def linen_pairs(s, old=None):
    """``(name, nmn module, plain module, nmn 0.3.5 module or None, input shape)`` for Linen."""

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
        out.append((f"dense {i}->{o}, batch {b}", L.YatNMN(o), DenseReLU(o), old and old.YatNMN(o), (b, i)))
    n, h, w, c, m = s["conv"]
    out.append(
        (
            f"conv 3x3 {c}->{m}, {n}x{h}x{w}",
            L.YatConv2D(m, 3),
            ConvReLU(m),
            old and old.YatConv2D(m, (3, 3), padding="SAME"),
            (n, h, w, c),
        )
    )
    b, length, e, heads = s["attn"]
    out.append(
        (
            f"attention E{e} H{heads}, B{b} L{length}",
            L.MultiHeadYatAttention(heads),
            nn.MultiHeadDotProductAttention(heads),
            old and old.MultiHeadAttention(heads),
            (b, length, e),
        )
    )
    return out


CLOCK = time.perf_counter  # --cpu-time: time.process_time (the CPU time of all the process's threads)


def _interleaved(fns, repeats, warmup=5):
    """Median seconds of each ``(fn, args)``, timed in alternating rounds so clock drift hits all alike."""
    for fn, args in fns:
        for _ in range(warmup):
            jax.block_until_ready(fn(*args))
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, (fn, args) in enumerate(fns):
            t = CLOCK()
            jax.block_until_ready(fn(*args))
            times[i].append(CLOCK() - t)
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


def _old_apis(path):
    """The earlier release's ``nnx`` and ``linen`` packages (``None`` for one that fails to import)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from old_nmn import load_old

    apis = {}
    for api in ("nnx", "linen"):
        try:
            apis[api] = load_old(path, api)
        except ImportError as err:
            print(
                f"--old {path}: its {api} package does not import ({err}); no 0.3.5 column for {api}", file=sys.stderr
            )
            apis[api] = None
    return apis


def _ms_ratio(t, base):
    return "- | -" if t is None else f"{t * 1e3:.3f} | {t / base:.2f}"


MEMORY_CHILD = r"""
import json, os, sys
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp
from nmn._jax import _flash
from nmn._jax.ops import F
from nmn.core import yat as core
kind, length, b, h, d, mode = {kind!r}, {length}, {b}, {h}, {d}, {mode!r}
keys = jax.random.split(jax.random.key(0), 3)
q, k, v = (jax.random.normal(key, (b, length, h, d), jnp.float32) for key in keys)
if kind == "dot_product_attention":
    f = lambda q, k, v: jax.nn.dot_product_attention(q, k, v)
elif kind == "yat reference":
    f = lambda q, k, v: core.yat_attention(F, q, k, v, None, 1.0, 1e-5)
else:
    f = lambda q, k, v: _flash.yat_attention(q, k, v, None, 1.0, 1e-5)
fn = f if mode == "fwd" else jax.grad(lambda q, k, v: jnp.sum(f(q, k, v)), argnums=(0, 1, 2))
compiled = jax.jit(fn).lower(q, k, v).compile()
temp = compiled.memory_analysis().temp_size_in_bytes
jax.block_until_ready((q, k, v))
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
try:  # reset the peak (VmHWM) to the current resident size: import and compile peaks do not count
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
base = rss()
jax.block_until_ready(compiled(q, k, v))
with open("/proc/self/status") as fh:
    hwm = [int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")]
print(json.dumps({{"peak": (hwm[0] if hwm else 0) - base, "temp": temp}}))
"""

MEMORY_KINDS = ("dot_product_attention", "yat reference", "yat flash")


def memory_case(kind, length, mode, args):
    """Run one memory case in a fresh interpreter; ``{"peak": bytes, "temp": bytes}``."""
    code = MEMORY_CHILD.format(
        root=str(Path(__file__).resolve().parents[1]),
        kind=kind,
        length=length,
        b=args.batch,
        h=args.heads,
        d=args.head_dim,
        mode=mode,
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bench_jax --memory: {kind} L={length} {mode} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_table(args):
    """Print the attention peak-memory table (MiB; ratio to ``jax.nn.dot_product_attention``)."""
    print(f"B{args.batch} H{args.heads} D{args.head_dim}, float32; device {jax.default_backend()}\n")
    print("| L | mode | kind | peak RSS growth MiB | ratio | XLA temp MiB | ratio |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for length in args.lengths:
        for mode in ("fwd", "fwd+bwd"):
            rows = [(kind, memory_case(kind, length, mode, args)) for kind in MEMORY_KINDS]
            base = rows[0][1]
            for kind, r in rows:
                print(
                    f"| {length} | {mode} | {kind} | {r['peak'] / 2**20:.1f} | {r['peak'] / max(base['peak'], 1):.2f} "
                    f"| {r['temp'] / 2**20:.1f} | {r['temp'] / max(base['temp'], 1):.2f} |",
                    flush=True,
                )


def _hlo_ops(fn, *args):
    """Counts of the top-level ops of the optimised (compiled) HLO of ``fn``: fusions, dots, others."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    entry = text[text.index("ENTRY") :]
    counts = {}
    for line in entry.splitlines()[1:]:
        if "=" not in line or line.strip().startswith("ROOT tuple"):
            continue
        rhs = line.split("=", 1)[1].strip()
        found = re.search(r"(?:^|[\s\]}])([a-z][\w-]*)\(", rhs)  # the op name: the first word before "("
        if found is None:
            continue
        op = found.group(1)
        if op in ("parameter", "constant", "tuple", "get-tuple-element", "bitcast"):
            continue
        counts[op] = counts.get(op, 0) + 1
    return counts


def profile_dense(args):
    """Where a Yat dense forward (+ backward) spends its time under jit: the contraction ``x @ w`` alone, Linear +
    relu, and nmn's YatNMN function, interleaved medians, and the compiled program's top-level ops."""
    from nmn._jax.functional import yat_dense

    shapes = [(64, 784, 256)] if args.quick else [(256, 784, 256), (512, 4096, 4096)]
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}\n")
    print("| case | pass | x@w ms | Linear+relu ms | Yat ms | Yat / x@w | Yat / Linear+relu | Yat compiled ops |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for b, i, o in shapes:
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (b, i), jnp.float32)
        w = jax.random.normal(keys[1], (i, o), jnp.float32) / i**0.5
        bias = jnp.zeros((o,), jnp.float32)
        alpha = jnp.ones((), jnp.float32)
        fns = {
            "x@w": lambda x, w, bias, alpha: x @ w,
            "linear": lambda x, w, bias, alpha: jax.nn.relu(x @ w + bias),
            "yat": lambda x, w, bias, alpha: yat_dense(x, w, bias, alpha),
        }
        for mode in ("fwd", "fwd+bwd"):
            built = {
                k: f if mode == "fwd" else jax.grad(lambda *a, f=f: jnp.sum(f(*a)), argnums=(0, 1, 2, 3))
                for k, f in fns.items()
            }
            argv = (x, w, bias, alpha)
            times = _interleaved([(jax.jit(f), argv) for f in built.values()], args.repeats, warmup=2)
            ops = ", ".join(f"{k} {n}" for k, n in sorted(_hlo_ops(built["yat"], *argv).items()))
            print(
                f"| dense {i}->{o}, batch {b} | {mode} | {times[0] * 1e3:.2f} | {times[1] * 1e3:.2f} "
                f"| {times[2] * 1e3:.2f} | {times[2] / times[0]:.2f} | {times[2] / times[1]:.2f} | {ops} |",
                flush=True,
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per measurement (median)")
    parser.add_argument("--only", choices=["dense", "conv", "attention"], help="one layer family")
    parser.add_argument("--api", choices=["nnx", "linen"], help="one Flax API")
    parser.add_argument(
        "--old",
        metavar="PATH",
        help="also time the earlier release installed with "
        "pip install --no-deps --target PATH nmn==0.3.5 (imported as nmn_old)",
    )
    parser.add_argument("--memory", action="store_true", help="attention peak memory instead of speed")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096], help="--memory sequence lengths")
    parser.add_argument("--batch", type=int, default=1, help="--memory batch size")
    parser.add_argument("--heads", type=int, default=4, help="--memory heads")
    parser.add_argument("--head-dim", type=int, default=64, help="--memory head size")
    parser.add_argument("--profile", action="store_true", help="where the dense layer's time goes (see profile_dense)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by the process's CPU time (all XLA threads) instead of the wall clock: steadier on a shared CPU",
    )
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    if args.profile:
        profile_dense(args)
        return
    if args.memory:
        memory_table(args)
        return
    s = sizes(args.quick)
    olds = _old_apis(args.old) if args.old else {"nnx": None, "linen": None}
    clock = "process CPU time" if args.cpu_time else "wall"
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, clock {clock}\n")
    print(
        "| API | case | plain fwd ms | nmn fwd ms | nmn fwd ratio | 0.3.5 fwd ms | 0.3.5 fwd ratio "
        "| plain fwd+bwd ms | nmn fwd+bwd ms | nmn fwd+bwd ratio | 0.3.5 fwd+bwd ms | 0.3.5 fwd+bwd ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for api, pairs in (("nnx", lambda: nnx_pairs(s, olds["nnx"])), ("linen", lambda: linen_pairs(s, olds["linen"]))):
        if args.api and api != args.api:
            continue
        for name, yat, plain, prev, shape in pairs():
            if args.only and not name.startswith(args.only):
                continue
            x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
            layers = [plain, yat] + ([prev] if prev is not None else [])
            built = [nnx_fns(layer) if api == "nnx" else linen_fns(layer, x) for layer in layers]
            fwd = _interleaved([(f, (state, x)) for state, f, _ in built], args.repeats)
            bwd = _interleaved([(b, (state, x)) for state, _, b in built], args.repeats)
            of, ob = (fwd[2], bwd[2]) if prev is not None else (None, None)
            print(
                f"| {api} | {name} | {fwd[0] * 1e3:.3f} | {_ms_ratio(fwd[1], fwd[0])} | {_ms_ratio(of, fwd[0])} "
                f"| {bwd[0] * 1e3:.3f} | {_ms_ratio(bwd[1], bwd[0])} | {_ms_ratio(ob, bwd[0])} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
