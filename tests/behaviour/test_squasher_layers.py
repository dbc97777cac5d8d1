"""The squashers' module forms (``Softermax``, ``SofterSigmoid``, ``SoftTanh``): one table for all six frameworks.

Each row is built in every framework from the same keywords; a small driver per framework does only what its host
spells differently (how a module is called, how it is exported, torch's ``dim`` for everyone else's ``axis``).
The oracles are independent of the code under test: the numpy formulas written here, onnxruntime running the
exported ``nmn::`` function, and the exported file loaded back into the same framework.

- ``formula``: the module computes ``x^n / (epsilon + sum x^n)``, ``x^n / (1 + x^n)``, ``(x^n - 1) / (x^n + 1)``
  in float64 numpy, with ``sharpness`` the same power as ``n``, and equals its functional form bit for bit.
- ``export``: a bare module exports to exactly one ``nmn::`` node of its name carrying the module's attributes,
  and onnxruntime's output equals the module's.
- ``load``: that file loads back into the framework and computes the same.
- ``options``: a power <= 0 and ``n``/``sharpness`` that disagree raise ``ValueError`` naming the layer.
- ``keywords``: all six frameworks take the same constructor keywords (the host's own ``name``/``parent`` aside,
  torch's ``dim`` standing for ``axis``).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from nmn.interchange import export, load, predict
from tests.frameworks import FRAMEWORKS, nmn_module

# (layer, keywords, the ONNX node's attributes, numpy formula of x)
ROWS = [
    (
        "Softermax",
        {"n": 2.0, "epsilon": 1e-6, "axis": -1},
        {"n": 2.0, "axis": -1},
        lambda x: x**2 / (1e-6 + (x**2).sum(-1, keepdims=True)),
    ),
    (
        "Softermax",
        {"n": 0.5, "axis": 0},
        {"n": 0.5, "axis": 0},
        lambda x: x**0.5 / (1e-12 + (x**0.5).sum(0, keepdims=True)),
    ),
    ("SofterSigmoid", {"sharpness": 3.0}, {"n": 3.0}, lambda x: x**3 / (1 + x**3)),
    ("SofterSigmoid", {"n": 2.0}, {"n": 2.0}, lambda x: x**2 / (1 + x**2)),
    ("SoftTanh", {"n": 1.5}, {"n": 1.5}, lambda x: (x**1.5 - 1) / (x**1.5 + 1)),
    ("SoftTanh", {"sharpness": 2.0}, {"n": 2.0}, lambda x: (x**2 - 1) / (x**2 + 1)),
]
IDS = [f"{r[0]}-{i}" for i, r in enumerate(ROWS)]
_FUNCTIONAL = {"Softermax": "softermax", "SofterSigmoid": "softer_sigmoid", "SoftTanh": "soft_tanh"}


class _Driver:
    """What one host spells differently: building, calling and exporting a squasher module."""

    def __init__(self, framework: str):
        self.ns = nmn_module(framework)
        self.framework = framework

    def build(self, layer, **kw):
        if self.framework == "torch" and "axis" in kw:
            kw["dim"] = kw.pop("axis")
        return getattr(self.ns, layer)(**kw)

    def tensor(self, x):
        fw = self.framework
        if fw == "torch":
            import torch

            return torch.as_tensor(x)
        if fw == "mlx":
            import mlx.core as mx

            return mx.array(x)
        if fw == "tf":
            import tensorflow as tf

            return tf.constant(x)
        return x

    def run(self, module, x):
        if self.framework == "linen":
            return np.asarray(module.apply({}, x))
        out = module(self.tensor(x))
        return out.numpy() if self.framework in ("torch", "tf") else np.asarray(out)

    def functional(self, layer, x, **kw):
        fn = getattr(self.ns, _FUNCTIONAL[layer])
        if layer == "Softermax":
            axis = kw.pop("axis", -1)
            kw["dim" if self.framework == "torch" else "axis"] = axis
        out = fn(self.tensor(x), **kw)
        if self.framework == "keras":
            import keras

            return keras.ops.convert_to_numpy(out)
        return out.numpy() if self.framework in ("torch", "tf") else np.asarray(out)

    def export(self, module, x):
        if self.framework == "linen":
            return export(module, x, variables={})
        if self.framework == "keras":
            import keras

            inp = keras.Input(x.shape[1:], batch_size=x.shape[0])
            return export(keras.Model(inp, module(inp)), x)
        if self.framework == "mlx":
            return export(module, x, framework="mlx")
        return export(module, self.tensor(x))


@pytest.fixture(params=FRAMEWORKS)
def driver(request):
    return _Driver(request.param)


def _x():
    return np.abs(np.random.default_rng(0).normal(size=(3, 5))).astype(np.float32) + 0.1


def _attrs(node):
    return {a.name: (a.i if a.type == 2 else a.f) for a in node.attribute}


@pytest.mark.parametrize("layer, kw, attrs, formula", ROWS, ids=IDS)
def test_formula(driver, layer, kw, attrs, formula):
    x = _x()
    got = driver.run(driver.build(layer, **kw), x)
    np.testing.assert_allclose(got, formula(x.astype(np.float64)), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(got, driver.functional(layer, x, **kw))


@pytest.mark.parametrize("layer, kw, attrs, formula", ROWS, ids=IDS)
def test_export_is_one_nmn_node_that_onnxruntime_agrees_with(driver, layer, kw, attrs, formula):
    import onnxruntime as ort

    module, x = driver.build(layer, **kw), _x()
    proto = driver.export(module, x)
    nodes = [(n.domain, n.op_type) for n in proto.graph.node]
    assert nodes == [("nmn", layer)], f"{driver.framework} {layer}: nodes {nodes}"
    got_attrs = _attrs(proto.graph.node[0])
    for key, value in attrs.items():
        assert got_attrs[key] == pytest.approx(value), f"{driver.framework} {layer}: {key} in {got_attrs}"
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, driver.run(module, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layer, kw, attrs, formula", ROWS[::2], ids=IDS[::2])
def test_exported_file_loads_back(driver, layer, kw, attrs, formula, tmp_path):
    module, x = driver.build(layer, **kw), _x()
    path = tmp_path / "squasher.onnx"
    path.write_bytes(driver.export(module, x).SerializeToString())
    loaded = load(str(path), driver.framework)
    (got,) = predict(loaded, driver.framework, [x])
    np.testing.assert_allclose(np.asarray(got), driver.run(module, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layer", sorted(_FUNCTIONAL))
def test_options_are_checked_naming_the_layer(driver, layer):
    with pytest.raises(ValueError, match=rf"{layer}: n must be (a number )?> 0, got 0"):
        driver.build(layer, n=0.0)
    if layer != "Softermax":
        with pytest.raises(ValueError, match=rf"{layer}: n and sharpness name the same power"):
            driver.build(layer, n=3.0, sharpness=2.0)


def _keywords(framework, layer):
    ns = _Driver(framework).ns
    cls = getattr(ns, layer)
    sig = inspect.signature(cls) if framework == "linen" else inspect.signature(cls.__init__)
    names = {p.name for p in sig.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    names -= {"self", "name", "parent"}
    return {"axis" if n == "dim" else n for n in names}


@pytest.mark.parametrize("layer", sorted(_FUNCTIONAL))
def test_keywords_agree_across_frameworks(layer):
    seen = {}
    for fw in FRAMEWORKS:
        try:
            seen[fw] = _keywords(fw, layer)
        except pytest.skip.Exception:
            continue
    assert len({frozenset(v) for v in seen.values()}) == 1, f"{layer}: keywords differ {seen}"


def test_keras_layers_serialize_and_stay_one_layer_in_a_functional_model():
    keras = pytest.importorskip("keras")
    import nmn.keras as nk

    assert nk.SoftTanh.from_config(nk.SoftTanh(sharpness=3.0).get_config()).n == 3.0
    x = np.linspace(0.1, 3.0, 7).astype(np.float32)
    inp = keras.Input((7,))
    model = keras.Model(inp, nk.softermax(inp, n=2.0, axis=-1))
    assert [type(op).__name__ for op in model.operations] == ["InputLayer", "Softermax"]
    p = x.astype(np.float64) ** 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x[None]))[0], p / (1e-12 + p.sum()), rtol=2e-6)


def test_tf_modules_run_inside_tf_function():
    tf = pytest.importorskip("tensorflow")
    import nmn.tf as T

    x = _x()
    module = T.Softermax(n=2.0)
    np.testing.assert_allclose(tf.function(module)(x).numpy(), module(x).numpy(), rtol=1e-6)
