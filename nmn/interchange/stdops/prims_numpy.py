"""The primitives namespace every framework supplies to :mod:`nmn.interchange.stdops.semantics`, and numpy's.

:class:`ArrayPrims` implements the primitives on any numpy-like module ``xp`` (numpy, ``jax.numpy``,
``mlx.core``, ``keras.ops``, ``tf.experimental.numpy``); a framework overrides what its module spells
differently and supplies ``conv`` (data ``(N, C, *spatial)``, weight ``(M, C / groups, *kernel)``, explicit
``(lo, hi)`` pads). :data:`NUMPY` runs on numpy and constant-folds nodes whose inputs are all known.

>>> import numpy as np
>>> NUMPY.slice(np.arange(6), [(1, None, 2)])
array([1, 3, 5])
"""

from __future__ import annotations

import itertools

import numpy as np

_NP_UNARY = {"neg": "negative", "logical_not": "logical_not"}


class ArrayPrims:
    """Primitives over a numpy-like namespace ``xp`` (see the module docstring); ``name`` is the loader's name."""

    name = "numpy"

    def __init__(self, xp):
        self.xp = xp

    # -- values
    def t(self, x):
        """A host tensor for a numpy value (identity for host tensors)."""
        return self.asarray(x) if isinstance(x, (np.ndarray, np.generic)) else x

    def asarray(self, x):
        return self.xp.asarray(np.asarray(x))

    def const(self, x):
        """The value as numpy when it is known now (numpy or an eager tensor), else ``None``."""
        try:
            return np.asarray(x)
        except Exception:
            return None

    def shape(self, x) -> tuple:
        return tuple(None if d is None else int(d) for d in x.shape)

    def shape_tensor(self, x):
        return self.xp.asarray(np.asarray(self.shape(x), np.int64))

    def dtype(self, x) -> np.dtype:
        return np.dtype(x.dtype)

    def cast(self, x, dtype):
        return self.t(x).astype(dtype)

    # -- structure
    def reshape(self, x, shape):
        return self.xp.reshape(self.t(x), tuple(shape))

    def transpose(self, x, perm):
        return self.xp.transpose(self.t(x), tuple(perm))

    def expand_dims(self, x, axis):
        return self.xp.expand_dims(self.t(x), axis)

    def squeeze(self, x, axes):
        return self.xp.squeeze(self.t(x), axis=tuple(axes)) if axes else self.t(x)

    def concat(self, xs, axis):
        return self.xp.concatenate([self.t(x) for x in xs], axis=axis)

    def take(self, x, idx, axis):
        return self.xp.take(self.t(x), self.t(idx), axis=axis)

    def where(self, c, a, b):
        return self.xp.where(self.t(c), self.t(a), self.t(b))

    def broadcast_to(self, x, shape):
        return self.xp.broadcast_to(self.t(x), tuple(shape))

    def slice(self, x, spec):
        """``x[start:stop:step, ...]`` with non-negative starts and positive steps (``stop`` may be None)."""
        return self.t(x)[tuple(slice(a, b, c) for a, b, c in spec)]

    def flip(self, x, axes):
        return self.xp.flip(self.t(x), axis=tuple(axes))

    def pad(self, x, widths, value):
        """Constant padding by non-negative ``(lo, hi)`` per axis."""
        return self.xp.pad(self.t(x), [tuple(w) for w in widths], constant_values=value)

    # -- math
    def matmul(self, a, b):
        return self.xp.matmul(self.t(a), self.t(b))

    def einsum(self, eq, *xs):
        return self.xp.einsum(eq, *[self.t(x) for x in xs])

    def reduce(self, kind, x, axes, keepdims):
        return getattr(self.xp, kind)(self.t(x), axis=tuple(axes), keepdims=keepdims)

    def argreduce(self, kind, x, axis, keepdims):
        y = getattr(self.xp, "arg" + kind)(self.t(x), axis=axis)
        y = self.xp.expand_dims(y, axis) if keepdims else y
        return self.cast(y, np.int64)

    def unary(self, name, x):
        x = self.t(x)
        if name == "sigmoid":
            return 1 / (1 + self.xp.exp(-x))
        if name == "erf":
            return self._erf(x)
        return getattr(self.xp, _NP_UNARY.get(name, name))(x)

    def _erf(self, x):
        from math import erf

        return np.vectorize(erf, otypes=[x.dtype])(x) if x.size else x

    def binary(self, name, a, b):
        a, b = self.t(a), self.t(b)
        if name == "floordiv":
            return self.xp.floor_divide(a, b)
        if name == "div":
            return self.xp.divide(a, b)
        if name == "pow":
            return self.xp.power(a, b)
        return getattr(self.xp, {"add": "add", "sub": "subtract", "mul": "multiply"}.get(name, name))(a, b)

    # -- convolution: the reference loop over kernel taps (numpy only; frameworks supply a native conv)
    def conv(self, x, w, strides, dilations, pads, groups):
        x = np.pad(np.asarray(x), [(0, 0), (0, 0)] + [tuple(p) for p in pads])
        w = np.asarray(w)
        n, c = x.shape[:2]
        m, cg, *k = w.shape
        spatial = x.shape[2:]
        outs = [(s - (kk - 1) * d - 1) // st + 1 for s, kk, d, st in zip(spatial, k, dilations, strides)]
        y = np.zeros((n, m, *outs), np.result_type(x, w))
        mg = m // groups
        for offset in itertools.product(*[range(kk) for kk in k]):
            view = x[
                (slice(None), slice(None))
                + tuple(
                    slice(o * d, o * d + (out - 1) * st + 1, st)
                    for o, d, out, st in zip(offset, dilations, outs, strides)
                )
            ]
            for g in range(groups):
                wg = w[(slice(g * mg, (g + 1) * mg), slice(None)) + offset]  # (M/G, C/G)
                y[:, g * mg : (g + 1) * mg] += np.einsum("nc...,mc->nm...", view[:, g * cg : (g + 1) * cg], wg)
        return y


class _NumpyPrims(ArrayPrims):
    name = "numpy"

    def asarray(self, x):
        return np.asarray(x)

    def einsum(self, eq, *xs):
        return _via_float32(lambda *a: np.einsum(eq, *a), xs)

    def matmul(self, a, b):
        return _via_float32(np.matmul, (a, b))


def _via_float32(fn, xs):
    """numpy has no bfloat16 kernels for einsum/matmul: compute in float32, return bfloat16."""
    xs = [np.asarray(x) for x in xs]
    if any(x.dtype.name == "bfloat16" for x in xs):
        return fn(*[x.astype(np.float32) for x in xs]).astype(xs[0].dtype)
    return fn(*xs)


NUMPY = _NumpyPrims(np)
