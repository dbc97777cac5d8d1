"""Squashers: smooth, activation-like maps of non-negative inputs, on ``keras.ops``.

Functional forms (``softermax``, ``softer_sigmoid``, ``soft_tanh``) and layer forms (``Softermax``,
``SofterSigmoid``, ``SoftTanh``, registered as Keras-serializable). A functional form called on a symbolic
``keras.KerasTensor`` (building a functional model) adds the layer form to the graph, so the exporter sees one
layer and writes one ``nmn::`` node (issue 18), not the ``power``/``sum`` operations of its math.

>>> import keras
>>> [round(float(v), 4) for v in softermax(keras.ops.array([1.0, 3.0]))]
[0.25, 0.75]
>>> x = keras.Input((3,))
>>> [type(op).__name__ for op in keras.Model(x, softer_sigmoid(x, sharpness=2.0)).operations]
['InputLayer', 'SofterSigmoid']
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from nmn._tfkeras import squashers
from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.keras._ops import F, Shape, Tensor

__all__ = ["softermax", "softer_sigmoid", "soft_tanh", "Softermax", "SofterSigmoid", "SoftTanh"]


def _symbolic(x) -> bool:
    return isinstance(x, keras.KerasTensor)


def softermax(x: Tensor, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1) -> Tensor:
    """``x^n / (epsilon + sum x^n)`` along ``axis``.

    Args:
        x: non-negative tensor. n: power > 0, default 1. epsilon: default 1e-12. axis: default -1.

    >>> import keras
    >>> round(float(softermax(keras.ops.array([1.0, 1.0]), n=2)[0]), 3)
    0.5
    """
    if _symbolic(x):
        return Softermax(n=n, epsilon=epsilon, axis=axis)(x)
    return squashers.softermax(F, ops.convert_to_tensor(x), n, epsilon, axis)


def softer_sigmoid(x: Tensor, n: float = 1.0, *, sharpness: float | None = None) -> Tensor:
    """``x^n / (1 + x^n)``: 0 -> 0, 1 -> 1/2.

    Args:
        x: non-negative tensor. n: power > 0, default 1. sharpness: alias of ``n`` (the seed README name).

    >>> import keras
    >>> float(softer_sigmoid(keras.ops.array(1.0)))
    0.5
    """
    n = squash_power(n, sharpness, "softer_sigmoid")
    if _symbolic(x):
        return SofterSigmoid(n=n)(x)
    return squashers.softer_sigmoid(F, ops.convert_to_tensor(x), n)


def soft_tanh(x: Tensor, n: float = 1.0, *, sharpness: float | None = None) -> Tensor:
    """``(x^n - 1) / (x^n + 1)``: 0 -> -1, 1 -> 0.

    Args:
        x: non-negative tensor. n: power > 0, default 1. sharpness: alias of ``n`` (the seed README name).

    >>> import keras
    >>> float(soft_tanh(keras.ops.array(1.0)))
    0.0
    """
    n = squash_power(n, sharpness, "soft_tanh")
    if _symbolic(x):
        return SoftTanh(n=n)(x)
    return squashers.soft_tanh(F, ops.convert_to_tensor(x), n)


@keras.saving.register_keras_serializable(package="nmn")
class Softermax(keras.layers.Layer):
    """Layer form of :func:`softermax`: ``x^n / (epsilon + sum x^n)`` along ``axis``.

    Args:
        n: power > 0, default 1. epsilon: default 1e-12. axis: default -1.

    >>> import keras
    >>> [round(float(v), 2) for v in Softermax(n=2)(keras.ops.array([1.0, 1.0]))]
    [0.5, 0.5]
    """

    def __init__(self, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.n = squashers.check_n(n, "Softermax")
        self.epsilon, self.axis = float(epsilon), int(axis)

    def call(self, x: Tensor) -> Tensor:
        return squashers.softermax(F, ops.convert_to_tensor(x), self.n, self.epsilon, self.axis)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n, "epsilon": self.epsilon, "axis": self.axis}


class _Pointwise(keras.layers.Layer):
    _fn = ""

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        label = type(self).__name__
        self.n = squashers.check_n(squash_power(n, sharpness, label), label)

    def call(self, x: Tensor) -> Tensor:
        return getattr(squashers, self._fn)(F, ops.convert_to_tensor(x), self.n)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


@keras.saving.register_keras_serializable(package="nmn")
class SofterSigmoid(_Pointwise):
    """Layer form of :func:`softer_sigmoid`: ``x^n / (1 + x^n)``.

    Args:
        n: power > 0, default 1. sharpness: alias of ``n``.

    >>> import keras
    >>> float(SofterSigmoid(sharpness=2)(keras.ops.array(1.0)))
    0.5
    """

    _fn = "softer_sigmoid"


@keras.saving.register_keras_serializable(package="nmn")
class SoftTanh(_Pointwise):
    """Layer form of :func:`soft_tanh`: ``(x^n - 1) / (x^n + 1)``.

    Args:
        n: power > 0, default 1. sharpness: alias of ``n``.

    >>> import keras
    >>> float(SoftTanh()(keras.ops.array(1.0)))
    0.0
    """

    _fn = "soft_tanh"
