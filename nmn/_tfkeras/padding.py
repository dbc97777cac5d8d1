"""Explicit padding along one axis with the torch padding modes, for ``nmn.keras`` and ``nmn.tf`` alike.

The caller passes its framework's ``pad(x, widths)`` (zero padding, ``widths`` one ``(lo, hi)`` pair per axis)
and ``concat(xs, axis)``; slicing is numpy-style on either host.

>>> import numpy as np
>>> x = np.arange(4.0)
>>> pad_axis(x, 0, 2, 1, "reflect", pad=np.pad, concat=lambda xs, axis: np.concatenate(xs, axis))
array([2., 1., 0., 1., 2., 3., 2.])
"""

from __future__ import annotations

from nmn.core.conv import PADDING_MODES, native_same


def take(x, axis, start, stop):
    """``x[..., start:stop, ...]`` along ``axis``."""
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def pad_axis(x, axis, lo, hi, mode="zeros", *, pad, concat):
    """Pad (or, for negative amounts, crop) ``x`` along ``axis`` with one of the torch padding modes."""
    if lo < 0:
        x = take(x, axis, -lo, None)
        lo = 0
    if hi < 0:
        x = take(x, axis, None, x.shape[axis] + hi)
        hi = 0
    if lo == 0 and hi == 0:
        return x
    if mode == "zeros":
        widths = [(0, 0)] * len(x.shape)
        widths[axis] = (lo, hi)
        return pad(x, widths)
    n = x.shape[axis]
    if mode == "reflect":
        left = [take(x, axis, i, i + 1) for i in range(lo, 0, -1)]
        right = [take(x, axis, n - 1 - i, n - i) for i in range(1, hi + 1)]
    elif mode == "replicate":
        left = [take(x, axis, 0, 1)] * lo
        right = [take(x, axis, n - 1, n)] * hi
    elif mode == "circular":
        left = [take(x, axis, n - lo, n)] if lo else []
        right = [take(x, axis, 0, hi)] if hi else []
    else:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, got {mode!r}")
    return concat([*left, x, *right], axis=axis)


def pad_for_conv(x, pads, kernel, strides, dilations, mode="zeros", *, pad, concat):
    """``(x, same, pad_energy)`` for a channels-last conv with explicit ``pads`` (``(lo, hi)`` per spatial axis).

    Where the pads are what a native ``'same'`` conv pads by itself (:func:`nmn.core.conv.native_same`), ``x``
    comes back as it is, ``same`` is True and ``pad_energy`` zero-pads the small ``(N, *S, groups)`` channel
    energy for :func:`nmn.core.conv.patch_energy`; otherwise ``x`` is padded axis by axis with ``mode``,
    ``same`` is False and ``pad_energy`` None.

    >>> import numpy as np
    >>> x, same, pad_energy = pad_for_conv(np.ones((1, 4, 1)), [(1, 1)], (3,), (1,), (1,), pad=np.pad, concat=None)
    >>> x.shape, same, pad_energy(np.ones((1, 4, 1))).shape
    ((1, 4, 1), True, (1, 6, 1))
    >>> pad_for_conv(np.ones((1, 4, 1)), [(2, 0)], (3,), (1,), (1,), pad=np.pad, concat=None)[0].shape
    (1, 6, 1)
    """
    if native_same(pads, x.shape[1:-1], kernel, strides, dilations, mode):

        def pad_energy(xs):
            return pad(xs, [(0, 0), *[tuple(p) for p in pads], (0, 0)])

        return x, True, pad_energy
    for i, (lo, hi) in enumerate(pads):
        x = pad_axis(x, 1 + i, lo, hi, mode, pad=pad, concat=concat)
    return x, False, None
