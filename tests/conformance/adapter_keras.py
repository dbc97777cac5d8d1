"""Conformance adapter for ``nmn.keras`` on the Keras backend of this process (``keras-<backend>``).

A Keras backend is fixed per process, so this module registers the adapter of the current ``KERAS_BACKEND``
only; ``tests/keras/test_backends.py`` runs the conformance table once more in a subprocess for each of the
other two backends (``KERAS_BACKEND=jax`` / ``torch`` / ``tensorflow``).
"""

from __future__ import annotations

import numpy as np

keras = __import__("keras")
from keras import ops

from nmn.keras import soft_tanh, softer_sigmoid, softermax
from nmn.keras.spec import from_spec, to_spec
from tests.conformance.cases import host_options

BACKEND = keras.backend.backend()
SQUASHERS = {"softermax": softermax, "softer_sigmoid": softer_sigmoid, "soft_tanh": soft_tanh}


def _to_host(kind, x):
    """Canonical ``N C *S`` -> channels-last for conv kinds."""
    if kind in ("YatConv", "YatConvTranspose"):
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x


def _from_host(kind, y):
    if kind in ("YatConv", "YatConvTranspose"):
        return np.moveaxis(y, -1, 1)
    return y


class _Squash:
    def __init__(self, kind, config):
        self.kind, self.config = kind, dict(config)
        self.weights = []

    def __call__(self, x):
        return SQUASHERS[self.kind](x, **self.config)


def _apply(layer, kind, xs, call):
    """Run the layer on host tensors ``xs`` (a list)."""
    if kind in SQUASHERS:
        return layer(xs[0])
    if kind == "YatEmbed":
        return layer.attend(xs[0])
    if kind in ("MultiHeadYatAttention",):
        key = xs[1] if len(xs) > 1 else None
        value = xs[2] if len(xs) > 2 else None
        return layer(xs[0], key, value, attention_mask=call.get("mask"))
    if kind == "RotaryYatAttention":
        return layer(xs[0], attention_mask=call.get("mask"))
    return layer(xs[0])


def _np(t):
    return np.asarray(ops.convert_to_numpy(t))


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


class KerasAdapter:
    def __init__(self, backend):
        self.backend = backend
        self.name = f"keras-{backend}"

    def supports(self, kind, config):
        return True

    def build(self, kind, config, params):
        if kind in SQUASHERS:
            return _Squash(kind, config)
        return from_spec(kind, config, params)

    def build_options(self, kind, config, params, options):
        """``from_spec`` with nmn 0.3's options as constructor keywords (mask in the host layout), raw params."""
        return from_spec(kind, config, params, **host_options(kind, options, "keras", config.get("groups", 1)))

    def forward(self, layer, kind, inputs, call):
        xs = [ops.convert_to_tensor(_to_host(kind, np.asarray(x))) for x in inputs]
        if self.backend == "jax" and kind not in SQUASHERS:  # one compiled program instead of op-by-op dispatch
            import jax

            variables = list(layer.weights)

            def run(values, *xs):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    return _apply(layer, kind, list(xs), call)

            y = jax.jit(run)([v.value for v in variables], *xs)
        else:
            y = _apply(layer, kind, xs, call)
        return _from_host(kind, _np(y)).astype(np.float64)

    def grads(self, layer, kind, inputs, call, cotangent):
        xs = [np.asarray(_to_host(kind, np.asarray(x)), np.float32) for x in inputs]
        cot = np.asarray(_to_host(kind, np.asarray(cotangent)), np.float32)
        variables = list(layer.weights)
        gx, gvars = _GRADS[self.backend](layer, kind, xs, call, cot, variables)
        out = {"input0": _from_host(kind, np.asarray(gx, np.float64))}
        if variables:
            saved = [_np(v) for v in variables]
            try:
                for v, g in zip(variables, gvars):
                    v.assign(np.zeros(v.shape, np.float32) if g is None else np.asarray(g, np.float32))
                canonical = _raw_spec_params(layer)
            finally:
                for v, s in zip(variables, saved):
                    v.assign(s)
            out.update({k: np.asarray(v, np.float64) for k, v in canonical.items()})
        return out


def _grads_tensorflow(layer, kind, xs, call, cot, variables):
    import tensorflow as tf

    x0 = tf.convert_to_tensor(xs[0])
    rest = [tf.convert_to_tensor(x) for x in xs[1:]]
    with tf.GradientTape() as tape:
        tape.watch(x0)
        for v in variables:
            tape.watch(v.value)
        y = _apply(layer, kind, [x0, *rest], call)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * cot)
    g = tape.gradient(loss, [x0] + [v.value for v in variables])
    return g[0].numpy(), [None if t is None else t.numpy() for t in g[1:]]


def _grads_torch(layer, kind, xs, call, cot, variables):
    import torch

    x0 = torch.tensor(xs[0], requires_grad=True)
    rest = [torch.tensor(x) for x in xs[1:]]
    flags = []
    for v in variables:
        flags.append(v.value.requires_grad)
        v.value.requires_grad_(True)
        v.value.grad = None
    try:
        y = _apply(layer, kind, [x0, *rest], call)
        (y.float() * torch.tensor(cot)).sum().backward()
        gvars = [None if v.value.grad is None else v.value.grad.detach().cpu().numpy() for v in variables]
    finally:
        for v, flag in zip(variables, flags):
            v.value.grad = None
            v.value.requires_grad_(flag)
    return x0.grad.detach().cpu().numpy(), gvars


def _grads_jax(layer, kind, xs, call, cot, variables):
    import jax
    import jax.numpy as jnp

    if not variables:

        def loss(x0):
            return jnp.sum(_apply(layer, kind, [x0, *xs[1:]], call) * cot)

        return np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(xs[0]))), []
    trainable = list(layer.trainable_variables)
    non_trainable = list(layer.non_trainable_variables)
    order = trainable + non_trainable

    def loss(x0, tv, ntv):
        def run(x):
            if kind == "YatEmbed":
                return layer.attend(x)
            return _apply(layer, kind, [x, *xs[1:]], call)

        mapping = list(zip(trainable, tv)) + list(zip(non_trainable, ntv))
        with keras.StatelessScope(state_mapping=mapping):
            y = run(x0)
        return jnp.sum(y.astype(jnp.float32) * cot)

    tv = [v.value for v in trainable]
    ntv = [v.value for v in non_trainable]
    gx, gtv, gntv = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(jnp.asarray(xs[0]), tv, ntv)
    by_id = {id(v): np.asarray(g) for v, g in zip(order, list(gtv) + list(gntv))}
    return np.asarray(gx), [by_id.get(id(v)) for v in variables]


_GRADS = {"tensorflow": _grads_tensorflow, "torch": _grads_torch, "jax": _grads_jax}

ADAPTERS = [KerasAdapter(BACKEND)]
ADAPTER = ADAPTERS[0]
