"""nmn.linen's squasher module forms (Softermax, SofterSigmoid, SoftTanh): each exports to one ``nmn::`` node whose
onnxruntime output (the ONNX function, an oracle independent of JAX) equals the module's, and they take the
keywords of nmn.torch's module forms and refuse bad powers with the layer's name."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import nmn.linen as L
from nmn.interchange import export

CASES = [
    ("Softermax", lambda: L.Softermax(n=2.0, epsilon=1e-6, axis=-1), {"n": 2.0, "axis": -1}),
    ("Softermax", lambda: L.Softermax(n=0.5, axis=0), {"n": 0.5, "axis": 0}),
    ("SofterSigmoid", lambda: L.SofterSigmoid(sharpness=3.0), {"n": 3.0}),
    ("SoftTanh", lambda: L.SoftTanh(n=1.5), {"n": 1.5}),
]


def _x():
    return np.abs(np.random.default_rng(0).normal(size=(3, 5))).astype(np.float32) + 0.1


@pytest.mark.parametrize("op, make, attrs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_module_exports_to_one_nmn_node_that_onnxruntime_agrees_with(op, make, attrs):
    module, x = make(), _x()
    proto = export(module, x, variables={})
    nodes = [(n.domain, n.op_type) for n in proto.graph.node]
    assert nodes == [("nmn", op)], nodes
    node_attrs = {a.name: (a.i if a.type == 2 else a.f) for a in proto.graph.node[0].attribute}
    for key, value in attrs.items():
        assert node_attrs[key] == pytest.approx(value), (key, node_attrs)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, np.asarray(module.apply({}, x)), rtol=1e-6, atol=1e-7)


def test_modules_compute_the_functional_forms_and_the_numpy_formulas():
    x = _x()
    np.testing.assert_allclose(
        np.asarray(L.Softermax(n=2.0, axis=0).apply({}, x)), x**2 / (1e-12 + (x**2).sum(0)), rtol=1e-6
    )
    np.testing.assert_allclose(np.asarray(L.SofterSigmoid(n=2.0).apply({}, x)), x**2 / (1 + x**2), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(L.SoftTanh(sharpness=2.0).apply({}, x)), (x**2 - 1) / (x**2 + 1), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_array_equal(
        np.asarray(L.SofterSigmoid(sharpness=3.0).apply({}, x)), np.asarray(L.softer_sigmoid(x, 3.0))
    )


@pytest.mark.parametrize("cls", [L.Softermax, L.SofterSigmoid, L.SoftTanh])
def test_bad_power_names_the_layer(cls):
    with pytest.raises(ValueError, match=cls.__name__):
        cls(n=0.0)


def test_n_and_sharpness_that_disagree_are_refused():
    with pytest.raises(ValueError, match="SoftTanh: n and sharpness"):
        L.SoftTanh(n=3.0, sharpness=2.0)
