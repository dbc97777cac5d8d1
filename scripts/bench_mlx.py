"""Benchmark nmn.mlx Yat layers against mlx.nn baselines (CPU build): forward and forward+backward,
eager and mx.compile; medians of repeated runs and the Yat / baseline ratio.

Run: python scripts/bench_mlx.py [--repeats 15] [--only attention] [--cpu-time]
     pip install --no-deps --target /tmp/nmn035 "nmn==0.3.5"
     python scripts/bench_mlx.py --old /tmp/nmn035   # nmn 0.3.5 (imported as nmn_old) beside them

The Yat layer, the baseline (and with ``--old`` the earlier release) are timed in interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nmn.mlx as nm


def _median_ms(fns, repeats, warmup=3, clock=time.perf_counter):
    """Median milliseconds of each function, timed in alternating rounds (one call of each per round);
    ``clock``: wall clock, or ``time.process_time`` (the process's CPU time, less sensitive to other load)."""
    for fn in fns:
        for _ in range(warmup):
            mx.eval(fn())
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = clock()
            mx.eval(fn())
            times[i].append((clock() - t) * 1e3)
    return [statistics.median(t) for t in times]


def _old_layers(old):
    """nmn 0.3.5's layers for the three cases (built lazily on their first call), or ``{}``."""
    if old is None:
        return {}
    return {
        "dense": old.YatNMN(256),
        "conv": old.YatConv2D(32, 3, padding=1),
        "attention": old.MultiHeadYatAttention(64, 4),
    }


def _cases():
    mx.random.seed(0)
    dense_x = mx.random.normal((256, 256))
    conv_x = mx.random.normal((8, 16, 16, 16))
    attn_x = mx.random.normal((4, 64, 64))
    linear = nn.Linear(256, 256)
    conv = nn.Conv2d(16, 32, 3, padding=1)
    mha = nn.MultiHeadAttention(64, 4)
    yield (
        "dense 256x256 -> 256",
        nm.YatNMN(256, in_features=256),
        lambda m, x: m(x),
        linear,
        lambda m, x: nn.relu(m(x)),
        dense_x,
    )
    yield (
        "conv2d 8x16x16x16 -> 32, k3",
        nm.YatConv2D(32, 3, in_channels=16, padding=1),
        lambda m, x: m(x),
        conv,
        lambda m, x: nn.relu(m(x)),
        conv_x,
    )
    yield (
        "attention B4 L64 E64 H4",
        nm.MultiHeadYatAttention(64, 4),
        lambda m, x: m(x),
        mha,
        lambda m, x: m(x, x, x),
        attn_x,
    )


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--old",
        metavar="PATH",
        help="also time the earlier release installed with pip install --no-deps --target PATH nmn==0.3.5",
    )
    parser.add_argument(
        "--only",
        metavar="CASE",
        action="append",
        choices=("dense", "conv", "attention"),
        help="time only this case (repeatable; default: all three)",
    )
    parser.add_argument("--cpu-time", action="store_true", help="time by process CPU time instead of wall clock")
    args = parser.parse_args(argv)
    clock = time.process_time if args.cpu_time else time.perf_counter
    old = None
    if args.old:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from old_nmn import load_old

        old = load_old(args.old, "mlx")
    olds = _old_layers(old)
    rows = []
    for name, yat, yat_call, base, base_call, x in _cases():
        case = name.split()[0].replace("conv2d", "conv")
        if args.only and case not in args.only:
            continue
        prev = olds.get(case)
        models = [(yat, yat_call), (base, base_call)] + ([(prev, lambda m, x: m(x))] if prev is not None else [])
        for model, call in models:
            mx.eval(call(model, x))  # builds a lazy layer before its parameters are differentiated
            mx.eval(model.parameters())
        for mode in ("forward", "forward+backward"):
            for compiled in (False, True):
                fns = []
                for model, call in models:
                    if mode == "forward":
                        fn = lambda m=model, c=call, x=x: c(m, x)
                    else:
                        grad = nn.value_and_grad(model, lambda m, x, c=call: c(m, x).sum())
                        fn = lambda m=model, g=grad, x=x: g(m, x)
                    fns.append(mx.compile(fn) if compiled else fn)
                timings = _median_ms(fns, args.repeats, clock=clock)
                rows.append((name, mode, "compiled" if compiled else "eager", timings))
    extra = " 0.3.5 ms | 0.3.5 ratio |" if old is not None else ""
    print(f"| layer | pass | mode | Yat ms | baseline ms | ratio |{extra}")
    print("|---|---|---|---|---|---|" + ("---|---|" if old is not None else ""))
    for name, mode, kind, t in rows:
        line = f"| {name} | {mode} | {kind} | {t[0]:.2f} | {t[1]:.2f} | {t[0] / t[1]:.2f} |"
        if len(t) > 2:
            line += f" {t[2]:.2f} | {t[2] / t[1]:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
