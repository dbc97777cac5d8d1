"""Binary tensors, compression, limits and gRPC refusals: the bad-request table over every path.

REST runs in-process (Starlette's TestClient on the ASGI app); gRPC goes to a
real server subprocess through tritonclient's own generated messages and stub
(an independent copy of the protocol's proto).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from nmn.serve import create_app
from nmn.serve._protocol import decode_input, split_data
from tests.serve.models import free_port

LIMIT = 200_000
MAX_VALUES = 10_000


@pytest.fixture(scope="module")
def client(model_dir):
    app = create_app(model_dir, max_request_bytes=LIMIT, max_values=MAX_VALUES, body_timeout_s=2.0)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def numpy_path(monkeypatch):
    """Send data arrays of 4 KiB and more down the numpy path (normally 256 KiB)."""
    import nmn.serve._protocol as protocol

    monkeypatch.setattr(protocol, "NUMPY_MIN_BYTES", 4096)


@pytest.fixture(scope="module")
def batched_client(model_dir):
    app = create_app(model_dir, max_batch=8, batch_timeout_ms=1.0)
    with TestClient(app) as c:
        yield c


def binary_request(tensors, outputs=None, params=None, extra=b"", size_override=None):
    """(body, headers) in the binary tensor data extension, built by hand from the spec."""
    inputs, blobs = [], []
    for i, (name, arr, dt) in enumerate(tensors):
        raw = np.ascontiguousarray(arr).tobytes()
        size = len(raw) if size_override is None else size_override[i]
        inputs.append(
            {"name": name, "datatype": dt, "shape": list(arr.shape), "parameters": {"binary_data_size": size}}
        )
        blobs.append(raw)
    head = {"inputs": inputs}
    if outputs is not None:
        head["outputs"] = outputs
    if params is not None:
        head["parameters"] = params
    header = json.dumps(head).encode()
    return header + b"".join(blobs) + extra, {"Inference-Header-Content-Length": str(len(header))}


def parse_binary_response(r):
    n = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:n])
    out, pos = {}, n
    for o in head["outputs"]:
        if "data" in o:
            continue  # this one came as JSON
        size = o["parameters"]["binary_data_size"]
        dt = {"FP32": np.float32, "INT64": np.int64}[o["datatype"]]
        out[o["name"]] = np.frombuffer(r.content[pos : pos + size], dt).reshape(o["shape"])
        pos += size
    assert pos == len(r.content)
    return head, out


X = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)


# ------------------------------------------------------------------- good paths


def test_binary_in_binary_out(client, model_dir, ort_reference):
    body, headers = binary_request([("x", X, "FP32")], params={"binary_data_output": True})
    r = client.post("/v2/models/mlp/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    _, out = parse_binary_response(r)
    want = ort_reference(model_dir / "mlp.onnx", {"x": X})["y"]
    assert out["y"].tobytes() == want.tobytes()


def test_binary_in_json_out_and_per_output_choice(client, model_dir, ort_reference):
    a = np.array([[1.5, -2.0]], np.float32)
    k = np.array([[3, 4]], np.int64)
    want = ort_reference(model_dir / "pair.onnx", {"a": a, "k": k})
    body, headers = binary_request([("a", a, "FP32"), ("k", k, "INT64")])
    r = client.post("/v2/models/pair/infer", content=body, headers=headers)
    assert r.status_code == 200 and "inference-header-content-length" not in r.headers
    outs = {o["name"]: np.array(o["data"], np.float32).reshape(o["shape"]) for o in r.json()["outputs"]}
    assert outs["sum"].tobytes() == want["sum"].tobytes()
    body, headers = binary_request(
        [("a", a, "FP32"), ("k", k, "INT64")],
        outputs=[{"name": "neg", "parameters": {"binary_data": True}}, {"name": "sum"}],
    )
    head, out = parse_binary_response(client.post("/v2/models/pair/infer", content=body, headers=headers))
    assert [o["name"] for o in head["outputs"]] == ["neg", "sum"]
    assert out["neg"].tobytes() == want["neg"].tobytes()
    assert np.array(head["outputs"][1]["data"], np.float32).tobytes() == want["sum"].ravel().tobytes()


def test_mixed_json_and_binary_inputs(client, model_dir, ort_reference):
    a = np.array([[0.25, 8.0]], np.float32)
    k = np.array([[-1, 7]], np.int64)
    raw = a.tobytes()
    head = {
        "inputs": [
            {"name": "k", "datatype": "INT64", "shape": [1, 2], "data": k.ravel().tolist()},
            {"name": "a", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": len(raw)}},
        ]
    }
    header = json.dumps(head).encode()
    r = client.post(
        "/v2/models/pair/infer", content=header + raw, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert r.status_code == 200, r.text
    want = ort_reference(model_dir / "pair.onnx", {"a": a, "k": k})["sum"]
    assert np.array(r.json()["outputs"][0]["data"], np.float32).reshape(1, 2).tobytes() == want.tobytes()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_compressed_request(client, model_dir, ort_reference, encoding):
    body, headers = binary_request([("x", X, "FP32")])
    if encoding == "gzip":
        packed = gzip.compress(body)
    elif encoding == "deflate":
        packed = zlib.compress(body)
    else:  # some clients send raw deflate for "deflate"
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        packed = c.compress(body) + c.flush()
    headers["Content-Encoding"] = encoding.split("-")[0]
    r = client.post("/v2/models/mlp/infer", content=packed, headers=headers)
    assert r.status_code == 200, r.text
    want = ort_reference(model_dir / "mlp.onnx", {"x": X})["y"]
    assert np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 3).tobytes() == want.tobytes()


def test_compressed_response(client):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]}
    plain = client.post("/v2/models/mlp/infer", json=body, headers={"Accept-Encoding": "identity"})
    for enc in ("gzip", "deflate"):
        r = client.post("/v2/models/mlp/infer", json=body, headers={"Accept-Encoding": enc})
        assert r.status_code == 200 and r.headers["content-encoding"] == enc
        assert r.json() == plain.json()  # httpx decoded it


def test_large_json_takes_the_numpy_path_with_the_same_bits():
    """split_data + numpy parse == json.loads + numpy, for floats of every magnitude and ints."""
    rng = np.random.default_rng(4)
    vals = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000), [0.0, -0.0, 1e-45, 3.4e38]])
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [len(vals)], "data": vals.tolist()},
                {
                    "name": "k",
                    "datatype": "INT32",
                    "shape": [2000],
                    "data": rng.integers(-(2**31), 2**31 - 1, 2000).tolist(),
                },
            ]
        }
    ).encode()
    header, segments = split_data(body, min_bytes=4096)
    assert len(segments) == 2 and len(header) < 400
    fast = json.loads(header)["inputs"]
    slow = json.loads(body)["inputs"]
    for f, s_, dt in zip(fast, slow, ("FP32", "INT32")):
        shape = [len(s_["data"])]
        got = decode_input(f, model="m", expected_datatype=dt, expected_shape=shape, segments=segments)
        want = decode_input(s_, model="m", expected_datatype=dt, expected_shape=shape)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize(
    "bad,words",
    [
        (b"1,,2", "not valid JSON"),
        (b"1-2", "not valid JSON"),
        (b"1e", "not valid JSON"),
        (b"NaN", "element 2500 is NaN"),
        (b"null", "must hold numbers"),
    ],
)
def test_large_json_with_a_bad_number_is_refused_like_a_small_one(client, numpy_path, bad, words):
    """A big data array (the numpy path) with one malformed item: the JSON path's answer, never zeros."""
    items = [b"0.5"] * 5000
    items[2500] = bad
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1250,4],"data":[' + b",".join(items) + b"]}]}"
    r = client.post("/v2/models/mlp/infer", content=body)
    assert r.status_code == 400 and words in r.json()["error"], r.text


def test_data_key_inside_a_string_is_not_cut(client, numpy_path):
    """A placeholder never lands outside an input's data: the body is then parsed whole."""
    tricky = '"data": [' + "1," * 3000 + "1]"
    body = {"id": tricky, "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]}
    r = client.post("/v2/models/mlp/infer", json=body)
    assert r.status_code == 200 and r.json()["id"] == tricky
    params = {"inputs": body["inputs"], "parameters": {"data": [0.5] * 5000}}
    assert client.post("/v2/models/mlp/infer", json=params).status_code == 200


# -------------------------------------------------------------- the bad-request table


def _bin(**kw):
    return binary_request([("x", X, "FP32")], **kw)


def _with_data():
    head = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [2, 4],
                "data": [0.0] * 8,
                "parameters": {"binary_data_size": 32},
            }
        ]
    }
    header = json.dumps(head).encode()
    return header + X.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def _gzip_bomb():
    body, headers = _bin()
    headers["Content-Encoding"] = "gzip"
    return gzip.compress(body + b" " * (LIMIT * 2)), headers


