"""Squashers for non-negative inputs: ``softermax``, ``softer_sigmoid``, ``soft_tanh`` (docs/design.md §9), and
their ``mlx.nn.Module`` forms :class:`Softermax`, :class:`SofterSigmoid`, :class:`SoftTanh`.

Each function is a plain function of ``mx.array`` (``mx.compile``-friendly, differentiable with ``mx.grad``); each
module holds its options and calls the function (no parameters). Both forms export to one ``nmn::`` node.

>>> import mlx.core as mx
>>> softermax(mx.array([1.0, 3.0])).tolist()
[0.25, 0.75]
>>> softer_sigmoid(mx.array([1.0])).tolist(), soft_tanh(mx.array([1.0])).tolist()
([0.5], [0.0])
>>> Softermax(n=2.0)(mx.array([1.0, 1.0])).tolist(), SofterSigmoid(sharpness=2.0)(mx.array([1.0])).tolist()
([0.5, 0.5], [0.5])
"""

from __future__ import annotations

from types import ModuleType

from nmn.core import yat
from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.mlx._ops import F, mx, nn

__all__ = ["softermax", "softer_sigmoid", "soft_tanh", "Softermax", "SofterSigmoid", "SoftTanh"]


def _check_n(n: float, fn: str) -> float:
    if not float(n) > 0:
        raise ValueError(f"{fn}: n must be > 0, got {n!r}")
    return float(n)


def softermax(x: mx.array, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1) -> mx.array:
    """``x^n / (epsilon + sum x^n)`` along ``axis``: an L1-style normaliser for non-negative scores.

    Args:
        x: input (intended ``x >= 0``). n: power > 0 (default 1.0). epsilon: floor of the sum (default 1e-12).
        axis: normalised axis (default -1).

    Shape: any -> the same.
    """
    return yat.softermax(F, x, _check_n(n, "softermax"), epsilon, axis)


def softer_sigmoid(x: mx.array, n: float = 1.0, *, sharpness: float | None = None) -> mx.array:
    """``x^n / (1 + x^n)``: maps ``[0, inf)`` to ``[0, 1)`` (0 -> 0, 1 -> 1/2). n: power > 0 (default 1.0);
    ``sharpness`` is its alias (the seed README name)."""
    return yat.softer_sigmoid(F, x, _check_n(squash_power(n, sharpness, "softer_sigmoid"), "softer_sigmoid"))


def soft_tanh(x: mx.array, n: float = 1.0, *, sharpness: float | None = None) -> mx.array:
    """``(x^n - 1) / (x^n + 1)``: maps ``[0, inf)`` to ``[-1, 1)`` (0 -> -1, 1 -> 0). n: power > 0 (default 1.0);
    ``sharpness`` is its alias (the seed README name)."""
    return yat.soft_tanh(F, x, _check_n(squash_power(n, sharpness, "soft_tanh"), "soft_tanh"))


def _package() -> ModuleType:
    # The module forms call the functions through the nmn.mlx namespace at call time: that is where the MLX
    # exporter (nmn.interchange.mlx_io) routes softermax / softer_sigmoid / soft_tanh to one nmn:: node each.
    import nmn.mlx

    return nmn.mlx


class Softermax(nn.Module):
    """Module form of :func:`softermax`: ``x^n / (epsilon + sum x^n)`` along ``axis``.

    Args:
        n: power > 0 (default 1.0). epsilon: floor of the sum (default 1e-12). axis: normalised axis (default -1;
            the ``dim`` of ``nmn.torch.Softermax``, named as MLX names it).

    Shape: any -> the same.

    >>> import mlx.core as mx
    >>> Softermax()(mx.array([1.0, 3.0])).tolist()
    [0.25, 0.75]
    """

    def __init__(self, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1) -> None:
        super().__init__()
        self.n, self.epsilon, self.axis = _check_n(n, "Softermax"), float(epsilon), int(axis)

    def __call__(self, x: mx.array) -> mx.array:
        return _package().softermax(x, self.n, self.epsilon, self.axis)

    def _extra_repr(self) -> str:
        return f"n={self.n:g}, epsilon={self.epsilon:g}, axis={self.axis}"


class SofterSigmoid(nn.Module):
    """Module form of :func:`softer_sigmoid`: ``x^n / (1 + x^n)``.

    Args:
        n: power > 0 (default 1.0); ``sharpness`` is its alias (giving both with different values is an error).

    >>> import mlx.core as mx
    >>> SofterSigmoid()(mx.array([1.0])).tolist()
    [0.5]
    """

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None) -> None:
        super().__init__()
        self.n = _check_n(squash_power(n, sharpness, "SofterSigmoid"), "SofterSigmoid")

    def __call__(self, x: mx.array) -> mx.array:
        return _package().softer_sigmoid(x, self.n)

    def _extra_repr(self) -> str:
        return f"n={self.n:g}"


class SoftTanh(nn.Module):
    """Module form of :func:`soft_tanh`: ``(x^n - 1) / (x^n + 1)``.

    Args:
        n: power > 0 (default 1.0); ``sharpness`` is its alias (giving both with different values is an error).

    >>> import mlx.core as mx
    >>> SoftTanh()(mx.array([1.0])).tolist()
    [0.0]
    """

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None) -> None:
        super().__init__()
        self.n = _check_n(squash_power(n, sharpness, "SoftTanh"), "SoftTanh")

    def __call__(self, x: mx.array) -> mx.array:
        return _package().soft_tanh(x, self.n)

    def _extra_repr(self) -> str:
        return f"n={self.n:g}"
