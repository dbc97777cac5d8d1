"""The protocol's real clients against ``nmn serve`` (REST and gRPC), bit for bit vs onnxruntime.

tritonclient[http,grpc] and kserve are test dependencies; each is skipped when
missing. Every client runs with its DEFAULT settings first (tritonclient.http
and kserve send and ask for binary tensors; gRPC uses raw contents), then the
variants (JSON tensors, mixed, compression).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.serve.models import free_port

tc_http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
tc_grpc = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def server(model_dir, start_server):
    port = free_port()
    srv = start_server(model_dir, "--grpc-port", str(port))
    srv.grpc_url = f"127.0.0.1:{port}"
    return srv


@pytest.fixture(scope="module")
def batched(model_dir, start_server):
    port = free_port()
    srv = start_server(model_dir, "--grpc-port", str(port), "--max-batch", "16", "--batch-timeout-ms", "3")
    srv.grpc_url = f"127.0.0.1:{port}"
    return srv


def http_client(server):
    return tc_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=300)


def grpc_client(server):
    return tc_grpc.InferenceServerClient(server.grpc_url)


def same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_array_equal(got, want)
    assert got.tobytes() == want.tobytes()  # bit for bit (also -0.0 vs 0.0)


def pair_feeds(n=3, seed=1):
    rng = np.random.default_rng(seed)
    return {"a": rng.standard_normal((n, 2)).astype(np.float32), "k": rng.integers(-9, 9, (n, 2)).astype(np.int64)}


def mlp_feeds(n=5, seed=0):
    return {"x": np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)}


# ------------------------------------------------------------------ tritonclient.http


def test_http_health_metadata_index_config_stats(server):
    c = http_client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("mlp")
    assert not c.is_model_ready("nope")
    meta = c.get_server_metadata()
    assert meta["name"] == "nmn-serve" and "binary_tensor_data" in meta["extensions"]
    m = c.get_model_metadata("pair")
    assert [(t["name"], t["datatype"], t["shape"]) for t in m["inputs"]] == [
        ("a", "FP32", [-1, 2]),
        ("k", "INT64", [-1, 2]),
    ]
    assert [r["name"] for r in c.get_model_repository_index()] == ["fixed", "mlp", "pair", "square"]
    cfg = c.get_model_config("mlp")
    assert cfg["name"] == "mlp" and cfg["platform"] == "onnxruntime_onnx" and cfg["max_batch_size"] == 0
    assert cfg["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    before = c.get_inference_statistics("square")["model_stats"][0]
    x = np.ones((2, 3), np.float32)
    inp = tc_http.InferInput("x", [2, 3], "FP32")
    inp.set_data_from_numpy(x)
    c.infer("square", [inp])
    after = c.get_inference_statistics("square")["model_stats"][0]
    assert after["inference_count"] == before["inference_count"] + 2  # two rows
    assert after["execution_count"] == before["execution_count"] + 1
    s, b = after["inference_stats"]["success"], before["inference_stats"]["success"]
    assert s["count"] == b["count"] + 1 and s["ns"] > b["ns"]
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        c.get_model_config("nope")
    c.close()


@pytest.mark.parametrize(
    "binary_in,binary_out",
    [(True, True), (False, False), (True, False), (False, True)],
    ids=["default-binary", "json", "binary-in-json-out", "json-in-binary-out"],
)
def test_http_infer_bit_for_bit(server, model_dir, ort_reference, binary_in, binary_out):
    c = http_client(server)
    feeds = mlp_feeds()
    inp = tc_http.InferInput("x", list(feeds["x"].shape), "FP32")
    inp.set_data_from_numpy(feeds["x"], binary_data=binary_in)
    outputs = None if (binary_in and binary_out) else [tc_http.InferRequestedOutput("y", binary_data=binary_out)]
    res = c.infer("mlp", [inp], outputs=outputs, request_id="r1")
    same(res.as_numpy("y"), ort_reference(model_dir / "mlp.onnx", feeds)["y"])
    assert res.get_response()["id"] == "r1"
    c.close()


def test_http_mixed_inputs_and_outputs(server, model_dir, ort_reference):
    c = http_client(server)
    feeds = pair_feeds()
    a = tc_http.InferInput("a", [3, 2], "FP32")
    a.set_data_from_numpy(feeds["a"], binary_data=True)
    k = tc_http.InferInput("k", [3, 2], "INT64")
    k.set_data_from_numpy(feeds["k"], binary_data=False)
    outs = [
        tc_http.InferRequestedOutput("sum", binary_data=False),
        tc_http.InferRequestedOutput("neg", binary_data=True),
    ]
    res = c.infer("pair", [a, k], outputs=outs)
    want = ort_reference(model_dir / "pair.onnx", feeds)
    same(res.as_numpy("sum"), want["sum"])
    same(res.as_numpy("neg"), want["neg"])
    kinds = {
        o["name"]: ("data" in o, "binary_data_size" in o.get("parameters", {})) for o in res.get_response()["outputs"]
    }
    assert kinds == {"sum": (True, False), "neg": (False, True)}
    c.close()


@pytest.mark.parametrize(
    "request_alg,response_alg", [("gzip", None), ("deflate", None), (None, "gzip"), (None, "deflate"), ("gzip", "gzip")]
)
def test_http_compression(server, model_dir, ort_reference, request_alg, response_alg):
    c = http_client(server)
    feeds = mlp_feeds(64, seed=3)
    inp = tc_http.InferInput("x", [64, 4], "FP32")
    inp.set_data_from_numpy(feeds["x"])
    res = c.infer("mlp", [inp], request_compression_algorithm=request_alg, response_compression_algorithm=response_alg)
    same(res.as_numpy("y"), ort_reference(model_dir / "mlp.onnx", feeds)["y"])
    c.close()


def test_http_errors_are_exceptions_with_the_message(server):
    c = http_client(server)
    inp = tc_http.InferInput("x", [1, 5], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 5), np.float32))
    with pytest.raises(InferenceServerException, match="dimension 1 must be 4, got 5"):
        c.infer("mlp", [inp])
    c.close()


# ------------------------------------------------------------------ tritonclient.grpc


def test_grpc_health_metadata_index_config_stats(server):
    c = grpc_client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("mlp")
    assert not c.is_model_ready("nope")
    meta = c.get_server_metadata(as_json=True)
    assert meta["name"] == "nmn-serve"
    m = c.get_model_metadata("pair", as_json=True)
    assert [(t["name"], t["datatype"], t["shape"]) for t in m["inputs"]] == [
        ("a", "FP32", ["-1", "2"]),
        ("k", "INT64", ["-1", "2"]),
    ]
    assert [r["name"] for r in c.get_model_repository_index(as_json=True)["models"]] == [
        "fixed",
        "mlp",
        "pair",
        "square",
    ]
    cfg = c.get_model_config("pair").config
    assert cfg.name == "pair" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 0
    from tritonclient.grpc import model_config_pb2 as mc

    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [
        ("a", mc.TYPE_FP32, [-1, 2]),
        ("k", mc.TYPE_INT64, [-1, 2]),
    ]
    before = c.get_inference_statistics("mlp").model_stats[0]
    inp = tc_grpc.InferInput("x", [3, 4], "FP32")
    inp.set_data_from_numpy(np.ones((3, 4), np.float32))
    c.infer("mlp", [inp])
    after = c.get_inference_statistics("mlp").model_stats[0]
    assert after.inference_count == before.inference_count + 3
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as info:
        c.get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    c.close()


@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_grpc_infer_bit_for_bit(server, model_dir, ort_reference, compression):
    c = grpc_client(server)
    feeds = pair_feeds(4)
    inputs = []
    for name, dt in (("a", "FP32"), ("k", "INT64")):
        i = tc_grpc.InferInput(name, list(feeds[name].shape), dt)
        i.set_data_from_numpy(feeds[name])
        inputs.append(i)
    res = c.infer("pair", inputs, request_id="g1", compression_algorithm=compression)
    want = ort_reference(model_dir / "pair.onnx", feeds)
    same(res.as_numpy("sum"), want["sum"])
    same(res.as_numpy("neg"), want["neg"])
    assert res.get_response().id == "g1"
    only = c.infer("pair", inputs, outputs=[tc_grpc.InferRequestedOutput("neg")])
    assert [o.name for o in only.get_response().outputs] == ["neg"]
    c.close()


def test_grpc_typed_contents_with_tritons_own_messages(server, model_dir, ort_reference):
    """ModelInfer with typed ``contents`` (not raw), built from tritonclient's service_pb2."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    feeds = pair_feeds(2, seed=5)
    req = service_pb2.ModelInferRequest(model_name="pair")
    a = req.inputs.add(name="a", datatype="FP32", shape=[2, 2])
    a.contents.fp32_contents.extend(feeds["a"].ravel().tolist())
    k = req.inputs.add(name="k", datatype="INT64", shape=[2, 2])
    k.contents.int64_contents.extend(feeds["k"].ravel().tolist())
    with grpc.insecure_channel(server.grpc_url) as ch:
        resp = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=300)
    want = ort_reference(model_dir / "pair.onnx", feeds)
    for out, raw in zip(resp.outputs, resp.raw_output_contents):
        same(np.frombuffer(raw, np.float32).reshape(list(out.shape)), want[out.name])