BAD_BINARY = [
    ("binary-short", lambda: (_bin()[0][:-4], _bin()[1]), 400, "runs past the end of the binary data"),
    ("binary-long", lambda: _bin(extra=b"\0\0\0\0"), 400, "4 bytes of binary data after"),
    ("binary-size-vs-shape", lambda: _bin(size_override=[28], extra=b""), 400, "needs 32 bytes (8 x 4) but 28 came"),
    (
        "binary-size-negative",
        lambda: _bin(size_override=[-1]),
        400,
        "'binary_data_size' must be a non-negative integer",
    ),
    (
        "header-length-too-big",
        lambda: (_bin()[0], {"Inference-Header-Content-Length": "999999"}),
        400,
        "Inference-Header-Content-Length",
    ),
    (
        "header-length-not-a-number",
        lambda: (_bin()[0], {"Inference-Header-Content-Length": "ten"}),
        400,
        "Inference-Header-Content-Length",
    ),
    ("header-cuts-json", lambda: (_bin()[0], {"Inference-Header-Content-Length": "10"}), 400, "not valid JSON"),
    (
        "binary-size-without-binary",
        lambda: (
            json.dumps(
                {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "parameters": {"binary_data_size": 32}}]}
            ).encode(),
            {},
        ),
        400,
        "runs past the end of the binary data (0 bytes left)",
    ),
    ("data-and-binary", lambda: _with_data(), 400, "either 'data' or 'binary_data_size'"),
    (
        "binary-nan",
        lambda: binary_request([("x", np.array([[1, np.nan, 2, 3]], np.float32), "FP32")]),
        400,
        "element 1 is NaN",
    ),
    (
        "binary-wrong-datatype",
        lambda: binary_request([("x", X.astype(np.float64), "FP64")]),
        400,
        "wrong datatype FP64",
    ),
    (
        "binary-output-flag-not-bool",
        lambda: _bin(params={"binary_data_output": "yes"}),
        400,
        "'binary_data_output' must be true or false",
    ),
    (
        "classification",
        lambda: _bin(outputs=[{"name": "y", "parameters": {"classification": 2}}]),
        400,
        "classification extension is not supported",
    ),
    (
        "unknown-encoding",
        lambda: (lambda b, h: (b, {**h, "Content-Encoding": "br"}))(*_bin()),
        400,
        "Content-Encoding 'br' is not supported",
    ),
    ("bad-gzip", lambda: (lambda b, h: (b, {**h, "Content-Encoding": "gzip"}))(*_bin()), 400, "does not decompress"),
    (
        "truncated-gzip",
        lambda: (lambda b, h: (gzip.compress(b)[:-12], {**h, "Content-Encoding": "gzip"}))(*_bin()),
        400,
        "truncated",
    ),
    ("gzip-bomb", _gzip_bomb, 413, "decompressed request body is over the limit of 200000 bytes"),
    (
        "too-many-values",
        lambda: binary_request([("x", np.zeros((MAX_VALUES // 4 + 1, 4), np.float32), "FP32")]),
        400,
        "limit of 10000 values",
    ),
    ("empty-batch", lambda: binary_request([("x", np.zeros((0, 4), np.float32), "FP32")]), 400, "holds no values"),
    (
        "empty-batch-json",
        lambda: (json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 4], "data": []}]}).encode(), {}),
        400,
        "holds no values",
    ),
    (
        "too-many-values-json",
        lambda: (
            json.dumps(
                {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2501, 4], "data": [0.0] * 10004}]}
            ).encode(),
            {},
        ),
        400,
        "limit of 10000 values",
    ),
]


