"""onnxruntime, onnx.reference.ReferenceEvaluator and the float64 numpy oracle agree on the case table."""

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import onnx_ops
from nmn.core.schemas import FUNCTIONS
from onnx_ops import reference
from tests.onnx_ops.cases import all_cases

CASES = all_cases()


def _attrs(case):
    return onnx_ops.full_attributes(case.name, onnx_ops._spatial_rank(case.name, case.inputs), **case.attrs)


def _close(got, want, rtol, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.all(np.isfinite(got)), f"{what}: non-finite output"
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol:g} * max|oracle| {scale:.3g}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.name}-{c.id}" for c in CASES])
def test_ort_evaluator_oracle_agree(case):
    attrs = _attrs(case)
    want = reference.REFERENCE[case.name](*case.inputs, **attrs)
    got = onnx_ops.run_function(case.name, case.inputs, **case.attrs)
    assert got.dtype == case.inputs[0].dtype
    _close(got, want, case.rtol, "onnxruntime vs oracle")
    if case.skip_evaluator:
        return
    model = onnx_ops.make_model(case.name, dict(zip(FUNCTIONS[case.name].inputs, case.inputs)), attrs)
    ev = ReferenceEvaluator(model).run(None, dict(zip(FUNCTIONS[case.name].inputs, case.inputs)))[0]
    _close(np.asarray(ev), want, case.rtol, "ReferenceEvaluator vs oracle")
