"""Conformance adapter for Flax Linen (protocol in docs/CONTRACT.md).

``linen`` runs ``module.apply`` under ``jax.jit``; ``linen-vmap`` also maps it with ``jax.vmap`` over an extra
leading batch axis. Both run with ``jax.numpy_dtype_promotion('strict')``. A built layer is
``(module, variables)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nmn.linen as nmn_linen
from nmn._jax.layout import param_table
from nmn.linen.spec import find, from_spec, layer_config
from tests.conformance.adapter_nnx import (
    SQUASHERS,
    from_host,
    mapped,
    to_host,
    unsupported_reason,
)


def _squash(kind, config):
    fn = getattr(nmn_linen, kind)
    if kind == "softermax":
        return lambda x: fn(x, n=config["n"], epsilon=config["epsilon"], axis=config["axis"])
    return lambda x: fn(x, n=config["n"])


class LinenAdapter:
    def __init__(self, name, vmap):
        self.name, self.vmap = name, vmap

    def supports(self, kind, config):
        return unsupported_reason(kind, config)

    def build(self, kind, config, params):
        if kind in SQUASHERS:
            return _squash(kind, config)
        return from_spec(kind, config, params)

    def _fn(self, layer, kind, call):
        if kind in SQUASHERS:
            return (lambda variables, *xs: layer(xs[0])), None
        module, variables = layer
        mask = call.get("mask")

        def fn(variables, *xs):
            if call.get("method") == "attend":
                return module.apply(variables, xs[0], method="attend")
            if kind == "RotaryYatAttention":
                return module.apply(variables, xs[0], mask=mask)
            if kind == "MultiHeadYatAttention":
                return module.apply(variables, *xs, mask=mask)
            return module.apply(variables, xs[0])

        return fn, variables

    def forward(self, layer, kind, inputs, call):
        with jax.numpy_dtype_promotion("strict"):
            fn, variables = self._fn(layer, kind, call)
            xs = [jnp.asarray(to_host(kind, x)) for x in inputs]
            run = jax.jit(lambda v, *xs: mapped(lambda *a: fn(v, *a), self.vmap, len(xs))(*xs))
            return from_host(kind, np.asarray(run(variables, *xs), np.float64))

    def grads(self, layer, kind, inputs, call, cotangent):
        with jax.numpy_dtype_promotion("strict"):
            fn, variables = self._fn(layer, kind, call)
            xs = [jnp.asarray(to_host(kind, x)) for x in inputs]
            cot = jnp.asarray(to_host(kind, cotangent), jnp.float32)

            def loss(x0, v):
                out = mapped(lambda *a: fn(v, *a), self.vmap, len(xs))(x0, *xs[1:])
                return jnp.sum(out.astype(jnp.float32) * cot)

            g_x, g_vars = jax.jit(jax.grad(loss, argnums=(0, 1)))(xs[0], variables)
            out = {"input0": from_host(kind, np.asarray(g_x, np.float64))}
            if variables is not None:
                module = layer[0]
                for name, path, to_c, _ in param_table(*layer_config(module, variables)):
                    out[name] = np.asarray(to_c(np.asarray(find(g_vars, path)[1])), np.float64)
            return out


ADAPTERS = [LinenAdapter("linen", vmap=False), LinenAdapter("linen-vmap", vmap=True)]
ADAPTER = ADAPTERS[0]
