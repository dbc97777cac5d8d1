"""Every nmn function is a valid FunctionProto matching the schema; the registry and model helpers work."""

import numpy as np
import onnx
import pytest

import onnx_ops
from nmn.core.schemas import DOMAIN, FUNCTIONS, OPSET
from onnx_ops import REGISTRY, function_protos, make_model, run_function
from tests.onnx_ops.cases import all_cases


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_check_function(name):
    proto = REGISTRY[name].proto
    assert proto.domain == DOMAIN
    assert [(o.domain, o.version) for o in proto.opset_import if o.domain == ""] == [("", OPSET)]
    onnx.checker.check_function(proto)


def test_registry_covers_schemas():
    assert set(FUNCTIONS) <= set(REGISTRY)
    assert all(REGISTRY[n].public == (n in FUNCTIONS) for n in REGISTRY)
    assert "YatTail" in REGISTRY


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_signature_matches_schema(name):
    schema, info = FUNCTIONS[name], REGISTRY[name]
    proto = info.proto
    assert info.inputs == schema.inputs == tuple(proto.input)
    assert len(proto.output) == len(schema.outputs)  # internal output names are free (callers bind their own)
    assert set(info.attributes) == set(schema.attributes)
    defaults = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute_proto}
    for key, (_kind, default) in schema.attributes.items():
        if default is None:
            assert key in proto.attribute, f"{name}.{key} has no default in the schema, so it must be required"
            continue
        got = defaults[key]
        got = got.decode() if isinstance(got, bytes) else got
        assert got == pytest.approx(default), f"{name}.{key}: default {got!r} != schema {default!r}"


def test_function_protos_callees_first():
    names = sorted(FUNCTIONS)
    protos = function_protos(names)
    order = [p.name for p in protos]
    assert len(order) == len(set(order))
    assert set(names) <= set(order)
    for i, p in enumerate(protos):
        for node in p.node:
            if node.domain == DOMAIN:
                assert node.op_type in order[:i], f"{p.name} calls {node.op_type} which comes later"
    assert [p.name for p in function_protos("YatEmbedAttend")] == ["YatTail", "YatDense", "YatEmbedAttend"]
    with pytest.raises(KeyError):
        function_protos(["NoSuchOp"])


_FIRST = {}
for _c in all_cases():
    _FIRST.setdefault(_c.name, _c)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_full_check_model(name):
    case = _FIRST[name]
    attrs = onnx_ops.full_attributes(name, onnx_ops._spatial_rank(name, case.inputs), **case.attrs)
    model = make_model(name, dict(zip(FUNCTIONS[name].inputs, case.inputs)), attrs)
    onnx.checker.check_model(model, full_check=True)
    assert len(model.graph.output[0].type.tensor_type.shape.dim) == case.inputs[0].ndim
    dyn = make_model(name, dict(zip(FUNCTIONS[name].inputs, case.inputs)), attrs, dynamic=True)
    onnx.checker.check_model(dyn, full_check=True)


def test_full_attributes_defaults_and_errors():
    attrs = onnx_ops.full_attributes("YatConv", 2)
    assert attrs["strides"] == [1, 1] and attrs["dilations"] == [1, 1] and attrs["pads"] == [0, 0, 0, 0]
    assert attrs["auto_pad"] == "NOTSET" and attrs["pad_mode"] == "constant" and attrs["group"] == 1
    assert onnx_ops.full_attributes("YatConvTranspose", 3)["output_padding"] == [0, 0, 0]
    assert onnx_ops.full_attributes("YatAttention") == {
        "spherical": 0,
        "normalization": "softmax",
        "power": 1.0,
        "causal": 0,
    }
    with pytest.raises(ValueError, match="bogus"):
        onnx_ops.full_attributes("YatDense", bogus=1)
    with pytest.raises(ValueError, match="spatial rank is unknown"):
        onnx_ops.full_attributes("YatConv")


def test_run_function_caches_sessions():
    rng = np.random.default_rng(0)
    args = lambda n: [
        rng.standard_normal((n, 4)).astype(np.float32),
        rng.standard_normal((3, 4)).astype(np.float32),
        np.zeros(3, np.float32),
        np.ones(1, np.float32),
        np.full(1, 1e-5, np.float32),
    ]
    run_function("YatDense", args(2), spherical=1)
    before = len(onnx_ops._SESSIONS)
    y = run_function("YatDense", args(5), spherical=1)
    assert len(onnx_ops._SESSIONS) == before and y.shape == (5, 3)
    with pytest.raises(ValueError, match="takes 5 inputs"):
        run_function("YatDense", args(2)[:4])
