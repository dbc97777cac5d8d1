"""TensorFlow interchange: a tf.Module of nmn.tf layers and TF ops exports; any file loads as a tf.Module whose
tf.function call matches onnxruntime, trains with GradientTape, saves as a SavedModel and re-exports bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

tf = pytest.importorskip("tensorflow")

import nmn.tf as nt
from nmn.interchange import ExportError, UnsupportedModelError, manifest_of, run_onnx, tf_io

RNG = np.random.default_rng(0)


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


class Net(tf.Module):
    def __init__(self):
        super().__init__(name="net")
        self.conv = nt.YatConv2D(6, 3, padding="same", groups=2, seed=0)
        self.up = nt.YatConvTranspose2D(4, 2, strides=2, seed=1)
        self.head = nt.YatNMN(5, learnable_epsilon=True, seed=2)
        self.w = tf.Variable(RNG.normal(size=(5, 3)).astype(np.float32), name="w")

    def __call__(self, x):
        h = tf.nn.max_pool2d(self.conv(x), 2, 2, "VALID")
        h = tf.reduce_mean(self.up(h), axis=[1, 2])
        return tf.tanh(tf.matmul(self.head(h), self.w))


@pytest.fixture(scope="module")
def net():
    model = Net()
    x = RNG.normal(size=(2, 8, 8, 4)).astype(np.float32)
    model(x)
    return model, x, tf_io.export(model, x)


def test_export_structure_and_numbers(net):
    model, _, proto = net
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("YatConv") == 1 and ops.count("YatConvTranspose") == 1 and ops.count("YatDense") == 1
    assert {"conv.kernel", "up.kernel", "head.epsilon_param", "w"} <= set(_inits(proto))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert manifest_of(proto)["source"] == "tf"
    fresh = RNG.normal(size=(3, 8, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(proto, {"x": fresh})[0], model(fresh).numpy(), rtol=1e-4, atol=1e-6)


def test_load_matches_ort_trains_saves_and_reexports(net, tmp_path):
    _, _, proto = net
    loaded = tf_io.load(proto)
    fresh = RNG.normal(size=(3, 8, 8, 4)).astype(np.float32)
    ort = run_onnx(proto, {"x": fresh})[0]
    np.testing.assert_allclose(tf_io.predict(loaded, [fresh])[0], ort, rtol=1e-4, atol=1e-6)
    again = tf_io.export(loaded, fresh)
    a, b = _inits(proto), _inits(again)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name
    tf.saved_model.save(loaded, str(tmp_path / "sm"))
    restored = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(restored(tf.constant(fresh)).numpy(), ort, rtol=1e-4, atol=1e-6)
    target = tf.ones_like(tf.constant(ort))
    variables = loaded.trainable_variables
    loss = lambda: tf.reduce_mean((loaded(fresh) - target) ** 2)
    before = float(loss())
    with tf.GradientTape() as tape:
        value = loss()
    for v, g in zip(variables, tape.gradient(value, variables)):
        if g is not None:
            v.assign_sub(0.01 * g)
    assert float(loss()) < before


def test_transformer_from_keras_file_loads_in_tf():
    keras = pytest.importorskip("keras")
    import nmn.keras as nk
    from nmn.interchange import keras_io

    keras.utils.set_random_seed(3)
    ids = keras.Input((5,), dtype="int32", name="ids")
    embed = nk.YatEmbed(11, 8, name="embed")
    h = embed(ids)
    h = keras.layers.Add(name="res")(
        [h, nk.MultiHeadYatAttention(8, 2, use_performer=True, num_features=8, seed=0, name="attn")(h)]
    )
    h = keras.layers.LayerNormalization(name="norm")(h)
    model = keras.Model(ids, embed.attend(nk.RotaryYatAttention(8, 2, max_seq_len=8, name="rot")(h)))
    tokens = RNG.integers(0, 11, size=(2, 5)).astype(np.int32)
    proto = keras_io.export(model, tokens)
    loaded = tf_io.load(proto)
    fresh = RNG.integers(0, 11, size=(3, 5)).astype(np.int32)
    np.testing.assert_allclose(
        tf_io.predict(loaded, [fresh])[0], run_onnx(proto, {"ids": fresh})[0], rtol=1e-4, atol=1e-6
    )


def test_unsupported_tf_ops_are_listed():
    class Odd(tf.Module):
        def __init__(self):
            super().__init__()
            self.d = nt.YatNMN(3)

        def __call__(self, x):
            return tf.math.tan(tf.math.sinh(self.d(x)))  # two ops the tf exporter has no converter for

    model = Odd()
    x = np.ones((2, 4), np.float32)
    model(x)
    with pytest.raises(ExportError, match=r"Tan.*Sinh|Sinh.*Tan"):
        tf_io.export(model, x)


def test_load_lists_every_unsupported_op():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Tan", ["x"], ["a"], name="c1"), helper.make_node("Hardmax", ["a"], ["y"], name="s1")]
    proto = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(UnsupportedModelError, match=r"Hardmax x1, Tan x1"):
        tf_io.load(proto)


@pytest.mark.parametrize(("op", "fn"), [("ReduceMax", np.any), ("ReduceMin", np.all)])
def test_bool_reduce_max_min(op, fn):
    """TF's Max/Min kernels take no bool: the loader reduces bools with any/all (numpy's max/min of bools)."""
    from onnx import TensorProto, helper

    b = TensorProto.BOOL
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", b, [3, 4])],
        [helper.make_tensor_value_info("y", b, [3])],
        [numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])  # bool data from opset 20
    x = RNG.random((3, 4)) > 0.6
    x[0] = True  # rows all True, all False and mixed
    x[1] = False
    (got,) = tf_io.predict(tf_io.load(proto), [x])
    np.testing.assert_array_equal(got, fn(x, axis=1))
    np.testing.assert_array_equal(got, (np.max if op == "ReduceMax" else np.min)(x, axis=1))
