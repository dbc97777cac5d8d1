"""Squashers: smooth, activation-like maps of non-negative inputs, on TensorFlow.

>>> import tensorflow as tf
>>> [round(float(v), 4) for v in softermax(tf.constant([1.0, 3.0]))]
[0.25, 0.75]
"""

from __future__ import annotations

import tensorflow as tf

from nmn._tfkeras import squashers
from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.tf._ops import F, TensorLike

__all__ = ["softermax", "softer_sigmoid", "soft_tanh"]


def softermax(x: TensorLike, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1) -> tf.Tensor:
    """``x^n / (epsilon + sum x^n)`` along ``axis``.

    Args:
        x: non-negative tensor. n: power > 0, default 1. epsilon: default 1e-12. axis: default -1.

    >>> import tensorflow as tf
    >>> round(float(softermax(tf.constant([1.0, 1.0]), n=2)[0]), 3)
    0.5
    """
    return squashers.softermax(F, tf.convert_to_tensor(x), n, epsilon, axis)


def softer_sigmoid(x: TensorLike, n: float = 1.0, *, sharpness: float | None = None) -> tf.Tensor:
    """``x^n / (1 + x^n)``: 0 -> 0, 1 -> 1/2.

    Args:
        x: non-negative tensor. n: power > 0, default 1. sharpness: alias of ``n`` (the seed README name).

    >>> import tensorflow as tf
    >>> float(softer_sigmoid(tf.constant(1.0)))
    0.5
    """
    return squashers.softer_sigmoid(F, tf.convert_to_tensor(x), squash_power(n, sharpness, "softer_sigmoid"))


def soft_tanh(x: TensorLike, n: float = 1.0, *, sharpness: float | None = None) -> tf.Tensor:
    """``(x^n - 1) / (x^n + 1)``: 0 -> -1, 1 -> 0.

    Args:
        x: non-negative tensor. n: power > 0, default 1. sharpness: alias of ``n`` (the seed README name).

    >>> import tensorflow as tf
    >>> float(soft_tanh(tf.constant(1.0)))
    0.0
    """
    return squashers.soft_tanh(F, tf.convert_to_tensor(x), squash_power(n, sharpness, "soft_tanh"))