@pytest.mark.parametrize("make,status,words", [b[1:] for b in BAD_BINARY], ids=[b[0] for b in BAD_BINARY])
def test_bad_binary_request(client, make, status, words):
    body, headers = make()
    r = client.post("/v2/models/mlp/infer", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()
    assert set(err) == {"error"} and words in err["error"], err
    ok, h = _bin()
    assert client.post("/v2/models/mlp/infer", content=ok, headers=h).status_code == 200


def test_empty_batch_same_answer_with_batching(client, batched_client):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 4], "data": []}]}
    a = client.post("/v2/models/mlp/infer", json=body)
    b = batched_client.post("/v2/models/mlp/infer", json=body)
    assert (a.status_code, a.json()) == (b.status_code, b.json()) == (400, a.json())


def test_http_level_errors_are_protocol_json(client):
    for r in (
        client.get("/v2/nope"),
        client.put("/v2/models/mlp/infer"),
        client.post("/v2/models/mlp/versions/2/infer", json={}),
        client.get("/v2/models/nope/config"),
        client.get("/v2/models/nope/stats"),
    ):
        assert r.status_code in (404, 405) and r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"error"}


def test_config_and_stats_rest(client, batched_client):
    cfg = batched_client.get("/v2/models/mlp/config").json()
    assert cfg["max_batch_size"] == 8 and cfg["input"][0]["dims"] == [4]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 1000
    assert client.get("/v2/models/fixed/config").json()["input"][0]["dims"] == [2, 3]
    stats = client.get("/v2/models/stats").json()["model_stats"]
    assert [s["name"] for s in stats] == ["fixed", "mlp", "pair", "square"]


