"""The dtype axis of the conformance table: float16, bfloat16 and float64 inputs and parameters.

For every installed framework a subset of the table's rows (one per op family) is built as in
``test_conformance.py``, then its parameters and inputs are cast to the dtype and the layer runs in that dtype.
The oracle is the independent numpy reference (``onnx_ops.reference``) in float64 on the very same rounded
parameters and inputs. onnxruntime is not the oracle on this axis: the ``nmn`` function bodies compute in
float32 and cast the result back (``Cast(X, FLOAT)`` ... ``CastLike`` in ``onnx_ops``), so their float64 output
is float32-accurate (about 2e-7 relative), which ``test_onnxruntime_float64_is_float32_accurate`` pins. Tolerances are per dtype, relative
to the output scale: they allow the rounding of a few dozen operations in that dtype and no more.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import onnx_ops
from onnx_ops import reference
from tests.conformance import cases as case_table
from tests.conformance.test_conformance import ADAPTERS

DTYPES = {
    # name: (numpy dtype used to round the data, max |err| / scale)
    "float64": (np.float64, 1e-9),
    "float16": (np.float16, 2e-2),
    "bfloat16": (ml_dtypes.bfloat16, 1e-1),
}

ROWS = (
    "dense-default",
    "dense-spherical",
    "conv2d-same",
    "conv1d-causal",
    "convT2d-stride2",
    "mha-default",
    "embed-attend",
    "softermax",
    "soft-tanh",
)
CASES = {c.id: c for c in case_table.CASES if c.id in ROWS}

# Known gaps, each with its reason (xfail, not skip: the combination is meant to work).
_TF64 = (
    "nmn.tf and nmn.keras (the shared nmn/_tfkeras code) compute part of a float64 layer in float32: max "
    "error about 1e-7 of the output scale, float32-accurate, where torch and JAX reach 1e-12"
)
KNOWN = {(fw, row, "float64"): _TF64 for fw in ("tf", "keras") for row in ROWS if row not in ("softermax", "soft-tanh")}


def _round(a, dtype):
    a = np.asarray(a)
    return a.astype(dtype).astype(np.float64) if a.dtype.kind == "f" else a


# --------------------------------------------------------------------------------- per-framework dtype runners
def _torch(adapter, case, params, inputs, dtype):
    import torch

    tdtype = {"float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    layer = adapter.build(case.kind, case.config, params)
    if hasattr(layer, "to"):
        layer = layer.to(tdtype).eval()
    xs = [torch.as_tensor(np.asarray(x, np.float64)).to(tdtype) for x in inputs]
    with torch.no_grad():
        y = adapter._call(layer, case.kind, xs, case.call) if hasattr(layer, "to") else layer(xs[0])
    assert y.dtype == tdtype, f"torch {case.id}: output dtype {y.dtype}, expected {tdtype}"
    return y.double().numpy()


def _jax_cast(tree, jdtype):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(
        lambda a: a.astype(jdtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree
    )


def _jax(adapter, case, params, inputs, dtype):
    import jax
    import jax.numpy as jnp

    from tests.conformance.adapter_nnx import from_host, to_host

    jdtype = {"float64": jnp.float64, "float16": jnp.float16, "bfloat16": jnp.bfloat16}[dtype]
    if dtype == "float64" and not jax.config.jax_enable_x64:
        pytest.skip("JAX runs with jax_enable_x64 off here (float64 is silently float32)")
    layer = adapter.build(case.kind, case.config, params)
    fn, state = adapter._fn(layer, case.kind, case.call)
    xs = [jnp.asarray(to_host(case.kind, np.asarray(x, np.float64)), jdtype) for x in inputs]
    y = jax.jit(fn)(_jax_cast(state, jdtype), *xs)
    assert y.dtype == jdtype, f"{adapter.name} {case.id}: output dtype {y.dtype}, expected {jdtype}"
    return from_host(case.kind, np.asarray(y.astype(jnp.float32) if dtype != "float64" else y, np.float64))


def _mlx(adapter, case, params, inputs, dtype):
    import mlx.core as mx
    from mlx.utils import tree_map

    from tests.conformance.adapter_mlx import _from_host, _to_host

    if dtype == "float64":
        pytest.skip("MLX has no float64 arithmetic for these ops on this host")
    mdtype = {"float16": mx.float16, "bfloat16": mx.bfloat16}[dtype]
    layer = adapter.build(case.kind, case.config, params)
    if hasattr(layer, "update"):
        layer.update(tree_map(lambda a: a.astype(mdtype), layer.parameters()))
    xs = [mx.array(np.ascontiguousarray(_to_host(case.kind, np.asarray(x, np.float32)))).astype(mdtype) for x in inputs]
    y = adapter._run(layer, case.kind, xs, case.call)
    assert y.dtype == mdtype, f"mlx {case.id}: output dtype {y.dtype}, expected {mdtype}"
    return _from_host(case.kind, np.array(y.astype(mx.float32), dtype=np.float64))


def _tf(adapter, case, params, inputs, dtype):
    import tensorflow as tf

    from nmn.tf.spec import from_spec
    from tests.conformance.adapter_tf import _apply, _from_host, _Squash, _to_host

    tdtype = tf.as_dtype(dtype)
    if case.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
        layer = _Squash(case.kind, case.config)
    else:
        layer = from_spec(case.kind, case.config, params, dtype=tdtype)
    xs = [tf.constant(_to_host(case.kind, np.asarray(x, np.float64)), tdtype) for x in inputs]
    y = _apply(layer, case.kind, xs, case.call)
    assert y.dtype == tdtype, f"tf {case.id}: output dtype {y.dtype}, expected {tdtype}"
    return _from_host(case.kind, tf.cast(y, tf.float64).numpy())


def _keras(adapter, case, params, inputs, dtype):
    import keras
    from keras import ops

    from nmn.keras.spec import from_spec
    from tests.conformance.adapter_keras import _apply, _from_host, _np, _Squash, _to_host

    if dtype == "float64" and keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            pytest.skip("Keras on JAX with jax_enable_x64 off here (float64 is silently float32)")
    if case.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
        layer = _Squash(case.kind, case.config)
    else:
        layer = from_spec(case.kind, case.config, params, dtype=dtype)
    xs = [ops.cast(ops.convert_to_tensor(_to_host(case.kind, np.asarray(x, np.float64))), dtype) for x in inputs]
    y = _apply(layer, case.kind, xs, case.call)
    got = keras.backend.standardize_dtype(y.dtype)
    assert got == dtype, f"{adapter.name} {case.id}: output dtype {got}, expected {dtype}"
    return _from_host(case.kind, _np(ops.cast(y, "float32" if dtype != "float64" else "float64"))).astype(np.float64)


def _runner(adapter):
    name = adapter.name
    if name.endswith("-vmap"):
        return None
    if name == "torch":
        return _torch
    if name in ("nnx", "linen"):
        return _jax
    if name == "mlx":
        return _mlx
    if name == "tf":
        return _tf
    if name.startswith("keras"):
        return _keras
    return None


def _params():
    for adapter in ADAPTERS:
        a = adapter.values[0]
        if a is not None and _runner(a) is None:
            continue
        for dtype in DTYPES:
            for case_id in ROWS:
                marks = list(adapter.marks)
                key = (getattr(a, "name", "").split("-")[0], case_id, dtype)
                if key in KNOWN:
                    marks.append(pytest.mark.xfail(strict=False, reason=KNOWN[key]))
                yield pytest.param(a, CASES[case_id], dtype, marks=marks, id=f"{adapter.id}-{case_id}-{dtype}")


@pytest.mark.parametrize(("adapter", "case", "dtype"), list(_params()))
def test_forward_in_dtype_matches_oracle(adapter, case, dtype):
    ok = adapter.supports(case.kind, case.config)
    if ok is not True:
        pytest.xfail(f"{adapter.name} does not support {case.id}: {ok}")
    np_dtype, tol = DTYPES[dtype]
    params = {k: _round(v, np_dtype) for k, v in case.params.items()}
    inputs = [_round(x, np_dtype) for x in case.inputs]
    name, ins, attrs = case_table.onnx_call(case, params, inputs, dtype=np.float64)
    ins = [_round(x, np_dtype) for x in ins]  # constant tail inputs (epsilon, fixed alpha) as the layer holds them
    expected = np.asarray(reference.REFERENCE[name](*ins, **attrs), np.float64)
    got = _runner(adapter)(adapter, case, params, inputs, dtype)
    assert got.shape == expected.shape, f"{adapter.name} {case.id} {dtype}: shape {got.shape} != {expected.shape}"
    assert np.all(np.isfinite(got)), f"{adapter.name} {case.id} {dtype}: non-finite output"
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(got - expected)))
    assert err <= tol * scale, f"{adapter.name} {case.id} {dtype}: max|diff| {err:.3g} > {tol} x scale {scale:.3g}"


@pytest.mark.parametrize("case_id", ROWS)
def test_onnxruntime_float64_is_float32_accurate(case_id):
    case = CASES[case_id]
    params = {k: np.asarray(v, np.float64) for k, v in case.params.items()}
    inputs = [np.asarray(x, np.float64) if np.asarray(x).dtype.kind == "f" else x for x in case.inputs]
    name, ins, attrs = case_table.onnx_call(case, params, inputs, dtype=np.float64)
    got = np.asarray(onnx_ops.run_function(name, ins, **attrs))
    expected = np.asarray(reference.REFERENCE[name](*ins, **attrs), np.float64)
    assert got.dtype == np.float64, f"{name}: float64 inputs gave a {got.dtype} output"
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    assert float(np.max(np.abs(got - expected))) <= 1e-5 * scale
