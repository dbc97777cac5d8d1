"""``nmn::YatEmbedAttend`` -- the embedding's attend (docs/design.md §8).

``Y[..., v] = ALPHA * (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + EPS)`` for ``Q (..., F)`` and ``E (V, F)``:
the ``YatDense`` body with ``W = E`` and a zero bias, no sqrt(d). ``spherical=1`` uses unit ``q``, ``e_v``
(``v / (|v| + 1e-8)``) and the distance ``2 - 2 q.e_v`` as ``YatDense`` does. The lookup itself is a plain
``Gather(E, ids, axis=0)``; it needs no function.
"""

from onnxscript import opset18 as op
from onnxscript import script

from onnx_ops._common import T, nmn
from onnx_ops.dense import YatDense


@script(nmn, default_opset=op)
def YatEmbedAttend(Q: T, E: T, ALPHA: T, EPS: T, spherical: int = 0) -> T:
    zero_bias = op.CastLike(op.Constant(value_floats=[0.0]), Q)
    return YatDense(Q, E, zero_bias, ALPHA, EPS, spherical=spherical, weight_normalized=0)
