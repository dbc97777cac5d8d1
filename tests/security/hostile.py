"""The table of hostile ONNX files: one builder per kind, the refusal it must get, and where.

Each builder writes its file(s) into an empty folder and returns the model's path. ``KINDS`` maps a kind to
``(builder, expected refusal regex, entry points that must refuse it)``; the entry points are ``check``
(``nmn check``), ``safe`` (``nmn.interchange.load_model_safely``), ``serve`` (the repository loader of
``nmn serve``) and ``load`` (``nmn.interchange.load`` in every framework).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnx_ops
from nmn.interchange import GraphBuilder, emit

ALL = frozenset({"check", "safe", "serve", "load"})
OPSET = [helper.make_opsetid("", 18)]
NMN_OPSET = OPSET + [helper.make_opsetid("nmn", 1)]


def _save(model: onnx.ModelProto, folder: Path, name: str = "m.onnx") -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def dense_model(in_features: int = 3, out_features: int = 2) -> onnx.ModelProto:
    """A valid nmn file: one YatNMN layer with its manifest and functions."""
    b = GraphBuilder(source="test")
    x = b.input("x", (None, in_features))
    cfg = dict(
        in_features=in_features,
        out_features=out_features,
        use_bias=True,
        constant_bias=None,
        use_alpha=True,
        constant_alpha=None,
        epsilon=1e-5,
        learnable_epsilon=False,
        spherical=False,
        weight_normalized=False,
        lazy=False,
    )
    rng = np.random.default_rng(0)
    params = {
        "weight": rng.normal(size=(out_features, in_features)).astype(np.float32),
        "bias": np.zeros(out_features, np.float32),
        "alpha": np.ones(1, np.float32),
    }
    b.output(emit.yat_layer(b, "fc", "YatNMN", cfg, params, [x]), "y")
    return b.build()


def _with_manifest(text_or_change) -> callable:
    def build(folder: Path) -> Path:
        model = dense_model()
        entry = next(e for e in model.metadata_props if e.key == "nmn.manifest")
        if callable(text_or_change):
            data = json.loads(entry.value)
            text_or_change(data)
            entry.value = json.dumps(data)
        else:
            entry.value = text_or_change
        return _save(model, folder)

    return build


def _layer(change):
    def edit(data):
        change(data["layers"][0])

    return edit


def _nmn_node(model):
    return next(n for n in model.graph.node if n.domain == "nmn")


# ------------------------------------------------------------------------------------------ builders


def good(folder: Path) -> Path:
    return _save(dense_model(), folder)


def unused_ml_import(folder: Path) -> Path:
    model = dense_model()
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    return _save(model, folder)


def tampered_body(folder: Path) -> Path:
    model = dense_model()
    fn = next(f for f in model.functions if f.name == "YatTail")
    node = next(n for n in fn.node if n.op_type in ("Mul", "Add"))
    node.op_type = "Add" if node.op_type == "Mul" else "Mul"
    return _save(model, folder)


def inlining_bomb(folder: Path, levels: int = 32) -> Path:
    fns = []
    for i in range(levels):
        if i == levels - 1:
            nodes = [helper.make_node("Identity", ["X"], ["Y"])]
        else:
            nodes = [
                helper.make_node(f"F{i + 1}", ["X"], ["T"], domain="nmn"),
                helper.make_node(f"F{i + 1}", ["T"], ["Y"], domain="nmn"),
            ]
        fns.append(helper.make_function("nmn", f"F{i}", ["X"], ["Y"], nodes, NMN_OPSET))
    g = helper.make_graph(
        [helper.make_node("F0", ["x"], ["y"], domain="nmn")],
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return _save(helper.make_model(g, opset_imports=NMN_OPSET, functions=fns, ir_version=10), folder)


def huge_constant_of_shape(folder: Path) -> Path:
    shape = numpy_helper.from_array(np.array([1_500_000_000], np.int64), "shape")
    g = helper.make_graph(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["c"], name="big"),
            helper.make_node("ReduceSum", ["c"], ["y"], keepdims=0),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[shape],
    )
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def huge_loop(folder: Path) -> Path:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1]),
        ],
    )
    inits = [
        numpy_helper.from_array(np.array(2**62, np.int64), "M"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.ones(1, np.float32), "one"),
    ]
    g = helper.make_graph(
        [helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=inits,
    )
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def many_nodes(folder: Path, n: int = 200_000) -> Path:
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(n)]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(f"v{n}", TensorProto.FLOAT, [2])],
    )
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def bad_attribute_in_subgraph(folder: Path) -> Path:
    def branch(name, spherical):
        return helper.make_graph(
            [
                helper.make_node(
                    "YatDense",
                    ["x", "W", "B", "A", "E"],
                    [f"y_{name}"],
                    domain="nmn",
                    spherical=spherical,
                    weight_normalized=0,
                    name=f"dense_{name}",
                )
            ],
            name,
            [],
            [helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, ["N", 2])],
        )

    inits = [
        numpy_helper.from_array(np.ones((2, 3), np.float32), "W"),
        numpy_helper.from_array(np.zeros(2, np.float32), "B"),
        numpy_helper.from_array(np.ones(1, np.float32), "A"),
        numpy_helper.from_array(np.full(1, 1e-5, np.float32), "E"),
        numpy_helper.from_array(np.array(True), "cond"),
    ]
    g = helper.make_graph(
        [
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=branch("then", 7), else_branch=branch("else", 0), name="choose"
            )
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=inits,
    )
    return _save(
        helper.make_model(g, opset_imports=NMN_OPSET, functions=onnx_ops.function_protos(["YatDense"]), ir_version=10),
        folder,
    )


def no_outputs(folder: Path) -> Path:
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], []
    )
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def string_input(folder: Path) -> Path:
    g = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["y"])],
        "g",
        [helper.make_tensor_value_info("s", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [2])],
    )
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def _external(folder: Path, location: str) -> Path:
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
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def _secret(folder: Path) -> Path:
    outside = folder.parent / f"{folder.name}_outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    return secret


def external_dotdot(folder: Path) -> Path:
    _secret(folder)
    return _external(folder, f"../{folder.name}_outside/secret.bin")


def external_absolute(folder: Path) -> Path:
    return _external(folder, str(_secret(folder)))


def external_symlink(folder: Path) -> Path:
    os.symlink(_secret(folder), folder / "w.bin")
    return _external(folder, "w.bin")


def external_hardlink(folder: Path) -> Path:
    os.link(_secret(folder), folder / "w.bin")
    return _external(folder, "w.bin")


def external_fifo(folder: Path) -> Path:
    os.mkfifo(folder / "w.bin")
    return _external(folder, "w.bin")


def external_past_end(folder: Path) -> Path:
    (folder / "w.bin").write_bytes(b"\0" * 8)
    return _external(folder, "w.bin")


def bad_tensor(folder: Path) -> Path:
    model = dense_model()
    t = next(t for t in model.graph.initializer if t.name.endswith("weight"))
    t.raw_data = t.raw_data[:8]
    return _save(model, folder)


def not_onnx(folder: Path) -> Path:
    path = folder / "m.onnx"
    path.write_bytes(b"\x00not a model" * 10)
    return path


def missing_function(folder: Path) -> Path:
    model = dense_model()
    del model.functions[:]
    return _save(model, folder)


def wrong_arity(folder: Path) -> Path:
    model = dense_model()
    _nmn_node(model).input.pop()
    return _save(model, folder)


def unknown_domain(folder: Path) -> Path:
    g = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.evil")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return _save(
        helper.make_model(g, opset_imports=OPSET + [helper.make_opsetid("com.evil", 1)], ir_version=10), folder
    )


def recursion(folder: Path) -> Path:
    fn = helper.make_function(
        "nmn", "Loopy", ["X"], ["Y"], [helper.make_node("Loopy", ["X"], ["Y"], domain="nmn")], NMN_OPSET
    )
    g = helper.make_graph(
        [helper.make_node("Loopy", ["x"], ["y"], domain="nmn")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return _save(helper.make_model(g, opset_imports=NMN_OPSET, functions=[fn], ir_version=10), folder)


def future_version(folder: Path) -> Path:
    model = dense_model()
    for o in model.opset_import:
        if o.domain == "nmn":
            o.version = 2
    return _save(model, folder)


def cycle(folder: Path) -> Path:
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    return _save(helper.make_model(g, opset_imports=OPSET, ir_version=10), folder)


def manifest_too_big(folder: Path) -> Path:
    return _with_manifest(lambda d: d.update(source="x" * (9 * 1024 * 1024)))(folder)


def _huge_sizes(entry):
    entry["config"].update(in_features=200_000, out_features=200_000)


def _wrong_kind(entry):
    """A well-formed YatConv entry pointing at the file's YatDense node."""
    entry["kind"] = "YatConv"
    entry["config"] = dict(
        rank=2,
        kernel_size=[1, 1],
        in_channels=3,
        out_channels=2,
        groups=1,
        strides=[1, 1],
        dilations=[1, 1],
        padding="valid",
        padding_mode="zeros",
        epsilon=1e-5,
        spherical=False,
        use_alpha=True,
        use_bias=True,
        constant_alpha=None,
        constant_bias=None,
        weight_normalized=False,
        learnable_epsilon=False,
    )


