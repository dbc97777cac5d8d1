"""``nmn::YatDense`` -- the Yat dense layer (docs/design.md §2).

``Y[..., o] = ALPHA * (x.w_o + B_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + EPS)`` with ``W`` in ONNX's
``(out, in)`` layout. ``spherical`` replaces x and w_o by ``v / (|v| + 1e-8)`` and the distance by
``2 - 2 x.w``; ``weight_normalized`` normalises each w_o the same way and uses ``|w_o|^2 = 1``.
Arithmetic runs in float32; the result is cast back to the input's type.
"""

from onnxscript import FLOAT, script
from onnxscript import opset18 as op

from onnx_ops._common import T, YatTail, nmn


@script(nmn, default_opset=op)
def YatDense(X: T, W: T, B: T, ALPHA: T, EPS: T, spherical: int = 0, weight_normalized: int = 0) -> T:
    xf = op.Cast(X, to=FLOAT.dtype)
    wf = op.Cast(W, to=FLOAT.dtype)
    last = op.Constant(value_ints=[-1])
    guard = op.Constant(value_float=1e-8)
    w_unit = op.Div(wf, op.Add(op.Sqrt(op.ReduceSumSquare(wf, last, keepdims=1)), guard))
    x_unit = op.Div(xf, op.Add(op.Sqrt(op.ReduceSumSquare(xf, last, keepdims=1)), guard))
    use_unit_w = op.Cast(op.Constant(value_int=spherical), to=1) + op.Cast(
        op.Constant(value_int=weight_normalized), to=1
    )
    wf = op.Where(op.Greater(use_unit_w, op.Constant(value_float=0.0)), w_unit, wf)
    is_sph = op.Cast(op.Constant(value_int=spherical), to=9)
    xf = op.Where(is_sph, x_unit, xf)
    dot = op.MatMul(xf, op.Transpose(wf, perm=[1, 0]))
    xx = op.ReduceSumSquare(xf, last, keepdims=1)
    ww = op.ReduceSumSquare(wf, last, keepdims=0)
    one = op.Constant(value_float=1.0)
    two = op.Constant(value_float=2.0)
    ww = op.Where(op.Cast(op.Constant(value_int=weight_normalized), to=9), one, ww)
    dist_euclid = op.Sub(op.Add(xx, ww), op.Mul(two, dot))
    dist_sphere = op.Sub(two, op.Mul(two, dot))
    dist = op.Where(is_sph, dist_sphere, dist_euclid)
    y = YatTail(dot, dist, op.Cast(B, to=FLOAT.dtype), op.Cast(ALPHA, to=FLOAT.dtype), op.Cast(EPS, to=FLOAT.dtype))
    return op.CastLike(y, X)
