"""The safe loader refuses bad files before onnxruntime sees them."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nmn.interchange.safe_load import UnsafeModelError, load_model_safely
from tests.serve.models import OPSET, make_mlp, make_square, square_function


def save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


def test_good_model_with_nmn_function_loads_and_runs(tmp_path):
    import onnxruntime as ort

    model = load_model_safely(save(make_square(), tmp_path / "square.onnx"))
    assert [(f.domain, f.name) for f in model.functions] == [("nmn", "Square")]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x * x)


def test_missing_function_is_refused(tmp_path):
    path = save(make_square(with_function=False), tmp_path / "nofn.onnx")
    with pytest.raises(UnsafeModelError, match=r"nofn\.onnx.*nmn\.Square.*no such function"):
        load_model_safely(path)


def test_foreign_custom_domain_node_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("com.microsoft", 1)])
    path = save(model, tmp_path / "foreign.onnx")
    with pytest.raises(UnsafeModelError, match=r"foreign\.onnx.*'com\.microsoft'"):
        load_model_safely(path)


def test_foreign_domain_function_is_refused(tmp_path):
    fn = helper.make_function("evil", "Square", ["X"], ["Y"], [helper.make_node("Mul", ["X", "X"], ["Y"])], OPSET)
    graph = helper.make_graph(
        [helper.make_node("Square", ["x"], ["y"], domain="evil")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("evil", 1)], functions=[fn])
    with pytest.raises(UnsafeModelError, match="'evil'"):
        load_model_safely(save(model, tmp_path / "evilfn.onnx"))


def test_recursive_function_is_refused(tmp_path):
    fn = helper.make_function(
        "nmn",
        "Loopy",
        ["X"],
        ["Y"],
        [helper.make_node("Loopy", ["X"], ["Y"], domain="nmn")],
        OPSET + [helper.make_opsetid("nmn", 1)],
    )
    graph = helper.make_graph(
        [helper.make_node("Loopy", ["x"], ["y"], domain="nmn")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("nmn", 1)], functions=[fn])
    with pytest.raises(UnsafeModelError, match="calls itself"):
        load_model_safely(save(model, tmp_path / "loopy.onnx"))


def test_garbage_and_non_files_are_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 10)
    with pytest.raises(UnsafeModelError, match=r"junk\.onnx.*not a valid ONNX"):
        load_model_safely(junk)
    with pytest.raises(UnsafeModelError, match="not a regular file"):
        load_model_safely(tmp_path)
    with pytest.raises(UnsafeModelError, match="cannot be read"):
        load_model_safely(tmp_path / "absent.onnx")


def test_checker_failure_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["nowhere"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = save(helper.make_model(graph, opset_imports=OPSET), tmp_path / "broken.onnx")
    with pytest.raises(UnsafeModelError, match=r"broken\.onnx.*check_model"):
        load_model_safely(path)


def test_size_bound(tmp_path):
    path = save(make_mlp(), tmp_path / "mlp.onnx")
    with pytest.raises(UnsafeModelError, match="over the limit of 10 bytes"):
        load_model_safely(path, max_bytes=10)


# ------------------------------------------------------------------ external data


def external_model(location: str, data: np.ndarray) -> onnx.ModelProto:
    """y = x + W with W stored as external data at ``location``."""
    w = numpy_helper.from_array(data, "W")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(data.nbytes))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[w],
    )
    return helper.make_model(graph, opset_imports=OPSET)


WEIGHTS = np.arange(4, dtype=np.float32)


def test_external_data_inside_folder_is_loaded(tmp_path):
    import onnxruntime as ort

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.bin").write_bytes(WEIGHTS.tobytes())
    path = save(external_model("weights/w.bin", WEIGHTS), tmp_path / "ext.onnx")
    model = load_model_safely(path)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": np.ones(4, np.float32)})[0], WEIGHTS + 1)
    # Without loading, the reference stays (validated) in place.
    lazy = load_model_safely(path, load_external_data=False)
    assert lazy.graph.initializer[0].data_location == TensorProto.EXTERNAL


def test_external_data_absolute_path_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(WEIGHTS.tobytes())
    (tmp_path / "m").mkdir()
    path = save(external_model(str(outside), WEIGHTS), tmp_path / "m" / "abs.onnx")
    with pytest.raises(UnsafeModelError, match=r"abs\.onnx.*absolute path"):
        load_model_safely(path)


def test_external_data_dotdot_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(WEIGHTS.tobytes())
    (tmp_path / "m").mkdir()
    path = save(external_model("../secret.bin", WEIGHTS), tmp_path / "m" / "up.onnx")
    with pytest.raises(UnsafeModelError, match=r"up\.onnx.*leaves the model's folder"):
        load_model_safely(path)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_external_data_symlink_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(WEIGHTS.tobytes())
    (tmp_path / "m").mkdir()
    os.symlink(tmp_path / "secret.bin", tmp_path / "m" / "w.bin")
    path = save(external_model("w.bin", WEIGHTS), tmp_path / "m" / "link.onnx")
    with pytest.raises(UnsafeModelError, match="symbolic link"):
        load_model_safely(path)


def test_external_data_hard_link_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(WEIGHTS.tobytes())
    (tmp_path / "m").mkdir()
    try:
        os.link(tmp_path / "secret.bin", tmp_path / "m" / "w.bin")
    except OSError:
        pytest.skip("hard links not supported here")
    path = save(external_model("w.bin", WEIGHTS), tmp_path / "m" / "hard.onnx")
    with pytest.raises(UnsafeModelError, match="hard link"):
        load_model_safely(path)


def test_external_data_out_of_range_or_missing_is_refused(tmp_path):
    (tmp_path / "short.bin").write_bytes(WEIGHTS.tobytes()[:8])
    path = save(external_model("short.bin", WEIGHTS), tmp_path / "short.onnx")
    with pytest.raises(UnsafeModelError, match="does not fit"):
        load_model_safely(path)
    path = save(external_model("absent.bin", WEIGHTS), tmp_path / "absent.onnx")
    with pytest.raises(UnsafeModelError, match="does not exist"):
        load_model_safely(path)


def test_function_travels_in_the_file(tmp_path):
    """The nmn function body is part of the saved model, not a runtime registration."""
    path = save(make_square(), tmp_path / "sq.onnx")
    reloaded = onnx.load(path)
    assert reloaded.functions[0] == square_function()


def test_tampered_canonical_nmn_function_is_refused(tmp_path):
    """A file whose YatDense body differs from onnx_ops's would make onnxruntime and the native layers disagree."""
    import onnx_ops

    fns = []
    for proto in onnx_ops.function_protos(["YatDense"]):  # copies: never edit onnx_ops's own protos
        copy = onnx.FunctionProto()
        copy.CopyFrom(proto)
        fns.append(copy)
    tail = next(f for f in fns if f.name == "YatTail")
    node = next(n for n in tail.node if n.op_type in ("Mul", "Add"))
    node.op_type = "Add" if node.op_type == "Mul" else "Mul"
    graph = helper.make_graph(
        [
            helper.make_node(
                "YatDense", ["x", "W", "B", "A", "E"], ["y"], domain="nmn", spherical=0, weight_normalized=0
            )
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[
            numpy_helper.from_array(np.ones((2, 3), np.float32), "W"),
            numpy_helper.from_array(np.zeros(2, np.float32), "B"),
            numpy_helper.from_array(np.ones(1, np.float32), "A"),
            numpy_helper.from_array(np.full(1, 1e-5, np.float32), "E"),
        ],
    )
    model = helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("nmn", 1)], functions=fns)
    with pytest.raises(UnsafeModelError, match=r"tampered\.onnx.*function nmn\.YatTail is not the canonical body"):
        load_model_safely(save(model, tmp_path / "tampered.onnx"))


def test_external_data_bound_is_named(tmp_path):
    from nmn.interchange.safe_load import Limits

    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    (tmp_path / "w.bin").write_bytes(np.ones(4, np.float32).tobytes())
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[w],
    )
    path = save(helper.make_model(graph, opset_imports=OPSET), tmp_path / "ext.onnx")
    assert load_model_safely(path).graph.initializer[0].raw_data == np.ones(4, np.float32).tobytes()
    with pytest.raises(UnsafeModelError, match=r"external data is 16 bytes, over the limit max_external_bytes=8"):
        load_model_safely(path, limits=Limits(max_external_bytes=8))
    with pytest.raises(UnsafeModelError, match=r"over the limit max_tensor_bytes=8"):
        load_model_safely(path, limits=Limits(max_tensor_bytes=8))
