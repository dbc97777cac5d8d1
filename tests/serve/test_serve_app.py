"""Every endpoint and the bad-request table, in-process (Starlette TestClient)."""

from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import onnx
import pytest

with warnings.catch_warnings():  # starlette may warn about its httpx-based client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from nmn.interchange.safe_load import UnsafeModelError
from nmn.serve import create_app
from nmn.serve.batching import Batcher
from tests.serve.models import make_square

LIMIT = 200_000


@pytest.fixture(scope="module")
def client(model_dir):
    app = create_app(model_dir, max_request_bytes=LIMIT)
    with TestClient(app) as c:
        yield c


def x_mlp(n=2):
    return np.linspace(-1, 1, n * 4, dtype=np.float32).reshape(n, 4)


def tensor(name, arr, datatype=None):
    arr = np.asarray(arr)
    dt = datatype or {"float32": "FP32", "int64": "INT64"}[str(arr.dtype)]
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": arr.ravel().tolist()}


# ----------------------------------------------------------------------- endpoints


def test_health(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "nmn-serve"


def test_model_metadata(client):
    meta = client.get("/v2/models/mlp").json()
    assert meta["name"] == "mlp"
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    pair = client.get("/v2/models/pair").json()
    assert [(t["name"], t["datatype"]) for t in pair["inputs"]] == [("a", "FP32"), ("k", "INT64")]
    assert client.get("/v2/models/fixed").json()["inputs"][0]["shape"] == [2, 3]
    assert client.get("/v2/models/mlp/versions/1").json()["name"] == "mlp"


def test_model_ready_and_index(client):
    assert client.get("/v2/models/square/ready").json() == {"name": "square", "ready": True}
    r = client.get("/v2/models/nope/ready")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    names = [m["name"] for m in client.post("/v2/repository/index", json={}).json()]
    assert names == ["fixed", "mlp", "pair", "square"]


def test_infer_matches_onnxruntime(client, model_dir, ort_reference):
    x = x_mlp(3)
    r = client.post("/v2/models/mlp/infer", json={"id": "req-7", "inputs": [tensor("x", x)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-7" and body["model_name"] == "mlp"
    (out,) = body["outputs"]
    assert out["name"] == "y" and out["datatype"] == "FP32" and out["shape"] == [3, 3]
    assert len(out["data"]) == 9  # flat
    want = ort_reference(model_dir / "mlp.onnx", {"x": x})["y"]
    np.testing.assert_array_equal(np.array(out["data"], np.float32).reshape(3, 3), want)


def test_nested_data_is_accepted(client):
    x = x_mlp(2)
    flat = client.post("/v2/models/mlp/infer", json={"inputs": [tensor("x", x)]}).json()
    nested = client.post(
        "/v2/models/mlp/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.tolist()}]},
    ).json()
    assert nested["outputs"] == flat["outputs"]


def test_nmn_function_model(client):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = client.post("/v2/models/square/infer", json={"inputs": [tensor("x", x)]}).json()["outputs"][0]
    np.testing.assert_array_equal(np.array(out["data"]).reshape(2, 3), x * x)


def test_two_inputs_and_output_selection(client):
    a = np.array([[1.5, 2.0], [3.0, -4.0]], np.float32)
    k = np.array([[1, 2], [3, 4]], np.int64)
    body = {"inputs": [tensor("a", a), tensor("k", k)]}
    full = client.post("/v2/models/pair/infer", json=body).json()["outputs"]
    assert [o["name"] for o in full] == ["sum", "neg"]
    np.testing.assert_array_equal(np.array(full[0]["data"]).reshape(2, 2), a + k)
    only = client.post("/v2/models/pair/infer", json={**body, "outputs": [{"name": "neg"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["neg"]
    np.testing.assert_array_equal(np.array(only["outputs"][0]["data"]).reshape(2, 2), -a)


def test_metrics(client):
    client.post("/v2/models/mlp/infer", json={"inputs": [tensor("x", x_mlp())]})
    client.post("/v2/models/mlp/infer", content=b"{broken")
    text = client.get("/metrics").text
    assert 'nmn_serve_infer_requests_total{model="mlp"}' in text
    assert 'nmn_serve_infer_errors_total{code="400",model="mlp"}' in text
    assert 'nmn_serve_infer_latency_seconds_bucket{le="0.005",model="mlp"}' in text


def test_two_apps_in_one_process_do_not_clash(model_dir):
    a = create_app(model_dir / "mlp.onnx")
    b = create_app(model_dir / "mlp.onnx")
    with TestClient(a) as ca, TestClient(b) as cb:
        ca.post("/v2/models/mlp/infer", json={"inputs": [tensor("x", x_mlp())]})
        assert 'nmn_serve_infer_requests_total{model="mlp"} 1.0' in ca.get("/metrics").text
        assert 'nmn_serve_infer_requests_total{model="mlp"}' not in cb.get("/metrics").text


# ---------------------------------------------------------------- bad requests


def mlp_body(**changes):
    t = tensor("x", x_mlp(2))
    t.update(changes)
    return {"inputs": [t]}


BAD = [
    # (id, model, raw body or JSON object, status, words expected in the error)
    ("malformed-json", "mlp", b'{"inputs": [', 400, "not valid JSON"),
    ("not-utf8", "mlp", b"\xff\xfe\x00", 400, "not valid JSON"),
    ("empty-body", "mlp", b"", 400, "empty request body"),
    ("not-an-object", "mlp", [1, 2], 400, "JSON object"),
    ("no-inputs", "mlp", {"id": "1"}, 400, "'inputs' is missing"),
    ("unknown-model", "nope", mlp_body(), 404, "unknown model 'nope'"),
    ("missing-input", "pair", {"inputs": [tensor("a", np.zeros((1, 2), np.float32))]}, 400, "missing input(s) ['k']"),
    (
        "extra-input",
        "mlp",
        {"inputs": mlp_body()["inputs"] + [tensor("z", np.zeros((2, 4), np.float32))]},
        400,
        "unexpected input 'z'",
    ),
    ("duplicate-input", "mlp", {"inputs": mlp_body()["inputs"] * 2}, 400, "given twice"),
    ("wrong-datatype", "mlp", mlp_body(datatype="INT64"), 400, "wrong datatype INT64; the model expects FP32"),
    ("unknown-datatype", "mlp", mlp_body(datatype="FLOAT"), 400, "unknown datatype 'FLOAT'"),
    ("strings-for-floats", "mlp", mlp_body(data=["a"] * 8), 400, "must hold numbers"),
    (
        "floats-for-int",
        "pair",
        {
            "inputs": [
                tensor("a", np.zeros((1, 2), np.float32)),
                {"name": "k", "datatype": "INT64", "shape": [1, 2], "data": [1.5, 2]},
            ]
        },
        400,
        "must hold integers",
    ),
    ("null-in-data", "mlp", mlp_body(data=[None] * 8), 400, "must hold numbers"),
    ("ragged-data", "mlp", mlp_body(data=[[1, 2, 3, 4], [1, 2]]), 400, "not a regular array"),
    ("shape-vs-data-length", "mlp", mlp_body(shape=[3, 4]), 400, "needs 12 elements but 'data' holds 8"),
    ("fixed-dim-mismatch", "mlp", mlp_body(shape=[4, 2]), 400, "dimension 1 must be 4, got 2"),
    (
        "fixed-model-batch",
        "fixed",
        {"inputs": [tensor("x", np.zeros((3, 3), np.float32))]},
        400,
        "dimension 0 must be 2, got 3",
    ),
    ("wrong-rank", "mlp", mlp_body(shape=[8]), 400, "rank 1"),
    ("negative-shape", "mlp", mlp_body(shape=[-2, 4]), 400, "non-negative integers"),
    (
        "nan",
        "mlp",
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,NaN,2,3]}]}',
        400,
        "element 1 is NaN or infinite",
    ),
    (
        "inf",
        "mlp",
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,Infinity,3]}]}',
        400,
        "element 2 is NaN or infinite",
    ),
    ("too-big-for-fp32", "mlp", mlp_body(data=[1e39] * 8), 400, "too large for FP32"),
    ("unknown-output", "mlp", {**mlp_body(), "outputs": [{"name": "nope"}]}, 400, "unknown output 'nope'"),
    ("bad-id", "mlp", {**mlp_body(), "id": 5}, 400, "'id' must be a string"),
    ("deep-nesting", "mlp", b'{"inputs":' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "not valid JSON"),
    ("too-large", "mlp", b"{" + b" " * (LIMIT + 10) + b"}", 413, "over the limit"),
    (
        "int-out-of-range",
        "pair",
        {
            "inputs": [
                tensor("a", np.zeros((1, 2), np.float32)),
                {"name": "k", "datatype": "INT64", "shape": [1, 2], "data": [2**70, 1]},
            ]
        },
        400,
        "input 'k'",
    ),
]


