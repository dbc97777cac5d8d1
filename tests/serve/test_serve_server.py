"""A real server (``python -m nmn.serve``) on 127.0.0.1 in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nmn.serve import Client, ServeError
from nmn.serve.cli import main as cli_main
from tests.serve.models import REPO_ROOT, ServerProcess, make_square, subprocess_env

THREADS, REQUESTS = 8, 50


@pytest.fixture(scope="module")
def server(model_dir, start_server) -> ServerProcess:
    return start_server(model_dir)


@pytest.fixture(scope="module")
def batched_server(model_dir, start_server) -> ServerProcess:
    return start_server(model_dir, "--max-batch", "16", "--batch-timeout-ms", "5")


def concurrent_run(url: str, model_dir, threads: int = THREADS, requests: int = REQUESTS) -> int:
    """threads x requests mixed calls to mlp, pair and square, each checked in-process."""
    sessions = {
        name: ort.InferenceSession(str(model_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        for name in ("mlp", "pair", "square")
    }
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            with Client(url, timeout=300) as client:
                for i in range(requests):
                    n = int(rng.integers(1, 4))
                    kind = ("mlp", "pair", "square")[i % 3]
                    if kind == "mlp":
                        feeds = {"x": rng.standard_normal((n, 4)).astype(np.float32)}
                    elif kind == "pair":
                        feeds = {
                            "a": rng.standard_normal((n, 2)).astype(np.float32),
                            "k": rng.integers(-5, 5, (n, 2)).astype(np.int64),
                        }
                    else:
                        feeds = {"x": rng.standard_normal((n, 3)).astype(np.float32)}
                    tag = f"{seed}-{i}"
                    got = client.infer(kind, feeds, id=tag)
                    sess = sessions[kind]
                    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
                    assert set(got) == set(want), (tag, set(got))
                    for name in want:
                        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)
                    with lock:
                        done[0] += 1
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(s,)) for s in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors[:3]
    assert done[0] == threads * requests
    return done[0]


def test_endpoints_over_http(server):
    with Client(server.url) as c:
        assert c.live() and c.ready() and c.ready("mlp")
        assert not c.ready("nope")
        assert c.models() == ["fixed", "mlp", "pair", "square"]
        meta = c.metadata("pair")
        assert meta["platform"] == "onnxruntime_onnx"
        assert meta["inputs"][1] == {"name": "k", "datatype": "INT64", "shape": [-1, 2]}
        out = c.infer("square", {"x": np.full((1, 3), 3, np.float32)})
        np.testing.assert_array_equal(out["y"], np.full((1, 3), 9, np.float32))
        with pytest.raises(ServeError) as info:
            c.infer("mlp", {"x": np.zeros((1, 5), np.float32)})
        assert info.value.status == 400 and "dimension 1 must be 4" in info.value.message
        assert "nmn_serve_infer_requests_total" in httpx.get(server.url + "/metrics").text


def test_concurrent_clients_get_their_own_answers(server, model_dir):
    concurrent_run(server.url, model_dir)
    assert server.proc.poll() is None


def test_dynamic_batching_same_answers(batched_server, model_dir):
    concurrent_run(batched_server.url, model_dir, threads=8, requests=25)
    metrics = httpx.get(batched_server.url + "/metrics").text
    count = total = 0.0
    for line in metrics.splitlines():
        if line.startswith('nmn_serve_batch_requests_count{model="mlp"}'):
            count = float(line.split()[-1])
        if line.startswith('nmn_serve_batch_requests_sum{model="mlp"}'):
            total = float(line.split()[-1])
    mlp_requests = 8 * len(range(0, 25, 3))
    assert total == mlp_requests  # every mlp request went through the batcher ...
    assert 0 < count < total  # ... and some runs merged several requests


def test_predict_command(server, model_dir, tmp_path, ort_reference):
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nmn.serve",
            "predict",
            server.url,
            "--model",
            "mlp",
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npy"),
        ],
        cwd=str(REPO_ROOT),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "y: float32 shape=[2, 3]" in proc.stdout
    want = ort_reference(model_dir / "mlp.onnx", {"x": x})["y"]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_predict_in_process_variants(server, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", a=np.ones((1, 2), np.float32), k=np.ones((1, 2), np.int64))
    rc = cli_main(
        [
            "predict",
            f"{server.url}/v2/models/pair",
            "--input",
            str(tmp_path / "in.npz"),
            "--output",
            str(tmp_path / "out.npz"),
        ]
    )
    assert rc == 0
    saved = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(saved["sum"], [[2, 2]])
    np.testing.assert_array_equal(saved["neg"], [[-1, -1]])
    np.save(tmp_path / "x64.npy", np.ones((1, 4)))  # float64 from numpy defaults: cast to FP32
    assert cli_main(["predict", server.url, "--model", "mlp", "--input", str(tmp_path / "x64.npy")]) == 0
    out = capsys.readouterr()
    assert "casting float64 to FP32" in out.err and "y: float32 shape=[1, 3]" in out.out
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    assert cli_main(["predict", server.url, "--model", "nope", "--input", str(tmp_path / "x.npy")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    # Several models and no --model: a clear error, not a guess.
    assert cli_main(["predict", server.url, "--input", str(tmp_path / "x.npy")]) == 2
    assert "--model" in capsys.readouterr().err


def test_bad_file_stops_startup(tmp_path):
    onnx.save(make_square(with_function=False), str(tmp_path / "nofn.onnx"))
    proc = subprocess.run(
        [sys.executable, "-m", "nmn.serve", str(tmp_path), "--port", "1"],
        cwd=str(REPO_ROOT),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nofn.onnx" in proc.stderr and "nmn.Square" in proc.stderr


def _children(pid: int) -> set[int]:
    found = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found.update(int(p) for p in fh.read().split())
    except OSError:
        pass
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_shutdown_leaves_no_process_behind(model_dir):
    server = ServerProcess(model_dir / "mlp.onnx", "--workers", "2")
    try:
        deadline = time.monotonic() + 300  # generous: a loaded machine starts workers slowly
        kids = _children(server.proc.pid)
        while len(kids) < 2 and time.monotonic() < deadline:  # wait for both workers
            time.sleep(0.2)
            kids = _children(server.proc.pid)
        assert kids, "no worker processes seen"
        with Client(server.url) as c:
            assert c.infer("mlp", {"x": np.zeros((1, 4), np.float32)})["y"].shape == (1, 3)
    finally:
        rc = server.stop()
    assert server.proc.poll() is not None, "server still running"
    assert rc is not None
    deadline = time.monotonic() + 120
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids), "worker processes left behind"
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/v2/health/live", timeout=2)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_failed_requests_hold_no_memory(server):
    """Hundreds of refused ~100 kB requests leave the server's memory flat."""
    bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [0.5] * 12_000}]}
    with httpx.Client(base_url=server.url) as http:

        def burst(n: int) -> None:
            for i in range(n):
                body = bad if i % 2 else b"{" + b"[1," * 30_000
                r = http.post(
                    "/v2/models/mlp/infer", **({"json": body} if isinstance(body, dict) else {"content": body})
                )
                assert r.status_code == 400

        burst(60)  # warm up allocators
        before = _rss_kib(server.proc.pid)
        burst(300)
        after = _rss_kib(server.proc.pid)
    assert after - before < 8 * 1024, f"RSS grew {after - before} KiB over 300 failed requests"
    assert Client(server.url).ready()
