"""Squashers: smooth, activation-like maps of non-negative inputs, on TensorFlow.

Functional forms (``softermax``, ``softer_sigmoid``, ``soft_tanh``) and module forms (``Softermax``,
``SofterSigmoid``, ``SoftTanh``: ``tf.Module`` s whose ``__call__`` calls the functional form, with the keywords of
``nmn.keras``' and ``nmn.torch``' module forms). Either form exports (``nmn.interchange.export``) to one ``nmn::``
node of the same name.

>>> import tensorflow as tf
>>> [round(float(v), 4) for v in softermax(tf.constant([1.0, 3.0]))]
[0.25, 0.75]
>>> float(SofterSigmoid(sharpness=2.0)(tf.constant(1.0)))
0.5
"""

from __future__ import annotations

import tensorflow as tf

from nmn._tfkeras import squashers
from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.tf._ops import F, TensorLike

__all__ = ["softermax", "softer_sigmoid", "soft_tanh", "Softermax", "SofterSigmoid", "SoftTanh"]


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


class Softermax(tf.Module):
    """Module form of :func:`softermax`: ``x^n / (epsilon + sum x^n)`` along ``axis``.

    Args:
        n: power > 0, default 1. epsilon: default 1e-12. axis: default -1. name: module name.

    >>> import tensorflow as tf
    >>> [round(float(v), 2) for v in Softermax(n=2)(tf.constant([1.0, 1.0]))]
    [0.5, 0.5]
    """

    def __init__(self, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1, *, name: str | None = None):
        super().__init__(name=name)
        self.n = squashers.check_n(n, "Softermax")
        self.epsilon, self.axis = float(epsilon), int(axis)

    def __call__(self, x: TensorLike) -> tf.Tensor:
        return softermax(x, self.n, self.epsilon, self.axis)

    def __repr__(self) -> str:
        return f"Softermax(n={self.n:g}, epsilon={self.epsilon:g}, axis={self.axis})"


class _Pointwise(tf.Module):
    """A pointwise squasher with one power ``n`` (``sharpness`` its alias)."""

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None, name: str | None = None):
        super().__init__(name=name)
        label = type(self).__name__
        self.n = squashers.check_n(squash_power(n, sharpness, label), label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n:g})"


class SofterSigmoid(_Pointwise):
    """Module form of :func:`softer_sigmoid`: ``x^n / (1 + x^n)``.

    Args:
        n: power > 0, default 1. sharpness: alias of ``n``. name: module name.

    >>> import tensorflow as tf
    >>> float(SofterSigmoid()(tf.constant(1.0)))
    0.5
    """

    def __call__(self, x: TensorLike) -> tf.Tensor:
        return softer_sigmoid(x, self.n)


class SoftTanh(_Pointwise):
    """Module form of :func:`soft_tanh`: ``(x^n - 1) / (x^n + 1)``.

    Args:
        n: power > 0, default 1. sharpness: alias of ``n``. name: module name.

    >>> import tensorflow as tf
    >>> float(SoftTanh(n=3)(tf.constant(1.0)))
    0.0
    """

    def __call__(self, x: TensorLike) -> tf.Tensor:
        return soft_tanh(x, self.n)
