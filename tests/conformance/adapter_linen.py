"""Conformance adapter for Flax Linen (protocol in tests/conformance/__init__.py).

``linen`` runs ``module.apply`` under ``jax.jit``; ``linen-vmap`` also maps it with ``jax.vmap`` over an extra
leading batch axis. Both run with ``jax.numpy_dtype_promotion('strict')``. A built layer is
``(module, variables)``.
"""

from __future__ import annotations

import nmn.linen as nmn_linen
from nmn._jax.random_features import param_table
from nmn.linen.spec import find, from_spec, layer_config
from tests.conformance.adapter_nnx import SQUASHERS, JaxAdapter, squash
from tests.conformance.cases import host_options


class LinenAdapter(JaxAdapter):
    def build(self, kind, config, params):
        if kind in SQUASHERS:
            return squash(kind, config, nmn_linen)
        return from_spec(kind, config, params)

    def build_options(self, kind, config, params, options):
        """``from_spec`` with nmn 0.3's options as module fields (mask in Flax's layout), raw params."""
        return from_spec(kind, config, params, **host_options(kind, options, "linen", config.get("groups", 1)))

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

    def _param_grads(self, layer, g_vars):
        module, variables = layer
        for name, path, to_c, _ in param_table(*layer_config(module, variables)):
            yield name, to_c, find(g_vars, path)[1]


ADAPTERS = [LinenAdapter("linen", vmap=False), LinenAdapter("linen-vmap", vmap=True)]
ADAPTER = ADAPTERS[0]
