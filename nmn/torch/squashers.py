"""Squashing functions (activation alternatives) and their ``nn.Module`` wrappers.

``softermax(x, n, epsilon, dim) = x^n / (epsilon + sum x^n)``; ``softer_sigmoid(x, n) = x^n / (1 + x^n)``;
``soft_tanh(x, n) = (x^n - 1) / (x^n + 1)`` (all for ``x >= 0``).

>>> Softermax(n=2)(torch.tensor([1.0, 1.0])).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.torch.functional import _check_n, soft_tanh, softer_sigmoid, softermax

__all__ = ["softermax", "softer_sigmoid", "soft_tanh", "Softermax", "SofterSigmoid", "SoftTanh"]


class Softermax(nn.Module):
    """Module form of :func:`softermax` (n default 1.0, epsilon 1e-12, dim -1).

    >>> Softermax()(torch.tensor([1.0, 3.0])).tolist()
    [0.25, 0.75]
    """

    def __init__(self, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, dim: int = -1):
        super().__init__()
        self.n, self.epsilon, self.dim = _check_n(n, "Softermax"), float(epsilon), int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softermax(x, self.n, self.epsilon, self.dim)

    def extra_repr(self) -> str:
        return f"n={self.n:g}, epsilon={self.epsilon:g}, dim={self.dim}"


class SofterSigmoid(nn.Module):
    """Module form of :func:`softer_sigmoid` (n default 1.0; ``sharpness`` is its alias).

    >>> SofterSigmoid()(torch.tensor([1.0])).tolist()
    [0.5]
    """

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None):
        super().__init__()
        self.n = _check_n(squash_power(n, sharpness, "SofterSigmoid"), "SofterSigmoid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softer_sigmoid(x, self.n)

    def extra_repr(self) -> str:
        return f"n={self.n:g}"


class SoftTanh(nn.Module):
    """Module form of :func:`soft_tanh` (n default 1.0; ``sharpness`` is its alias).

    >>> SoftTanh()(torch.tensor([1.0])).tolist()
    [0.0]
    """

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None):
        super().__init__()
        self.n = _check_n(squash_power(n, sharpness, "SoftTanh"), "SoftTanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_tanh(x, self.n)

    def extra_repr(self) -> str:
        return f"n={self.n:g}"
