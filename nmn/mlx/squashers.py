"""Squashers for non-negative inputs: ``softermax``, ``softer_sigmoid``, ``soft_tanh`` (docs/design.md §9).

Each is a plain function of ``mx.array`` (``mx.compile``-friendly, differentiable with ``mx.grad``).

>>> import mlx.core as mx
>>> softermax(mx.array([1.0, 3.0])).tolist()
[0.25, 0.75]
>>> softer_sigmoid(mx.array([1.0])).tolist(), soft_tanh(mx.array([1.0])).tolist()
([0.5], [0.0])
"""

from __future__ import annotations

from nmn.core import yat
from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.mlx._ops import F

__all__ = ["softermax", "softer_sigmoid", "soft_tanh"]


def _check_n(n, fn):
    if not float(n) > 0:
        raise ValueError(f"{fn}: n must be > 0, got {n!r}")
    return float(n)


def softermax(x, n=1.0, epsilon=SOFTERMAX_EPSILON, axis=-1):
    """``x^n / (epsilon + sum x^n)`` along ``axis``: an L1-style normaliser for non-negative scores.

    Args:
        x: input (intended ``x >= 0``). n: power > 0 (default 1.0). epsilon: floor of the sum (default 1e-12).
        axis: normalised axis (default -1).

    Shape: any -> the same.
    """
    return yat.softermax(F, x, _check_n(n, "softermax"), epsilon, axis)


def softer_sigmoid(x, n=1.0, *, sharpness=None):
    """``x^n / (1 + x^n)``: maps ``[0, inf)`` to ``[0, 1)`` (0 -> 0, 1 -> 1/2). n: power > 0 (default 1.0);
    ``sharpness`` is its alias (the seed README name)."""
    return yat.softer_sigmoid(F, x, _check_n(squash_power(n, sharpness, "softer_sigmoid"), "softer_sigmoid"))


def soft_tanh(x, n=1.0, *, sharpness=None):
    """``(x^n - 1) / (x^n + 1)``: maps ``[0, inf)`` to ``[-1, 1)`` (0 -> -1, 1 -> 0). n: power > 0 (default 1.0);
    ``sharpness`` is its alias (the seed README name)."""
    return yat.soft_tanh(F, x, _check_n(squash_power(n, sharpness, "soft_tanh"), "soft_tanh"))
