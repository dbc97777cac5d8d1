"""PyTorch -> ONNX tracing for :mod:`nmn.interchange.torch_io`: a ``torch.fx`` trace with nmn (and standard
``torch.nn``) layers as leaves, walked node by node; each node is executed eagerly (for shapes and the final
check) and written through the framework-neutral emitters of :mod:`nmn.interchange.emit`.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import numpy as np
import onnx
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as TF

from nmn.interchange import emit
from nmn.interchange.graph import ExportError, GraphBuilder


def _yat_types():
    from nmn.torch import spec

    return (spec.YatNMN, spec._YatConvNd, spec._YatConvTransposeNd, spec.MultiHeadYatAttention,
            spec.RotaryYatAttention, spec.YatEmbed, spec.Softermax, spec.SofterSigmoid, spec.SoftTanh)


def _attend_marker(layer_path: str, query):  # a call_function target standing for ``embed.attend(query)``
    raise RuntimeError("placeholder for YatEmbed.attend inside traced graphs; never executed")


class _Tracer(torch.fx.Tracer):
    def __init__(self, yat_types):
        super().__init__()
        self.yat_types = yat_types

    def is_leaf_module(self, m, qualname):
        return isinstance(m, self.yat_types) or super().is_leaf_module(m, qualname)


def _trace(model: nn.Module) -> torch.fx.Graph:
    import nmn.torch as nt

    tracer = _Tracer(_yat_types())
    original = nt.YatEmbed.attend

    def attend(self, query):
        if isinstance(query, torch.fx.Proxy):
            return tracer.create_proxy("call_function", _attend_marker, (tracer.path_of_module(self), query), {})
        return original(self, query)

    nt.YatEmbed.attend = attend
    try:
        return tracer.trace(model)
    except Exception as err:
        raise ExportError(f"{type(model).__name__}: torch.fx could not trace forward() ({type(err).__name__}: "
                          f"{err}); nmn export needs a forward without data-dependent Python control flow") from err
    finally:
        nt.YatEmbed.attend = original


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _np_param(t):
    return None if t is None else _np(t).astype(np.float32, copy=False)


_ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.SiLU: "silu", nn.Softplus: "softplus"}
_FN_ACTIVATIONS = {TF.relu: "relu", torch.relu: "relu", torch.sigmoid: "sigmoid", TF.sigmoid: "sigmoid",
                   torch.tanh: "tanh", TF.tanh: "tanh", TF.silu: "silu", TF.softplus: "softplus"}
_BINARY = {operator.add: "Add", torch.add: "Add", operator.mul: "Mul", torch.mul: "Mul", operator.sub: "Sub",
           torch.sub: "Sub", operator.truediv: "Div", torch.div: "Div", operator.matmul: "MatMul",
           torch.matmul: "MatMul"}


def _conv_padding(m) -> Any:
    if isinstance(m.padding, str):
        return m.padding
    return tuple((p, p) for p in m.padding)


class _Exporter:
    def __init__(self, model: nn.Module, example_inputs: Sequence):
        self.model = model
        self.inputs = list(example_inputs)
        self.modules = dict(model.named_modules())
        self.b = GraphBuilder(source="torch", layout="channels_first")
        self.value: dict = {}   # fx node -> eager value
        self.onnx: dict = {}    # fx node -> ONNX value name (or python constant)
        self.unsupported: list[str] = []

    # --------------------------------------------------------------------------------------------------------
    def run(self, input_names, output_names) -> tuple[onnx.ModelProto, list]:
        import nmn.torch.spec as tspec

        self.spec = tspec
        graph = _trace(self.model)
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(self.inputs):
            raise ExportError(f"{type(self.model).__name__}.forward takes {len(placeholders)} input(s), "
                              f"{len(self.inputs)} example input(s) were given")
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
            raise ExportError(f"{type(self.model).__name__}: cannot export {len(self.unsupported)} operation(s):\n  - "
                              + "\n  - ".join(self.unsupported))
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
            params = [p.name for p in inspect.signature(self.model.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
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
            self.onnx[node] = emit.yat_layer(b, path, kind, config, params, [self.onnx[q]], call={"method": "attend"},
                                             param_names=names, trainable=trainable)
            return
        with torch.no_grad():
            if node.op == "call_function":
                self.value[node] = node.target(*self._vals(args), **kwargs)
            else:  # call_method
                obj, *rest = self._vals(args)
                self.value[node] = getattr(obj, node.target)(*rest, **kwargs)
        self.onnx[node] = self._function(node)

    def _module(self, node, m):
        b, name = self.b, node.target
        x = self.onnx[node.args[0]] if node.args else None
        x_val = self.value[node.args[0]] if node.args else None
        if isinstance(m, _yat_types()):
            kind, config, params = self.spec.to_spec(m)
            ins, call = [x], {}
            if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
                named = ["query", "key", "value", "mask"] if kind == "MultiHeadYatAttention" else ["x", "mask"]
                given = dict(zip(named, node.args))
                given.update(node.kwargs)
                ins = [self.onnx[given[k]] if isinstance(given.get(k), torch.fx.Node) else ""
                       for k in named if k != "mask"]
                if isinstance(given.get("mask"), torch.fx.Node):
                    call["mask"] = self.onnx[given["mask"]]
            names, trainable = self._host_names(m)
            return emit.yat_layer(b, name, kind, config, params, ins, in_shape=tuple(x_val.shape), call=call,
                                  param_names=names, trainable=trainable)
        if isinstance(m, nn.Linear):
            return emit.linear(b, name, x, _np_param(m.weight), _np_param(m.bias), rank=x_val.dim())
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if m.padding_mode != "zeros":
                self.unsupported.append(f"{name}: {type(m).__name__}(padding_mode={m.padding_mode!r}) "
                                        "(use nmn's YatConv or padding_mode='zeros')")
                return None
            return emit.conv(b, name, x, _np_param(m.weight), _np_param(m.bias), in_shape=tuple(x_val.shape),
                             strides=m.stride, dilations=m.dilation, groups=m.groups, padding=_conv_padding(m))
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return emit.conv(b, name, x, _np_param(m.weight), _np_param(m.bias), in_shape=tuple(x_val.shape),
                             strides=m.stride, dilations=m.dilation, groups=m.groups,
                             padding=tuple((p, p) for p in m.padding), transpose=True, output_padding=m.output_padding)
        if type(m) in _ACTIVATIONS:
            return emit.activation(b, _ACTIVATIONS[type(m)], x, name=name)
        if isinstance(m, nn.GELU):
            return emit.activation(b, "gelu_tanh" if m.approximate == "tanh" else "gelu", x, name=name)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            dim = m.dim if m.dim is not None else -1
            return emit.activation(b, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", x, axis=dim, name=name)
        if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity)):
            return x
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                self.unsupported.append(f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) "
                                        "(only start_dim=1, end_dim=-1)")
                return None
            return emit.flatten(b, x, name=name)
        if isinstance(m, nn.LayerNorm):
            if len(m.normalized_shape) != 1:
                self.unsupported.append(f"{name}: LayerNorm over {len(m.normalized_shape)} axes (only the last)")
                return None
            return emit.layer_norm(b, name, x, _np_param(m.weight), _np_param(m.bias), m.eps)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.training:
                self.unsupported.append(f"{name}: {type(m).__name__} in training mode (call model.eval())")
                return None
            n = m.num_features
            scale = _np_param(m.weight) if m.weight is not None else np.ones(n, np.float32)
            shift = _np_param(m.bias) if m.bias is not None else np.zeros(n, np.float32)
            return emit.batch_norm(b, name, x, scale, shift, _np_param(m.running_mean), _np_param(m.running_var),
                                   m.eps, rank=x_val.dim() - 2)
        if isinstance(m, nn.Embedding):
            return emit.embedding(b, name, x, _np_param(m.weight))
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            rank = x_val.dim() - 2
            k = _tuple(m.kernel_size, rank)
            s = _tuple(m.stride if m.stride is not None else m.kernel_size, rank)
            p = _tuple(m.padding, rank)
            if getattr(m, "ceil_mode", False) or any(d != 1 for d in _tuple(getattr(m, "dilation", 1), rank)):
                self.unsupported.append(f"{name}: {type(m).__name__} with ceil_mode or dilation")
                return None
            kind = "max" if "Max" in type(m).__name__ else "avg"
            return emit.pool(b, kind, x, kernel=k, strides=s, pads=[(q, q) for q in p], name=name)
        if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
            if any(o != 1 for o in _tuple(m.output_size, x_val.dim() - 2)):
                self.unsupported.append(f"{name}: {type(m).__name__}(output_size={m.output_size}) (only 1)")
                return None
            return emit.pool(b, "global_avg", x, kernel=None, strides=None, name=name)
        self.unsupported.append(f"{name}: module {type(m).__name__}")
        return None

    def _function(self, node):
        b, t = self.b, node.target
        args = node.args
        name = node.name
        if node.op == "call_function" and t in _BINARY:
            ins = []
            for a in args[:2]:
                if isinstance(a, torch.fx.Node):
                    ins.append(self.onnx[a])
                else:
                    ins.append(b.constant(f"{name}.const", np.array(a, np.float32)))
            return b.node(_BINARY[t], ins, name=name)
        if node.op == "call_function" and t in _FN_ACTIVATIONS:
            return emit.activation(b, _FN_ACTIVATIONS[t], self.onnx[args[0]], name=name)
        if node.op == "call_function" and t is TF.gelu:
            approx = node.kwargs.get("approximate", "none")
            return emit.activation(b, "gelu_tanh" if approx == "tanh" else "gelu", self.onnx[args[0]], name=name)
        if (node.op == "call_function" and t in (TF.softmax, torch.softmax)) or (node.op == "call_method" and t == "softmax"):
            dim = node.kwargs.get("dim", args[1] if len(args) > 1 else -1)
            return emit.activation(b, "softmax", self.onnx[args[0]], axis=dim, name=name)
        if (t is torch.flatten) or (node.op == "call_method" and t == "flatten"):
            start = node.kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
            if start != 1:
                self.unsupported.append(f"{name}: flatten(start_dim={start}) (only start_dim=1)")
                return None
            return emit.flatten(b, self.onnx[args[0]], name=name)
        if node.op == "call_method" and t in ("view", "reshape") or t is torch.reshape:
            dims = args[1:] if node.op == "call_method" else args[1]
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = dims[0]
            shape = [0 if i == 0 and isinstance(d, torch.fx.Node) else (self.value[d] if isinstance(d, torch.fx.Node)
                     else d) for i, d in enumerate(dims)]
            return emit.reshape(b, self.onnx[args[0]], shape, name=name)
        if node.op == "call_method" and t == "size" or (node.op == "call_function" and t is getattr):
            return None  # shape arithmetic: consumed by view/reshape above
        if t in (torch.cat, torch.concat):
            return b.node("Concat", [self.onnx[a] for a in args[0]], {"axis": node.kwargs.get("dim", args[1] if len(args) > 1 else 0)},
                          name=name)
        if node.op == "call_method" and t == "mean" or t is torch.mean:
            dims = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
            keep = int(node.kwargs.get("keepdim", args[2] if len(args) > 2 else False))
            dims = [dims] if isinstance(dims, int) else list(dims)
            axes = b.constant(f"{name}.axes", np.array(dims, np.int64))
            return b.node("ReduceMean", [self.onnx[args[0]], axes], {"keepdims": keep}, name=name)
        if node.op == "call_method" and t in ("permute", "transpose") or t in (torch.permute, torch.transpose):
            rank = self.value[args[0]].dim()
            if t in ("transpose", torch.transpose):
                perm = list(range(rank))
                i, j = (d % rank for d in args[1:3])
                perm[i], perm[j] = perm[j], perm[i]
            else:
                perm = list(args[1:]) if node.op == "call_method" else list(args[1])
                if len(perm) == 1 and isinstance(perm[0], (tuple, list)):
                    perm = list(perm[0])
            return b.node("Transpose", [self.onnx[args[0]]], {"perm": [p % rank for p in perm]}, name=name)
        if node.op == "call_method" and t == "contiguous":
            return self.onnx[args[0]]
        if node.op == "call_function" and t is operator.getitem and isinstance(self.value[args[0]], (tuple, list)):
            return self.onnx[args[0]]
        squash = _squashers().get(t)
        if squash is not None:
            kind, defaults = squash
            cfg = dict(defaults)
            extra = list(args[1:])
            for key, v in zip([k for k in cfg if k != "axis"] + ["axis"], extra):
                cfg[key] = v
            cfg.update({("axis" if k == "dim" else k): v for k, v in node.kwargs.items()})
            return emit.yat_layer(b, name, kind, cfg, {}, [self.onnx[args[0]]])
        self.unsupported.append(f"{name}: {node.op} {getattr(t, '__name__', t)}")
        return None


def _squashers():
    import nmn.torch as nt

    return {nt.softermax: ("softermax", {"n": 1.0, "epsilon": 1e-12, "axis": -1}),
            nt.softer_sigmoid: ("softer_sigmoid", {"n": 1.0}), nt.soft_tanh: ("soft_tanh", {"n": 1.0})}


def _tuple(v, rank):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * rank
