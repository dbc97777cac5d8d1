"""Squashing functions ``softermax``, ``softer_sigmoid``, ``soft_tanh`` and their module forms.

The functions run in float32 and return the input's dtype. The modules ``Softermax``, ``SofterSigmoid`` and
``SoftTanh`` (``nnx.Module``, no parameters) take the same keywords as :mod:`nmn.torch`'s module forms (the axis is
``axis``, JAX's word for torch's ``dim``) and call the functions, so each exports to one ``nmn::`` node.

>>> import jax.numpy as jnp
>>> softermax(jnp.array([1.0, 1.0]), n=1).tolist()
[0.5, 0.5]
>>> soft_tanh(jnp.array([1.0])).tolist()
[0.0]
>>> Softermax()(jnp.array([1.0, 3.0])).tolist()
[0.25, 0.75]
"""

from __future__ import annotations

import jax
from flax import nnx
from jax.typing import ArrayLike

from nmn._jax.functional import _check_n, soft_tanh, softer_sigmoid, softermax
from nmn.core.options import SOFTERMAX_EPSILON, squash_power

__all__ = ["softermax", "softer_sigmoid", "soft_tanh", "Softermax", "SofterSigmoid", "SoftTanh"]


class Softermax(nnx.Module):
    """Module form of :func:`softermax`: ``x^n / (epsilon + sum x^n)`` along ``axis``.

    Args:
        n: power, a number > 0 (default 1.0). epsilon: added to the sum (default 1e-12).
        axis: the axis normalised (default -1).

    Example:
        >>> import jax.numpy as jnp
        >>> Softermax(n=2.0)(jnp.array([1.0, 1.0])).tolist()
        [0.5, 0.5]
    """

    def __init__(self, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1):
        self.n, self.epsilon, self.axis = _check_n(n, "Softermax"), float(epsilon), int(axis)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply :func:`softermax` with this module's ``n``, ``epsilon`` and ``axis``."""
        return softermax(x, self.n, self.epsilon, self.axis)


class SofterSigmoid(nnx.Module):
    """Module form of :func:`softer_sigmoid`: ``x^n / (1 + x^n)``; ``sharpness`` is an alias of ``n``.

    Example:
        >>> import jax.numpy as jnp
        >>> SofterSigmoid()(jnp.array([1.0])).tolist()
        [0.5]
    """

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None):
        self.n = _check_n(squash_power(n, sharpness, "SofterSigmoid"), "SofterSigmoid")

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply :func:`softer_sigmoid` with this module's ``n``."""
        return softer_sigmoid(x, self.n)


class SoftTanh(nnx.Module):
    """Module form of :func:`soft_tanh`: ``(x^n - 1) / (x^n + 1)``; ``sharpness`` is an alias of ``n``.

    Example:
        >>> import jax.numpy as jnp
        >>> SoftTanh(sharpness=2.0)(jnp.array([1.0])).tolist()
        [0.0]
    """

    def __init__(self, n: float = 1.0, *, sharpness: float | None = None):
        self.n = _check_n(squash_power(n, sharpness, "SoftTanh"), "SoftTanh")

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply :func:`soft_tanh` with this module's ``n``."""
        return soft_tanh(x, self.n)
