"""Keras 3 primitives for :mod:`nmn.interchange.stdops` (``keras.ops``, any backend, plus a channels-last conv).

Keras on the torch backend has no ``uint64`` tensor (its dtype table stops at ``uint32``, kept as ``int64``):
there ``uint64`` values are computed as ``int64``, the way :mod:`~nmn.interchange.torch_io.ops` computes
torch's wide unsigned types (the same bits for add, sub, mul; values from 2**63 up compare as negative);
:func:`host_dtype` names the dtype a value is held in.

>>> host_dtype("float32")
'float32'
"""

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


# dtypes the current backend cannot hold -> the dtype they are computed in
HOST_DTYPES = {"uint64": "int64"} if keras.backend.backend() == "torch" else {}


def host_dtype(dtype) -> str:
    """The dtype name Keras holds a ``dtype`` value in on the current backend (see the module docstring)."""
    name = np.dtype(dtype).name
    return HOST_DTYPES.get(name, name)


def to_host(x: np.ndarray) -> np.ndarray:
    """A numpy value in a dtype the current backend holds (``uint64`` as ``int64`` on torch)."""
    x = np.asarray(x)
    return x.astype(HOST_DTYPES[x.dtype.name]) if x.dtype.name in HOST_DTYPES else x


class KerasPrims(ArrayPrims):
    name = "keras"

    def __init__(self):
        super().__init__(ops)

    def asarray(self, x):
        return ops.convert_to_tensor(to_host(x))

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
        return ops.cast(self.t(x), host_dtype(dtype))

    def squeeze(self, x, axes):
        return ops.squeeze(self.t(x), axis=tuple(axes)) if axes else self.t(x)

    def reduce(self, kind, x, axes, keepdims):
        return getattr(ops, kind)(self.t(x), axis=tuple(axes), keepdims=keepdims)

    def argreduce(self, kind, x, axis, keepdims):
        return ops.cast(getattr(ops, "arg" + kind)(self.t(x), axis=axis, keepdims=keepdims), "int64")

    def unary(self, name, x):
        return getattr(ops, _NAMES.get(name, name))(self.t(x))

    def binary(self, name, a, b):
        a, b = self.t(a), self.t(b)
        if keras.backend.standardize_dtype(a.dtype) == "uint64" and name not in ("logical_and", "logical_or"):
            # Keras on TensorFlow computes uint64 arithmetic in 32 bits (700000000000 + 1 -> 4215298049):
            # compute in int64 and cast back, as tf_io.ops does for TF's narrow integer types
            y = self.binary(name, ops.cast(a, "int64"), ops.cast(b, "int64"))
            return y if keras.backend.standardize_dtype(y.dtype) == "bool" else ops.cast(y, "uint64")
        return getattr(ops, _NAMES.get(name, name))(a, b)

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
