"""NNX glue: the ``F`` namespace, the variable types nmn adds, and the Yat tail parameters of a layer.

``FrozenParam`` holds a kernel excluded from training (``YatNMN(lazy=True)``); ``Buffer`` holds a
non-trainable tensor that is part of the model (the Yat-Performer's random projection), so both travel with
``nnx.state`` / ``nnx.split`` and export to ONNX, but ``nnx.Param`` filters (optimisers, ``nnx.grad``) skip them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nmn._jax.ops import F
from nmn.core.spec import YatSpec

__all__ = ["F", "FrozenParam", "Buffer", "init_tail_params", "tail_of"]


class FrozenParam(nnx.Variable):
    """A parameter that is part of the model but not trained (not an ``nnx.Param``)."""


class Buffer(nnx.Variable):
    """A non-trainable tensor of the model, drawn once at construction (e.g. a random projection)."""


def init_tail_params(layer, opts: YatSpec, n_out: int, param_dtype, bias_init, rngs) -> None:
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` as ``nnx.Param`` where they exist."""
    if opts.has_bias:
        layer.bias = nnx.Param(bias_init(rngs.params(), (n_out,), param_dtype))
    else:
        layer.bias = nnx.data(None)
    layer.alpha = nnx.Param(jnp.ones((1,), param_dtype)) if opts.has_alpha else nnx.data(None)
    if opts.has_epsilon_param:
        layer.epsilon_param = nnx.Param(jnp.full((1,), opts.epsilon_init, param_dtype))
    else:
        layer.epsilon_param = nnx.data(None)


def _value(v):
    return None if v is None else v[...]


def tail_of(layer):
    """``(bias, alpha, eps)`` values for :mod:`nmn.core.yat` from a layer holding ``opts`` and tail params."""
    raw = _value(layer.epsilon_param)
    return layer.opts.terms(_value(layer.bias), _value(layer.alpha), raw, _softplus)


def _softplus(raw):
    return jax.nn.softplus(raw.astype(jnp.float32))
