"""PyTorch -> ONNX export walk for :mod:`nmn.interchange.torch_io`: a ``torch.fx`` trace with nmn (and standard
``torch.nn``) layers as leaves (:mod:`~nmn.interchange.torch_io.trace`), walked node by node; each node is executed
eagerly (for shapes and the final check) and written through the framework-neutral emitters of
:mod:`nmn.interchange.emit`. A ``call_module`` node is written by the emitter registered for its layer class in
:data:`MODULES`; calls of functions and methods by :data:`~nmn.interchange.torch_io.functions.FUNCTIONS`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import onnx
import torch
import torch.fx
import torch.nn as nn

from nmn.interchange import emit
from nmn.interchange.graph import ExportError, GraphBuilder
from nmn.interchange.registry import Registry
from nmn.interchange.torch_io.functions import _ACTIVATIONS, _activation_params, _conv_padding, _tuple, emit_function
from nmn.interchange.torch_io.trace import _attend_marker, _np, _np_param, _trace, _yat_types


class _Exporter:
    def __init__(self, model: nn.Module, example_inputs: Sequence):
        self.model = model
        self.inputs = list(example_inputs)
        self.modules = dict(model.named_modules())
        self.b = GraphBuilder(source="torch", layout="channels_first")
        self.value: dict = {}  # fx node -> eager value
        self.onnx: dict = {}  # fx node -> ONNX value name (or python constant)
        self.unsupported: list[str] = []

    # --------------------------------------------------------------------------------------------------------
    def run(self, input_names, output_names) -> tuple[onnx.ModelProto, list]:
        import nmn.torch.spec as tspec

        self.spec = tspec
        graph, self.modules = _trace(self.model, len(self.inputs))
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(self.inputs):
            raise ExportError(
                f"{type(self.model).__name__}.forward takes {len(placeholders)} input(s), "
                f"{len(self.inputs)} example input(s) were given"
            )
        outputs = []
        for node in graph.nodes:
            if node.op == "placeholder":
                i = placeholders.index(node)
                x = self.inputs[i]
                name = input_names[i] if input_names else self._arg_name(i, node.name)
                self.value[node] = x
                self.onnx[node] = self.b.input(name, (None, *x.shape[1:]), _np(x).dtype)
            elif node.op == "output":
                result = node.args[0]
                outputs = list(result) if isinstance(result, (tuple, list)) else [result]
            else:
                self._emit(node)
        if self.unsupported:
            raise ExportError(
                f"{type(self.model).__name__}: cannot export {len(self.unsupported)} operation(s):\n  - "
                + "\n  - ".join(self.unsupported)
            )
        expected = []
        for i, out in enumerate(outputs):
            name = output_names[i] if output_names else ("output" if len(outputs) == 1 else f"output_{i}")
            self.b.output(self.onnx[out], name)
            expected.append(_np(self.value[out]))
        return self.b.build(), expected

    def _host_names(self, layer):
        """Canonical -> torch parameter paths (so initializers carry state_dict names) and trainability."""
        paths = self.spec.param_paths(layer)
        trainable = {}
        for key, path in paths.items():
            value = operator.attrgetter(path)(layer)
            trainable[key] = bool(isinstance(value, nn.Parameter) and value.requires_grad)
        return paths, trainable

    def _arg_name(self, i, default):
        import inspect

        try:
            params = [
                p.name
                for p in inspect.signature(self.model.forward).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            return default
        return params[i] if i < len(params) else default

    def _args(self, args):
        return [self.onnx[a] if isinstance(a, torch.fx.Node) else a for a in args]

    def _vals(self, args):
        def val(a):
            if isinstance(a, torch.fx.Node):
                return self.value[a]
            if isinstance(a, (tuple, list)):
                return type(a)(val(v) for v in a)
            return a

        return [val(a) for a in args]

    def _emit(self, node: torch.fx.Node) -> None:
        listed = len(self.unsupported)
        self._emit_node(node)
        if self.onnx.get(node) is None and isinstance(self.value.get(node), torch.Tensor):
            if len(self.unsupported) == listed:
                self.unsupported.append(f"{node.name}: {node.op} {getattr(node.target, '__name__', node.target)}")
            # a stand-in name, so that the nodes after it are still checked (every problem in one error); the
            # graph is never built when anything is unsupported
            self.onnx[node] = f"<not exported: {node.name}>"

    def _emit_node(self, node: torch.fx.Node) -> None:
        b = self.b
        args = node.args
        kwargs = {k: (self.value[v] if isinstance(v, torch.fx.Node) else v) for k, v in node.kwargs.items()}
        if node.op == "get_attr":
            value = operator.attrgetter(node.target)(self.model)
            self.value[node] = value
            self.onnx[node] = b.initializer(node.target, _np(value))
            return
        if node.op == "call_module":
            m = self.modules[node.target]
            with torch.no_grad():
                self.value[node] = m(*self._vals(args), **kwargs)
            self.onnx[node] = self._module(node, m)
            return
        if node.op == "call_function" and node.target is _attend_marker:
            path, q = args
            layer = self.modules[path]
            with torch.no_grad():
                self.value[node] = layer.attend(self.value[q])
            kind, config, params = self.spec.to_spec(layer)
            names, trainable = self._host_names(layer)
            self.onnx[node] = emit.yat_layer(
                b,
                path,
                kind,
                config,
                params,
                [self.onnx[q]],
                call={"method": "attend"},
                param_names=names,
                trainable=trainable,
            )
            return
        with torch.no_grad():
            if node.op == "call_function":
                self.value[node] = node.target(*self._vals(args), **kwargs)
            else:  # call_method
                obj, *rest = self._vals(args)
                self.value[node] = getattr(obj, node.target)(*rest, **kwargs)
        self.onnx[node] = emit_function(self, node)

    def _module(self, node, m):
        name = node.target
        x = self.onnx[node.args[0]] if node.args else None
        x_val = self.value[node.args[0]] if node.args else None
        fn = _yat_module if isinstance(m, _yat_types()) else MODULES.for_type(type(m))
        if fn is None:
            self.unsupported.append(f"{name}: module {type(m).__name__}")
            return None
        return fn(self, node, m, x, x_val, name)

    def _operand(self, a, operands, name):
        """An ONNX value for one operand of a binary op: a traced tensor, or a Python number as a constant of the
        other operand's dtype."""
        if isinstance(a, torch.fx.Node):
            value = self.onnx[a]
            if value is not None:
                return value
            a = self.value[a]  # a Python number computed by traced shape arithmetic (x.size(1))
        other = next(
            (
                self.value[o]
                for o in operands
                if isinstance(o, torch.fx.Node) and isinstance(self.value.get(o), torch.Tensor)
            ),
            None,
        )
        dtype = _np(other).dtype if other is not None else np.float32
        return self.b.constant(f"{name}.const", np.array(a, dtype))


