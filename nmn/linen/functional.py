"""Functional Yat ops for Linen users (the same JAX functions ``nmn.nnx`` uses); see :mod:`nmn._jax.functional`.

>>> import jax.numpy as jnp
>>> yat_dense(jnp.ones((1, 2)), jnp.ones((2, 3))).shape
(1, 3)
"""

from nmn._jax.functional import (
    apply_rope,
    performer_attention,
    performer_projection,
    rope_tables,
    yat_attention,
    yat_conv,
    yat_conv_transpose,
    yat_dense,
    yat_embed_attend,
)

__all__ = [
    "yat_dense",
    "yat_conv",
    "yat_conv_transpose",
    "yat_attention",
    "performer_attention",
    "performer_projection",
    "rope_tables",
    "apply_rope",
    "yat_embed_attend",
]
