"""The squashers' argument checks, shared by ``nmn.keras.squashers`` and ``nmn.tf.squashers``.

Each takes the caller's ops namespace ``F`` and an input already converted to its tensor type, checks ``n``
and calls the math of :mod:`nmn.core.yat` once.

>>> check_n(0, "softermax")
Traceback (most recent call last):
...
ValueError: softermax: n must be > 0, got 0
"""

from __future__ import annotations

from nmn.core import yat


def check_n(n, name):
    """``n`` as a float, or a ``ValueError`` naming the squasher if it is not > 0."""
    if not float(n) > 0:
        raise ValueError(f"{name}: n must be > 0, got {n!r}")
    return float(n)


def softermax(F, x, n, epsilon, axis):
    """``x^n / (epsilon + sum x^n)`` along ``axis``."""
    return yat.softermax(F, x, check_n(n, "softermax"), float(epsilon), axis)


def softer_sigmoid(F, x, n):
    """``x^n / (1 + x^n)``."""
    return yat.softer_sigmoid(F, x, check_n(n, "softer_sigmoid"))


def soft_tanh(F, x, n):
    """``(x^n - 1) / (x^n + 1)``."""
    return yat.soft_tanh(F, x, check_n(n, "soft_tanh"))
