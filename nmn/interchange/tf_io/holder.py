"""TensorFlow loader: an ONNX file as a trainable ``tf.Module`` (the load half of :mod:`nmn.interchange.tf_io`).

``nmn`` nodes become ``nmn.tf`` layers holding the file's weights (convolutions ``channels_first``, the file's
layout), the other float tensors ``tf.Variable`` s; ``__call__`` is a ``tf.function`` with the file's input
signature, so it trains with ``tf.GradientTape`` and saves as a SavedModel.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import tensorflow as tf

import nmn.tf as nt
from nmn.interchange.interpret import SQUASHER_KINDS, SQUASHER_OPS, check_supported, execute, replay, squash
from nmn.interchange.reader import OnnxGraph, read_model
from nmn.interchange.stdops import SUPPORTED, value_inputs
from nmn.interchange.tf_io.ops import PRIMS
from nmn.tf import spec as tspec

__all__ = ["load", "predict", "OnnxModule", "TABLE"]

TABLE = SUPPORTED
"""The standard ops this loader runs (the shared list of :mod:`nmn.interchange.stdops`)."""


def _key(name: str) -> str:
    key = name.replace(".", "__").replace("/", "_")
    return "n" + key if not key or key[0] == "_" or key[0].isdigit() else key


class OnnxModule(tf.Module):
    """A ``tf.Module`` loaded from an nmn ONNX file.

    ``layers`` holds one ``nmn.tf`` layer per Yat layer of the file (keys are the file's layer names with ``.``
    written ``__``), ``params`` the file's other trainable tensors as ``tf.Variable`` s (in the file's ONNX
    layout); ``__call__`` is a ``tf.function`` with the file's input signature (symbolic batch), so
    ``tf.saved_model.save(module, path)`` works and the restored object is callable.
    """

    def __init__(self, graph: OnnxGraph, *, name: str = "nmn_onnx"):
        super().__init__(name=name)
        self._graph = graph
        self.layers = {}
        for lname, spec in graph.layers.items():
            if spec.kind in SQUASHER_KINDS:
                continue
            kwargs = {"name": _key(lname)}
            if spec.kind in ("YatConv", "YatConvTranspose"):
                kwargs["data_format"] = "channels_first"
            config = dict(spec.config)
            if isinstance(config.get("padding"), list):
                config["padding"] = [tuple(p) for p in config["padding"]]
            layer = tspec.from_spec(spec.kind, config, spec.params, **kwargs)
            layer._nmn_param_names = {
                k: v[len(lname) + 1 :] for k, v in spec.param_inits.items() if v.startswith(lname + ".")
            }
            for canonical, trainable in spec.trainable.items():
                if not trainable:
                    _freeze(layer, spec.kind, canonical)
            self.layers[_key(lname)] = layer
        self._owned = {
            init: (spec.name, spec.kind, key)
            for spec in graph.layers.values()
            for key, init in spec.param_inits.items()
        }
        trainable = graph.trainable_initializers()
        used = {i for n in graph.nodes for i in n.inputs}
        self.params = {}
        consts = {}
        for iname, array in graph.initializers.items():
            if iname in self._owned or iname not in used:
                continue
            if iname in trainable and array.dtype.kind == "f":
                self.params[_key(iname)] = tf.Variable(array, name=_key(iname))
            else:
                consts[iname] = array
        self._consts = consts
        check_supported(graph, "tf")
        signature = [
            tf.TensorSpec(
                [None if (d is None or isinstance(d, str)) else d for d in shape],
                tf.as_dtype(np.dtype(dtype)),
                name=_key(n),
            )
            for n, shape, dtype in graph.inputs
        ]
        if value_inputs(graph.nodes, {n for n, _, _ in graph.inputs}):
            self.__call__ = self._run  # shapes computed from input values: run eagerly, where they are known
        elif any(n.op in ("Shape", "Size") for n in graph.nodes):
            # shape arithmetic: one trace per input shape, so every Shape is static inside its trace
            self.__call__ = tf.function(self._run, autograph=False)
        else:
            self.__call__ = tf.function(self._run, input_signature=signature, autograph=False)

    def __call__(
        self, *inputs: tf.Tensor | np.ndarray
    ) -> tf.Tensor | tuple[tf.Tensor, ...]:  # replaced per instance by the tf.function built in __init__
        return self.__dict__["__call__"](*inputs)

    def _tensor(self, name):
        key = _key(name)
        if key in self.params:
            return self.params[key]
        if name in self._owned:
            layer_name, kind, canonical = self._owned[name]
            return _layer_tensor(self.layers[_key(layer_name)], kind, canonical)
        value = self._consts.get(name)
        return None if value is None else (tf.constant(value) if value.dtype.kind == "f" else value)

    def _yat(self, node, args):
        spec = self._graph.layers[self._graph.node_layer[node.name]]
        op = node.op
        if op in SQUASHER_OPS:
            return squash(nt, op, {**spec.config, **node.attrs}, args[0])
        layer = self.layers[_key(spec.name)]
        if op == "YatEmbedAttend":
            return layer.attend(args[0])
        if op == "Gather":
            return layer(args[1])
        if "Attention" in op:
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            if spec.kind == "RotaryYatAttention":
                return layer(args[0], mask=mask)
            return layer(args[0], args[1], args[2], mask=mask)
        return layer(args[0])

    def _run(self, *inputs):
        outs = execute(self._graph, list(inputs), tensor=self._tensor, prims=PRIMS, yat=self._yat)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _replay(self) -> onnx.ModelProto:
        def param(name):
            t = self._tensor(name)
            if t is None:
                return self._graph.initializers[name]
            return np.asarray(t.numpy() if hasattr(t, "numpy") else t).astype(self._graph.initializers[name].dtype)

        def spec(layer_name):
            layer_spec = self._graph.layers[layer_name]
            if layer_spec.kind in SQUASHER_KINDS:
                return layer_spec.kind, layer_spec.config, {}
            return tspec.to_spec(self.layers[_key(layer_name)])

        return replay(self._graph, source="tf", param=param, yat_spec=spec).build()


def _layer_tensor(layer, kind, canonical):
    """A Yat layer's current parameter in the canonical (file) layout (differentiable)."""
    if canonical == "weight":
        k = layer.kernel
        r = k.shape.rank - 2
        if kind == "YatNMN":
            return tf.transpose(k)
        return tf.transpose(k, (r + 1, r, *range(r)))
    host = {"q_weight": "q_kernel", "k_weight": "k_kernel", "v_weight": "v_kernel", "out_weight": "out_kernel"}
    if canonical in host:
        return tf.transpose(getattr(layer, host[canonical]))
    return getattr(layer, canonical)


def _freeze(layer, kind, canonical):
    host = {"weight": "kernel"}.get(canonical, canonical)
    var = getattr(layer, host, None)
    if isinstance(var, tf.Variable) and var.trainable:
        setattr(layer, host, tf.Variable(var, trainable=False, name=var.name.split(":")[0].split("/")[-1]))


def load(source: str | os.PathLike | onnx.ModelProto, **_options: Any) -> OnnxModule:
    """Load an nmn ONNX file (from any nmn exporter) as a trainable ``tf.Module`` (:class:`OnnxModule`).

    Example:
        >>> import numpy as np, tensorflow as tf, nmn.tf as nt
        >>> from nmn.interchange import tf_io
        >>> layer = nt.YatNMN(3)
        >>> loaded = tf_io.load(tf_io.export(layer, np.ones((2, 4), np.float32)))
        >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
        >>> bool(np.allclose(loaded(x).numpy(), layer(x).numpy(), atol=1e-6))
        True
    """
    return OnnxModule(read_model(source))


def predict(model: tf.Module, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inference on numpy inputs (an :class:`OnnxModule`, a native module or a restored SavedModel)."""
    out = model(*[tf.constant(np.asarray(x)) for x in inputs])
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o) for o in outs]
