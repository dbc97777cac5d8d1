"""Benchmark nmn.mlx Yat layers against mlx.nn baselines (CPU build): forward and forward+backward,
eager and mx.compile; medians of repeated runs and the Yat / baseline ratio.

Run: python scripts/bench_mlx.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx.core as mx
import mlx.nn as nn

import nmn.mlx as nm


def _median_ms(fn, repeats, warmup=3):
    for _ in range(warmup):
        mx.eval(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mx.eval(fn())
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rows = []
    for name, yat, yat_call, base, base_call, x in _cases():
        mx.eval(yat.parameters(), base.parameters())
        for mode in ("forward", "forward+backward"):
            for compiled in (False, True):
                timings = []
                for model, call in ((yat, yat_call), (base, base_call)):
                    if mode == "forward":
                        fn = lambda m=model, c=call, x=x: c(m, x)
                    else:
                        grad = nn.value_and_grad(model, lambda m, x, c=call: c(m, x).sum())
                        fn = lambda m=model, g=grad, x=x: g(m, x)
                    if compiled:
                        fn = mx.compile(fn)
                    timings.append(_median_ms(fn, args.repeats))
                rows.append((name, mode, "compiled" if compiled else "eager", *timings, timings[0] / timings[1]))
    print("| layer | pass | mode | Yat ms | baseline ms | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} |")


if __name__ == "__main__":
    main()