# ------------------------------------------------------------------------------------------------- module emitters
MODULES = Registry("torch modules")  # layer class -> emitter(ex, node, module, x, x_value, name); nearest base wins


def _yat_module(ex, node, m, x, x_val, name):
    kind, config, params = ex.spec.to_spec(m)
    ins, call = [x], {}
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        named = ["query", "key", "value", "mask"] if kind == "MultiHeadYatAttention" else ["x", "mask"]
        given = dict(zip(named, node.args))
        given.update(node.kwargs)
        ins = [ex.onnx[given[k]] if isinstance(given.get(k), torch.fx.Node) else "" for k in named if k != "mask"]
        if isinstance(given.get("mask"), torch.fx.Node):
            call["mask"] = ex.onnx[given["mask"]]
            call["mask_rank"] = ex.value[given["mask"]].dim()
    names, trainable = ex._host_names(m)
    return emit.yat_layer(
        ex.b,
        name,
        kind,
        config,
        params,
        ins,
        in_shape=tuple(x_val.shape),
        call=call,
        param_names=names,
        trainable=trainable,
    )


@MODULES.register(nn.Linear)
def _linear(ex, node, m, x, x_val, name):
    return emit.linear(ex.b, name, x, _np_param(m.weight), _np_param(m.bias), rank=x_val.dim())


@MODULES.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(ex, node, m, x, x_val, name):
    if m.padding_mode != "zeros":
        ex.unsupported.append(
            f"{name}: {type(m).__name__}(padding_mode={m.padding_mode!r}) (use nmn's YatConv or padding_mode='zeros')"
        )
        return None
    return emit.conv(
        ex.b,
        name,
        x,
        _np_param(m.weight),
        _np_param(m.bias),
        in_shape=tuple(x_val.shape),
        strides=m.stride,
        dilations=m.dilation,
        groups=m.groups,
        padding=_conv_padding(m),
    )


