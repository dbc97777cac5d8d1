"""nmn's validator and safe loader catch what onnx.checker alone lets through (docs/design.md §N4, §N10)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_ops
from nmn.interchange import GraphBuilder, ModelValidationError, emit, load_model_safely, validate_model


def _dense_model(**attrs) -> onnx.ModelProto:
    b = GraphBuilder(source="test")
    x = b.input("x", (None, 3))
    cfg = dict(
        in_features=3,
        out_features=2,
        use_bias=True,
        constant_bias=None,
        use_alpha=True,
        constant_alpha=None,
        epsilon=1e-5,
        learnable_epsilon=False,
        spherical=False,
        weight_normalized=False,
    )
    params = {"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32), "alpha": np.ones(1, np.float32)}
    b.output(emit.yat_layer(b, "fc", "YatNMN", cfg, params, [x]), "y")
    return b.build()


def test_valid_model_passes():
    validate_model(_dense_model())


def test_missing_function_is_caught_although_onnx_checker_passes():
    model = _dense_model()
    del model.functions[:]
    onnx.checker.check_model(model)  # the onnx checker does not notice ...
    with pytest.raises(ModelValidationError, match="function is not attached"):
        validate_model(model)  # ... nmn's validator does


def test_unknown_attribute_is_caught():
    model = _dense_model()
    node = next(n for n in model.graph.node if n.domain == "nmn")
    node.attribute.append(helper.make_attribute("bogus", 3))
    with pytest.raises(ModelValidationError, match="unknown attributes \\['bogus'\\]"):
        validate_model(model)


def test_missing_attribute_and_wrong_input_count_are_caught():
    model = _dense_model()
    node = next(n for n in model.graph.node if n.domain == "nmn")
    del node.attribute[:]
    node.input.pop()
    with pytest.raises(ModelValidationError) as err:
        validate_model(model)
    assert "missing attributes" in str(err.value) and "expected the 5 inputs" in str(err.value)


def test_foreign_domain_and_version_are_refused():
    model = _dense_model()
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    for o in model.opset_import:
        if o.domain == "nmn":
            o.version = 2
    with pytest.raises(ModelValidationError) as err:
        validate_model(model)
    assert "com.evil" in str(err.value) and "version 2" in str(err.value)


def _external_model(tmp_path, location):
    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[w],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd"])
def test_external_data_must_stay_in_the_folder(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    path = _external_model(tmp_path, location)
    with pytest.raises(ValueError, match=r"absolute|\.\.|outside"):
        load_model_safely(path)


def test_external_data_links_are_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    path = _external_model(tmp_path, "hard.bin")
    os.link(secret, path.parent / "hard.bin")
    with pytest.raises(ValueError, match="hard link|link"):
        load_model_safely(path)
    path2 = _external_model(tmp_path, "soft.bin")
    os.symlink(secret, path2.parent / "soft.bin")
    with pytest.raises(ValueError, match="link|regular"):
        load_model_safely(path2)


def test_external_data_inside_folder_loads(tmp_path):
    path = _external_model(tmp_path, "w.bin")
    (path.parent / "w.bin").write_bytes(np.full(4, 2.0, np.float32).tobytes())
    model = load_model_safely(path)
    assert numpy_helper.to_array(model.graph.initializer[0]).tolist() == [2.0] * 4


def test_garbage_and_oversized_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        load_model_safely(bad)
    good = tmp_path / "good.onnx"
    good.write_bytes(_dense_model().SerializeToString())
    with pytest.raises(ValueError, match="over the limit"):
        load_model_safely(good, max_bytes=100)


def test_function_protos_include_callees_first():
    protos = onnx_ops.function_protos(["YatDense"])
    names = [p.name for p in protos]
    assert names[-1] == "YatDense" and "YatTail" in names[:-1]


# ------------------------------------------------------------------ issue 12 item 6: opset imports vs nodes


def test_unused_standard_opset_import_is_accepted():
    """tf2onnx writes an ``ai.onnx.ml`` import that no node uses: the file is still valid."""
    model = _dense_model()
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    validate_model(model)


def test_node_of_another_domain_is_refused_even_if_standard():
    model = _dense_model()
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    y = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Binarizer", [y], ["z"], domain="ai.onnx.ml", name="bin"))
    model.graph.output[0].name = "z"
    with pytest.raises(
        ModelValidationError,
        match=r"node 'bin' \(ai.onnx.ml::Binarizer\): standard domain "
        r"'ai.onnx.ml' is not allowed",
    ):
        validate_model(model)


def test_custom_domain_import_and_node_are_refused():
    model = _dense_model()
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(ModelValidationError, match=r"custom domain 'com.microsoft' is not allowed"):
        validate_model(model)


def test_refusal_is_one_line_listing_every_problem():
    model = _dense_model()
    node = next(n for n in model.graph.node if n.domain == "nmn")
    del node.attribute[:]
    node.input.pop()
    with pytest.raises(ModelValidationError) as err:
        validate_model(model, source="two.onnx")
    text = str(err.value)
    assert "\n" not in text and text.startswith("two.onnx is not a valid nmn ONNX file: ")
    assert text.count("; ") >= 1


def test_manifest_agrees_with_graph_on_export():
    """The exporter's own manifest passes the graph checks, and editing one size is caught."""
    import json

    from nmn.interchange.manifest import ManifestError, read_manifest

    model = _dense_model()
    data = read_manifest(model)
    assert data["layers"][0]["config"]["in_features"] == 3
    entry = next(e for e in model.metadata_props if e.key == "nmn.manifest")
    changed = json.loads(entry.value)
    changed["layers"][0]["config"]["out_features"] = 5
    entry.value = json.dumps(changed)
    with pytest.raises(
        ManifestError,
        match=r"layer 'fc' \(YatNMN\): out_features=5, in_features=3 say weight is "
        r"\[5, 3\], but the tensor is \[2, 3\]",
    ):
        read_manifest(model)
    with pytest.raises(ModelValidationError, match="out_features=5"):
        validate_model(model)


def test_inlining_bomb_is_counted_not_inlined():
    """32 levels of functions each calling the next twice: 2**31 nodes after inlining, refused at once."""
    from nmn.interchange.safe_load import Limits, UnsafeModelError, check_limits

    opset = [helper.make_opsetid("", 18), helper.make_opsetid("nmn", 1)]
    fns = [helper.make_function("nmn", "F31", ["X"], ["Y"], [helper.make_node("Identity", ["X"], ["Y"])], opset)]
    for i in range(30, -1, -1):
        fns.append(
            helper.make_function(
                "nmn",
                f"F{i}",
                ["X"],
                ["Y"],
                [
                    helper.make_node(f"F{i + 1}", ["X"], ["T"], domain="nmn"),
                    helper.make_node(f"F{i + 1}", ["T"], ["Y"], domain="nmn"),
                ],
                opset,
            )
        )
    g = helper.make_graph(
        [helper.make_node("F0", ["x"], ["y"], domain="nmn")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(g, opset_imports=opset, functions=fns)
    with pytest.raises(UnsafeModelError, match=r"nodes after inlining is 2147483648, over the limit max_nodes"):
        check_limits(model, Limits(max_call_depth=64))
    with pytest.raises(UnsafeModelError, match=r"max_call_depth=16"):
        check_limits(model)