# ------------------------------------------------------------------------- kserve


_KSERVE_SCRIPT = r"""
import asyncio, sys
import numpy as np
import kserve

rest_url, grpc_url, x_path, out = sys.argv[1:5]
x = np.load(x_path)

def request(binary):
    inp = kserve.InferInput(name="x", shape=list(x.shape), datatype="FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return kserve.InferRequest(model_name="mlp", infer_inputs=[inp], request_id="k1")

async def main():
    rest = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=300))
    try:
        assert await rest.is_server_ready(rest_url)
        for binary in (True, False):  # True is set_data_from_numpy's default
            res = await rest.infer(rest_url, request(binary), model_name="mlp")
            np.save(f"{out}/rest_{binary}.npy", res.outputs[0].as_numpy())
    finally:
        await rest.close()
    g = kserve.InferenceGRPCClient(grpc_url, timeout=300)
    try:
        res = await g.infer(request(True))
        np.save(f"{out}/grpc.npy", res.outputs[0].as_numpy())
    finally:
        await g.close()

asyncio.run(main())
"""


def test_kserve_rest_and_grpc_clients(server, model_dir, ort_reference, tmp_path):
    """kserve's InferenceRESTClient (binary and JSON) and InferenceGRPCClient.

    In a subprocess: kserve's generated messages and tritonclient's both
    register the protocol's ``inference.*`` names, so one process cannot import both.
    """
    import importlib.util
    import subprocess
    import sys

    from tests.serve.models import REPO_ROOT, subprocess_env

    if importlib.util.find_spec("kserve") is None:
        pytest.skip("kserve is not installed")
    x = np.random.default_rng(9).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [sys.executable, "-c", _KSERVE_SCRIPT, server.url, server.grpc_url, str(tmp_path / "x.npy"), str(tmp_path)],
        cwd=str(REPO_ROOT),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = ort_reference(model_dir / "mlp.onnx", {"x": x})["y"]
    for name in ("rest_True", "rest_False", "grpc"):
        same(np.load(tmp_path / f"{name}.npy"), want)