@MODULES.register(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def _conv_transpose(ex, node, m, x, x_val, name):
    return emit.conv(
        ex.b,
        name,
        x,
        _np_param(m.weight),
        _np_param(m.bias),
        in_shape=tuple(x_val.shape),
        strides=m.stride,
        dilations=m.dilation,
        groups=m.groups,
        padding=tuple((p, p) for p in m.padding),
        transpose=True,
        output_padding=m.output_padding,
    )


@MODULES.register(*_ACTIVATIONS)
def _activation(ex, node, m, x, x_val, name):
    kind = next(_ACTIVATIONS[c] for c in type(m).__mro__ if c in _ACTIVATIONS)
    return emit.activation(ex.b, kind, x, name=name, **_activation_params(kind, m))


@MODULES.register(nn.GELU)
def _gelu(ex, node, m, x, x_val, name):
    return emit.activation(ex.b, "gelu_tanh" if m.approximate == "tanh" else "gelu", x, name=name)


@MODULES.register(nn.Softmax, nn.LogSoftmax)
def _softmax(ex, node, m, x, x_val, name):
    dim = m.dim if m.dim is not None else -1
    return emit.activation(ex.b, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", x, axis=dim, name=name)


@MODULES.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity)
def _identity(ex, node, m, x, x_val, name):
    return x


@MODULES.register(nn.Flatten)
def _flatten(ex, node, m, x, x_val, name):
    if m.start_dim != 1 or m.end_dim != -1:
        ex.unsupported.append(
            f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) (only start_dim=1, end_dim=-1)"
        )
        return None
    return emit.flatten(ex.b, x, name=name)


@MODULES.register(nn.LayerNorm)
def _layer_norm(ex, node, m, x, x_val, name):
    if len(m.normalized_shape) != 1:
        ex.unsupported.append(f"{name}: LayerNorm over {len(m.normalized_shape)} axes (only the last)")
        return None
    return emit.layer_norm(ex.b, name, x, _np_param(m.weight), _np_param(m.bias), m.eps)


@MODULES.register(nn.modules.batchnorm._BatchNorm)
def _batch_norm(ex, node, m, x, x_val, name):
    if m.training:
        ex.unsupported.append(f"{name}: {type(m).__name__} in training mode (call model.eval())")
        return None
    n = m.num_features
    scale = _np_param(m.weight) if m.weight is not None else np.ones(n, np.float32)
    shift = _np_param(m.bias) if m.bias is not None else np.zeros(n, np.float32)
    mean, var = _np_param(m.running_mean), _np_param(m.running_var)
    return emit.batch_norm(ex.b, name, x, scale, shift, mean, var, m.eps, rank=x_val.dim() - 2)


@MODULES.register(nn.Embedding)
def _embedding(ex, node, m, x, x_val, name):
    return emit.embedding(ex.b, name, x, _np_param(m.weight))


@MODULES.register(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def _pool(ex, node, m, x, x_val, name):
    rank = x_val.dim() - 2
    k = _tuple(m.kernel_size, rank)
    s = _tuple(m.stride if m.stride is not None else m.kernel_size, rank)
    p = _tuple(m.padding, rank)
    if getattr(m, "ceil_mode", False) or any(d != 1 for d in _tuple(getattr(m, "dilation", 1), rank)):
        ex.unsupported.append(f"{name}: {type(m).__name__} with ceil_mode or dilation")
        return None
    kind = "max" if "Max" in type(m).__name__ else "avg"
    return emit.pool(ex.b, kind, x, kernel=k, strides=s, pads=[(q, q) for q in p], name=name)


@MODULES.register(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
def _adaptive_avg_pool(ex, node, m, x, x_val, name):
    if any(o != 1 for o in _tuple(m.output_size, x_val.dim() - 2)):
        ex.unsupported.append(f"{name}: {type(m).__name__}(output_size={m.output_size}) (only 1)")
        return None
    return emit.pool(ex.b, "global_avg", x, kernel=None, strides=None, name=name)