# --------------------------------------------------------------------------- gRPC


@pytest.fixture(scope="module")
def grpc_server(model_dir, start_server):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    port = free_port()
    srv = start_server(
        model_dir, "--grpc-port", str(port), "--max-request-bytes", str(LIMIT), "--max-values", str(MAX_VALUES)
    )
    srv.grpc_url = f"127.0.0.1:{port}"
    return srv


def _req(model="mlp", tensors=(("x", X, "FP32"),), raw=True, **kw):
    from tritonclient.grpc import service_pb2

    req = service_pb2.ModelInferRequest(model_name=model, **kw)
    for name, arr, dt in tensors:
        t = req.inputs.add(name=name, datatype=dt, shape=list(arr.shape))
        if raw:
            req.raw_input_contents.append(np.ascontiguousarray(arr).tobytes())
        else:
            t.contents.fp32_contents.extend(np.asarray(arr, np.float32).ravel().tolist())
    return req


def _mutate(req, fn):
    fn(req)
    return req


BAD_GRPC = [
    ("unknown-model", lambda: _req(model="nope"), "NOT_FOUND", "unknown model 'nope'"),
    ("bad-version", lambda: _req(model_version="7"), "NOT_FOUND", "no version '7'"),
    ("wrong-datatype", lambda: _req(tensors=(("x", X, "FP64"),)), "INVALID_ARGUMENT", "wrong datatype FP64"),
    (
        "wrong-dim",
        lambda: _req(tensors=(("x", np.zeros((2, 5), np.float32), "FP32"),)),
        "INVALID_ARGUMENT",
        "dimension 1 must be 4, got 5",
    ),
    (
        "raw-short",
        lambda: _mutate(_req(), lambda r: r.raw_input_contents.__setitem__(0, r.raw_input_contents[0][:-4])),
        "INVALID_ARGUMENT",
        "needs 32 bytes (8 x 4) but 28 came",
    ),
    (
        "raw-long",
        lambda: _mutate(_req(), lambda r: r.raw_input_contents.__setitem__(0, r.raw_input_contents[0] + b"\0" * 4)),
        "INVALID_ARGUMENT",
        "but 36 came",
    ),
    (
        "raw-count",
        lambda: _mutate(_req(), lambda r: r.raw_input_contents.append(b"")),
        "INVALID_ARGUMENT",
        "2 raw_input_contents for 1 inputs",
    ),
    (
        "contents-count",
        lambda: _mutate(_req(raw=False), lambda r: r.inputs[0].contents.fp32_contents.append(1.0)),
        "INVALID_ARGUMENT",
        "holds 9",
    ),
    (
        "contents-nan",
        lambda: _mutate(_req(raw=False), lambda r: r.inputs[0].contents.fp32_contents.__setitem__(2, float("nan"))),
        "INVALID_ARGUMENT",
        "element 2 is NaN",
    ),
    (
        "missing-input",
        lambda: _req(model="pair", tensors=(("a", np.zeros((1, 2), np.float32), "FP32"),)),
        "INVALID_ARGUMENT",
        "missing input(s) ['k']",
    ),
    (
        "unexpected-input",
        lambda: _req(tensors=(("x", X, "FP32"), ("z", X, "FP32"))),
        "INVALID_ARGUMENT",
        "unexpected input 'z'",
    ),
    ("duplicate-input", lambda: _req(tensors=(("x", X, "FP32"), ("x", X, "FP32"))), "INVALID_ARGUMENT", "given twice"),
    (
        "unknown-output",
        lambda: _mutate(_req(), lambda r: r.outputs.add(name="nope")),
        "INVALID_ARGUMENT",
        "unknown output 'nope'",
    ),
    (
        "empty-batch",
        lambda: _req(tensors=(("x", np.zeros((0, 4), np.float32), "FP32"),)),
        "INVALID_ARGUMENT",
        "holds no values",
    ),
    (
        "too-many-values",
        lambda: _req(tensors=(("x", np.zeros((MAX_VALUES // 4 + 1, 4), np.float32), "FP32"),)),
        "INVALID_ARGUMENT",
        "limit of 10000 values",
    ),
    (
        "batch-disagree",
        lambda: _req(
            model="pair",
            tensors=(("a", np.zeros((1, 2), np.float32), "FP32"), ("k", np.zeros((2, 2), np.int64), "INT64")),
        ),
        "INVALID_ARGUMENT",
        "disagree on the batch",
    ),
    (
        "too-large",
        lambda: _req(tensors=(("x", np.zeros((LIMIT // 16 + 10, 4), np.float32), "FP32"),)),
        "RESOURCE_EXHAUSTED",
        "",
    ),
]


@pytest.mark.parametrize("make,code,words", [b[1:] for b in BAD_GRPC], ids=[b[0] for b in BAD_GRPC])
def test_bad_grpc_request(grpc_server, make, code, words):
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    with grpc.insecure_channel(grpc_server.grpc_url, options=[("grpc.max_send_message_length", -1)]) as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(make(), timeout=300)
        assert info.value.code().name == code, info.value.details()
        assert words in info.value.details()
        ok = stub.ModelInfer(_req(), timeout=300)  # ... and the server keeps serving
        assert np.frombuffer(ok.raw_output_contents[0], np.float32).shape == (6,)
    assert grpc_server.proc.poll() is None


# --------------------------------------------------------------- the proto itself


def _protoc(root, out) -> None:
    """grpcio-tools' protoc in a child process: in a process that has loaded TensorFlow and the grpc clients it
    can crash (seen: a segmentation fault under pytest-xdist), which would take the whole test worker down."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{root}",
            f"--descriptor_set_out={out}",
            "nmn/serve/grpc_predict_v2.proto",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_proto_matches_tritons_field_for_field(tmp_path):
    """Every message nmn's .proto shares with tritonclient's has the same fields, numbers and types."""
    pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is not installed")
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    from google.protobuf import descriptor_pb2
    from tritonclient.grpc import model_config_pb2

    from tests.serve.models import REPO_ROOT

    out = tmp_path / "set.pb"
    _protoc(REPO_ROOT, out)
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (mine,) = fds.file
    theirs = {}
    for mod in (service_pb2, model_config_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(proto)
        for m in proto.message_type:
            theirs[m.name] = m
        for e in proto.enum_type:
            theirs[e.name] = e

    def fields(msg, prefix=""):
        rows = {}
        for f in msg.field:
            rows[prefix + f.name] = (f.number, f.type, f.label, f.type_name.rsplit(".", 1)[-1])
        for n in msg.nested_type:
            rows.update(fields(n, prefix + n.name + "."))
        return rows

    checked = 0
    for m in mine.message_type:
        assert m.name in theirs, m.name
        want = fields(theirs[m.name])
        for key, row in fields(m).items():
            assert want.get(key) == row, (m.name, key, row, want.get(key))
            checked += 1
    for e in mine.enum_type:
        assert {v.name: v.number for v in e.value}.items() <= {v.name: v.number for v in theirs[e.name].value}.items()
    mine_methods = {(x.name, x.input_type, x.output_type) for x in mine.service[0].method}
    theirs_methods = {
        (x.name, x.input_type, x.output_type)
        for x in service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
        and descriptor_pb2.FileDescriptorProto.FromString(service_pb2.DESCRIPTOR.serialized_pb).service[0].method
    }
    assert mine_methods <= theirs_methods
    assert checked > 100


def test_descriptor_set_is_current(tmp_path):
    """The committed .binpb is what grpcio-tools' protoc makes of the committed .proto."""
    pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is not installed")
    from google.protobuf import descriptor_pb2

    from tests.serve.models import REPO_ROOT

    out = tmp_path / "set.binpb"
    _protoc(REPO_ROOT, out)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    committed = descriptor_pb2.FileDescriptorSet.FromString(
        (REPO_ROOT / "nmn/serve/grpc_predict_v2.binpb").read_bytes()
    )
    assert fresh == committed


def test_server_messages_coexist_with_tritonclients_in_one_process():
    """nmn's gRPC messages live in a private pool: importing tritonclient.grpc as well is fine."""
    pytest.importorskip("tritonclient.grpc")
    from tritonclient.grpc import service_pb2

    from nmn.serve._grpc import pb

    mine = pb.ModelInferRequest(model_name="m", id="7")
    theirs = service_pb2.ModelInferRequest.FromString(mine.SerializeToString())
    assert (theirs.model_name, theirs.id) == ("m", "7")