#: kind -> (builder, expected refusal regex, entry points that must refuse it)
KINDS: dict[str, tuple] = {
    # the layer manifest
    "manifest invalid JSON": (_with_manifest("{not json"), r"manifest: not valid JSON", ALL),
    "manifest nested deeply": (_with_manifest("[" * 100_000 + "]" * 100_000), r"max_manifest_depth", ALL),
    "manifest too big": (manifest_too_big, r"max_manifest_bytes", ALL),
    "manifest layers not a list": (
        _with_manifest(lambda d: d.update(layers={"a": 1})),
        r"'layers' must be a list, got object",
        ALL,
    ),
    "manifest missing key": (
        _with_manifest(_layer(lambda e: e.pop("params"))),
        r"layer 'fc': the required key 'params' is missing",
        ALL,
    ),
    "manifest missing config key": (
        _with_manifest(_layer(lambda e: e["config"].pop("out_features"))),
        r"layer 'fc' \(YatNMN\): config lacks \['out_features'\]",
        ALL,
    ),
    "manifest unknown parameter": (
        _with_manifest(_layer(lambda e: e["params"].update(wieght="fc.weight"))),
        r"layer 'fc' \(YatNMN\): unknown parameters \['wieght'\]",
        ALL,
    ),
    "manifest wrong type": (
        _with_manifest(_layer(lambda e: e["config"].update(in_features="3"))),
        r"layer 'fc': config 'in_features' must be an integer",
        ALL,
    ),
    "manifest missing parameter": (
        _with_manifest(_layer(lambda e: e["params"].update(weight="nope"))),
        r"layer 'fc' \(YatNMN\): parameter 'weight' names tensor 'nope'",
        ALL,
    ),
    "manifest huge sizes": (
        _with_manifest(_layer(_huge_sizes)),
        r"layer 'fc' \(YatNMN\): out_features=200000, in_features=200000 say weight is "
        r"\[200000, 200000\], but the tensor is \[2, 3\]",
        ALL,
    ),
    "manifest disagrees with node": (
        _with_manifest(_layer(_wrong_kind)),
        r"layer 'fc' \(YatConv\): none of its nodes .* is an YatConv node",
        ALL,
    ),
    # functions and bounds
    "tampered nmn body": (tampered_body, r"function nmn.*YatTail is not the canonical body", ALL),
    "function inlining bomb": (inlining_bomb, r"max_call_depth|max_nodes", ALL),
    "ConstantOfShape of 6 GB": (huge_constant_of_shape, r"ConstantOfShape node 'big'.*max_tensor_bytes", ALL),
    "200,000 nodes": (many_nodes, r"nodes after inlining is 200000, over the limit max_nodes=100000", ALL),
    "Loop with a huge trip count": (huge_loop, r"did not end within .* check_seconds", {"check"}),
    "bad nmn attribute in a subgraph": (
        bad_attribute_in_subgraph,
        r"subgraph 'then_branch' of node 'choose': node 'dense_then'.*"
        r"'spherical' must be 0 or 1, got 7",
        ALL,
    ),
    "no outputs": (no_outputs, r"the graph has no outputs", ALL),
    "string input": (string_input, r"graph input 's' has element type STRING", ALL),
    # already refused before issue 13
    "external data ..": (external_dotdot, r"leaves the model's folder", ALL),
    "external data absolute": (external_absolute, r"is an absolute path", ALL),
    "external data symlink": (external_symlink, r"goes through a symbolic link", ALL),
    "external data hard link": (external_hardlink, r"hard links are refused|hard-linked files are refused", ALL),
    "external data FIFO": (external_fifo, r"is not a regular file", ALL),
    "external data past the end": (external_past_end, r"does not fit in 'w.bin' \(8 bytes\)", ALL),
    "bad tensor": (bad_tensor, r"tensor 'fc.weight': dims \[2, 3\] of FLOAT need 24 bytes but raw_data holds 8", ALL),
    "not an ONNX file": (not_onnx, r"is not a valid ONNX model", ALL),
    "missing function": (missing_function, r"calls nmn.YatDense but the file carries no such function", ALL),
    "wrong arity": (wrong_arity, r"expected the 5 inputs", ALL),
    "unknown domain": (unknown_domain, r"'com.evil'", ALL),
    "recursive function": (recursion, r"function nmn.Loopy calls itself", ALL),
    "future nmn version": (future_version, r"domain 'nmn' version 2 is unknown", ALL),
    "cycle": (cycle, r"fails onnx.checker.*topolog", ALL),
}

#: files that must load everywhere (no false refusals)
GOOD = {"good": good, "unused ai.onnx.ml import": unused_ml_import}
