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

__all__ = [
    "F",
    "FrozenParam",
    "Buffer",
    "init_tail_params",
    "tail_of",
    "init_dropconnect",
    "dropconnect",
    "check_flax_contraction",
    "check_initializer",
    "yat_dense_contract",
]


class FrozenParam(nnx.Variable):
    """A parameter that is part of the model but not trained (not an ``nnx.Param``)."""


class Buffer(nnx.Variable):
    """A non-trainable tensor of the model, drawn once at construction (e.g. a random projection)."""


def init_tail_params(layer, opts: YatSpec, n_out: int, param_dtype, bias_init, rngs, alpha_init=None) -> None:
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` as ``nnx.Param`` where they exist.

    ``alpha_init`` (nmn 0.3's, a Flax initializer ``(key, shape, dtype)``) draws ``alpha`` from the ``params``
    stream; None keeps the default (ones, drawing no key, so the other parameters are unchanged).
    """
    if opts.has_bias:
        layer.bias = nnx.Param(bias_init(rngs.params(), (n_out,), param_dtype))
    else:
        layer.bias = nnx.data(None)
    if not opts.has_alpha:
        layer.alpha = nnx.data(None)
    elif alpha_init is None:
        layer.alpha = nnx.Param(jnp.ones((1,), param_dtype))
    else:
        layer.alpha = nnx.Param(jnp.asarray(alpha_init(rngs.params(), (1,), param_dtype), param_dtype))
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


def check_initializer(init, keyword: str, layer: str):
    """``init`` if it is None or callable; a ``TypeError`` naming the layer and the keyword otherwise."""
    if init is not None and not callable(init):
        raise TypeError(
            f"{layer}: {keyword} must be a Flax initializer (key, shape, dtype) -> array, e.g. "
            f"nnx.initializers.constant(2.0), or None; got {init!r}"
        )
    return init


def check_flax_contraction(layer: str, dot_general=None, dot_general_cls=None, compute_mode="fp32", distance_floor=0.0):
    """Refuse (``ValueError`` with the reason of :data:`nmn.core.names.REFUSED_VALUES`) nmn 0.3's numerics
    keywords at values the layer's ONNX function does not compute: a ``dot_general`` other than
    ``lax.dot_general``, any ``dot_general_cls``, ``compute_mode`` other than ``'fp32'``, a ``distance_floor``
    other than 0."""
    from jax import lax

    from nmn.core.layer_options import check_choice, refuse_value

    refuse_value(layer, "dot_general", dot_general, (None, lax.dot_general))
    refuse_value(layer, "dot_general_cls", dot_general_cls, (None,))
    check_choice(layer, "compute_mode", compute_mode, ("fp32", "mixed", "bf16"))
    refuse_value(layer, "compute_mode", compute_mode, ("fp32",))
    if isinstance(distance_floor, bool) or not isinstance(distance_floor, (int, float)):
        raise TypeError(f"{layer}: distance_floor must be a number, got {distance_floor!r}")
    refuse_value(layer, "distance_floor", float(distance_floor), (0.0,))


def yat_dense_contract(
    x, kernel, bias, alpha, eps, *, spherical, weight_normalized, dtype, precision=None, promote_dtype=None
) -> jax.Array:
    """:func:`nmn._jax.functional.yat_dense` with Flax's ``precision`` (given to the ``x @ kernel`` contraction,
    ``lax.dot_general(..., precision=precision)``) and ``promote_dtype`` (applied to ``(x, kernel, bias, alpha)``
    with ``dtype=`` first, as Flax's ``Linear`` does); both None: the functional itself."""
    from nmn._jax import functional

    if promote_dtype is not None:
        x, kernel, bias, alpha = promote_dtype((x, kernel, bias, alpha), dtype=dtype)
    if precision is None:
        return functional.yat_dense(
            x, kernel, bias, alpha, eps, spherical=spherical, weight_normalized=weight_normalized, dtype=dtype
        )
    from types import SimpleNamespace

    from jax import lax

    from nmn.core import yat as core

    def matmul(a, b):
        return lax.dot_general(a, b, (((a.ndim - 1,), (0,)), ((), ())), precision=precision)

    ops = SimpleNamespace(**{**vars(F), "matmul": matmul})
    out = functional.promoted_dtype(x, kernel, bias, alpha, dtype=dtype)
    f32 = functional._f32
    y = core.yat_dense(
        ops,
        f32(x),
        f32(kernel),
        f32(bias),
        f32(alpha),
        f32(eps),
        spherical=spherical,
        weight_normalized=weight_normalized,
    )
    return y.astype(out)
