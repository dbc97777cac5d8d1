"""The Yat-Performer's ``performer_nmax`` / ``performer_bias`` in every framework against the ONNX function.

Rows of the conformance table for the performer's kernel options (issue 18 item 3, issue 17's keywords): each
framework's layer, built from the neutral spec by its adapter (protocol in tests/conformance/__init__.py), against
onnxruntime running ``nmn::YatPerformerMultiHeadAttention`` with the ``degree``/``bias`` attributes the exporter
writes (``degree`` = :func:`nmn.core.yat.performer_degree` of the config). A spec config without the two keys
(written before they were options) must compute what the function computes without the attributes (degree 3,
bias 0). Then the options survive export and load: a file written by each framework carries them as attributes,
runs in onnxruntime as its source layer does, and the torch file loads into all six with the same output.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnx_ops
from nmn.core import yat
from tests.conformance import cases as case_table
from tests.conformance.test_conformance import _adapters

ADAPTERS = _adapters()

CASES = [
    case_table.attention_case("performer-degree-rule", use_performer=True, performer_nmax=None, performer_bias=0.0),
    case_table.attention_case(
        "performer-degree6-bias1", use_performer=True, num_features=24, performer_nmax=6, performer_bias=1.0
    ),
    case_table.attention_case(
        "performer-causal-degree4-bias0.5",
        use_performer=True,
        causal=True,
        performer_nmax=4,
        performer_bias=0.5,
        seed=3,
    ),
    case_table.attention_case(
        "performer-bias2-wide", use_performer=True, e=16, h=2, num_features=40, performer_bias=2.0
    ),
]
for c in CASES:
    c.rtol = 5e-5  # sign-indefinite features: the l1 denominator amplifies float32 rounding (the causal rows most)


def _expected(case, legacy=False):
    name, ins, attrs = case_table.onnx_call(case, case.params, case.inputs)
    assert name == "YatPerformerMultiHeadAttention"
    if "degree" in attrs:  # onnx_call writes the attributes for a config that names the options
        assert attrs["degree"] == yat.performer_degree(*case.params["proj"].shape, case.config.get("performer_nmax"))
    if legacy:  # the function without the attributes: the degree-3, bias-0 map of files written before them
        attrs = {k: v for k, v in attrs.items() if k not in ("degree", "bias")}
    return np.asarray(onnx_ops.run_function(name, ins, **attrs), np.float64)


def _check(adapter, case, expected):
    ok = adapter.supports(case.kind, case.config)
    if ok is not True:
        pytest.xfail(f"{adapter.name} does not support {case.id}: {ok}")
    layer = adapter.build(case.kind, case.config, case.params)
    got = np.asarray(adapter.forward(layer, case.kind, case.inputs, case.call), np.float64)
    assert got.shape == expected.shape, f"{adapter.name} {case.id}: shape {got.shape} != ORT {expected.shape}"
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(got - expected)))
    assert err <= case.rtol * scale, f"{adapter.name} {case.id}: max|diff| {err:.3g} > {case.rtol} x scale {scale:.3g}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_performer_options_match_onnxruntime(adapter, case):
    _check(adapter, case, _expected(case))


def test_the_rows_differ_from_the_old_map():
    """The rows are not vacuous: each option row computes something else than the degree-3, bias-0 function."""
    for case in CASES:
        new, old = _expected(case), _expected(case, legacy=True)
        assert np.max(np.abs(new - old)) > 1e-3 * np.max(np.abs(old)), case.id


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_config_without_the_options_is_the_old_map(adapter):
    """A spec without ``performer_nmax``/``performer_bias`` (written before them) is the function's default map."""
    case = case_table.attention_case("performer-legacy-config", use_performer=True, num_features=24, seed=5)
    assert "performer_nmax" not in case.config and yat.performer_degree(24, 4) != 3
    case.rtol = 5e-5
    _check(adapter, case, _expected(case, legacy=True))


# ------------------------------------------------------------------------------------------- export and load
_FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")


def _file_case():
    return case_table.attention_case(
        "performer-file", use_performer=True, num_features=24, performer_nmax=5, performer_bias=1.0, l=6, seed=11
    )


def _source_layer(fw, case):
    from importlib import import_module

    spec = import_module(f"nmn.{fw}.spec")
    layer = spec.from_spec(case.kind, case.config, case.params)
    if fw == "keras":  # the keras exporter walks a functional model's layer graph
        import keras

        x = keras.Input(shape=case.inputs[0].shape[1:])
        return keras.Model(x, layer(x))
    return layer


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.interchange import matrix_util as mu

    case = _file_case()
    path = tmp_path_factory.mktemp("performer") / "performer.torch.onnx"
    mu.export("torch", _source_layer("torch", case), case.inputs, path)
    return case, path


@pytest.mark.parametrize("fw", _FRAMEWORKS)
def test_each_framework_writes_the_options_and_onnxruntime_agrees(fw, tmp_path):
    from tests.interchange import matrix_util as mu

    why = mu.unavailable(fw)
    if why:
        pytest.skip(why)
    import onnx

    from nmn.interchange import load_model_safely, run_onnx

    case = _file_case()
    layer = _source_layer(fw, case)
    path = tmp_path / f"performer.{fw}.onnx"
    mu.export(fw, layer, case.inputs, path)
    proto = load_model_safely(path)
    nodes = [n for n in proto.graph.node if n.op_type == "YatPerformerMultiHeadAttention"]
    assert len(nodes) == 1, [n.op_type for n in proto.graph.node]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["degree"] == 5 and attrs["bias"] == pytest.approx(1.0), attrs
    ort = run_onnx(proto, mu.feeds(proto, case.inputs))
    own = mu.predict(fw, mu.load(fw, path), case.inputs)
    assert mu.worst_error(own, ort) <= 5e-5, f"{fw}: its loaded file differs from onnxruntime"
    assert mu.worst_error(ort, [_expected(case)]) <= 5e-5, f"{fw}: the file differs from the function's definition"


@pytest.mark.parametrize("fw", _FRAMEWORKS)
def test_the_torch_file_loads_into_every_framework(torch_file, fw):
    from tests.interchange import matrix_util as mu

    why = mu.unavailable(fw)
    if why:
        pytest.skip(why)
    case, path = torch_file
    got = mu.predict(fw, mu.load(fw, path), case.inputs)
    assert mu.worst_error(got, [_expected(case)]) <= 5e-5, f"{fw} differs from onnxruntime on the torch file"