@pytest.mark.parametrize("model,body,status,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_request(client, model, body, status, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(f"/v2/models/{model}/infer", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"error"}
    assert words in err["error"]
    # ... and the server keeps serving.
    ok = client.post("/v2/models/mlp/infer", json={"inputs": [tensor("x", x_mlp())]})
    assert ok.status_code == 200


def test_chunked_body_over_limit_is_413(client):
    def chunks():
        for _ in range(LIMIT // 1000 + 5):
            yield b" " * 1000

    r = client.post("/v2/models/mlp/infer", content=chunks())
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_unknown_route_and_method(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and "error" in r.json()
    r = client.get("/v2/models/mlp/infer")
    assert r.status_code == 405 and "error" in r.json()


def test_nonfinite_allowed_when_asked(model_dir):
    app = create_app(model_dir / "mlp.onnx", allow_nonfinite=True)
    with TestClient(app) as c:
        body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,NaN,2,3]}]}'
        r = c.post("/v2/models/mlp/infer", content=body)
        assert r.status_code == 200  # NaN flows through; the answer is valid for Python's json


def test_bad_file_refused_at_startup(tmp_path):
    model = make_square(with_function=False)
    onnx.save(model, str(tmp_path / "broken.onnx"))
    with pytest.raises(UnsafeModelError, match=r"broken\.onnx"):
        create_app(tmp_path)


