#!/usr/bin/env python
"""Benchmark ``nmn serve``: requests/s and p50/p99 latency vs in-process onnxruntime.

For each model, at concurrency 1, 8 and 32 (threads, one request of one row
at a time each), it measures

* ``in-process``: ``InferenceSession.run`` called directly (the floor),
* ``serve``: ``python -m nmn.serve`` on 127.0.0.1, JSON over HTTP,
* ``serve+batch``: the same with ``--max-batch 32 --batch-timeout-ms 2``,

and prints a Markdown table. Without ``--model`` it builds two stand-in
models with a model-local ``nmn`` function (a Yat-style dense layer and a
Yat-style convolution); pass exported Yat files with ``--model PATH`` (the
first input's symbolic dims are set to 1).

    python scripts/bench_serve.py --requests 400
    python scripts/bench_serve.py --model yat_mlp.onnx --model yat_cnn.onnx
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPSET = [helper.make_opsetid("", 18), helper.make_opsetid("nmn", 1)]


def _yat_function(name: str, conv: bool) -> onnx.FunctionProto:
    """Stand-in Yat op: (x.w)^2 / (|x - w|^2 + eps), as an nmn-domain function."""
    n = helper.make_node
    if conv:
        dot = n("Conv", ["X", "W"], ["dot"], pads=[1, 1, 1, 1])
        # |patch|^2 via a conv of X*X with an all-ones kernel of W's shape.
        x2 = [
            n("Mul", ["X", "X"], ["xx"]),
            n("Shape", ["W"], ["wshape"]),
            n("Slice", ["wshape", "one", "four"], ["kshape_tail"]),
            n("Concat", ["one", "kshape_tail"], ["kshape"], axis=0),
            n("ConstantOfShape", ["kshape"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
            n("Conv", ["xx", "ones"], ["x2"], pads=[1, 1, 1, 1]),
        ]
        w2 = [
            n("Mul", ["W", "W"], ["ww"]),
            n("ReduceSum", ["ww", "axes123"], ["w2flat"], keepdims=0),
            n("Unsqueeze", ["w2flat", "axes12"], ["w2"]),
        ]
        consts = [
            n("Constant", [], ["one"], value_ints=[1]),
            n("Constant", [], ["four"], value_ints=[4]),
            n("Constant", [], ["axes123"], value_ints=[1, 2, 3]),
            n("Constant", [], ["axes12"], value_ints=[1, 2]),
        ]
    else:
        dot = n("MatMul", ["X", "W"], ["dot"])
        x2 = [n("ReduceSumSquare", ["X", "ax1"], ["x2"], keepdims=1)]
        w2 = [n("ReduceSumSquare", ["W", "ax0"], ["w2"], keepdims=1)]
        consts = [n("Constant", [], ["ax0"], value_ints=[0]), n("Constant", [], ["ax1"], value_ints=[1])]
    body = consts + [dot] + x2 + w2 + [
        n("Constant", [], ["two"], value_float=2.0),
        n("Constant", [], ["eps"], value_float=1e-5),
        n("Add", ["x2", "w2"], ["s"]),
        n("Mul", ["dot", "two"], ["d2"]),
        n("Sub", ["s", "d2"], ["dist"]),
        n("Add", ["dist", "eps"], ["den"]),
        n("Mul", ["dot", "dot"], ["num"]),
        n("Div", ["num", "den"], ["Y"]),
    ]
    return helper.make_function("nmn", name, ["X", "W"], ["Y"], body, [OPSET[0]])


def build_mlp(path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 128)).astype(np.float32) * 0.1, "W1")
    w2 = numpy_helper.from_array(rng.standard_normal((128, 10)).astype(np.float32) * 0.1, "W2")
    graph = helper.make_graph(
        [
            helper.make_node("YatDense", ["x", "W1"], ["h"], domain="nmn"),
            helper.make_node("YatDense", ["h", "W2"], ["y"], domain="nmn"),
        ],
        "yat_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[w1, w2],
    )
    model = helper.make_model(graph, opset_imports=OPSET, functions=[_yat_function("YatDense", False)])
    onnx.save(model, str(path))


def build_cnn(path: Path) -> None:
    rng = np.random.default_rng(0)
    k1 = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.3, "K1")
    k2 = numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.1, "K2")
    graph = helper.make_graph(
        [
            helper.make_node("YatConv", ["x", "K1"], ["h1"], domain="nmn"),
            helper.make_node("MaxPool", ["h1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("YatConv", ["p1", "K2"], ["h2"], domain="nmn"),
            helper.make_node("GlobalAveragePool", ["h2"], ["g"]),
            helper.make_node("Flatten", ["g"], ["y"]),
        ],
        "yat_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
        initializer=[k1, k2],
    )
    model = helper.make_model(graph, opset_imports=OPSET, functions=[_yat_function("YatConv", True)])
    onnx.save(model, str(path))


# ------------------------------------------------------------------------ measuring


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmn.serve", "serve", str(path), "--port", str(port),
         "--log-level", "warning", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server failed: {proc.stderr.read().decode()}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _measure(call, concurrency: int, total: int, warmup: int = 20) -> tuple[float, float, float]:
    for _ in range(warmup):
        call(0)
    per_thread = max(1, total // concurrency)
    lat: list[float] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        mine = []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            call(t)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(concurrency)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    arr = np.array(lat) * 1000
    return len(lat) / wall, float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from nmn.serve import Client

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="ONNX file to benchmark (repeatable)")
    ap.add_argument("--requests", type=int, default=640, help="requests per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--max-batch", type=int, default=32)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nmn-bench-"))
    paths = [Path(p) for p in args.model or []]
    if not paths:
        build_mlp(tmp / "yat_mlp.onnx")
        build_cnn(tmp / "yat_cnn.onnx")
        paths = [tmp / "yat_mlp.onnx", tmp / "yat_cnn.onnx"]

    rows = []
    for path in paths:
        name = path.stem
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for c in args.concurrency:
            rows.append((name, "in-process", c, *_measure(lambda t: sess.run(None, {inp.name: x}), c, args.requests)))
        for mode, extra in (("serve", ()), ("serve+batch", ("--max-batch", str(args.max_batch), "--batch-timeout-ms", "2"))):
            proc, url = _start(path, *extra)
            try:
                clients = [Client(url) for _ in range(max(args.concurrency))]
                for c in args.concurrency:
                    rows.append((name, mode, c, *_measure(lambda t: clients[t].infer(name, {inp.name: x}), c, args.requests)))
                for cl in clients:
                    cl.close()
            finally:
                _stop(proc)
            print(f"# done: {name} {mode}", file=sys.stderr)

    print("| model | mode | concurrency | req/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for name, mode, c, rps, p50, p99 in rows:
        print(f"| {name} | {mode} | {c} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
