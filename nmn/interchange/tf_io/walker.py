"""Export walk of :mod:`nmn.interchange.tf_io`: the concrete function of a ``tf.Module`` (nmn layer calls recorded
while tracing, each one ``nmn::`` node), walked from its outputs; every other TF op is written by the converter
registered for its type in :data:`~nmn.interchange.tf_io.converters.OPS`."""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

import nmn.tf as nt
from nmn.interchange import emit
from nmn.interchange._tfkeras_common import HOST_NAMES
from nmn.interchange.graph import ExportError
from nmn.interchange.tf_io.converters import OPS
from nmn.tf import spec as tspec
from nmn.tf.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.tf.conv import _YatConvNd
from nmn.tf.conv_transpose import _YatConvTransposeNd


def _paths(module, prefix="", seen=None, out=None):
    """``{id(obj): dotted attribute path}`` for every sub-module and variable of ``module``."""
    seen = set() if seen is None else seen
    out = {} if out is None else out
    if id(module) in seen:
        return out
    seen.add(id(module))
    items = (
        vars(module).items()
        if isinstance(module, tf.Module)
        else (module.items() if isinstance(module, dict) else enumerate(module))
    )
    for key, value in sorted(items, key=lambda kv: str(kv[0])):
        if isinstance(key, str) and key.startswith("_") and not isinstance(module, dict):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, tf.Variable):
            out.setdefault(id(value), path)
        elif isinstance(value, tf.Module):
            out.setdefault(id(value), path)
            _paths(value, path + ".", seen, out)
        elif isinstance(value, (list, tuple, dict)):
            _paths(value, path + ".", seen, out)
    return out


@contextlib.contextmanager
def _recording(calls):
    """Record every ``nmn.tf`` layer call (layer, method, args, kwargs, output) while tracing."""
    targets = [
        (nt.YatNMN, "__call__"),
        (_YatConvNd, "__call__"),
        (_YatConvTransposeNd, "__call__"),
        (MultiHeadYatAttention, "__call__"),
        (RotaryYatAttention, "__call__"),
        (nt.YatEmbed, "__call__"),
        (nt.YatEmbed, "attend"),
    ]
    saved = []
    from nmn._tfkeras import squashers

    depth = calls.setdefault("depth", [0])
    for kind, keys in _SQUASHERS.items():  # nmn.tf.softermax & co. all call nmn._tfkeras.squashers.<kind>(F, x, ...)
        original = getattr(squashers, kind)

        def squash(F, x, *args, __original=original, __kind=kind, __keys=keys):
            depth[0] += 1
            try:
                out = __original(F, x, *args)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                calls.setdefault("list", []).append((None, __kind, (x,), dict(zip(__keys, args)), out))
            return out

        saved.append((squashers, kind, original))
        setattr(squashers, kind, squash)
    for cls, method in targets:
        original = cls.__dict__[method]

        def wrapper(self, *args, __original=original, __method=method, **kwargs):
            depth = calls.setdefault("depth", [0])
            depth[0] += 1
            try:
                out = __original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                calls.setdefault("list", []).append((self, __method, args, kwargs, out))
            return out

        saved.append((cls, method, original))
        setattr(cls, method, wrapper)
    try:
        yield
    finally:
        for cls, method, original in saved:
            setattr(cls, method, original)


_SQUASHERS = {"softermax": ("n", "epsilon", "axis"), "softer_sigmoid": ("n",), "soft_tanh": ("n",)}


