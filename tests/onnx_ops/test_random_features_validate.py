"""The validator accepts one-node files of the new random-feature functions and the old YatLinearAttention body,
and refuses a negative bias or a non-positive epsilon on them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx_ops
from nmn.core import random_features as rf
from nmn.core.schemas import DOMAIN, FUNCTIONS
from nmn.interchange.validate import ModelValidationError, validate_model


def _model(name, arrays, **attrs):
    full = onnx_ops.full_attributes(name, **attrs)
    return onnx_ops.make_model(name, dict(zip(FUNCTIONS[name].inputs, arrays)), full)


def _may():
    p = rf.maclaurin_projection(4, 8, bias=1.0, epsilon=0.5, nmax=4, seed=0)
    return [np.ones((2, 4), np.float32), p["omega"], p["degmask"], p["scale"]]


def _ray():
    p = rf.radial_projection(4, 2, 2, 3, epsilon=0.5, seed=0)
    return [np.ones((2, 4), np.float32)] + [p[k] for k in ("w1", "w2", "omega", "phase", "coef")]


def _anchor():
    p = rf.anchor_projection(4, 2, 1, 3, seed=0)
    return [np.ones((2, 4), np.float32)] + [p[k] for k in ("anchors", "proj", "nodes", "weights")]


@pytest.mark.parametrize(
    "name, arrays", [("YatMaclaurinFeatures", _may), ("YatRadialFeatures", _ray), ("YatAnchorFeatures", _anchor)]
)
def test_feature_files_validate(name, arrays):
    validate_model(_model(name, arrays()))


def test_bad_attributes_refused():
    with pytest.raises(ModelValidationError, match="attribute 'bias' must be >= 0"):
        validate_model(_model("YatRadialFeatures", _ray(), bias=-1.0))
    with pytest.raises(ModelValidationError, match="attribute 'epsilon' must be > 0"):
        validate_model(_model("YatMaclaurinFeatures", _may(), epsilon=0.0))


def test_old_linear_attention_body_still_validates():
    from onnx_ops.attention import legacy_function_protos

    x = np.ones((1, 2, 1, 3), np.float32)
    model = onnx_ops.make_model("YatLinearAttention", {"QF": x, "KF": x, "V": x}, {"causal": 0})
    old = legacy_function_protos()["YatLinearAttention"]
    assert [a.name for a in old.attribute_proto] == ["causal"]
    for i, f in enumerate(model.functions):
        if f.domain == DOMAIN and f.name == "YatLinearAttention":
            model.functions[i].CopyFrom(old)
    validate_model(model)
    out = onnx_ops.run_function("YatLinearAttention", [x, x, x])
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.allclose(sess.run(None, {"QF": x, "KF": x, "V": x})[0], out)
    tampered = onnx.FunctionProto()
    tampered.CopyFrom(old)
    tampered.node[0].op_type = "Identity"
    for i, f in enumerate(model.functions):
        if f.name == "YatLinearAttention":
            model.functions[i].CopyFrom(tampered)
    with pytest.raises(ModelValidationError):
        validate_model(model)
