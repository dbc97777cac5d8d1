"""Squashing functions: ``softermax``, ``softer_sigmoid``, ``soft_tanh`` (float32 math, input dtype out).

>>> import jax.numpy as jnp
>>> softermax(jnp.array([1.0, 3.0]), n=1).round(3).tolist()
[0.25, 0.75]
>>> soft_tanh(jnp.array([1.0])).tolist()
[0.0]
"""

from nmn._jax.functional import soft_tanh, softer_sigmoid, softermax

__all__ = ["softermax", "softer_sigmoid", "soft_tanh"]
