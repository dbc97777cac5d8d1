"""Conformance adapter for Flax NNX (protocol in tests/conformance/__init__.py).

Two adapters: ``nnx`` runs every layer under ``jax.jit`` (split/merge), ``nnx-vmap`` additionally maps it with
``jax.vmap`` over an extra leading batch axis (the case input stacked with a scaled copy). Both run with
``jax.numpy_dtype_promotion('strict')``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import nmn.nnx as nmn_nnx
from nmn._jax.random_features import param_table
from nmn.nnx.spec import from_spec
from tests.conformance.cases import host_options

SQUASHERS = ("softermax", "softer_sigmoid", "soft_tanh")
CHANNELS_FIRST = ("YatConv", "YatConvTranspose")


def unsupported_reason(kind, config):
    """True, or why a case cannot be expressed with nmn's Flax layers (shared with the Linen adapter)."""
    if kind in CHANNELS_FIRST and config.get("spherical"):
        return "spherical convolutions are not defined"
    if kind == "RotaryYatAttention" and config.get("use_performer"):
        return "no rotary performer"
    return True


def to_host(kind, x):
    return np.moveaxis(x, 1, -1) if kind in CHANNELS_FIRST else x


def from_host(kind, y):
    return np.moveaxis(y, -1, 1) if kind in CHANNELS_FIRST else y


def squash(kind, config, module=nmn_nnx):
    """The squasher ``kind`` of ``module`` (``nmn.nnx`` or ``nmn.linen``) with the case's options."""
    fn = getattr(module, kind)
    if kind == "softermax":
        return lambda x: fn(x, n=config["n"], epsilon=config["epsilon"], axis=config["axis"])
    return lambda x: fn(x, n=config["n"])


def call_layer(layer, kind, xs, call):
    """Apply a built layer (or squasher) to host-layout inputs ``xs``."""
    if kind in SQUASHERS:
        return layer(xs[0])
    if call.get("method") == "attend":
        return layer.attend(xs[0])
    if kind == "RotaryYatAttention":
        return layer(xs[0], mask=call.get("mask"))
    if kind == "MultiHeadYatAttention":
        return layer(*xs, mask=call.get("mask"))
    return layer(xs[0])


def mapped(fn, vmap, n_inputs):
    """``fn(*xs)`` or its ``jax.vmap`` over a stacked copy (x, 0.5 x), returning the first slice."""
    if not vmap:
        return fn

    def run(*xs):
        stacked = [jnp.stack([x, 0.5 * x]) for x in xs]
        return jax.vmap(fn)(*stacked)[0]

    return run


class JaxAdapter:
    """``forward``/``grads`` of the NNX and Linen adapters: ``_fn`` gives ``(fn(state, *xs), state)`` and
    ``_param_grads`` the host-layout gradient leaf of each canonical parameter."""

    def __init__(self, name, vmap):
        self.name, self.vmap = name, vmap

    def supports(self, kind, config):
        return unsupported_reason(kind, config)

    def forward(self, layer, kind, inputs, call):
        with jax.numpy_dtype_promotion("strict"):
            fn, state = self._fn(layer, kind, call)
            xs = [jnp.asarray(to_host(kind, x)) for x in inputs]
            run = jax.jit(lambda st, *xs: mapped(lambda *a: fn(st, *a), self.vmap, len(xs))(*xs))
            return from_host(kind, np.asarray(run(state, *xs), np.float64))

    def grads(self, layer, kind, inputs, call, cotangent):
        with jax.numpy_dtype_promotion("strict"):
            fn, state = self._fn(layer, kind, call)
            xs = [jnp.asarray(to_host(kind, x)) for x in inputs]
            cot = jnp.asarray(to_host(kind, cotangent), jnp.float32)

            def loss(x0, st):
                out = mapped(lambda *a: fn(st, *a), self.vmap, len(xs))(x0, *xs[1:])
                return jnp.sum(out.astype(jnp.float32) * cot)

            g_x, g_state = jax.jit(jax.grad(loss, argnums=(0, 1)))(xs[0], state)
            out = {"input0": from_host(kind, np.asarray(g_x, np.float64))}
            if state is not None:
                for name, to_c, leaf in self._param_grads(layer, g_state):
                    out[name] = np.asarray(to_c(np.asarray(leaf)), np.float64)
            return out


class NNXAdapter(JaxAdapter):
    def build(self, kind, config, params):
        if kind in SQUASHERS:
            return squash(kind, config)
        return from_spec(kind, config, params, rngs=nnx.Rngs(0))

    def build_options(self, kind, config, params, options):
        """``from_spec`` with nmn 0.3's options as constructor keywords (mask in Flax's layout), raw params."""
        opts = host_options(kind, options, "nnx", config.get("groups", 1))
        return from_spec(kind, config, params, rngs=nnx.Rngs(0), **opts)

    def _fn(self, layer, kind, call):
        if kind in SQUASHERS:
            return lambda state, *xs: call_layer(layer, kind, xs, call), None
        graphdef, state = nnx.split(layer)
        return lambda st, *xs: call_layer(nnx.merge(graphdef, st), kind, xs, call), state

    def _param_grads(self, layer, g_state):
        pure = nnx.to_pure_dict(g_state)
        for name, path, to_c, _ in param_table(*nmn_nnx.spec.layer_config(layer)):
            leaf = pure
            for part in path:
                leaf = leaf[part]
            yield name, to_c, leaf


ADAPTERS = [NNXAdapter("nnx", vmap=False), NNXAdapter("nnx-vmap", vmap=True)]
ADAPTER = ADAPTERS[0]
