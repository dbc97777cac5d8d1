"""Squashers (docs/design.md §9): ``Softermax``, ``SofterSigmoid``, ``SoftTanh``.

* ``Softermax(x) = x^n / (epsilon + sum_axis x^n)``
* ``SofterSigmoid(x) = x^n / (1 + x^n)``
* ``SoftTanh(x) = (x^n - 1) / (x^n + 1)``

Intended for ``x >= 0`` (a negative x with non-integer n gives NaN, as ``Pow`` does). ``n > 0`` is checked by
the layers, not here. Arithmetic runs in float32; the result is cast back to X's type.
"""

from onnxscript import FLOAT, script
from onnxscript import opset18 as op

from onnx_ops._common import T, nmn


@script(nmn, default_opset=op)
def Softermax(X: T, n: float = 1.0, epsilon: float = 1e-12, axis: int = -1) -> T:
    xn = op.Pow(op.Cast(X, to=FLOAT.dtype), op.Constant(value_float=n))
    axes = op.Reshape(op.Constant(value_int=axis), op.Constant(value_ints=[1]))
    y = op.Div(xn, op.Add(op.ReduceSum(xn, axes, keepdims=1), op.Constant(value_float=epsilon)))
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def SofterSigmoid(X: T, n: float = 1.0) -> T:
    xn = op.Pow(op.Cast(X, to=FLOAT.dtype), op.Constant(value_float=n))
    y = op.Div(xn, op.Add(xn, op.Constant(value_float=1.0)))
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def SoftTanh(X: T, n: float = 1.0) -> T:
    xn = op.Pow(op.Cast(X, to=FLOAT.dtype), op.Constant(value_float=n))
    one = op.Constant(value_float=1.0)
    y = op.Div(op.Sub(xn, one), op.Add(xn, one))
    return op.CastLike(y, X)