# ------------------------------------------------------------------- batching


def test_batched_app_gives_unbatched_answers(model_dir, ort_reference):
    app = create_app(model_dir, max_batch=16, batch_timeout_ms=20)
    assert app.state.repository.get("mlp").batcher is not None
    assert app.state.repository.get("fixed").batcher is None  # fixed batch dim
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(24)]
    results: dict[int, np.ndarray] = {}
    with TestClient(app) as c:

        def call(i):
            r = c.post("/v2/models/mlp/infer", json={"id": str(i), "inputs": [tensor("x", xs[i])]})
            assert r.status_code == 200 and r.json()["id"] == str(i)
            out = r.json()["outputs"][0]
            results[i] = np.array(out["data"], np.float32).reshape(out["shape"])

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        metrics = c.get("/metrics").text
    assert len(results) == len(xs)
    for i, x in enumerate(xs):
        want = ort_reference(model_dir / "mlp.onnx", {"x": x})["y"]
        np.testing.assert_allclose(results[i], want, rtol=1e-6, atol=1e-6)
    assert "nmn_serve_batch_requests_count" in metrics


def test_batcher_merges_and_splits():
    calls = []

    def run(feeds):
        calls.append(feeds["x"].shape[0])
        return {"y": feeds["x"] * 2, "s": feeds["x"].sum(axis=1)}

    # 1 + 2 + ... + 5 = 15 rows fill the batch exactly, so it runs when full and never on the (long) timeout:
    # one merged run however slowly the requests arrive on a loaded machine
    full = Batcher(run, max_batch=15, timeout_s=600)
    try:
        xs = [np.full((i + 1, 3), i, np.float32) for i in range(5)]
        futs = [full.submit({"x": x}) for x in xs]
        outs = [f.result(300) for f in futs]
        for x, o in zip(xs, outs):
            np.testing.assert_array_equal(o["y"], x * 2)
            np.testing.assert_array_equal(o["s"], x.sum(axis=1))
        assert calls == [15]  # one merged run
    finally:
        full.close()
    b = Batcher(run, max_batch=100, timeout_s=0.2)
    try:
        # A different row shape cannot merge: it runs on its own.
        calls.clear()
        f1 = b.submit({"x": np.ones((1, 3), np.float32)})
        f2 = b.submit({"x": np.ones((1, 5), np.float32)})
        assert f1.result(300)["y"].shape == (1, 3) and f2.result(300)["y"].shape == (1, 5)
        assert sorted(calls) == [1, 1]
    finally:
        b.close()


def test_batcher_isolates_a_failing_request():
    def run(feeds):
        if (feeds["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": feeds["x"] + 1}

    b = Batcher(run, max_batch=8, timeout_s=0.2)
    try:
        good = b.submit({"x": np.ones((1, 2))})
        bad = b.submit({"x": -np.ones((1, 2))})
        np.testing.assert_array_equal(good.result(300)["y"], [[2, 2]])
        with pytest.raises(ValueError, match="negative"):
            bad.result(300)
    finally:
        b.close()


def test_batcher_survives_cancelled_requests():
    b = Batcher(lambda f: {"y": f["x"] + 1}, max_batch=8, timeout_s=0.2)
    try:
        gone = b.submit({"x": np.zeros((1, 2))})
        assert gone.cancel()  # e.g. the client hung up while waiting
        kept = b.submit({"x": np.zeros((1, 2))})
        np.testing.assert_array_equal(kept.result(300)["y"], [[1, 1]])
        np.testing.assert_array_equal(b.submit({"x": np.ones((2, 2))}).result(300)["y"], 2 * np.ones((2, 2)))
    finally:
        b.close()
