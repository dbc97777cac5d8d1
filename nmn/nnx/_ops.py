"""NNX glue: the ``F`` namespace, the variable types nmn adds, and the Yat tail parameters of a layer.

``init_dropconnect``/``dropconnect`` give a layer nmn 0.3's ``use_dropconnect``/``drop_rate`` the way ``nnx.Dropout``
works (a forked ``'dropout'`` rng stream, ``deterministic`` on the constructor and the call, ``model.eval()``).

``FrozenParam`` holds a kernel excluded from training (``YatNMN(lazy=True)``); ``Buffer`` holds a
non-trainable tensor that is part of the model (the Yat-Performer's random projection), so both travel with
``nnx.state`` / ``nnx.split`` and export to ONNX, but ``nnx.Param`` filters (optimisers, ``nnx.grad``) skip them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nmn._jax.ops import F, dropconnect_kernel
from nmn.core.spec import YatSpec, resolve_dropconnect

__all__ = ["F", "FrozenParam", "Buffer", "init_tail_params", "tail_of", "init_dropconnect", "dropconnect"]


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


def init_dropconnect(
    layer: nnx.Module, use_dropconnect: bool, drop_rate: float, deterministic: bool, rngs: nnx.Rngs
) -> None:
    """Resolve nmn 0.3's DropConnect options onto ``layer`` (call after the parameters are drawn).

    Sets ``use_dropconnect``, ``drop_rate`` (as given, so ``repr`` shows them) and ``deterministic`` (what
    ``model.eval()``/``model.train()`` toggle); the rng stream ``dropconnect_rngs`` (forked from ``rngs``'
    ``'dropout'`` stream, as ``nnx.Dropout`` does) exists only when DropConnect is on, so a layer without it has
    the state of one built before DropConnect existed.
    """
    rate = resolve_dropconnect(use_dropconnect, drop_rate, type(layer).__name__)
    layer.use_dropconnect, layer.drop_rate = bool(use_dropconnect), float(drop_rate)
    layer.deterministic = deterministic
    layer.dropconnect_rngs = rngs["dropout"].fork() if rate > 0.0 else nnx.data(None)


def dropconnect(
    layer: nnx.Module,
    kernel: jax.Array,
    deterministic: bool | None,
    rngs: nnx.Rngs | nnx.RngStream | jax.Array | None,
) -> jax.Array:
    """``kernel`` with DropConnect applied: kept entries (Bernoulli ``1 - rate``) scaled by ``1 / (1 - rate)``.

    The identity when the layer's rate is 0 or it is deterministic (the call's ``deterministic``, else the
    layer's). ``rngs`` (a key, stream or ``Rngs``) overrides the layer's stream, as in ``nnx.Dropout``.
    """
    rate = resolve_dropconnect(layer.use_dropconnect, layer.drop_rate, type(layer).__name__)
    off = layer.deterministic if deterministic is None else deterministic
    if rate == 0.0 or off:
        return kernel
    source = layer.dropconnect_rngs if rngs is None else rngs
    if isinstance(source, nnx.Rngs):
        key = source["dropout"]()
    elif isinstance(source, nnx.RngStream):
        key = source()
    else:
        key = source
    return dropconnect_kernel(key, kernel, rate)
