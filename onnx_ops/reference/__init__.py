"""An independent numpy oracle for every ``nmn`` function, written naively in float64.

Distances are explicit sums of ``(x - w)^2`` over each patch / pair (never the expanded identity
``|x|^2 + |w|^2 - 2 x.w`` the ONNX functions use), so a bug in the expansion shows. In spherical mode the
distance is *defined* as ``max(2 - 2 s, 0)`` with s the cosine of the (guarded) unit vectors, and the oracle
follows that definition. Signatures mirror the registry: inputs in schema order, attributes as keywords with
the schema defaults (``None`` for conv ints means the ONNX default).

>>> import numpy as np
>>> float(YatDense(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), np.zeros(1), np.ones(1), np.full(1, 0.5))[0, 0])
2.0
"""

from onnx_ops.reference.attention import (
    RotaryEmbedding,
    RotaryYatMultiHeadAttention,
    YatAttention,
    YatMultiHeadAttention,
    YatPerformerFeatures,
    YatPerformerMultiHeadAttention,
)
from onnx_ops.reference.conv import YatConv, YatConvTranspose
from onnx_ops.reference.dense import Softermax, SofterSigmoid, SoftTanh, YatDense, YatEmbedAttend
from onnx_ops.reference.random_features import (
    YatAnchorFeatures,
    YatLinearAttention,
    YatMaclaurinFeatures,
    YatMaclaurinMultiHeadAttention,
    YatRadialFeatures,
    YatRadialMultiHeadAttention,
)

REFERENCE = {
    f.__name__: f
    for f in (
        YatDense,
        YatConv,
        YatConvTranspose,
        YatAttention,
        YatMultiHeadAttention,
        RotaryYatMultiHeadAttention,
        YatPerformerMultiHeadAttention,
        YatEmbedAttend,
        RotaryEmbedding,
        YatPerformerFeatures,
        YatLinearAttention,
        YatMaclaurinFeatures,
        YatRadialFeatures,
        YatAnchorFeatures,
        YatMaclaurinMultiHeadAttention,
        YatRadialMultiHeadAttention,
        Softermax,
        SofterSigmoid,
        SoftTanh,
    )
}

__all__ = sorted(REFERENCE) + ["REFERENCE"]
