"""Linen glue: the ``F`` namespace and the Yat tail parameters created inside a compact ``__call__``.

Collections: trainable arrays live in ``'params'``; a frozen kernel (``YatNMN(lazy=True)``) in ``'frozen'``;
the Yat-Performer's random projection in ``'constants'``; the rotary KV cache in ``'cache'``.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from nmn._jax.functional import YatOptions, tail_values
from nmn._jax.ops import F
from nmn.core.options import inverse_softplus

__all__ = ["F", "tail_params", "FROZEN", "CONSTANTS"]

FROZEN = "frozen"
CONSTANTS = "constants"


def tail_params(module: nn.Module, opts: YatOptions, n_out: int):
    """Declare ``bias``, ``alpha``, ``epsilon_param`` (where they exist) and return ``(bias, alpha, eps)``."""
    dtype = module.param_dtype
    bias = module.param("bias", module.bias_init, (n_out,), dtype) if opts.bias.mode == "learnable" else None
    alpha = module.param("alpha", nn.initializers.ones, (1,), dtype) if opts.alpha.learnable else None
    raw = None
    if opts.learnable_epsilon:
        value = inverse_softplus(opts.epsilon)
        raw = module.param("epsilon_param", lambda key, shape, dt: jnp.full(shape, value, dt), (1,), dtype)
    return tail_values(opts, bias, alpha, raw)


def check_kernel(module: nn.Module, collection: str, shape: tuple, inputs, what: str) -> None:
    """``ValueError`` naming the layer and both shapes if an existing kernel does not fit ``inputs``."""
    if module.has_variable(collection, "kernel"):
        kernel = module.get_variable(collection, "kernel")
        if tuple(kernel.shape) != tuple(shape):
            raise ValueError(
                f"{type(module).__name__}: expected an input {what} for kernel {tuple(kernel.shape)}, "
                f"got shape {tuple(inputs.shape)}"
            )