# ------------------------------------------------------------------ bounded load


def _load(server, model_dir, protocol: str, threads: int = 8, requests: int = 40) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_dir / "pair.onnx"), providers=["CPUExecutionProvider"])
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def worker(seed: int) -> None:
        mod = tc_http if protocol == "http" else tc_grpc
        c = http_client(server) if protocol == "http" else grpc_client(server)
        try:
            for i in range(requests):
                feeds = pair_feeds(1 + (seed + i) % 3, seed=seed * 1000 + i)
                inputs = []
                for name, dt in (("a", "FP32"), ("k", "INT64")):
                    inp = mod.InferInput(name, list(feeds[name].shape), dt)
                    inp.set_data_from_numpy(feeds[name])
                    inputs.append(inp)
                res = c.infer("pair", inputs, request_id=f"{seed}-{i}")
                want = dict(zip(["sum", "neg"], sess.run(None, feeds)))
                for name in want:
                    same(res.as_numpy(name), want[name])
                with lock:
                    done[0] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    pool = [threading.Thread(target=worker, args=(s,)) for s in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(600)
    assert not errors, errors[:3]
    assert done[0] == threads * requests


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_concurrent_load_no_5xx_no_wrong_answer(server, batched, model_dir, protocol):
    for srv in (server, batched):
        _load(srv, model_dir, protocol)
        assert srv.proc.poll() is None
    import httpx

    for srv in (server, batched):
        metrics = httpx.get(srv.url + "/metrics", timeout=300).text
        assert 'code="5' not in metrics  # no 5xx counted for any model


def test_workers_share_the_grpc_port(model_dir, ort_reference):
    """--workers 2 --grpc-port P: every worker binds P (SO_REUSEPORT) and answers over both protocols."""
    from tests.serve.models import ServerProcess

    port = free_port()
    srv = ServerProcess(model_dir / "mlp.onnx", "--workers", "2", "--grpc-port", str(port))
    try:
        srv.grpc_url = f"127.0.0.1:{port}"
        feeds = mlp_feeds(2, seed=11)
        want = ort_reference(model_dir / "mlp.onnx", feeds)["y"]
        for make, mod in ((grpc_client, tc_grpc), (http_client, tc_http)):
            c = make(srv)
            for _ in range(6):  # new connections land on either worker
                inp = mod.InferInput("x", [2, 4], "FP32")
                inp.set_data_from_numpy(feeds["x"])
                same(c.infer("mlp", [inp]).as_numpy("y"), want)
            c.close()
    finally:
        srv.stop()
