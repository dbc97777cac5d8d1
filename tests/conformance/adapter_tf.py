"""Conformance adapter for ``nmn.tf`` (``tf.Module`` layers; gradients with ``tf.GradientTape``)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nmn.tf import soft_tanh, softer_sigmoid, softermax
from nmn.tf.spec import from_spec, to_spec
from tests.conformance.cases import host_options

SQUASHERS = {"softermax": softermax, "softer_sigmoid": softer_sigmoid, "soft_tanh": soft_tanh}
_CONV = ("YatConv", "YatConvTranspose")


def _to_host(kind, x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if kind in _CONV else x


def _from_host(kind, y):
    return np.moveaxis(y, -1, 1) if kind in _CONV else y


class _Squash:
    def __init__(self, kind, config):
        self.kind, self.config = kind, dict(config)
        self.variables = ()

    def __call__(self, x):
        return SQUASHERS[self.kind](x, **self.config)


def _apply(layer, kind, xs, call):
    if kind in SQUASHERS:
        return layer(xs[0])
    if kind == "YatEmbed":
        return layer.attend(xs[0])
    if kind == "MultiHeadYatAttention":
        return layer(xs[0], xs[1] if len(xs) > 1 else None, xs[2] if len(xs) > 2 else None, mask=call.get("mask"))
    if kind == "RotaryYatAttention":
        return layer(xs[0], mask=call.get("mask"))
    return layer(xs[0])


def _raw_spec_params(layer):
    """``to_spec``'s canonical params of the STORED variables (here: gradients), without the layer's
    ``_export_params`` (which would turn a raw-bias gradient into a softplus of it)."""
    hook = layer.__dict__.get("_export_params")
    try:
        layer._export_params = dict  # -> {}: the stored variables, layouts converted
        return to_spec(layer)[2]
    finally:
        del layer._export_params
        if hook is not None:
            layer._export_params = hook


class TFAdapter:
    name = "tf"

    def supports(self, kind, config):
        return True

    def build(self, kind, config, params):
        if kind in SQUASHERS:
            return _Squash(kind, config)
        return from_spec(kind, config, params)

    def build_options(self, kind, config, params, options):
        """``from_spec`` with nmn 0.3's options as constructor keywords (mask in the host layout), raw params."""
        return from_spec(kind, config, params, **host_options(kind, options, "tf", config.get("groups", 1)))

    def forward(self, layer, kind, inputs, call):
        xs = [tf.constant(_to_host(kind, np.asarray(x))) for x in inputs]
        return _from_host(kind, _apply(layer, kind, xs, call).numpy()).astype(np.float64)

    def grads(self, layer, kind, inputs, call, cotangent):
        xs = [tf.constant(_to_host(kind, np.asarray(x, np.float32))) for x in inputs]
        cot = tf.constant(_to_host(kind, np.asarray(cotangent, np.float32)))
        variables = list(layer.variables)
        with tf.GradientTape() as tape:
            tape.watch(xs[0])
            for v in variables:
                tape.watch(v)
            loss = tf.reduce_sum(tf.cast(_apply(layer, kind, xs, call), tf.float32) * cot)
        g = tape.gradient(loss, [xs[0]] + variables)
        out = {"input0": _from_host(kind, g[0].numpy().astype(np.float64))}
        if variables:
            saved = [v.numpy() for v in variables]
            try:
                for v, gv in zip(variables, g[1:]):
                    v.assign(tf.zeros_like(v) if gv is None else tf.convert_to_tensor(gv))
                canonical = _raw_spec_params(layer)
            finally:
                for v, s in zip(variables, saved):
                    v.assign(s)
            out.update({k: np.asarray(v, np.float64) for k, v in canonical.items()})
        return out


ADAPTER = TFAdapter()
