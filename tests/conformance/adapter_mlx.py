"""Conformance adapter for ``nmn.mlx`` (protocol in tests/conformance/__init__.py).

Inputs arrive in the canonical layout (conv ``N C *S``) and are moved to MLX's channels-last layout and back.
Gradients come from ``mx.grad`` over all of the layer's parameters (frozen ones such as the performer ``proj``
included) and the first input, mapped back to the canonical parameter names and layouts.
"""

from __future__ import annotations

import numpy as np

mx = __import__("mlx.core", fromlist=["core"])  # ImportError -> the driver skips this adapter
from mlx.utils import tree_flatten

from nmn.mlx import soft_tanh, softer_sigmoid, softermax
from nmn.mlx.spec import from_spec, mlx_to_canonical

_SQUASH = {"softermax": softermax, "softer_sigmoid": softer_sigmoid, "soft_tanh": soft_tanh}
_ATTN = {"query_proj": "q", "key_proj": "k", "value_proj": "v", "out_proj": "out"}


def _to_host(kind, x):
    return np.moveaxis(x, 1, -1) if kind in ("YatConv", "YatConvTranspose") else x


def _from_host(kind, y):
    return np.moveaxis(y, -1, 1) if kind in ("YatConv", "YatConvTranspose") else y


class _Squash:
    def __init__(self, kind, config):
        fn = _SQUASH[kind]
        cfg = dict(config)
        self.fn = lambda x: fn(x, **cfg)


class MLXAdapter:
    name = "mlx"

    def supports(self, kind, config):
        return True

    def build(self, kind, config, params):
        if kind in _SQUASH:
            return _Squash(kind, config)
        return from_spec(kind, config, params)

    def _run(self, layer, kind, xs, call):
        if kind in _SQUASH:
            return layer.fn(xs[0])
        if kind == "YatEmbed":
            return layer.attend(xs[0]) if call.get("method", "attend") == "attend" else layer(xs[0])
        if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
            mask = call.get("mask")
            return layer(*xs, mask=None if mask is None else mx.array(mask))
        return layer(xs[0])

    def _inputs(self, kind, inputs):
        return [mx.array(np.ascontiguousarray(_to_host(kind, np.asarray(x, np.float32)))) for x in inputs]

    def forward(self, layer, kind, inputs, call):
        y = self._run(layer, kind, self._inputs(kind, inputs), call)
        return _from_host(kind, np.array(y.astype(mx.float32), dtype=np.float64))

    def grads(self, layer, kind, inputs, call, cotangent):
        xs = self._inputs(kind, inputs)
        cot = mx.array(np.ascontiguousarray(_to_host(kind, np.asarray(cotangent, np.float32))))
        if kind in _SQUASH:
            gx = mx.grad(lambda x: mx.sum(layer.fn(x) * cot))(xs[0])
            return {"input0": _from_host(kind, np.array(gx))}

        def loss(params, x0):
            layer.update(params)
            return mx.sum(self._run(layer, kind, [x0, *xs[1:]], call) * cot)

        g_params, g_x = mx.grad(loss, argnums=(0, 1))(layer.parameters(), xs[0])
        out = {"input0": _from_host(kind, np.array(g_x))}
        groups = getattr(layer, "groups", 1)
        for path, g in tree_flatten(g_params):
            g = np.array(g)
            head, _, leaf = path.rpartition(".")
            if head in _ATTN:
                out[f"{_ATTN[head]}_{leaf}"] = g
            elif path == "kernel":
                out["weight"] = mlx_to_canonical(kind, "weight", g, groups)
            else:
                out[path] = g
        return out


ADAPTER = MLXAdapter()
