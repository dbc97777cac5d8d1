#!/usr/bin/env python
"""Benchmark ``nmn serve``: requests/s and p50/p99 latency vs in-process onnxruntime.

For each model, at concurrency 1, 8 and 32 (threads, one request of one row
at a time each), it measures

* ``in-process``: ``InferenceSession.run`` called directly (the floor),
* ``rest-json``: ``python -m nmn.serve`` on 127.0.0.1, JSON over HTTP (nmn's Client),
* ``rest-binary``: the same server, binary tensors (tritonclient.http, its defaults),
* ``grpc``: the same server's gRPC port (tritonclient.grpc, its defaults),
* ``...+batch``: each again with ``--max-batch 32 --batch-timeout-ms 2``,

and prints a Markdown table; "% in-process" is req/s against the in-process
row at the same concurrency, measured in the same run. The load generator runs
on the same machine as the server (one client object per thread). Without ``--model`` it serves the demo's seed
MLP (784 -> YatNMN 256 -> YatNMN 128 -> Linear 10, built from nmn's own
functions) and the golden Yat CNN; pass other files with ``--model PATH`` (the
first input's symbolic dims are set to 1).

    python scripts/bench_serve.py --requests 400
    python scripts/bench_serve.py --model yat_mlp.onnx --model yat_cnn.onnx
    python scripts/bench_serve.py --only-mlp --modes rest-binary grpc --no-batch
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


def build_mlp(path: Path) -> None:
    """The demo's seed MLP: [N, 784] -> YatNMN(256) -> YatNMN(128) -> Linear(10), nmn's canonical functions."""
    from nmn.core.schemas import DOMAIN, DOMAIN_VERSION
    from nmn.core.schemas import OPSET as ONNX_OPSET
    from onnx_ops import full_attributes, function_protos

    rng = np.random.default_rng(0)

    def const(name, arr):
        return numpy_helper.from_array(np.asarray(arr, np.float32), name)

    inits, nodes, prev = [], [], "x"
    for i, (fan_in, fan_out) in enumerate(((784, 256), (256, 128))):
        inits += [
            const(f"W{i}", rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)),
            const(f"B{i}", np.zeros(fan_out)),
            const(f"A{i}", [1.0]),
            const(f"E{i}", [1e-5]),
        ]
        nodes.append(
            helper.make_node(
                "YatDense",
                [prev, f"W{i}", f"B{i}", f"A{i}", f"E{i}"],
                [f"h{i}"],
                domain=DOMAIN,
                **full_attributes("YatDense"),
            )
        )
        prev = f"h{i}"
    inits += [const("Wo", rng.standard_normal((128, 10)) * 0.1), const("Bo", np.zeros(10))]
    nodes += [helper.make_node("MatMul", [prev, "Wo"], ["z"]), helper.make_node("Add", ["z", "Bo"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "yat_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        functions=function_protos(["YatDense"]),
        ir_version=10,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
    )
    onnx.save(model, str(path))


def build_cnn(path: Path) -> None:
    """The golden Yat CNN exported from PyTorch (models/golden/yat_cnn.torch.onnx)."""
    import shutil

    shutil.copyfile(ROOT / "models" / "golden" / "yat_cnn.torch.onnx", path)


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
        [sys.executable, "-m", "nmn.serve", "serve", str(path), "--port", str(port), "--log-level", "warning", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
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


def _clients(mode: str, url: str, grpc_url: str, name: str, inp, x: np.ndarray, n: int):
    """One ``call(thread)`` per protocol, with a client object per thread."""
    if mode == "rest-json":
        from nmn.serve import Client

        clients = [Client(url) for _ in range(n)]
        return (lambda t: clients[t].infer(name, {inp.name: x})), lambda: [c.close() for c in clients]
    if mode == "rest-binary":
        import tritonclient.http as tproto

        def make():
            return tproto.InferenceServerClient(url.removeprefix("http://"), network_timeout=300)
    else:
        import tritonclient.grpc as tproto

        def make():
            return tproto.InferenceServerClient(grpc_url)

    # tritonclient.http runs on gevent: each thread needs a client made in that thread.
    by_thread: dict[int, object] = {}

    def call(t: int):
        client = by_thread.get(threading.get_ident())
        if client is None:
            client = by_thread[threading.get_ident()] = make()
        i = tproto.InferInput(inp.name, list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        return client.infer(name, [i]).as_numpy(OUTPUT_NAMES[name])

    clients = by_thread.values()
    return call, lambda: None  # threads' clients go with their threads


OUTPUT_NAMES: dict[str, str] = {}


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="ONNX file to benchmark (repeatable)")
    ap.add_argument("--only-mlp", action="store_true", help="only the stand-in Yat MLP")
    ap.add_argument("--requests", type=int, default=640, help="requests per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument(
        "--modes", nargs="+", default=["rest-json", "rest-binary", "grpc"], choices=["rest-json", "rest-binary", "grpc"]
    )
    ap.add_argument("--no-batch", action="store_true", help="skip the --max-batch server")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nmn-bench-"))
    paths = [Path(p) for p in args.model or []]
    if not paths:
        build_mlp(tmp / "yat_mlp.onnx")
        paths = [tmp / "yat_mlp.onnx"]
        if not args.only_mlp:
            build_cnn(tmp / "yat_cnn.onnx")
            paths.append(tmp / "yat_cnn.onnx")

    rows = []
    for path in paths:
        name = path.stem
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        OUTPUT_NAMES[name] = sess.get_outputs()[0].name
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        base = {}
        for c in args.concurrency:
            r = _measure(lambda t, sess=sess, inp=inp, x=x: sess.run(None, {inp.name: x}), c, args.requests)
            base[c] = r[0]
            rows.append((name, "in-process", c, *r, 100.0))
        servers = [("", ())]
        if not args.no_batch:
            servers.append(("+batch", ("--max-batch", str(args.max_batch), "--batch-timeout-ms", "2")))
        for suffix, extra in servers:
            grpc_port = _free_port()
            proc, url = _start(path, "--grpc-port", str(grpc_port), *extra)
            try:
                for mode in args.modes:
                    call, close = _clients(mode, url, f"127.0.0.1:{grpc_port}", name, inp, x, max(args.concurrency))
                    got = call(0)
                    if not np.array_equal(
                        got if isinstance(got, np.ndarray) else got[OUTPUT_NAMES[name]],
                        sess.run(None, {inp.name: x})[0],
                    ):
                        raise SystemExit(f"{mode}: the server's answer differs from onnxruntime's")
                    for c in args.concurrency:
                        r = _measure(call, c, args.requests)
                        rows.append((name, mode + suffix, c, *r, 100.0 * r[0] / base[c]))
                    close()
                    print(f"# done: {name} {mode}{suffix}", file=sys.stderr)
            finally:
                _stop(proc)

    print("| model | mode | concurrency | req/s | p50 ms | p99 ms | % in-process |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, mode, c, rps, p50, p99, pct in rows:
        print(f"| {name} | {mode} | {c} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {pct:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
