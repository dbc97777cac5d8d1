"""Every framework's layers against the ``nmn`` ONNX functions (forward) and the numpy oracle (gradients).

The case table is ``cases.py``; each framework contributes an adapter module ``adapter_<name>.py`` (protocol in
tests/conformance/__init__.py). The forward oracle is onnxruntime executing the ``nmn`` function with the same weights;
the gradient oracle is a float64 central finite difference of the independent numpy reference.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import onnx_ops
from onnx_ops import reference
from tests.conformance import cases as case_table


def _adapters():
    found = []
    package = importlib.import_module("tests.conformance")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("adapter_"):
            continue
        try:
            module = importlib.import_module(f"tests.conformance.{info.name}")
        except ImportError as err:  # the framework is not installed here: nothing to test
            found.append(pytest.param(None, id=info.name[8:], marks=pytest.mark.skip(reason=f"not installed: {err}")))
            continue
        for adapter in getattr(module, "ADAPTERS", None) or [module.ADAPTER]:
            found.append(pytest.param(adapter, id=adapter.name))
    return found


ADAPTERS = _adapters()
FORWARD = [pytest.param(c, id=c.id) for c in case_table.CASES]
GRADIENT = [pytest.param(c, id=c.id) for c in case_table.CASES if c.grad]


def _check_support(adapter, case):
    ok = adapter.supports(case.kind, case.config)
    if ok is not True:
        pytest.xfail(f"{adapter.name} does not support {case.id}: {ok}")


def _build(adapter, case):
    """The row's layer: from its neutral spec, or (rows with nmn 0.3's ``options``, which no spec carries) by the
    framework's constructor with those options and the RAW parameters."""
    if case.options:
        return adapter.build_options(case.kind, case.config, case.params, case.options)
    return adapter.build(case.kind, case.config, case.params)


@pytest.mark.parametrize("case", FORWARD)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_forward_matches_onnxruntime(adapter, case):
    _check_support(adapter, case)
    name, ins, attrs = case_table.onnx_call(case, case.params, case.inputs)
    expected = np.asarray(onnx_ops.run_function(name, ins, **attrs), np.float64)
    layer = _build(adapter, case)
    got = np.asarray(adapter.forward(layer, case.kind, case.inputs, case.call), np.float64)
    assert got.shape == expected.shape, f"{adapter.name} {case.id}: shape {got.shape} != ORT {expected.shape}"
    assert np.all(np.isfinite(got)), f"{adapter.name} {case.id}: non-finite output"
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(got - expected)))
    assert err <= case.rtol * scale, f"{adapter.name} {case.id}: max|diff| {err:.3g} > {case.rtol} x scale {scale:.3g}"


def _oracle_loss(case, params, inputs, cotangent):
    name, ins, attrs = case_table.onnx_call(case, params, inputs, dtype=np.float64)
    out = np.asarray(reference.REFERENCE[name](*ins, **attrs), np.float64)
    return float(np.sum(out * cotangent))


@pytest.mark.parametrize("case", GRADIENT)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_gradients_match_finite_differences(adapter, case):
    _check_support(adapter, case)
    rng = np.random.default_rng(123)
    name, ins, attrs = case_table.onnx_call(case, case.params, case.inputs)
    out_shape = np.shape(onnx_ops.run_function(name, ins, **attrs))
    cotangent = rng.normal(size=out_shape)
    layer = _build(adapter, case)
    grads = adapter.grads(layer, case.kind, case.inputs, case.call, cotangent.astype(np.float32))
    params64 = {k: v.astype(np.float64) for k, v in case.params.items()}
    inputs64 = [np.asarray(x, np.float64) for x in case.inputs]
    expected_keys = {"input0", *case.params}
    assert set(grads) == expected_keys, (
        f"{adapter.name} {case.id}: gradients for {sorted(grads)}, expected {sorted(expected_keys)}"
    )
    for key, got in grads.items():
        target = inputs64[0] if key == "input0" else params64[key]
        got = np.asarray(got, np.float64)
        assert got.shape == target.shape, f"{adapter.name} {case.id}: grad {key} shape {got.shape} != {target.shape}"
        flat = target.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
        scale = max(float(np.max(np.abs(got))), 1e-8)
        for i in picks:
            h = 1e-6 * max(1.0, abs(flat[i]))
            old = flat[i]
            flat[i] = old + h
            up = _oracle_loss(case, params64, inputs64, cotangent)
            flat[i] = old - h
            down = _oracle_loss(case, params64, inputs64, cotangent)
            flat[i] = old
            fd = (up - down) / (2 * h)
            g = got.reshape(-1)[i]
            assert abs(g - fd) <= case.grad_rtol * scale + 1e-6, (
                f"{adapter.name} {case.id}: d/d{key}[{i}] = {g:.6g}, finite difference {fd:.6g}"
            )
