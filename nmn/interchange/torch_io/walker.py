"""PyTorch -> ONNX tracing for :mod:`nmn.interchange.torch_io`: a ``torch.fx`` trace with nmn (and standard
``torch.nn``) layers as leaves, walked node by node; each node is executed eagerly (for shapes and the final
check) and written through the framework-neutral emitters of :mod:`nmn.interchange.emit`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

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

    return (
        spec.YatNMN,
        spec._YatConvNd,
        spec._YatConvTransposeNd,
        spec.MultiHeadYatAttention,
        spec.RotaryYatAttention,
        spec.YatEmbed,
        spec.Softermax,
        spec.SofterSigmoid,
        spec.SoftTanh,
    )


def _attend_marker(layer_path: str, query):  # a call_function target standing for ``embed.attend(query)``
    raise RuntimeError("placeholder for YatEmbed.attend inside traced graphs; never executed")


class _Tracer(torch.fx.Tracer):
    def __init__(self, yat_types, leaf_functions=()):
        super().__init__(autowrap_functions=tuple(leaf_functions))
        self.yat_types = yat_types

    def is_leaf_module(self, m, qualname):
        return isinstance(m, self.yat_types) or super().is_leaf_module(m, qualname)


def _squasher_functions():
    import nmn.torch as nt

    return (nt.softermax, nt.softer_sigmoid, nt.soft_tanh)


def _bare_graph(model: nn.Module, n_inputs: int) -> tuple[torch.fx.Graph, str]:
    """The graph of a model that is itself one leaf layer (``export(nt.YatNMN(4, 3), x)``): fx would trace into
    its ``forward`` (and stop at its input checks), so the one ``call_module`` node is written here. The layer is
    named after its class, as the MLX exporter names a bare layer."""
    import inspect

    name = type(model).__name__
    try:
        params = [
            p.name
            for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    params = (params + [f"input_{i}" for i in range(len(params), n_inputs)])[:n_inputs]
    graph = torch.fx.Graph()
    args = tuple(graph.placeholder(p) for p in params)
    graph.output(graph.call_module(name, args))
    return graph, name


def _trace(model: nn.Module, n_inputs: int = 1) -> tuple[torch.fx.Graph, dict]:
    """``(graph, modules by qualified name)``: nmn layers, standard ``torch.nn`` layers and calls of nmn's
    functional squashers (``nt.softermax(x)``, or ``softermax(x)`` imported by name) are leaves."""
    import nmn.torch as nt
    import nmn.torch.functional as ntf

    squashers = _squasher_functions()
    tracer = _Tracer(_yat_types(), squashers)
    if tracer.is_leaf_module(model, ""):
        graph, name = _bare_graph(model, n_inputs)
        return graph, {name: model}
    original = nt.YatEmbed.attend

    def attend(self, query):
        if isinstance(query, torch.fx.Proxy):
            return tracer.create_proxy("call_function", _attend_marker, (tracer.path_of_module(self), query), {})
        return original(self, query)

    def leaf(fn):
        def call(*args, **kwargs):
            if any(isinstance(a, torch.fx.Proxy) for a in (*args, *kwargs.values())):
                return tracer.create_proxy("call_function", fn, args, kwargs)
            return fn(*args, **kwargs)

        return call

    # ``nt.softermax(x)`` is an attribute lookup that fx's autowrap (module globals only) does not see
    patched = [(mod, fn.__name__, fn) for mod in (nt, ntf) for fn in squashers if getattr(mod, fn.__name__, None) is fn]
    nt.YatEmbed.attend = attend
    for mod, attr, fn in patched:
        setattr(mod, attr, leaf(fn))
    try:
        return tracer.trace(model), dict(model.named_modules())
    except Exception as err:
        raise ExportError(
            f"{type(model).__name__}: torch.fx could not trace forward() ({type(err).__name__}: "
            f"{err}); nmn export needs a forward without data-dependent Python control flow"
        ) from err
    finally:
        nt.YatEmbed.attend = original
        for mod, attr, fn in patched:
            setattr(mod, attr, fn)


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _np_param(t):
    return None if t is None else _np(t).astype(np.float32, copy=False)


# torch.nn activation modules / functions -> emit.ACTIVATIONS kinds (parameters read by _activation_params)
_ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.SiLU: "silu",
    nn.Softplus: "softplus",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.SELU: "selu",
    nn.Hardsigmoid: "hard_sigmoid",
    nn.Hardswish: "hard_swish",
    nn.ReLU6: "relu6",
    nn.Hardtanh: "clip",
    nn.Mish: "mish",
    nn.Softsign: "softsign",
}
_FN_ACTIVATIONS = {
    TF.relu: "relu",
    torch.relu: "relu",
    torch.sigmoid: "sigmoid",
    TF.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    TF.tanh: "tanh",
    TF.silu: "silu",
    TF.softplus: "softplus",
    TF.leaky_relu: "leaky_relu",
    TF.elu: "elu",
    TF.selu: "selu",
    TF.hardsigmoid: "hard_sigmoid",
    TF.hardswish: "hard_swish",
    TF.relu6: "relu6",
    TF.hardtanh: "clip",
    TF.mish: "mish",
    TF.softsign: "softsign",
}
_METHOD_ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_BINARY = {
    operator.add: "Add",
    torch.add: "Add",
    operator.mul: "Mul",
    torch.mul: "Mul",
    operator.sub: "Sub",
    torch.sub: "Sub",
    operator.truediv: "Div",
    torch.div: "Div",
    operator.matmul: "MatMul",
    torch.matmul: "MatMul",
    operator.pow: "Pow",
    torch.pow: "Pow",
    torch.maximum: "Max",
    torch.minimum: "Min",
}
_METHOD_BINARY = {"add": "Add", "mul": "Mul", "sub": "Sub", "div": "Div", "matmul": "MatMul", "pow": "Pow"}
_UNARY = {
    torch.sqrt: "Sqrt",
    torch.exp: "Exp",
    torch.log: "Log",
    torch.abs: "Abs",
    torch.neg: "Neg",
    operator.neg: "Neg",
    torch.reciprocal: "Reciprocal",
    torch.erf: "Erf",
    torch.sign: "Sign",
    torch.floor: "Floor",
    torch.ceil: "Ceil",
    torch.sin: "Sin",
    torch.cos: "Cos",
}
_METHOD_UNARY = {
    "sqrt": "Sqrt",
    "exp": "Exp",
    "log": "Log",
    "abs": "Abs",
    "neg": "Neg",
    "reciprocal": "Reciprocal",
    "erf": "Erf",
    "sign": "Sign",
    "floor": "Floor",
    "ceil": "Ceil",
}
_IDENTITY_FUNCTIONS = (TF.dropout, TF.dropout1d, TF.dropout2d, TF.dropout3d, TF.alpha_dropout)


def _activation_params(kind, m=None, args=(), kwargs=None) -> dict:
    """The ``alpha`` / ``min`` / ``max`` of a parametrised activation, from its module or its call."""
    kwargs = kwargs or {}
    extra = list(args[1:])

    def arg(key, pos, default):
        return kwargs.get(key, extra[pos] if len(extra) > pos else default)

    if kind == "leaky_relu":
        return {"alpha": m.negative_slope if m is not None else arg("negative_slope", 0, 0.01)}
    if kind == "elu":
        return {"alpha": m.alpha if m is not None else arg("alpha", 0, 1.0)}
    if kind == "clip":
        if m is not None:
            return {"min": m.min_val, "max": m.max_val}
        return {"min": arg("min_val", 0, -1.0), "max": arg("max_val", 1, 1.0)}
    return {}


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
                ins = [
                    self.onnx[given[k]] if isinstance(given.get(k), torch.fx.Node) else "" for k in named if k != "mask"
                ]
                if isinstance(given.get("mask"), torch.fx.Node):
                    call["mask"] = self.onnx[given["mask"]]
                    call["mask_rank"] = self.value[given["mask"]].dim()
            names, trainable = self._host_names(m)
            return emit.yat_layer(
                b,
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
        if isinstance(m, nn.Linear):
            return emit.linear(b, name, x, _np_param(m.weight), _np_param(m.bias), rank=x_val.dim())
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if m.padding_mode != "zeros":
                self.unsupported.append(
                    f"{name}: {type(m).__name__}(padding_mode={m.padding_mode!r}) "
                    "(use nmn's YatConv or padding_mode='zeros')"
                )
                return None
            return emit.conv(
                b,
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
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return emit.conv(
                b,
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
        if type(m) in _ACTIVATIONS:
            kind = _ACTIVATIONS[type(m)]
            return emit.activation(b, kind, x, name=name, **_activation_params(kind, m))
        if isinstance(m, nn.GELU):
            return emit.activation(b, "gelu_tanh" if m.approximate == "tanh" else "gelu", x, name=name)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            dim = m.dim if m.dim is not None else -1
            return emit.activation(b, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", x, axis=dim, name=name)
        if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity)):
            return x
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                self.unsupported.append(
                    f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) (only start_dim=1, end_dim=-1)"
                )
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
            return emit.batch_norm(
                b,
                name,
                x,
                scale,
                shift,
                _np_param(m.running_mean),
                _np_param(m.running_var),
                m.eps,
                rank=x_val.dim() - 2,
            )
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

    def _reduce(self, node, op):
        """mean / sum / amax / amin over ``dim`` (all axes when absent); ``max``/``min`` with a dim return indices too,
        which nmn does not export."""
        b, args, name = self.b, node.args, node.name
        dims = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
        keep = int(bool(node.kwargs.get("keepdim", args[2] if len(args) > 2 else False)))
        if node.target in ("max", "min") and dims is not None:
            self.unsupported.append(f"{name}: {node.target}(dim) (returns indices; use amax/amin)")
            return None
        rank = self.value[args[0]].dim()
        dims = list(range(rank)) if dims is None else [dims] if isinstance(dims, int) else list(dims)
        axes = b.constant(f"{name}.axes", np.array(dims, np.int64))
        return b.node(op, [self.onnx[args[0]], axes], {"keepdims": keep}, name=name)

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

    def _function(self, node):
        b, t = self.b, node.target
        args = node.args
        name = node.name
        binary = _BINARY.get(t) if node.op == "call_function" else _METHOD_BINARY.get(t)
        if binary is not None:
            operands = [
                args[0],
                node.kwargs.get("other", node.kwargs.get("exponent", args[1] if len(args) > 1 else None)),
            ]
            if "alpha" in node.kwargs or len(args) > 2:
                self.unsupported.append(f"{name}: {getattr(t, '__name__', t)} with alpha= (write x + alpha * y)")
                return None
            return b.node(binary, [self._operand(a, operands, name) for a in operands], name=name)
        unary = _UNARY.get(t) if node.op == "call_function" else _METHOD_UNARY.get(t)
        if unary is not None:
            return b.node(unary, [self.onnx[args[0]]], name=name)
        if t in (torch.rsqrt, "rsqrt"):
            return b.node("Reciprocal", [b.node("Sqrt", [self.onnx[args[0]]], name=f"{name}.sqrt")], name=name)
        if (node.op == "call_function" and t in _FN_ACTIVATIONS) or (
            node.op == "call_method" and t in _METHOD_ACTIVATIONS
        ):
            kind = _FN_ACTIVATIONS[t] if node.op == "call_function" else _METHOD_ACTIVATIONS[t]
            return emit.activation(
                b, kind, self.onnx[args[0]], name=name, **_activation_params(kind, None, args, node.kwargs)
            )
        if node.op == "call_function" and t in _IDENTITY_FUNCTIONS:
            return self.onnx[args[0]]
        if (node.op == "call_function" and t in (TF.log_softmax, torch.log_softmax)) or (
            node.op == "call_method" and t == "log_softmax"
        ):
            dim = node.kwargs.get("dim", args[1] if len(args) > 1 else -1)
            return emit.activation(b, "log_softmax", self.onnx[args[0]], axis=dim, name=name)
        if node.op == "call_function" and t is TF.linear:
            w = args[1] if len(args) > 1 else node.kwargs.get("weight")
            bias = args[2] if len(args) > 2 else node.kwargs.get("bias")
            wt = b.node("Transpose", [self.onnx[w]], {"perm": [1, 0]}, name=f"{name}.weight_t")
            y = b.node("MatMul", [self.onnx[args[0]], wt], name=f"{name}.matmul")
            return b.node("Add", [y, self.onnx[bias]], name=name) if isinstance(bias, torch.fx.Node) else y
        if node.op == "call_function" and t is TF.layer_norm:
            shape = args[1] if len(args) > 1 else node.kwargs["normalized_shape"]
            w = args[2] if len(args) > 2 else node.kwargs.get("weight")
            bias = args[3] if len(args) > 3 else node.kwargs.get("bias")
            eps = args[4] if len(args) > 4 else node.kwargs.get("eps", 1e-5)
            n = list(shape)
            scale = self.onnx[w] if isinstance(w, torch.fx.Node) else b.constant(f"{name}.ones", np.ones(n, np.float32))
            ins = [self.onnx[args[0]], scale] + ([self.onnx[bias]] if isinstance(bias, torch.fx.Node) else [])
            return b.node("LayerNormalization", ins, {"axis": -len(n), "epsilon": float(eps)}, name=name)
        if node.op == "call_function" and t in (TF.adaptive_avg_pool1d, TF.adaptive_avg_pool2d, TF.adaptive_avg_pool3d):
            out = args[1] if len(args) > 1 else node.kwargs.get("output_size")
            if any(o != 1 for o in _tuple(out, self.value[args[0]].dim() - 2)):
                self.unsupported.append(f"{name}: {t.__name__}(output_size={out}) (only 1)")
                return None
            return emit.pool(b, "global_avg", self.onnx[args[0]], kernel=None, strides=None, name=name)
        if (node.op == "call_method" and t in ("sum", "amax", "max", "min", "amin")) or t in (
            torch.sum,
            torch.amax,
            torch.amin,
        ):
            return self._reduce(
                node,
                {"sum": "ReduceSum", "amax": "ReduceMax", "max": "ReduceMax", "amin": "ReduceMin", "min": "ReduceMin"}[
                    getattr(t, "__name__", t)
                ],
            )
        if (node.op == "call_method" and t in ("squeeze", "unsqueeze")) or t in (torch.squeeze, torch.unsqueeze):
            op = "Squeeze" if getattr(t, "__name__", t) == "squeeze" else "Unsqueeze"
            dim = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dim is None:
                if op == "Unsqueeze":
                    self.unsupported.append(f"{name}: unsqueeze without dim")
                    return None
                dims = [i for i, d in enumerate(self.value[args[0]].shape) if d == 1]
            else:
                dims = [dim] if isinstance(dim, int) else list(dim)
            return b.node(op, [self.onnx[args[0]], b.constant(f"{name}.axes", np.array(dims, np.int64))], name=name)
        if node.op == "call_function" and t is TF.gelu:
            approx = node.kwargs.get("approximate", "none")
            return emit.activation(b, "gelu_tanh" if approx == "tanh" else "gelu", self.onnx[args[0]], name=name)
        if (node.op == "call_function" and t in (TF.softmax, torch.softmax)) or (
            node.op == "call_method" and t == "softmax"
        ):
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
            shape = [
                0 if i == 0 and isinstance(d, torch.fx.Node) else (self.value[d] if isinstance(d, torch.fx.Node) else d)
                for i, d in enumerate(dims)
            ]
            return emit.reshape(b, self.onnx[args[0]], shape, name=name)
        if node.op == "call_method" and t == "size" or (node.op == "call_function" and t is getattr):
            return None  # shape arithmetic: consumed by view/reshape above
        if t in (torch.cat, torch.concat):
            return b.node(
                "Concat",
                [self.onnx[a] for a in args[0]],
                {"axis": node.kwargs.get("dim", args[1] if len(args) > 1 else 0)},
                name=name,
            )
        if node.op == "call_method" and t == "mean" or t is torch.mean:
            return self._reduce(node, "ReduceMean")
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
            import inspect

            bound = inspect.signature(t).bind(*self._vals(args), **node.kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            if given.get("sharpness") is not None:  # the alias of n
                given["n"] = given["sharpness"]
            cfg = {key: given[src] for key, src in squash.items()}
            if any(isinstance(v, torch.Tensor) for v in cfg.values()):
                self.unsupported.append(f"{name}: {t.__name__} with a tensor-valued {sorted(cfg)} (use numbers)")
                return None
            return emit.yat_layer(b, name, t.__name__, cfg, {}, [self.onnx[args[0]]])
        self.unsupported.append(f"{name}: {node.op} {getattr(t, '__name__', t)}")
        return None


def _squashers():
    """nmn's functional squashers -> {spec config key: the function's argument}."""
    import nmn.torch as nt

    return {
        nt.softermax: {"n": "n", "epsilon": "epsilon", "axis": "dim"},
        nt.softer_sigmoid: {"n": "n"},
        nt.soft_tanh: {"n": "n"},
    }


def _tuple(v, rank):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * rank
