"""nmn.tf's squasher module forms (Softermax, SofterSigmoid, SoftTanh).

Each exports (``nmn.interchange.export``) to one ``nmn::`` node of its name with the layer's attributes; the
file's onnxruntime output (the ONNX function, an oracle independent of TensorFlow) equals the module's; the file
loads back into TensorFlow and computes the same; the modules equal the numpy formulas and take the keywords of
nmn.keras' and nmn.torch's module forms.
"""

from __future__ import annotations

import inspect

import numpy as np
import onnxruntime as ort
import pytest

tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed")

import nmn.tf as T
from nmn.interchange import export, load

CASES = [
    ("Softermax", lambda: T.Softermax(n=2.0, epsilon=1e-6, axis=-1), {"n": 2.0, "epsilon": 1e-6, "axis": -1}),
    ("Softermax", lambda: T.Softermax(n=0.5, axis=0), {"n": 0.5, "axis": 0}),
    ("SofterSigmoid", lambda: T.SofterSigmoid(sharpness=3.0), {"n": 3.0}),
    ("SoftTanh", lambda: T.SoftTanh(n=1.5), {"n": 1.5}),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


def _x():
    return np.abs(np.random.default_rng(0).normal(size=(3, 5))).astype(np.float32) + 0.1


def _attrs(node):
    return {a.name: (a.i if a.type == 2 else a.f) for a in node.attribute}


@pytest.mark.parametrize("op, make, attrs", CASES, ids=IDS)
def test_module_exports_to_one_nmn_node_that_onnxruntime_agrees_with(op, make, attrs):
    module, x = make(), _x()
    proto = export(module, x)
    nodes = [(n.domain, n.op_type) for n in proto.graph.node]
    assert nodes == [("nmn", op)], nodes
    got_attrs = _attrs(proto.graph.node[0])
    for key, value in attrs.items():
        assert got_attrs[key] == pytest.approx(value), (key, got_attrs)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, module(x).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op, make, attrs", CASES, ids=IDS)
def test_exported_file_loads_back_in_tf(op, make, attrs, tmp_path):
    module, x = make(), _x()
    path = tmp_path / "squasher.onnx"
    export(module, x, str(path))
    loaded = load(str(path), "tf")
    np.testing.assert_allclose(np.asarray(loaded(x)), module(x).numpy(), rtol=1e-6, atol=1e-7)


def test_modules_equal_the_numpy_formulas_and_the_functional_forms():
    x = _x()
    np.testing.assert_allclose(T.Softermax(n=2.0, axis=0)(x).numpy(), x**2 / (1e-12 + (x**2).sum(0)), rtol=1e-6)
    np.testing.assert_allclose(T.SofterSigmoid(n=2.0)(x).numpy(), x**2 / (1 + x**2), rtol=1e-6)
    np.testing.assert_allclose(T.SoftTanh(sharpness=2.0)(x).numpy(), (x**2 - 1) / (x**2 + 1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(T.SofterSigmoid(sharpness=3.0)(x).numpy(), T.softer_sigmoid(x, 3.0).numpy())


def test_modules_run_inside_tf_function():
    x = _x()
    module = T.Softermax(n=2.0)
    np.testing.assert_allclose(tf.function(module)(x).numpy(), module(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["Softermax", "SofterSigmoid", "SoftTanh"])
def test_keywords_are_the_keras_module_forms(name):
    keras_ns = pytest.importorskip("nmn.keras")

    def kw(cls):
        params = inspect.signature(cls.__init__).parameters.values()
        return {p.name: p.default for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD}

    tf_kw, keras_kw = kw(getattr(T, name)), kw(getattr(keras_ns, name))
    tf_kw.pop("name")  # tf.Module's own name; Keras takes it through **kwargs
    assert tf_kw == keras_kw


@pytest.mark.parametrize("cls", [T.Softermax, T.SofterSigmoid, T.SoftTanh])
def test_bad_power_names_the_layer(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: n must be > 0"):
        cls(n=0.0)


def test_n_and_sharpness_that_disagree_are_refused():
    with pytest.raises(ValueError, match="SoftTanh: n and sharpness"):
        T.SoftTanh(n=3.0, sharpness=2.0)
