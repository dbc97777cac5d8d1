"""Squashing functions: ``softermax``, ``softer_sigmoid``, ``soft_tanh`` (float32 math, input dtype out).

>>> import jax.numpy as jnp
>>> softermax(jnp.array([1.0, 1.0]), n=1).tolist()
[0.5, 0.5]
>>> soft_tanh(jnp.array([1.0])).tolist()
[0.0]
"""

from nmn._jax.functional import soft_tanh, softer_sigmoid, softermax

__all__ = ["softermax", "softer_sigmoid", "soft_tanh"]
