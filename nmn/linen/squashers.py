"""Squashing functions ``softermax``, ``softer_sigmoid``, ``soft_tanh`` and their module forms.

The functions run in float32 and return the input's dtype. The modules ``Softermax``, ``SofterSigmoid`` and
``SoftTanh`` (``nn.Module``, no variables: ``apply({}, x)``) take the same keywords as :mod:`nmn.torch`'s module
forms (the axis is ``axis``, JAX's word for torch's ``dim``) and call the functions, so each exports to one
``nmn::`` node.

>>> import jax.numpy as jnp
>>> softer_sigmoid(jnp.array([1.0]), n=2.0).tolist()
[0.5]
>>> Softermax().apply({}, jnp.array([1.0, 3.0])).tolist()
[0.25, 0.75]
"""

from __future__ import annotations

import jax
from flax import linen as nn
from jax.typing import ArrayLike

from nmn._jax.functional import _check_n, soft_tanh, softer_sigmoid, softermax
from nmn.core.options import SOFTERMAX_EPSILON, squash_power

__all__ = ["softermax", "softer_sigmoid", "soft_tanh", "Softermax", "SofterSigmoid", "SoftTanh"]


class Softermax(nn.Module):
    """Module form of :func:`softermax`: ``x^n / (epsilon + sum x^n)`` along ``axis``.

    Attributes:
        n: power, a number > 0 (default 1.0). epsilon: added to the sum (default 1e-12).
        axis: the axis normalised (default -1).

    Example:
        >>> import jax.numpy as jnp
        >>> Softermax(n=2.0).apply({}, jnp.array([1.0, 1.0])).tolist()
        [0.5, 0.5]
    """

    n: float = 1.0
    epsilon: float = SOFTERMAX_EPSILON
    axis: int = -1

    def __post_init__(self):
        _check_n(self.n, "Softermax")
        super().__post_init__()

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply :func:`softermax` with this module's ``n``, ``epsilon`` and ``axis``."""
        return softermax(x, _check_n(self.n, "Softermax"), float(self.epsilon), int(self.axis))


class _PowerSquasher(nn.Module):
    """The options of :class:`SofterSigmoid` and :class:`SoftTanh`: ``n`` and its alias ``sharpness``."""

    n: float = 1.0
    sharpness: float | None = None

    def __post_init__(self):
        self.power()
        super().__post_init__()

    def power(self) -> float:
        """The resolved power ``n`` (``sharpness`` when given), checked."""
        return _check_n(squash_power(self.n, self.sharpness, type(self).__name__), type(self).__name__)


class SofterSigmoid(_PowerSquasher):
    """Module form of :func:`softer_sigmoid`: ``x^n / (1 + x^n)``; ``sharpness`` is an alias of ``n``.

    Example:
        >>> import jax.numpy as jnp
        >>> SofterSigmoid().apply({}, jnp.array([1.0])).tolist()
        [0.5]
    """

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply :func:`softer_sigmoid` with this module's power."""
        return softer_sigmoid(x, self.power())


class SoftTanh(_PowerSquasher):
    """Module form of :func:`soft_tanh`: ``(x^n - 1) / (x^n + 1)``; ``sharpness`` is an alias of ``n``.

    Example:
        >>> import jax.numpy as jnp
        >>> SoftTanh(sharpness=2.0).apply({}, jnp.array([1.0])).tolist()
        [0.0]
    """

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply :func:`soft_tanh` with this module's power."""
        return soft_tanh(x, self.power())
