"""TensorFlow primitives for :mod:`nmn.interchange.stdops` (``tf.experimental.numpy`` plus a native conv)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from nmn.interchange.stdops.prims_numpy import ArrayPrims
from nmn.tf._ops import conv as channels_last_conv

_NARROW = ("uint16", "uint32", "uint64", "int8", "int16", "uint8")


class TfPrims(ArrayPrims):
    name = "tf"

    def __init__(self):
        super().__init__(tnp)

    def asarray(self, x):
        return tf.constant(np.asarray(x))

    def const(self, x):
        if isinstance(x, tf.Variable):
            return None
        if isinstance(x, (np.ndarray, np.generic)):
            return np.asarray(x)
        return tf.get_static_value(x)

    def shape(self, x):
        return tuple(x.shape.as_list()) if isinstance(x, (tf.Tensor, tf.Variable)) else tuple(x.shape)

    def shape_tensor(self, x):
        return tf.shape(x, out_type=tf.int64)

    def dtype(self, x):
        return np.dtype(x.dtype.as_numpy_dtype) if isinstance(x, (tf.Tensor, tf.Variable)) else np.dtype(x.dtype)

    def cast(self, x, dtype):
        return tf.cast(self.t(x), tf.as_dtype(np.dtype(dtype)))

    def flip(self, x, axes):
        return tf.reverse(self.t(x), axis=list(axes))

    def take(self, x, idx, axis):
        return tf.gather(self.t(x), self.t(idx), axis=axis)

    def slice(self, x, spec):
        return tf.convert_to_tensor(self.t(x))[tuple(slice(a, b, c) for a, b, c in spec)]

    def pad(self, x, widths, value):
        return tf.pad(self.t(x), [list(w) for w in widths], constant_values=tf.cast(value, self.t(x).dtype))

    def reduce(self, kind, x, axes, keepdims):
        x = tf.convert_to_tensor(self.t(x))
        if x.dtype == tf.bool and kind in ("max", "min"):  # TF's Max/Min have no bool kernel: any / all
            return (tf.reduce_any if kind == "max" else tf.reduce_all)(x, axis=list(axes), keepdims=keepdims)
        fn = {
            "sum": tf.reduce_sum,
            "mean": tf.reduce_mean,
            "max": tf.reduce_max,
            "min": tf.reduce_min,
            "prod": tf.reduce_prod,
        }[kind]
        return fn(self.t(x), axis=list(axes), keepdims=keepdims)

    def argreduce(self, kind, x, axis, keepdims):
        y = (tf.argmax if kind == "max" else tf.argmin)(self.t(x), axis=axis, output_type=tf.int64)
        return tf.expand_dims(y, axis) if keepdims else y

    def unary(self, name, x):
        x = self.t(x)
        fn = {
            "erf": tf.math.erf,
            "sigmoid": tf.sigmoid,
            "neg": tf.negative,
            "abs": tf.abs,
            "exp": tf.exp,
            "log": tf.math.log,
            "sqrt": tf.sqrt,
            "tanh": tf.tanh,
            "floor": tf.floor,
            "ceil": tf.math.ceil,
            "sign": tf.sign,
            "sin": tf.sin,
            "cos": tf.cos,
            "logical_not": tf.logical_not,
            "round": tf.math.round,
        }[name]
        return fn(x)

    def binary(self, name, a, b):
        a, b = tf.convert_to_tensor(self.t(a)), tf.convert_to_tensor(self.t(b))
        if a.dtype.name in _NARROW and name not in ("logical_and", "logical_or", "logical_xor"):
            y = self.binary(name, tf.cast(a, tf.int64), tf.cast(b, tf.int64))  # TF lacks narrow-int kernels
            return y if y.dtype == tf.bool else tf.cast(y, a.dtype)
        fn = {
            "add": tf.add,
            "sub": tf.subtract,
            "mul": tf.multiply,
            "div": tf.divide,
            "maximum": tf.maximum,
            "minimum": tf.minimum,
            "pow": tf.pow,
            "equal": tf.equal,
            "not_equal": tf.not_equal,
            "less": tf.less,
            "greater": tf.greater,
            "less_equal": tf.less_equal,
            "greater_equal": tf.greater_equal,
            "logical_and": tf.logical_and,
            "logical_or": tf.logical_or,
            "logical_xor": tf.math.logical_xor,
            "floordiv": tf.math.floordiv,
        }[name]
        return fn(a, b)

    def matmul(self, a, b):
        return tnp.matmul(self.t(a), self.t(b))

    def conv(self, x, w, strides, dilations, pads, groups):
        x, w = self.t(x), self.t(w)
        rank = len(w.shape) - 2
        h = tf.transpose(x, (0, *range(2, rank + 2), 1))
        h = tf.pad(h, [[0, 0]] + [list(p) for p in pads] + [[0, 0]])
        k = tf.transpose(w, (*range(2, rank + 2), 1, 0))
        y = channels_last_conv(h, k, strides, dilations, groups)
        return tf.transpose(y, (0, rank + 1, *range(1, rank + 1)))


PRIMS = TfPrims()
