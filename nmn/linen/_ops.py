"""Linen glue: the ``F`` namespace and the Yat tail parameters created inside a compact ``__call__``.

Collections: trainable arrays live in ``'params'``; a frozen kernel (``YatNMN(lazy=True)``) in ``'frozen'``;
the Yat-Performer's random projection in ``'constants'``; the rotary KV cache in ``'cache'``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from nmn._jax.ops import F, dropconnect_kernel
from nmn.core.spec import YatSpec, resolve_dropconnect
from nmn.nnx._ops import check_flax_contraction, check_initializer, yat_dense_contract

__all__ = [
    "F",
    "tail_params",
    "FROZEN",
    "CONSTANTS",
    "dropconnect",
    "check_flax_contraction",
    "check_initializer",
    "yat_dense_contract",
]

FROZEN = "frozen"
CONSTANTS = "constants"


def tail_params(module: nn.Module, opts: YatSpec, n_out: int):
    """Declare ``bias``, ``alpha``, ``epsilon_param`` (where they exist) and return ``(bias, alpha, eps)``.

    ``alpha`` is drawn by the module's ``alpha_init`` field (nmn 0.3's; a Flax initializer) where it has one that
    is not None, else ones.
    """
    dtype = module.param_dtype
    alpha_init = getattr(module, "alpha_init", None) or nn.initializers.ones
    bias = module.param("bias", module.bias_init, (n_out,), dtype) if opts.has_bias else None
    alpha = module.param("alpha", alpha_init, (1,), dtype) if opts.has_alpha else None
    raw = None
    if opts.has_epsilon_param:
        value = opts.epsilon_init
        raw = module.param("epsilon_param", lambda key, shape, dt: jnp.full(shape, value, dt), (1,), dtype)
    return opts.terms(bias, alpha, raw, lambda e: jax.nn.softplus(e.astype(jnp.float32)))


def check_kernel(module: nn.Module, collection: str, shape: tuple, inputs, what: str) -> None:
    """``ValueError`` naming the layer and both shapes if an existing kernel does not fit ``inputs``."""
    if module.has_variable(collection, "kernel"):
        kernel = module.get_variable(collection, "kernel")
        if tuple(kernel.shape) != tuple(shape):
            raise ValueError(
                f"{type(module).__name__}: expected an input {what} for kernel {tuple(kernel.shape)}, "
                f"got shape {tuple(inputs.shape)}"
            )


def dropconnect(module: nn.Module, kernel: jax.Array, deterministic: bool | None) -> jax.Array:
    """``kernel`` with nmn 0.3's DropConnect: kept entries (Bernoulli ``1 - drop_rate``) scaled by ``1 / (1 - rate)``.

    Applied only when DropConnect is on and ``deterministic`` is False (the call's, else the module's field); the
    mask comes from the ``'dropout'`` rng, so ``apply(..., rngs={'dropout': key})``. Left unset (None), as when
    exporting, the layer is in inference mode: the identity.
    """
    rate = resolve_dropconnect(module.use_dropconnect, module.drop_rate, type(module).__name__)
    det = module.deterministic if deterministic is None else deterministic
    if rate == 0.0 or det is None or det:
        return kernel
    return dropconnect_kernel(module.make_rng("dropout"), kernel, rate)
