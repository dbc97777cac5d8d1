"""What the torch exporter writes for a traced ``call_function`` / ``call_method`` node: one registered emitter per
function or method name (:data:`FUNCTIONS`, keyed by ``(node.op, target)``), nmn's functional squashers apart.

Each emitter takes the exporter and the fx node and returns the ONNX value name, or ``None`` after adding a line to
``ex.unsupported``.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as TF

from nmn.interchange import emit
from nmn.interchange.registry import Registry

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


def _tuple(v, rank):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * rank


FUNCTIONS = Registry("torch functions")  # (node.op, target) -> emitter(ex, node); the first filed wins
_F, _M = "call_function", "call_method"


def _keys(op: str, targets) -> list[tuple[str, Any]]:
    return [(op, t) for t in targets]


def _binary(ex, node):
    b, t, args, name = ex.b, node.target, node.args, node.name
    op = _BINARY.get(t) if node.op == _F else _METHOD_BINARY.get(t)
    operands = [args[0], node.kwargs.get("other", node.kwargs.get("exponent", args[1] if len(args) > 1 else None))]
    if "alpha" in node.kwargs or len(args) > 2:
        ex.unsupported.append(f"{name}: {getattr(t, '__name__', t)} with alpha= (write x + alpha * y)")
        return None
    return b.node(op, [ex._operand(a, operands, name) for a in operands], name=name)


FUNCTIONS.add(_keys(_F, _BINARY) + _keys(_M, _METHOD_BINARY), _binary)


def _unary(ex, node):
    op = _UNARY.get(node.target) if node.op == _F else _METHOD_UNARY.get(node.target)
    return ex.b.node(op, [ex.onnx[node.args[0]]], name=node.name)


FUNCTIONS.add(_keys(_F, _UNARY) + _keys(_M, _METHOD_UNARY), _unary)


@FUNCTIONS.register((_F, torch.rsqrt), (_M, "rsqrt"))
def _rsqrt(ex, node):
    b, name = ex.b, node.name
    return b.node("Reciprocal", [b.node("Sqrt", [ex.onnx[node.args[0]]], name=f"{name}.sqrt")], name=name)


def _activation(ex, node):
    t, args = node.target, node.args
    kind = _FN_ACTIVATIONS[t] if node.op == _F else _METHOD_ACTIVATIONS[t]
    params = _activation_params(kind, None, args, node.kwargs)
    return emit.activation(ex.b, kind, ex.onnx[args[0]], name=node.name, **params)


FUNCTIONS.add(_keys(_F, _FN_ACTIVATIONS) + _keys(_M, _METHOD_ACTIVATIONS), _activation)


@FUNCTIONS.register(*_keys(_F, _IDENTITY_FUNCTIONS), (_M, "contiguous"))
def _identity(ex, node):
    return ex.onnx[node.args[0]]


@FUNCTIONS.register((_F, TF.log_softmax), (_F, torch.log_softmax), (_M, "log_softmax"))
def _log_softmax(ex, node):
    args = node.args
    dim = node.kwargs.get("dim", args[1] if len(args) > 1 else -1)
    return emit.activation(ex.b, "log_softmax", ex.onnx[args[0]], axis=dim, name=node.name)


@FUNCTIONS.register((_F, TF.linear))
def _linear(ex, node):
    b, args, name = ex.b, node.args, node.name
    w = args[1] if len(args) > 1 else node.kwargs.get("weight")
    bias = args[2] if len(args) > 2 else node.kwargs.get("bias")
    wt = b.node("Transpose", [ex.onnx[w]], {"perm": [1, 0]}, name=f"{name}.weight_t")
    y = b.node("MatMul", [ex.onnx[args[0]], wt], name=f"{name}.matmul")
    return b.node("Add", [y, ex.onnx[bias]], name=name) if isinstance(bias, torch.fx.Node) else y


@FUNCTIONS.register((_F, TF.layer_norm))
def _layer_norm(ex, node):
    b, args, name = ex.b, node.args, node.name
    shape = args[1] if len(args) > 1 else node.kwargs["normalized_shape"]
    w = args[2] if len(args) > 2 else node.kwargs.get("weight")
    bias = args[3] if len(args) > 3 else node.kwargs.get("bias")
    eps = args[4] if len(args) > 4 else node.kwargs.get("eps", 1e-5)
    n = list(shape)
    scale = ex.onnx[w] if isinstance(w, torch.fx.Node) else b.constant(f"{name}.ones", np.ones(n, np.float32))
    ins = [ex.onnx[args[0]], scale] + ([ex.onnx[bias]] if isinstance(bias, torch.fx.Node) else [])
    return b.node("LayerNormalization", ins, {"axis": -len(n), "epsilon": float(eps)}, name=name)


@FUNCTIONS.register((_F, TF.adaptive_avg_pool1d), (_F, TF.adaptive_avg_pool2d), (_F, TF.adaptive_avg_pool3d))
def _adaptive_avg_pool(ex, node):
    args, name = node.args, node.name
    out = args[1] if len(args) > 1 else node.kwargs.get("output_size")
    if any(o != 1 for o in _tuple(out, ex.value[args[0]].dim() - 2)):
        ex.unsupported.append(f"{name}: {node.target.__name__}(output_size={out}) (only 1)")
        return None
    return emit.pool(ex.b, "global_avg", ex.onnx[args[0]], kernel=None, strides=None, name=name)


_REDUCE = {"sum": "ReduceSum", "amax": "ReduceMax", "max": "ReduceMax", "amin": "ReduceMin", "min": "ReduceMin"}


@FUNCTIONS.register(*_keys(_M, _REDUCE), (_F, torch.sum), (_F, torch.amax), (_F, torch.amin))
def _reduce_named(ex, node):
    return _reduce(ex, node, _REDUCE[getattr(node.target, "__name__", node.target)])


@FUNCTIONS.register((_M, "squeeze"), (_M, "unsqueeze"), (_F, torch.squeeze), (_F, torch.unsqueeze))
def _squeeze(ex, node):
    b, args, name, t = ex.b, node.args, node.name, node.target
    op = "Squeeze" if getattr(t, "__name__", t) == "squeeze" else "Unsqueeze"
    dim = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dim is None:
        if op == "Unsqueeze":
            ex.unsupported.append(f"{name}: unsqueeze without dim")
            return None
        dims = [i for i, d in enumerate(ex.value[args[0]].shape) if d == 1]
    else:
        dims = [dim] if isinstance(dim, int) else list(dim)
    return b.node(op, [ex.onnx[args[0]], b.constant(f"{name}.axes", np.array(dims, np.int64))], name=name)


@FUNCTIONS.register((_F, TF.gelu))
def _gelu(ex, node):
    approx = node.kwargs.get("approximate", "none")
    kind = "gelu_tanh" if approx == "tanh" else "gelu"
    return emit.activation(ex.b, kind, ex.onnx[node.args[0]], name=node.name)


@FUNCTIONS.register((_F, TF.softmax), (_F, torch.softmax), (_M, "softmax"))
def _softmax(ex, node):
    args = node.args
    dim = node.kwargs.get("dim", args[1] if len(args) > 1 else -1)
    return emit.activation(ex.b, "softmax", ex.onnx[args[0]], axis=dim, name=node.name)


@FUNCTIONS.register((_F, torch.flatten), (_M, "flatten"))
def _flatten(ex, node):
    args, name = node.args, node.name
    start = node.kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
    if start != 1:
        ex.unsupported.append(f"{name}: flatten(start_dim={start}) (only start_dim=1)")
        return None
    return emit.flatten(ex.b, ex.onnx[args[0]], name=name)


@FUNCTIONS.register((_M, "view"), (_M, "reshape"), (_F, torch.reshape))
def _reshape(ex, node):
    args = node.args
    dims = args[1:] if node.op == _M else args[1]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    shape = [
        0 if i == 0 and isinstance(d, torch.fx.Node) else (ex.value[d] if isinstance(d, torch.fx.Node) else d)
        for i, d in enumerate(dims)
    ]
    return emit.reshape(ex.b, ex.onnx[args[0]], shape, name=node.name)


@FUNCTIONS.register((_M, "size"), (_F, getattr))
def _shape_arithmetic(ex, node):
    return None  # shape arithmetic: consumed by view/reshape


@FUNCTIONS.register((_F, torch.cat), (_F, torch.concat))
def _concat(ex, node):
    args = node.args
    axis = node.kwargs.get("dim", args[1] if len(args) > 1 else 0)
    return ex.b.node("Concat", [ex.onnx[a] for a in args[0]], {"axis": axis}, name=node.name)


@FUNCTIONS.register((_M, "mean"), (_F, torch.mean))
def _mean(ex, node):
    return _reduce(ex, node, "ReduceMean")


_TRANSPOSE = ((_M, "permute"), (_M, "transpose"), (_F, torch.permute), (_F, torch.transpose))


@FUNCTIONS.register(*_TRANSPOSE)
def _transpose(ex, node):
    args, t = node.args, node.target
    rank = ex.value[args[0]].dim()
    if t in ("transpose", torch.transpose):
        perm = list(range(rank))
        i, j = (d % rank for d in args[1:3])
        perm[i], perm[j] = perm[j], perm[i]
    else:
        perm = list(args[1:]) if node.op == _M else list(args[1])
        if len(perm) == 1 and isinstance(perm[0], (tuple, list)):
            perm = list(perm[0])
    return ex.b.node("Transpose", [ex.onnx[args[0]]], {"perm": [p % rank for p in perm]}, name=node.name)


@FUNCTIONS.register((_F, operator.getitem))
def _getitem(ex, node):
    if isinstance(ex.value[node.args[0]], (tuple, list)):
        return ex.onnx[node.args[0]]
    return unsupported(ex, node)


def _reduce(ex, node, op):
    """mean / sum / amax / amin over ``dim`` (all axes when absent); ``max``/``min`` with a dim return indices too,
    which nmn does not export."""
    b, args, name = ex.b, node.args, node.name
    dims = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
    keep = int(bool(node.kwargs.get("keepdim", args[2] if len(args) > 2 else False)))
    if node.target in ("max", "min") and dims is not None:
        ex.unsupported.append(f"{name}: {node.target}(dim) (returns indices; use amax/amin)")
        return None
    rank = ex.value[args[0]].dim()
    dims = list(range(rank)) if dims is None else [dims] if isinstance(dims, int) else list(dims)
    axes = b.constant(f"{name}.axes", np.array(dims, np.int64))
    return b.node(op, [ex.onnx[args[0]], axes], {"keepdims": keep}, name=name)


def squasher(ex, node, squash: dict):
    """An nmn functional squasher (``nt.softermax(x, n=2)``): one ``nmn::`` node with its numeric arguments."""
    t, name = node.target, node.name
    bound = inspect.signature(t).bind(*ex._vals(node.args), **node.kwargs)
    bound.apply_defaults()
    given = dict(bound.arguments)
    if given.get("sharpness") is not None:  # the alias of n
        given["n"] = given["sharpness"]
    cfg = {key: given[src] for key, src in squash.items()}
    if any(isinstance(v, torch.Tensor) for v in cfg.values()):
        ex.unsupported.append(f"{name}: {t.__name__} with a tensor-valued {sorted(cfg)} (use numbers)")
        return None
    return emit.yat_layer(ex.b, name, t.__name__, cfg, {}, [ex.onnx[node.args[0]]])


def squashers():
    """nmn's functional squashers -> {spec config key: the function's argument}."""
    import nmn.torch as nt

    return {
        nt.softermax: {"n": "n", "epsilon": "epsilon", "axis": "dim"},
        nt.softer_sigmoid: {"n": "n"},
        nt.soft_tanh: {"n": "n"},
    }


def unsupported(ex, node):
    ex.unsupported.append(f"{node.name}: {node.op} {getattr(node.target, '__name__', node.target)}")
    return None


def emit_function(ex, node):
    """Write one ``call_function`` / ``call_method`` node: its registered emitter, a squasher, or a line in
    ``ex.unsupported``."""
    fn = FUNCTIONS.get((node.op, node.target))
    if fn is not None:
        return fn(ex, node)
    squash = squashers().get(node.target) if node.op == _F else None
    if squash is not None:
        return squasher(ex, node, squash)
    return unsupported(ex, node)
