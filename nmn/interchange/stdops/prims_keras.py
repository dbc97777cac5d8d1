"""Keras 3 primitives for :mod:`nmn.interchange.stdops` (``keras.ops``, any backend, plus a channels-last conv)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from nmn.interchange.stdops.prims_numpy import ArrayPrims

_NAMES = {
    "neg": "negative",
    "floordiv": "floor_divide",
    "div": "divide",
    "pow": "power",
    "sub": "subtract",
    "mul": "multiply",
}


class KerasPrims(ArrayPrims):
    name = "keras"

    def __init__(self):
        super().__init__(ops)

    def asarray(self, x):
        return ops.convert_to_tensor(np.asarray(x))

    def const(self, x):
        if isinstance(x, (np.ndarray, np.generic)):
            return np.asarray(x)
        if isinstance(x, keras.KerasTensor) or isinstance(x, keras.Variable):
            return None
        try:
            return np.asarray(ops.convert_to_numpy(x))
        except Exception:
            return None

    def shape(self, x):
        dims = tuple(x.shape)  # static sizes; an unknown one is None (or a symbolic value: treated as None)
        return tuple(d if isinstance(d, (int, np.integer)) else None for d in dims)

    def dtype(self, x):
        return np.dtype(keras.backend.standardize_dtype(x.dtype)) if not isinstance(x, np.ndarray) else x.dtype

    def cast(self, x, dtype):
        return ops.cast(self.t(x), np.dtype(dtype).name)

    def squeeze(self, x, axes):
        return ops.squeeze(self.t(x), axis=tuple(axes)) if axes else self.t(x)

    def reduce(self, kind, x, axes, keepdims):
        return getattr(ops, kind)(self.t(x), axis=tuple(axes), keepdims=keepdims)

    def argreduce(self, kind, x, axis, keepdims):
        return ops.cast(getattr(ops, "arg" + kind)(self.t(x), axis=axis, keepdims=keepdims), "int64")

    def unary(self, name, x):
        return getattr(ops, _NAMES.get(name, name))(self.t(x))

    def binary(self, name, a, b):
        return getattr(ops, _NAMES.get(name, name))(self.t(a), self.t(b))

    def conv(self, x, w, strides, dilations, pads, groups):
        x, w = self.t(x), self.t(w)
        rank = len(w.shape) - 2
        h = ops.transpose(x, (0, *range(2, rank + 2), 1))
        h = ops.pad(h, [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)])
        k = ops.transpose(w, (*range(2, rank + 2), 1, 0))
        cg, mg = k.shape[-2], k.shape[-1] // groups
        ys = [
            ops.conv(
                h[..., g * cg : (g + 1) * cg],
                k[..., g * mg : (g + 1) * mg],
                strides=tuple(strides),
                padding="valid",
                dilation_rate=tuple(dilations),
            )
            for g in range(groups)
        ]
        y = ys[0] if groups == 1 else ops.concatenate(ys, axis=-1)
        return ops.transpose(y, (0, rank + 1, *range(1, rank + 1)))


PRIMS = KerasPrims()
