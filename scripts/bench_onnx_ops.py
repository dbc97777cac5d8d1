"""onnxruntime speed of the ``nmn`` functions against the standard layers they replace.

YatDense vs MatMul+Add+Relu (batch 256, 784->256 and batch 512, 4096->4096) and YatConv 3x3 64->64 on 32x32
(batch 32) vs Conv+Relu. Each pair runs in the same process, interleaved, and the table reports medians and the
ratio Yat / standard (targets: YatDense <= 1.25x at the large size, YatConv <= 2.0x).

    python scripts/bench_onnx_ops.py [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from nmn.interchange import GraphBuilder, emit

YAT = dict(
    use_bias=True,
    constant_bias=None,
    use_alpha=True,
    constant_alpha=None,
    epsilon=1e-5,
    learnable_epsilon=False,
    spherical=False,
    weight_normalized=False,
)


def yat_dense_model(n_in, n_out, rng):
    b = GraphBuilder(source="bench")
    x = b.input("x", (None, n_in))
    params = {
        "weight": rng.normal(size=(n_out, n_in)).astype(np.float32) * np.float32(0.05),
        "bias": np.zeros(n_out, np.float32),
        "alpha": np.ones(1, np.float32),
    }
    cfg = dict(YAT, in_features=n_in, out_features=n_out, lazy=False)
    b.output(emit.yat_layer(b, "fc", "YatNMN", cfg, params, [x]), "y")
    return b.build(), params


def yat_conv_model(c, m, k, size, rng):
    b = GraphBuilder(source="bench")
    x = b.input("x", (None, c, size, size))
    params = {
        "weight": rng.normal(size=(m, c, k, k)).astype(np.float32) * np.float32(0.05),
        "bias": np.zeros(m, np.float32),
        "alpha": np.ones(1, np.float32),
    }
    cfg = dict(
        YAT,
        rank=2,
        in_channels=c,
        out_channels=m,
        kernel_size=(k, k),
        strides=(1, 1),
        dilations=(1, 1),
        groups=1,
        padding="same",
        padding_mode="zeros",
    )
    b.output(emit.yat_layer(b, "conv", "YatConv", cfg, params, [x], in_shape=(None, c, size, size)), "y")
    return b.build(), params


def plain_model(kind, params, shape):
    w = numpy_helper.from_array(params["weight"], "w")
    bias = numpy_helper.from_array(params["bias"], "b")
    if kind == "dense":
        wt = numpy_helper.from_array(np.ascontiguousarray(params["weight"].T), "wt")
        nodes = [
            helper.make_node("MatMul", ["x", "wt"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["a"]),
            helper.make_node("Relu", ["a"], ["y"]),
        ]
        inits = [wt, bias]
    else:
        k = params["weight"].shape[-1] // 2
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["a"], pads=[k] * 4), helper.make_node("Relu", ["a"], ["y"])]
        inits = [w, bias]
    g = helper.make_graph(
        nodes,
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def bench_pair(yat, plain, x, repeats, threads):
    sy, sp = session(yat, threads), session(plain, threads)
    feed = {"x": x}
    for s in (sy, sp):
        s.run(None, feed)
    ty, tp = [], []
    for _ in range(repeats):  # interleaved: both see the same machine state
        for s, times in ((sy, ty), (sp, tp)):
            t0 = time.perf_counter()
            s.run(None, feed)
            times.append(time.perf_counter() - t0)
    return statistics.median(ty), statistics.median(tp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for batch, n_in, n_out, target in ((256, 784, 256, None), (512, 4096, 4096, 1.25)):
        yat, params = yat_dense_model(n_in, n_out, rng)
        x = rng.normal(size=(batch, n_in)).astype(np.float32)
        ty, tp = bench_pair(yat, plain_model("dense", params, (n_in,)), x, args.repeats, args.threads)
        rows.append((f"YatDense b{batch} {n_in}->{n_out}", "MatMul+Add+Relu", ty, tp, target))
    yat, params = yat_conv_model(64, 64, 3, 32, rng)
    x = rng.normal(size=(32, 64, 32, 32)).astype(np.float32)
    ty, tp = bench_pair(yat, plain_model("conv", params, (64, 32, 32)), x, args.repeats, args.threads)
    rows.append(("YatConv 3x3 64->64 32x32 b32", "Conv+Relu", ty, tp, 2.0))
    print(f"onnxruntime {ort.__version__}, {args.threads} thread(s), median of {args.repeats} interleaved runs\n")
    print("| op | baseline | Yat ms | baseline ms | ratio | target |")
    print("|---|---|---|---|---|---|")
    for name, base, ty, tp, target in rows:
        print(
            f"| {name} | {base} | {ty * 1e3:.2f} | {tp * 1e3:.2f} | {ty / tp:.2f}x | "
            f"{f'<= {target:.2f}x' if target else '-'} |"
        )


if __name__ == "__main__":
    main()
