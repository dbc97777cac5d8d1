"""MLX primitives for :mod:`nmn.interchange.stdops` (``mlx.core`` plus a channels-last native conv)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from nmn.interchange.stdops.prims_numpy import ArrayPrims
from nmn.mlx.functional import _conv as grouped_conv

_MX_NAMES = {
    "neg": "negative",
    "floordiv": "floor_divide",
    "div": "divide",
    "pow": "power",
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
}


def _mx_dtype(dtype):
    return getattr(mx, np.dtype(dtype).name)


class MlxPrims(ArrayPrims):
    name = "mlx"

    def __init__(self):
        super().__init__(mx)

    def asarray(self, x):
        x = np.asarray(x)
        if x.dtype.name == "bfloat16":
            return mx.array(x.astype(np.float32)).astype(mx.bfloat16)
        return mx.array(x)

    def const(self, x):
        if isinstance(x, mx.array):
            return np.array(x.astype(mx.float32)) if x.dtype == mx.bfloat16 else np.array(x)
        return np.asarray(x)

    def dtype(self, x):
        if isinstance(x, mx.array):
            name = str(x.dtype).rsplit(".", 1)[-1]
            if name == "bfloat16":
                import ml_dtypes

                return np.dtype(ml_dtypes.bfloat16)
            return np.dtype(name)
        return np.dtype(x.dtype)

    def cast(self, x, dtype):
        return self.t(x).astype(_mx_dtype(dtype))

    def squeeze(self, x, axes):
        return mx.squeeze(self.t(x), axis=list(axes)) if axes else self.t(x)

    def take(self, x, idx, axis):
        return mx.take(self.t(x), self.t(idx), axis=axis)

    def flip(self, x, axes):
        return self.t(x)[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim))]

    def pad(self, x, widths, value):
        return mx.pad(self.t(x), [tuple(w) for w in widths], constant_values=value)

    def reduce(self, kind, x, axes, keepdims):
        return getattr(mx, kind)(self.t(x), axis=list(axes), keepdims=keepdims)

    def argreduce(self, kind, x, axis, keepdims):
        return getattr(mx, "arg" + kind)(self.t(x), axis=axis, keepdims=keepdims).astype(mx.int64)

    def unary(self, name, x):
        return getattr(mx, _MX_NAMES.get(name, name))(self.t(x))

    def binary(self, name, a, b):
        a, b = self.t(a), self.t(b)
        if name == "logical_xor":
            return mx.not_equal(a.astype(mx.bool_), b.astype(mx.bool_))
        return getattr(mx, _MX_NAMES.get(name, name))(a, b)

    def conv(self, x, w, strides, dilations, pads, groups):
        x, w = self.t(x), self.t(w)
        y = grouped_conv(
            mx.moveaxis(x, 1, -1),
            mx.moveaxis(w, 1, -1),
            groups=groups,
            stride=list(strides),
            padding=([p[0] for p in pads], [p[1] for p in pads]),
            kernel_dilation=list(dilations),
        )
        return mx.moveaxis(y, -1, 1)


PRIMS = MlxPrims()