class _Walker:
    def __init__(self, b, concrete, model, paths, calls):
        self.b, self.model, self.paths = b, model, paths
        self.values: dict = {}
        self.unsupported: set = set()
        self.yat = {}
        for layer, method, args, kwargs, out in calls:
            if isinstance(out, tf.Tensor):
                self.yat[out.ref()] = (layer, method, args, kwargs)
        variables = {id(v.handle): v for v in _all_variables(model)}
        self.captures = {}
        for external, internal in concrete.graph.captures:
            var = variables.get(id(external))
            if var is not None:
                self.captures[internal.ref()] = var
            else:
                self.captures[internal.ref()] = external

    def _layer_name(self, layer):
        if id(layer) in self.paths and self.paths[id(layer)]:
            return self.paths[id(layer)]
        return layer.name

    def _var_name(self, var):
        if id(var) in self.paths:
            return self.paths[id(var)]
        return var.name.split(":")[0].replace("/", ".")

    def value(self, t):
        key = t.ref()
        if key in self.values:
            return self.values[key]
        if key in self.yat:
            out = self._emit_yat(*self.yat[key])
        elif key in self.captures:
            cap = self.captures[key]
            if isinstance(cap, tf.Variable):
                out = ("var", cap)
            else:
                out = self.b.constant("captured", np.asarray(cap))
        else:
            out = self._emit_op(t)
        self.values[key] = out
        return out

    def _tensor_value(self, t):
        """The ONNX value name of ``t`` (variables become initializers named by their path)."""
        v = self.value(t)
        if isinstance(v, tuple) and v[0] == "var":
            var = v[1]
            cache = self.b.__dict__.setdefault("_tf_vars", {})
            if id(var) not in cache:
                cache[id(var)] = self.b.initializer(self._var_name(var), var.numpy())
            return cache[id(var)]
        return v

    def _emit_yat(self, layer, method, args, kwargs):
        if layer is None:  # a squasher call: one nmn:: node
            self.b.__dict__.setdefault("_tf_squash", [0])[0] += 1
            name = f"{method}_{self.b._tf_squash[0]}"
            return emit.yat_layer(
                self.b, name, method, {k: v for k, v in kwargs.items()}, {}, [self._tensor_value(args[0])]
            )
        kind, config, params = tspec.to_spec(layer)
        name = self._layer_name(layer)
        names = [self._tensor_value(a) if isinstance(a, tf.Tensor) else None for a in args]
        param_names = dict(HOST_NAMES[kind])
        param_names.update(getattr(layer, "_nmn_param_names", {}))
        trainable = {"weight": False} if kind == "YatNMN" and layer.lazy else {}
        host = {"framework": "tf", "class": type(layer).__name__}
        call, channels_last = {}, False
        in_shape = [None, *args[0].shape[1:]] if isinstance(args[0], tf.Tensor) else None
        ins = [names[0]]
        if kind in ("YatConv", "YatConvTranspose"):
            channels_last = layer.data_format == "channels_last"
        if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
            mask = kwargs.get("mask", args[3] if len(args) > 3 else None)
            if isinstance(mask, tf.Tensor):
                call["mask"] = self._tensor_value(mask)
                call["mask_rank"] = mask.shape.rank
            elif mask is not None:
                raise ExportError(f"{name}: a constant attention mask is not exported; pass it as a tensor input")
            if kind == "MultiHeadYatAttention":
                key = kwargs.get("key", args[1] if len(args) > 1 else None)
                val = kwargs.get("value", args[2] if len(args) > 2 else None)
                kn = self._tensor_value(key) if isinstance(key, tf.Tensor) else names[0]
                vn = self._tensor_value(val) if isinstance(val, tf.Tensor) else kn
                ins = [names[0], kn, vn]
        if kind == "YatEmbed" and method == "attend":
            call["method"] = "attend"
        return emit.yat_layer(
            self.b,
            name,
            kind,
            config,
            params,
            ins,
            in_shape=in_shape,
            channels_last=channels_last,
            call=call,
            param_names=param_names,
            trainable=trainable,
            host=host,
        )

    def _const(self, t):
        """A constant numpy value of tensor ``t`` if it is statically known, else ``None``."""
        value = tf.get_static_value(t)
        return None if value is None else np.asarray(value)

    def _emit_op(self, t):
        op = t.op
        typ = op.type
        name = op.name.replace("/", ".")
        fn = OPS.get(typ)
        if fn is not None:
            return fn(self, t, op, typ, name, lambda i: self._tensor_value(op.inputs[i]))
        self.unsupported.add(typ)
        for i in op.inputs:  # keep walking, so that every unsupported op is listed at once
            self.value(i)
        return "unsupported"


def _all_variables(model):
    if isinstance(model, tf.Module):
        return list(model.variables)
    return []
