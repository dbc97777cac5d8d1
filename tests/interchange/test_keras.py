"""Keras interchange: export -> onnxruntime, load -> equals onnxruntime, export(load(f)) bit-identical, training,
.keras save/load of a loaded model, unsupported layers/ops named."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

keras = pytest.importorskip("keras")

import nmn.keras as nk
from nmn.interchange import ExportError, UnsupportedModelError, keras_io, manifest_of, run_onnx

RNG = np.random.default_rng(0)


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def _convnet():
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Activation("relu", name="act")(h)
    h = keras.layers.Add(name="res")([h, nk.YatConv2D(8, 3, padding="same", groups=2, name="yat")(h)])
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = nk.YatConvTranspose2D(4, 2, strides=2, name="up")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    h = nk.YatNMN(6, learnable_epsilon=True, name="head")(h)
    h = keras.layers.Dropout(0.3, name="drop")(keras.layers.Dense(6, activation="gelu", name="ff")(h))
    extra = keras.Input((5,), name="extra")
    both = keras.layers.Concatenate(name="cat")([h, keras.layers.Dense(3, name="side")(extra)])
    return keras.Model([x, extra], [keras.layers.Dense(3, name="out")(both), h], name="convnet")


@pytest.fixture(scope="module")
def convnet():
    model = _convnet()
    inputs = [RNG.normal(size=(2, 8, 8, 3)).astype(np.float32), RNG.normal(size=(2, 5)).astype(np.float32)]
    return model, inputs, keras_io.export(model, inputs)


def test_export_structure_and_numbers(convnet, tmp_path):
    model, inputs, proto = convnet
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("YatConv") == 1 and ops.count("YatConvTranspose") == 1 and ops.count("YatDense") == 1
    assert {n.domain for n in proto.graph.node if n.op_type.startswith("Yat")} == {"nmn"}
    assert [i.name for i in proto.graph.input] == ["image", "extra"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [8, 8, 3]  # channels-last kept
    assert {"yat.kernel", "head.epsilon_param", "stem.kernel", "bn.moving_mean", "out.bias"} <= set(_inits(proto))
    manifest = manifest_of(proto)
    assert manifest["source"] == "keras" and {e["name"] for e in manifest["layers"]} >= {"yat", "up", "head"}
    fresh = [RNG.normal(size=(3, 8, 8, 3)).astype(np.float32), RNG.normal(size=(3, 5)).astype(np.float32)]
    got = run_onnx(proto, {"image": fresh[0], "extra": fresh[1]})
    want = [_np(o) for o in model(fresh)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())
    path = tmp_path / "m.onnx"
    keras_io.export(model, inputs, path)
    assert onnx.load(path).graph.node


def test_load_matches_onnxruntime_and_reexport_is_bit_identical(convnet, tmp_path):
    _, inputs, proto = convnet
    loaded = keras_io.load(proto)
    assert isinstance(loaded, keras.Model)
    assert isinstance(loaded.get_layer("yat"), nk.YatConv2D)
    fresh = [RNG.normal(size=(3, 8, 8, 3)).astype(np.float32), RNG.normal(size=(3, 5)).astype(np.float32)]
    ort = run_onnx(proto, {"image": fresh[0], "extra": fresh[1]})
    for g, w in zip(keras_io.predict(loaded, fresh), ort):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())
    again = keras_io.export(loaded, fresh)
    a, b = _inits(proto), _inits(again)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name
    path = tmp_path / "loaded.keras"
    loaded.save(path)
    back = keras.saving.load_model(path)
    for g, w in zip(keras_io.predict(back, fresh), ort):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())


def test_loaded_model_trains_with_fit():
    keras.utils.set_random_seed(1)
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(1, name="out")(nk.YatNMN(8, name="yat")(x)))
    data = RNG.normal(size=(64, 4)).astype(np.float32)
    target = (data[:, :1] ** 2).astype(np.float32)
    loaded = keras_io.load(keras_io.export(model, data[:2]))
    loaded.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = loaded.evaluate(data, target, verbose=0)
    loaded.fit(data, target, epochs=1, batch_size=64, verbose=0)
    assert loaded.evaluate(data, target, verbose=0) < before


def test_transformer_roundtrip():
    keras.utils.set_random_seed(2)
    ids = keras.Input((5,), dtype="int32", name="ids")
    embed = nk.YatEmbed(11, 8, name="embed")
    h = embed(ids)
    h = keras.layers.LayerNormalization(name="norm")(h + nk.MultiHeadYatAttention(8, 2, causal=True, name="attn")(h))
    h = keras.layers.Add(name="res")([h, nk.RotaryYatAttention(8, 2, max_seq_len=16, name="rot")(h)])
    model = keras.Model(ids, embed.attend(nk.YatNMN(8, name="ff")(h)))
    tokens = RNG.integers(0, 11, size=(2, 5)).astype(np.int32)
    proto = keras_io.export(model, tokens)
    ops = [n.op_type for n in proto.graph.node]
    assert {"Gather", "YatMultiHeadAttention", "RotaryYatMultiHeadAttention", "YatEmbedAttend"} <= set(ops)
    loaded = keras_io.load(proto)
    fresh = RNG.integers(0, 11, size=(3, 5)).astype(np.int32)
    np.testing.assert_allclose(
        keras_io.predict(loaded, [fresh])[0], run_onnx(proto, {"ids": fresh})[0], rtol=1e-4, atol=1e-6
    )


def test_failed_check_writes_nothing(tmp_path, monkeypatch):
    x = keras.Input((4,), name="x")
    model = keras.Model(x, nk.YatNMN(3, name="yat")(x))
    from nmn.interchange import graph

    def broken(model, feeds):
        return [np.zeros((2, 3), np.float32) + 99.0]

    monkeypatch.setattr(graph, "run_onnx", broken)
    path = tmp_path / "never.onnx"
    with pytest.raises(ExportError, match="differs"):
        keras_io.export(model, np.ones((2, 4), np.float32), path)
    assert not path.exists()


def test_unsupported_layers_are_named():
    x = keras.Input((4, 3), name="x")
    h = keras.layers.LSTM(3, name="rnn")(x)
    model = keras.Model(x, keras.layers.GRU(2, name="gru")(keras.layers.RepeatVector(2, name="rep")(h)))
    with pytest.raises(ExportError, match=r"rnn \(LSTM\).*rep \(RepeatVector\).*gru \(GRU\)"):
        keras_io.export(model, np.ones((1, 4, 3), np.float32))


def test_load_lists_every_unsupported_op():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Tan", ["x"], ["a"], name="c1"), helper.make_node("Hardmax", ["a"], ["y"], name="s1")]
    proto = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(UnsupportedModelError, match=r"Hardmax x1, Tan x1"):
        keras_io.load(proto)


def test_sequential_with_standard_layers_roundtrip():
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32", name="tokens"),
            keras.layers.Embedding(10, 4, name="emb"),
            keras.layers.Conv1D(6, 3, padding="causal", name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            nk.YatConv1D(6, 3, padding="causal", dilation_rate=2, name="yc"),
            keras.layers.AveragePooling1D(2, padding="same", name="pool"),
            keras.layers.Conv1DTranspose(4, 2, strides=2, name="ct"),
            keras.layers.Reshape((24,), name="flat"),
            keras.layers.Dense(5, activation="tanh", name="d"),
            keras.layers.Softmax(name="sm"),
        ],
        name="seq",
    )
    tokens = RNG.integers(0, 10, size=(2, 6)).astype(np.int32)
    model(tokens)
    model.get_layer("bn").moving_mean.assign(RNG.normal(size=(6,)).astype(np.float32))
    proto = keras_io.export(model, tokens)
    loaded = keras_io.load(proto)
    fresh = RNG.integers(0, 10, size=(3, 6)).astype(np.int32)
    want = _np(model(fresh, training=False))
    np.testing.assert_allclose(run_onnx(proto, {"tokens": fresh})[0], want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(keras_io.predict(loaded, [fresh])[0], want, rtol=1e-4, atol=1e-6)


def _one_node(op, inputs, outputs, attrs=None, opset=19):
    """A one-node ONNX model: ``inputs``/``outputs`` are ``(name, elem_type, shape)``."""
    from onnx import helper

    node = helper.make_node(op, [n for n, _, _ in inputs], [n for n, _, _ in outputs], **(attrs or {}))
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(*v) for v in inputs],
        [helper.make_tensor_value_info(*v) for v in outputs],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("dynamic", [False, True], ids=["functional", "graph-model"])
def test_refusal_is_nmn_one_line_error_not_keras_wrapper(dynamic):
    """Keras wraps an error raised in a layer call in a multi-line message (twice when the op runs inside the
    loaded model's own call): nmn's refusal must reach the user as its one line."""
    from onnx import TensorProto

    from nmn.interchange.stdops import StdOpError

    f = TensorProto.FLOAT
    scales = ("scales", f, [4]) if dynamic else None  # a graph input read as scales: a per-call (eager) graph
    proto = _one_node(
        "Resize",
        [("x", f, [1, 1, 4, 4]), ("roi", f, [0]), scales or ("s", f, [4])],
        [("y", f, [1, 1, 2, 2])],
        {"mode": "linear", "antialias": 1},
    )
    if not dynamic:  # scales as an initializer
        proto.graph.input.pop()
        proto.graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "s"))
    x = RNG.normal(size=(1, 1, 4, 4)).astype(np.float32)
    with pytest.raises(StdOpError) as err:
        loaded = keras_io.load(proto)
        keras_io.predict(
            loaded, [x, np.zeros(0, np.float32), np.array([1, 1, 0.5, 0.5], np.float32)][: 3 if dynamic else 2]
        )
    msg = str(err.value)
    assert "\n" not in msg and "\x1b" not in msg, msg
    assert msg.startswith("Resize: antialias=1 is not supported by the keras loader"), msg


@pytest.mark.parametrize(("op", "fn"), [("Add", np.add), ("Mul", np.multiply), ("Greater", np.greater)])
def test_uint64_elementwise_matches_numpy(op, fn):
    """uint64 inputs (Keras on the torch backend holds them as int64: the same bits for add/mul; comparisons of
    values below 2**63 agree)."""
    from onnx import TensorProto

    u = TensorProto.UINT64
    out = TensorProto.BOOL if op == "Greater" else u
    proto = _one_node(op, [("a", u, [2, 3]), ("b", u, [2, 3])], [("y", out, [2, 3])])
    a = RNG.integers(0, 2**40, size=(2, 3)).astype(np.uint64)
    b = RNG.integers(0, 2**20, size=(2, 3)).astype(np.uint64)
    (got,) = keras_io.predict(keras_io.load(proto), [a, b])
    want = fn(a, b)
    assert got.dtype.kind == want.dtype.kind or (got.dtype == np.int64 and want.dtype == np.uint64), got.dtype
    np.testing.assert_array_equal(got.astype(want.dtype), want)
