"""Conformance adapter for ``nmn.mlx`` (protocol in tests/conformance/__init__.py).

Inputs arrive in the canonical layout (conv ``N C *S``) and are moved to MLX's channels-last layout and back.
Gradients come from ``mx.grad`` over all of the layer's parameters (frozen ones such as the performer ``proj``
included) and the first input, mapped back to the canonical parameter names and layouts.
"""

from __future__ import annotations

import numpy as np

mx = __import__("mlx.core", fromlist=["core"])  # ImportError -> the driver skips this adapter
from mlx.utils import tree_flatten

import nmn.mlx as nm
from nmn.mlx import soft_tanh, softer_sigmoid, softermax
from nmn.mlx.spec import canonical_to_mlx, from_spec, mlx_to_canonical
from tests.conformance.cases import host_options

_YAT = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")

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

    def build_options(self, kind, config, params, options):
        """The MLX constructor with nmn 0.3's options (mask in MLX's kernel layout), then the raw parameters."""
        c = config
        groups = c.get("groups", 1)
        opts = host_options(kind, options, "mlx", groups)
        yat = {k: c[k] for k in _YAT}
        if kind == "YatNMN":
            layer = nm.YatNMN(
                c["out_features"],
                in_features=c["in_features"],
                spherical=c["spherical"],
                weight_normalized=c["weight_normalized"],
                **yat,
                **opts,
            )
        else:
            geometry = dict(
                in_channels=c["in_channels"],
                strides=tuple(c["strides"]),
                padding=c["padding"],
                dilation_rate=tuple(c["dilations"]),
                groups=groups,
            )
            if kind == "YatConv":
                cls = getattr(nm, f"YatConv{c['rank']}D")
                geometry.update(padding_mode=c["padding_mode"], weight_normalized=c["weight_normalized"])
            else:
                cls = getattr(nm, f"YatConvTranspose{c['rank']}D")
                geometry.update(output_padding=tuple(c["output_padding"]))
            layer = cls(c["out_channels"], tuple(c["kernel_size"]), **geometry, **yat, **opts)
        for name, value in params.items():
            host = canonical_to_mlx(kind, name, np.asarray(value, np.float32), groups)
            key = "kernel" if name == "weight" else name
            assert tuple(layer[key].shape) == host.shape, (name, layer[key].shape, host.shape)
            layer[key] = mx.array(host)
        return layer

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
