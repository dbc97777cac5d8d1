"""What one request may cost a real server: memory, a stalled body, stalled connections."""

from __future__ import annotations

import json
import socket
import sys
import time

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.serve.models import OPSET, ServerProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ROWS, COLS = 2048, 1024  # 2 Mi values: an 8 MiB float32 tensor
# --body-timeout-s of these servers: the tests must get their next request in while a stalled body is still held,
# so a loaded machine needs seconds of room (3 s was tight there); each 408 test waits this long.
BODY_TIMEOUT_S = 10


def make_rowsum() -> onnx.ModelProto:
    """y = ReduceSum(x, axis 1): a big input, a small output."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
        "rowsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", COLS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(key)


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def rowsum_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rowsum")
    onnx.save(make_rowsum(), str(folder / "rowsum.onnx"))
    server = ServerProcess(folder / "rowsum.onnx", "--body-timeout-s", str(BODY_TIMEOUT_S), "--max-connections", "6")
    yield server
    server.stop()


def _requests(x: np.ndarray):
    js = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    ).encode()
    head = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}
            ]
        }
    ).encode()
    return {
        "json": (js, {"content-type": "application/json"}),
        "binary": (head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}),
    }


@pytest.mark.parametrize("kind", ["json", "binary"])
def test_peak_memory_is_a_small_multiple_of_the_tensor(rowsum_server, kind):
    pid = rowsum_server.proc.pid
    x = np.round(np.random.default_rng(0).random((ROWS, COLS), dtype=np.float32), 2)  # short decimals: ~5 bytes each
    body, headers = _requests(x)[kind]
    want = x.astype(np.float64).sum(axis=1, keepdims=True)  # numpy oracle
    small, small_headers = _requests(x[:1])[kind]
    with httpx.Client(base_url=rowsum_server.url, timeout=300) as http:
        for _ in range(3):  # warm up the request path on a one-row request
            assert http.post("/v2/models/rowsum/infer", content=small, headers=small_headers).status_code == 200
        before = _status(pid, "VmRSS")
        if not _reset_peak(pid):
            pytest.skip("cannot reset the server's peak RSS (/proc/PID/clear_refs)")
        r = http.post("/v2/models/rowsum/infer", content=body, headers=headers)
        assert r.status_code == 200, r.text
        peak = _status(pid, "VmHWM")
        time.sleep(0.5)
        after = _status(pid, "VmRSS")
        rounds = []
        for _ in range(2):  # more of the same level off instead of piling up
            for _ in range(4):
                assert http.post("/v2/models/rowsum/infer", content=body, headers=headers).status_code == 200
            time.sleep(0.5)
            rounds.append(_status(pid, "VmRSS"))
        settled = rounds[-1]
    got = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(ROWS, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    grew = peak - before
    print(
        f"\n{kind}: body {len(body) / 2**20:.1f} MiB, tensor {x.nbytes / 2**20:.1f} MiB, "
        f"peak +{grew / 2**20:.1f} MiB, after +{(after - before) / 2**20:.1f} MiB, "
        f"after 4 and 8 more +{(rounds[0] - before) / 2**20:.1f} / +{(settled - before) / 2**20:.1f} MiB"
    )
    # The body, read into one buffer, and the tensor parsed from it (+ slack for
    # onnxruntime's arena and allocator rounding); most of it is given back.
    assert grew <= len(body) + 2 * x.nbytes + 16 * 2**20, f"peak grew {grew / 2**20:.1f} MiB"
    assert after - before <= x.nbytes + 16 * 2**20, f"RSS stayed {(after - before) / 2**20:.1f} MiB higher"
    # The allocator keeps some of what it was given (per-thread heaps), but a
    # bounded amount: the second round of requests adds (almost) nothing.
    assert rounds[0] - before <= len(body) + 16 * 2**20, f"RSS stayed {(rounds[0] - before) / 2**20:.1f} MiB higher"
    assert rounds[1] - rounds[0] <= 4 * 2**20, f"RSS grew {(rounds[1] - rounds[0]) / 2**20:.1f} MiB in the second round"


def _raw(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    s.sendall(data)
    return s


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not b:
            break
        chunks.append(b)
        if b"\r\n\r\n" in b"".join(chunks):
            head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            ]
            if length and len(rest) >= length[0]:
                break
    return b"".join(chunks)


def test_stalled_body_gets_408_and_the_server_serves_on(rowsum_server):
    port = rowsum_server.port
    s = _raw(
        port,
        b"POST /v2/models/rowsum/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"inputs":',
    )
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert f"did not arrive within {BODY_TIMEOUT_S} s" in body["error"] and "--body-timeout-s" in body["error"]
    x = np.ones((1, COLS), np.float32)
    body, headers = _requests(x)["binary"]
    assert (
        httpx.post(
            rowsum_server.url + "/v2/models/rowsum/infer", content=body, headers=headers, timeout=300
        ).status_code
        == 200
    )


def test_stalled_connections_are_capped(rowsum_server):
    """With --max-connections 6, five stalled senders leave the sixth connection a 503, not a hang; then all is well.

    (uvicorn answers 503 once the open connections reach the cap, counting the new one.)
    """
    port = rowsum_server.port
    stalled = [
        _raw(port, b"POST /v2/models/rowsum/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{") for _ in range(5)
    ]
    try:
        time.sleep(0.5)
        r = httpx.get(rowsum_server.url + "/v2/health/ready", timeout=300)
        assert r.status_code == 503
    finally:
        answers = [_read_all(s) for s in stalled]  # each ends with the 408 of the body timeout
        for s in stalled:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), [a[:40] for a in answers]
    deadline = time.monotonic() + 300
    while True:  # uvicorn forgets the closed connections within a moment
        r = httpx.get(rowsum_server.url + "/v2/health/ready", timeout=300)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200


def test_inflight_budget_bounds_concurrent_bodies(tmp_path):
    """--max-inflight-bytes: while one large body is held, a second that would pass the budget gets a 503."""
    onnx.save(make_rowsum(), str(tmp_path / "rowsum.onnx"))
    server = ServerProcess(
        tmp_path / "rowsum.onnx",
        "--max-request-bytes",
        "200000",
        "--max-inflight-bytes",
        "250000",
        "--body-timeout-s",
        str(BODY_TIMEOUT_S),
    )
    try:
        held = _raw(server.port, b"POST /v2/models/rowsum/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 150000\r\n\r\n{")
        held_at = time.monotonic()
        x = np.ones((29, COLS), np.float32)  # 118,784 bytes of tensor: 150,000 + this > 250,000
        body, headers = _requests(x)["binary"]
        answers = []
        while time.monotonic() - held_at < BODY_TIMEOUT_S / 2:  # until the server has counted the held body
            r = httpx.post(server.url + "/v2/models/rowsum/infer", content=body, headers=headers, timeout=300)
            answers.append(r.status_code)
            if r.status_code != 200:
                break
            time.sleep(0.1)
        assert r.status_code == 503, f"answers while the body was held: {answers}; last: {r.text}"
        assert "limit of 250000" in r.json()["error"] and "--max-inflight-bytes" in r.json()["error"]
        assert _read_all(held).startswith(b"HTTP/1.1 408")  # the held body times out ...
        held.close()
        r = httpx.post(server.url + "/v2/models/rowsum/infer", content=body, headers=headers, timeout=300)
        assert r.status_code == 200, r.text  # ... and its budget is given back
        np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"]), np.full(29, COLS, np.float64))
    finally:
        server.stop()
