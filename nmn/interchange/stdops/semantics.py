"""The standard ONNX ops, each written once against a primitives namespace ``P`` (see :mod:`.prims_numpy`).

An op is ``fn(P, args, attrs, ctx)``: ``args`` are the node's inputs in order (``None`` for an omitted optional
input), ``attrs`` plain Python attributes, ``ctx`` the opset version and the number of outputs asked for. It
returns one value or a tuple (multi-output nodes). Everything ONNX-specific lives here: attribute defaults by
opset, negative axes and indices, ``auto_pad``, ``ceil_mode``, dilations, integer division, ...; ``P`` only
supplies array primitives. The semantics follow the ONNX operator specification (onnx/docs/Operators.md).

>>> import numpy as np
>>> from nmn.interchange.stdops.prims_numpy import NUMPY
>>> run_node(NUMPY, "Mod", [np.array([-4, 7]), np.array([3, -3])], {}, opset=17)[0]
array([ 2, -2])
>>> run_node(NUMPY, "Softmax", [np.zeros((1, 2), np.float32)], {}, opset=13)[0]
array([[0.5, 0.5]], dtype=float32)
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import helper

from nmn.interchange.reader import UnsupportedModelError


class StdOpError(UnsupportedModelError):
    """A standard ONNX node the loader cannot run: the message names the op, the attribute and what is supported."""


@dataclass
class Ctx:
    opset: int
    n_outputs: int
    host: str
    op: str


OPS: dict[str, Callable] = {}
SUPPORTED: dict[str, int] = {}
"""Standard op -> the earliest opset version whose semantics the loaders implement (all later ones up to 23)."""


def op(*names: str, since: int = 1):
    def register(fn):
        for name in names:
            OPS[name] = fn
            SUPPORTED[name] = since
        return fn

    return register


def _refuse(ctx: Ctx, what: str, supported: str):
    raise StdOpError(f"{ctx.op}: {what} is not supported by the {ctx.host} loader (supported: {supported})")


def run_node(P, op_type: str, args: list, attrs: dict, *, opset: int = 17, n_outputs: int = 1) -> tuple:
    """Run one standard node; returns a tuple of ``n_outputs`` values (``None`` for outputs it does not make).

    Inputs that are all numpy (constants) are computed with numpy (constant folding)."""
    from nmn.interchange.stdops.prims_numpy import NUMPY

    fn = OPS.get(op_type)
    if fn is None:
        raise StdOpError(f"{op_type}: op not supported by the {P.name} loader (see nmn.interchange.stdops.SUPPORTED)")
    host = P
    if all(a is None or isinstance(a, (np.ndarray, np.generic)) for a in args):
        host = NUMPY
    ctx = Ctx(opset, n_outputs, P.name, op_type)
    out = fn(host, list(args), dict(attrs), ctx)
    out = tuple(out) if isinstance(out, tuple) else (out,)
    if host is NUMPY:
        out = tuple(None if o is None else np.asarray(o) for o in out)
    return out + (None,) * (n_outputs - len(out))


REDUCE_OPS = (
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)

SHAPE_ARGS = {
    "Reshape": (1,),
    "Expand": (1,),
    "ConstantOfShape": (0,),
    "Slice": (1, 2, 3, 4),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Pad": (1, 2, 3),
    "Split": (1,),
    "Range": (0, 1, 2),
    "Resize": (1, 2, 3),
    "Dropout": (1, 2),
    **{r: (1,) for r in REDUCE_OPS},
}
"""Inputs (by position) that the semantics need as values, not just tensors (shapes, axes, pads, ...)."""


def value_inputs(nodes, names) -> set[str]:
    """The names among ``names`` (graph inputs) that some node reads at a :data:`SHAPE_ARGS` position: a loader
    that traces its graph must run such a graph eagerly, when those values are known."""
    hit = set()
    for node in nodes:
        for i in SHAPE_ARGS.get(node.op, ()):
            if i < len(node.inputs) and node.inputs[i] in names:
                hit.add(node.inputs[i])
    return hit


def unsupported_summary(ops: list[str], host: str) -> str | None:
    """One line per unsupported standard op with its count (``None`` when every op is supported)."""
    missing = Counter(o for o in ops if o not in OPS)
    if not missing:
        return None
    return (
        f"cannot load into {host}: {sum(missing.values())} node(s) of {len(missing)} unsupported op(s): "
        + ", ".join(f"{o} x{n}" for o, n in sorted(missing.items()))
    )


# ----------------------------------------------------------------------------------------------- helpers
def _opt(args, i):
    return args[i] if len(args) > i else None


def _const(P, v, ctx, what):
    c = P.const(v)
    if c is None:
        _refuse(ctx, f"input {what!r} computed at run time", f"a {what} known when the graph is built")
    return c


def _ints(P, v, ctx, what) -> list[int]:
    return [int(i) for i in np.asarray(_const(P, v, ctx, what)).reshape(-1)]


def _rank(P, x) -> int:
    return len(P.shape(x))


def _static(P, x, ctx, what="input shape") -> list[int]:
    s = P.shape(x)
    if any(d is None for d in s):
        _refuse(ctx, f"an unknown {what} {tuple(s)}", "static sizes")
    return [int(d) for d in s]


def _reshape_target(P, x, dims):
    """A target for ``P.reshape`` where an unknown leading size is written -1."""
    return tuple(-1 if d is None else d for d in dims)


def _is_int(P, x) -> bool:
    return np.dtype(P.dtype(x)).kind in "iub"


def _np_dtype(to: int):
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
    except Exception:
        dt = None
    if (
        dt is None
        or dt.kind not in "fiub"
        or dt.name in ("float8_e4m3fn", "float8_e5m2", "int4", "uint4")
        or dt.itemsize == 1
        and dt.kind == "f"
        or dt.kind == "V"
    ):
        return None
    return dt


def _scalar(P, x, dtype):
    return P.asarray(np.asarray(x, dtype=dtype))


def _axes_arg(P, args, attrs, ctx, input_since: int):
    """``axes`` from the second input (opset >= ``input_since``) or the attribute; None when absent/empty."""
    if ctx.opset >= input_since:
        v = _opt(args, 1)
        axes = None if v is None else _ints(P, v, ctx, "axes")
    else:
        axes = attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


# ------------------------------------------------------------------------------------------ element-wise
_UNARY = {
    "Abs": "abs",
    "Neg": "neg",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Erf": "erf",
    "Tanh": "tanh",
    "Floor": "floor",
    "Ceil": "ceil",
    "Sign": "sign",
    "Sin": "sin",
    "Cos": "cos",
    "Not": "logical_not",
    "Sigmoid": "sigmoid",
    "Round": "round",
}


@op(*_UNARY)
def _unary(P, args, attrs, ctx):
    return P.unary(_UNARY[ctx.op], args[0])


@op("Identity")
def _identity(P, args, attrs, ctx):
    return args[0]


@op("Reciprocal")
def _reciprocal(P, args, attrs, ctx):
    return P.binary("div", _scalar(P, 1, P.dtype(args[0])), args[0])


@op("Relu")
def _relu(P, args, attrs, ctx):
    return P.binary("maximum", args[0], _scalar(P, 0, P.dtype(args[0])))


@op("LeakyRelu")
def _leaky(P, args, attrs, ctx):
    x = args[0]
    a = _scalar(P, attrs.get("alpha", 0.01), P.dtype(x))
    return P.where(P.binary("less", x, _scalar(P, 0, P.dtype(x))), P.binary("mul", x, a), x)


@op("PRelu")
def _prelu(P, args, attrs, ctx):
    x = args[0]
    return P.where(P.binary("less", x, _scalar(P, 0, P.dtype(x))), P.binary("mul", x, args[1]), x)


def _elu_core(P, x, alpha):
    dt = P.dtype(x)
    neg = P.binary("mul", _scalar(P, alpha, dt), P.binary("sub", P.unary("exp", x), _scalar(P, 1, dt)))
    return P.where(P.binary("less", x, _scalar(P, 0, dt)), neg, x)


@op("Elu")
def _elu(P, args, attrs, ctx):
    return _elu_core(P, args[0], attrs.get("alpha", 1.0))


@op("Selu")
def _selu(P, args, attrs, ctx):
    gamma = attrs.get("gamma", 1.05070102214813232421875)
    return P.binary(
        "mul", _scalar(P, gamma, P.dtype(args[0])), _elu_core(P, args[0], attrs.get("alpha", 1.67326319217681884765625))
    )


@op("Celu", since=12)
def _celu(P, args, attrs, ctx):
    x = args[0]
    alpha = attrs.get("alpha", 1.0)
    dt = P.dtype(x)
    neg = P.binary(
        "mul",
        _scalar(P, alpha, dt),
        P.binary("sub", P.unary("exp", P.binary("div", x, _scalar(P, alpha, dt))), _scalar(P, 1, dt)),
    )
    return P.where(P.binary("less", x, _scalar(P, 0, dt)), neg, x)


def _clip_core(P, x, lo, hi):
    if lo is not None:
        x = P.binary("maximum", x, lo)
    if hi is not None:
        x = P.binary("minimum", x, hi)
    return x


@op("HardSigmoid")
def _hard_sigmoid(P, args, attrs, ctx):
    x = args[0]
    dt = P.dtype(x)
    y = P.binary(
        "add", P.binary("mul", x, _scalar(P, attrs.get("alpha", 0.2), dt)), _scalar(P, attrs.get("beta", 0.5), dt)
    )
    return _clip_core(P, y, _scalar(P, 0, dt), _scalar(P, 1, dt))


@op("HardSwish")
def _hard_swish(P, args, attrs, ctx):
    return P.binary("mul", args[0], _hard_sigmoid(P, args, {"alpha": 1 / 6, "beta": 0.5}, ctx))


@op("Softplus")
def _softplus(P, args, attrs, ctx):
    x = args[0]
    dt = P.dtype(x)
    # softplus(x) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|
    tail = P.unary("log", P.binary("add", _scalar(P, 1, dt), P.unary("exp", P.unary("neg", P.unary("abs", x)))))
    return P.binary("add", P.binary("maximum", x, _scalar(P, 0, dt)), tail)


@op("Softsign")
def _softsign(P, args, attrs, ctx):
    x = args[0]
    return P.binary("div", x, P.binary("add", _scalar(P, 1, P.dtype(x)), P.unary("abs", x)))


@op("Gelu", since=20)
def _gelu(P, args, attrs, ctx):
    x = args[0]
    dt = P.dtype(x)
    half = P.binary("mul", x, _scalar(P, 0.5, dt))
    if attrs.get("approximate", "none") == "tanh":
        inner = P.binary(
            "mul",
            _scalar(P, math.sqrt(2 / math.pi), dt),
            P.binary("add", x, P.binary("mul", _scalar(P, 0.044715, dt), P.binary("mul", x, P.binary("mul", x, x)))),
        )
        return P.binary("mul", half, P.binary("add", _scalar(P, 1, dt), P.unary("tanh", inner)))
    if attrs.get("approximate", "none") != "none":
        _refuse(ctx, f"approximate={attrs['approximate']!r}", "'none', 'tanh'")
    erf = P.unary("erf", P.binary("mul", x, _scalar(P, 1 / math.sqrt(2), dt)))
    return P.binary("mul", half, P.binary("add", _scalar(P, 1, dt), erf))


_BINARY = {
    "Add": "add",
    "Sub": "sub",
    "Mul": "mul",
    "Equal": "equal",
    "Less": "less",
    "Greater": "greater",
    "LessOrEqual": "less_equal",
    "GreaterOrEqual": "greater_equal",
    "And": "logical_and",
    "Or": "logical_or",
    "Xor": "logical_xor",
}


@op(*_BINARY)
def _binary(P, args, attrs, ctx):
    if attrs.get("broadcast") is not None and attrs.get("axis") is not None:
        _refuse(ctx, "legacy broadcast with axis", "numpy-style broadcasting (opset >= 7)")
    return P.binary(_BINARY[ctx.op], args[0], args[1])


def _trunc_div(P, a, b):
    """Integer division truncated toward zero (C semantics, ONNX ``Div`` on integers)."""
    q = P.binary("floordiv", a, b)
    r = P.binary("sub", a, P.binary("mul", q, b))
    zero = _scalar(P, 0, P.dtype(a))
    signs_differ = P.binary("logical_xor", P.binary("less", a, zero), P.binary("less", b, zero))
    adjust = P.binary("logical_and", P.binary("not_equal", r, zero), signs_differ)
    return P.binary("add", q, P.cast(adjust, P.dtype(a)))


@op("Div")
def _div(P, args, attrs, ctx):
    a, b = args
    if _is_int(P, a):
        return _trunc_div(P, a, b)
    return P.binary("div", a, b)


@op("Mod", since=10)
def _mod(P, args, attrs, ctx):
    a, b = args
    if _is_int(P, a):
        q = _trunc_div(P, a, b) if attrs.get("fmod", 0) else P.binary("floordiv", a, b)
        return P.binary("sub", a, P.binary("mul", q, b))
    q = P.binary("div", a, b)
    dt = P.dtype(a)
    zero, inf = _scalar(P, 0, dt), _scalar(P, np.inf, dt)
    # b = +-inf and a finite: the formulas give NaN (0 * inf); the spec gives a, or b where fmod=0 and signs differ
    finite_by_inf = P.binary(
        "logical_and", P.binary("equal", P.unary("abs", b), inf), P.binary("less", P.unary("abs", a), inf)
    )
    if attrs.get("fmod", 0):  # a - trunc(a / b) * b
        trunc = P.binary("mul", P.unary("sign", q), P.unary("floor", P.unary("abs", q)))
        return P.where(finite_by_inf, a, P.binary("sub", a, P.binary("mul", trunc, b)))
    # fmod=0 on floats (opset 28 allows it): a - floor(a / b) * b, with the sign of b
    r = P.binary("sub", a, P.binary("mul", P.unary("floor", q), b))
    b_neg = P.binary("less", b, zero)
    same_sign = P.binary("equal", P.binary("less", a, zero), b_neg)
    r = P.where(finite_by_inf, P.where(same_sign, a, b), r)
    # a zero result (a = +-0 among them) takes the sign of b
    signed_zero = P.where(b_neg, _scalar(P, -0.0, dt), zero)
    return P.where(P.binary("equal", r, zero), signed_zero, r)


@op("Pow")
def _pow(P, args, attrs, ctx):
    a, b = args
    dt = P.dtype(a)
    if np.dtype(dt).kind in "iu":
        if np.dtype(P.dtype(b)).kind == "f":
            return P.cast(P.binary("pow", P.cast(a, P.dtype(b)), b), dt)
        return P.binary("pow", a, P.cast(b, dt))
    return P.binary("pow", a, P.cast(b, dt) if P.dtype(b) != dt else b)


def _variadic(name):
    def run(P, args, attrs, ctx):
        y = args[0]
        for x in args[1:]:
            y = P.binary(name, y, x)
        return y

    return run


op("Max")(_variadic("maximum"))
op("Min")(_variadic("minimum"))
op("Sum")(_variadic("add"))


@op("Mean")
def _mean(P, args, attrs, ctx):
    s = _variadic("add")(P, args, attrs, ctx)
    return P.binary("div", s, _scalar(P, len(args), P.dtype(s)))


@op("Where", since=9)
def _where(P, args, attrs, ctx):
    return P.where(args[0], args[1], args[2])


@op("Clip")
def _clip(P, args, attrs, ctx):
    x = args[0]
    dt = P.dtype(x)
    if ctx.opset < 11:
        lo = attrs.get("min")
        hi = attrs.get("max")
        return _clip_core(P, x, None if lo is None else _scalar(P, lo, dt), None if hi is None else _scalar(P, hi, dt))
    lo, hi = _opt(args, 1), _opt(args, 2)
    return _clip_core(P, x, None if lo is None else P.cast(lo, dt), None if hi is None else P.cast(hi, dt))


@op("Cast", "CastLike")
def _cast(P, args, attrs, ctx):
    if ctx.op == "CastLike":
        dt = np.dtype(P.dtype(args[1]))
    else:
        dt = _np_dtype(attrs["to"])
        if dt is None:
            _refuse(
                ctx,
                f"to={helper.tensor_dtype_to_string(int(attrs['to']))}",
                "float16/32/64, bfloat16, int8-64, uint8-64, bool",
            )
    if np.dtype(P.dtype(args[0])).kind not in "fiub":
        _refuse(ctx, f"input of type {P.dtype(args[0])}", "numeric and bool tensors")
    return P.cast(args[0], dt)


# ---------------------------------------------------------------------------------------------- linear
@op("MatMul")
def _matmul(P, args, attrs, ctx):
    return P.matmul(args[0], args[1])


@op("Gemm")
def _gemm(P, args, attrs, ctx):
    a, b, c = args[0], args[1], _opt(args, 2)
    if attrs.get("transA", 0):
        a = P.transpose(a, (1, 0))
    if attrs.get("transB", 0):
        b = P.transpose(b, (1, 0))
    y = P.matmul(a, b)
    dt = P.dtype(y)
    if attrs.get("alpha", 1.0) != 1.0:
        y = P.binary("mul", y, _scalar(P, attrs["alpha"], dt))
    if c is not None:
        if len(P.shape(c)) == 2 and P.shape(c)[0] == 1:
            # (1, N) broadcasts over the rows like (N,); as (N,) the hosts fuse it as a bias (oneDNN's fused
            # MatMul+BiasAdd in TensorFlow takes only a 1-d bias and fails on [1, N]).
            c = P.squeeze(c, (0,))
        if attrs.get("beta", 1.0) != 1.0:
            c = P.binary("mul", c, _scalar(P, attrs["beta"], dt))
        y = P.binary("add", y, c)
    return y


@op("Einsum", since=12)
def _einsum(P, args, attrs, ctx):
    return P.einsum(attrs["equation"].replace(" ", ""), *args)


# ------------------------------------------------------------------------------------------ convolution
def _same_pads(in_size, k, s, d, mode):
    out = -(-in_size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    small, big = total // 2, total - total // 2
    return (small, big) if mode == "SAME_UPPER" else (big, small)


def _window_pads(attrs, spatial, kernel, strides, dil, ctx) -> list[tuple[int, int]]:
    """``(lo, hi)`` per spatial axis of a Conv/pool node from ``pads`` or ``auto_pad``."""
    rank = len(kernel)
    mode = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if mode == "NOTSET":
        p = attrs.get("pads") or [0] * (2 * rank)
        return [(int(p[i]), int(p[i + rank])) for i in range(rank)]
    if mode == "VALID":
        return [(0, 0)] * rank
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        if any(n is None for n in spatial):
            _refuse(ctx, f"auto_pad={mode} with unknown spatial sizes", "static spatial sizes")
        return [_same_pads(n, k, s, d, mode) for n, k, s, d in zip(spatial, kernel, strides, dil)]
    _refuse(ctx, f"auto_pad={mode!r}", "NOTSET, SAME_UPPER, SAME_LOWER, VALID")


def _bias_add(P, y, bias, rank):
    if bias is None:
        return y
    return P.binary("add", y, P.reshape(bias, (1, -1) + (1,) * rank))


@op("Conv")
def _conv(P, args, attrs, ctx):
    x, w, bias = args[0], args[1], _opt(args, 2)
    wshape = P.shape(w)
    rank = len(wshape) - 2
    kernel = list(attrs.get("kernel_shape") or wshape[2:])
    strides = list(attrs.get("strides") or [1] * rank)
    dil = list(attrs.get("dilations") or [1] * rank)
    pads = _window_pads(attrs, P.shape(x)[2:], kernel, strides, dil, ctx)
    y = P.conv(x, w, strides, dil, pads, int(attrs.get("group", 1)))
    return _bias_add(P, y, bias, rank)


def _upsample_zeros(P, x, axis, s):
    """Insert ``s - 1`` zeros between the elements of ``x`` along ``axis`` (length L -> (L - 1) * s + 1)."""
    if s == 1:
        return x
    shape = list(P.shape(x))
    n = shape[axis]
    h = P.expand_dims(x, axis + 1)
    widths = [(0, 0)] * (len(shape) + 1)
    widths[axis + 1] = (0, s - 1)
    h = P.pad(h, widths, 0)
    h = P.reshape(h, _reshape_target(P, h, shape[:axis] + [n * s] + shape[axis + 1 :]))
    return _slice_axis(P, h, axis, 0, (n - 1) * s + 1, 1)


def _slice_axis(P, x, axis, start, stop, step):
    spec = [(0, None, 1)] * _rank(P, x)
    spec[axis] = (start, stop, step)
    return P.slice(x, spec)


def _pad_or_crop(P, x, widths, value=0):
    """Pad (positive) or crop (negative) each axis by ``(lo, hi)``."""
    crop = [(max(-lo, 0), max(-hi, 0)) for lo, hi in widths]
    if any(c != (0, 0) for c in crop):
        shape = P.shape(x)
        x = P.slice(x, [(lo, None if hi == 0 else shape[i] - hi, 1) for i, (lo, hi) in enumerate(crop)])
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if any(g != (0, 0) for g in grow):
        x = P.pad(x, grow, value)
    return x


@op("ConvTranspose")
def _conv_transpose(P, args, attrs, ctx):
    x, w, bias = args[0], args[1], _opt(args, 2)
    c, mg, *k = _static(P, w, ctx, "weight shape")
    rank = len(k)
    k = list(attrs.get("kernel_shape") or k)
    g = int(attrs.get("group", 1))
    strides = list(attrs.get("strides") or [1] * rank)
    dil = list(attrs.get("dilations") or [1] * rank)
    outpad = list(attrs.get("output_padding") or [0] * rank)
    spatial = P.shape(x)[2:]
    mode = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    out_shape = attrs.get("output_shape")
    if out_shape is not None or mode in ("SAME_UPPER", "SAME_LOWER"):
        if any(n is None for n in spatial):
            _refuse(ctx, "output_shape/auto_pad with unknown spatial sizes", "static spatial sizes")
        if out_shape is None:
            out_shape = [n * s for n, s in zip(spatial, strides)]
        out_shape = list(out_shape)[-rank:]
        pads = []
        for i in range(rank):
            total = strides[i] * (spatial[i] - 1) + outpad[i] + (k[i] - 1) * dil[i] + 1 - out_shape[i]
            half = total // 2
            pads.append((half, total - half) if mode == "SAME_UPPER" else (total - half, half))
    elif mode == "VALID":
        pads = [(0, 0)] * rank
    elif mode == "NOTSET":
        p = attrs.get("pads") or [0] * (2 * rank)
        pads = [(int(p[i]), int(p[i + rank])) for i in range(rank)]
    else:
        _refuse(ctx, f"auto_pad={mode!r}", "NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    # a transposed conv is a stride-1 conv of the zero-upsampled input with the flipped, regrouped kernel
    h = x
    for i in range(rank):
        h = _upsample_zeros(P, h, 2 + i, strides[i])
    widths = [(0, 0), (0, 0)] + [
        (dil[i] * (k[i] - 1) - lo, dil[i] * (k[i] - 1) - hi + outpad[i]) for i, (lo, hi) in enumerate(pads)
    ]
    h = _pad_or_crop(P, h, widths)
    wk = P.reshape(w, (g, c // g, mg, *k))
    wk = P.transpose(wk, (0, 2, 1, *range(3, rank + 3)))
    wk = P.reshape(wk, (g * mg, c // g, *k))
    wk = P.flip(wk, tuple(range(2, rank + 2)))
    y = P.conv(h, wk, [1] * rank, dil, [(0, 0)] * rank, g)
    return _bias_add(P, y, bias, rank)


# ------------------------------------------------------------------------------------------------ pools
def _pool_geometry(P, x, attrs, ctx, kernel):
    rank = len(kernel)
    spatial = P.shape(x)[2:]
    strides = list(attrs.get("strides") or [1] * rank)
    dil = list(attrs.get("dilations") or [1] * rank)
    pads = _window_pads(attrs, spatial, kernel, strides, dil, ctx)
    if any(n is None for n in spatial):
        _refuse(ctx, f"unknown spatial sizes {tuple(spatial)}", "static spatial sizes")
    ceil = bool(attrs.get("ceil_mode", 0))
    mode = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    outs, extra = [], []
    for n, k, s, d, (lo, hi) in zip(spatial, kernel, strides, dil, pads):
        # the file's geometry is untrusted: a window must fit the padded input (ONNX needs an output of at least
        # one), so the loop over kernel offsets below is bounded by the input's size (a kernel of 2**31 made a
        # loader run away; found by scripts/fuzz_files.py)
        if min(k, s, d) < 1 or min(lo, hi) < 0:
            _refuse(ctx, f"kernel {kernel}, strides {strides}, dilations {dil}, pads {pads}", "positive sizes")
        span = (k - 1) * d + 1
        if span > n + lo + hi or (mode in ("SAME_UPPER", "SAME_LOWER") and span > 2 * n):
            _refuse(ctx, f"a window of {span} over an input of {n} (pads {lo}, {hi})", "windows that fit the input")
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-n // s)
        elif mode == "VALID":
            out = (n - span) // s + 1
        else:
            num = n + lo + hi - span
            out = (-(-num // s) if ceil else num // s) + 1
            if ceil and (out - 1) * s >= n + lo:
                out -= 1
        outs.append(out)
        extra.append(max((out - 1) * s + span - (n + lo + hi), 0))
    return strides, dil, pads, outs, extra


def _windows(P, h, kernel, strides, dil, outs):
    """Every kernel offset's strided view of the padded input ``h`` (N, C, *spatial)."""
    for offset in itertools.product(*[range(k) for k in kernel]):
        spec = [(0, None, 1), (0, None, 1)]
        for o, s, d, out in zip(offset, strides, dil, outs):
            spec.append((o * d, o * d + (out - 1) * s + 1, s))
        yield P.slice(h, spec)


@op("MaxPool", "AveragePool")
def _pool(P, args, attrs, ctx):
    x = args[0]
    if ctx.n_outputs > 1:
        _refuse(ctx, "the Indices output", "the pooled output only")
    if attrs.get("storage_order", 0):
        _refuse(ctx, "storage_order=1", "storage_order=0")
    kernel = [int(k) for k in attrs["kernel_shape"]]
    strides, dil, pads, outs, extra = _pool_geometry(P, x, attrs, ctx, kernel)
    dt = np.dtype(P.dtype(x))
    widths = [(0, 0), (0, 0)] + [(lo, hi + e) for (lo, hi), e in zip(pads, extra)]
    if ctx.op == "MaxPool":
        fill = -np.inf if dt.kind == "f" else np.iinfo(dt).min
        h = P.pad(x, widths, fill) if any(w != (0, 0) for w in widths) else x
        y = None
        for v in _windows(P, h, kernel, strides, dil, outs):
            y = v if y is None else P.binary("maximum", y, v)
        return y
    h = P.pad(x, widths, 0) if any(w != (0, 0) for w in widths) else x
    y = None
    for v in _windows(P, h, kernel, strides, dil, outs):
        y = v if y is None else P.binary("add", y, v)
    # the divisor depends on shapes only: count the window cells that are input (and pads if counted) in numpy
    from nmn.interchange.stdops.prims_numpy import NUMPY

    spatial = [int(n) for n in P.shape(x)[2:]]
    ones = np.ones([1, 1] + spatial, dt)
    include = 1 if attrs.get("count_include_pad", 0) else 0
    cells = np.pad(ones, [(0, 0), (0, 0)] + list(pads), constant_values=include)
    cells = np.pad(cells, [(0, 0), (0, 0)] + [(0, e) for e in extra])
    count = sum(_windows(NUMPY, cells, kernel, strides, dil, outs))
    return P.binary("div", y, P.asarray(np.maximum(count, 1).astype(dt)))


@op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(P, args, attrs, ctx):
    x = args[0]
    axes = tuple(range(2, _rank(P, x)))
    return P.reduce("mean" if ctx.op == "GlobalAveragePool" else "max", x, axes, True)


# ------------------------------------------------------------------------------------------ normalization
@op("BatchNormalization")
def _batch_norm(P, args, attrs, ctx):
    if attrs.get("training_mode", 0):
        _refuse(ctx, "training_mode=1", "inference (training_mode=0)")
    x, scale, bias, mean, var = args[:5]
    rank = _rank(P, x)
    shape = (1, -1) + (1,) * (rank - 2)
    r = lambda t: P.reshape(t, shape)
    dt = P.dtype(x)
    inv = P.binary(
        "div", r(scale), P.unary("sqrt", P.binary("add", r(var), _scalar(P, attrs.get("epsilon", 1e-5), dt)))
    )
    return P.binary("add", P.binary("mul", P.binary("sub", x, r(mean)), inv), r(bias))


@op("LayerNormalization", since=17)
def _layer_norm(P, args, attrs, ctx):
    x, scale, bias = args[0], args[1], _opt(args, 2)
    rank = _rank(P, x)
    axis = int(attrs.get("axis", -1)) % rank
    axes = tuple(range(axis, rank))
    dt = np.dtype(P.dtype(x))
    stash = np.dtype(np.float32) if attrs.get("stash_type", 1) == 1 and dt.itemsize < 4 else dt
    xs = P.cast(x, stash) if stash != dt else x
    mean = P.reduce("mean", xs, axes, True)
    d = P.binary("sub", xs, mean)
    var = P.reduce("mean", P.binary("mul", d, d), axes, True)
    inv = P.binary(
        "div",
        _scalar(P, 1, stash),
        P.unary("sqrt", P.binary("add", var, _scalar(P, attrs.get("epsilon", 1e-5), stash))),
    )
    y = P.binary("mul", d, inv)
    y = P.cast(y, dt) if stash != dt else y
    y = P.binary("mul", y, scale)
    if bias is not None:
        y = P.binary("add", y, bias)
    return y, mean, inv


def _softmax_like(P, x, attrs, ctx, log: bool):
    rank = _rank(P, x)
    if ctx.opset < 13:
        axis = int(attrs.get("axis", 1)) % rank
        shape = P.shape(x)
        if axis != rank - 1:  # opset < 13: softmax over the 2-D coercion [prod(shape[:axis]), prod(shape[axis:])]
            flat = _reshape_target(
                P,
                x,
                [
                    None if any(d is None for d in shape[:axis]) else int(np.prod(shape[:axis], dtype=np.int64)),
                    int(np.prod(_static(P, x, ctx)[axis:], dtype=np.int64)),
                ],
            )
            y = _softmax_like(P, P.reshape(x, flat), {"axis": -1}, Ctx(13, 1, ctx.host, ctx.op), log)
            return P.reshape(y, _reshape_target(P, x, list(shape)))
    else:
        axis = int(attrs.get("axis", -1)) % rank
    m = P.reduce("max", x, (axis,), True)
    z = P.binary("sub", x, m)
    e = P.unary("exp", z)
    s = P.reduce("sum", e, (axis,), True)
    return P.binary("sub", z, P.unary("log", s)) if log else P.binary("div", e, s)


@op("Softmax")
def _softmax(P, args, attrs, ctx):
    return _softmax_like(P, args[0], attrs, ctx, False)


@op("LogSoftmax")
def _log_softmax(P, args, attrs, ctx):
    return _softmax_like(P, args[0], attrs, ctx, True)


@op("Dropout")
def _dropout(P, args, attrs, ctx):
    x = args[0]
    training = _opt(args, 2)
    if training is not None and bool(np.asarray(_const(P, training, ctx, "training_mode")).reshape(-1)[0]):
        ratio = _opt(args, 1)
        r = (
            attrs.get("ratio", 0.5)
            if ratio is None
            else float(np.asarray(_const(P, ratio, ctx, "ratio")).reshape(-1)[0])
        )
        if r != 0:
            _refuse(ctx, "training_mode=True with a non-zero ratio", "inference (or ratio 0)")
    if ctx.n_outputs > 1:
        shape = _static(P, x, ctx)
        return x, np.ones(shape, bool)
    return x


# ------------------------------------------------------------------------------------------------ reduce
_REDUCE_SINCE = {"ReduceSum": 13}
_IDENTITY = {"sum": 0.0, "prod": 1.0, "max": -np.inf, "min": np.inf}


@op(*REDUCE_OPS)
def _reduce(P, args, attrs, ctx):
    x = args[0]
    axes = _axes_arg(P, args, attrs, ctx, _REDUCE_SINCE.get(ctx.op, 18))
    rank = _rank(P, x)
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(rank))
    axes = tuple(sorted(a % rank for a in axes))
    keep = bool(attrs.get("keepdims", 1))
    name = ctx.op[len("Reduce") :]
    dt = P.dtype(x)
    shape = P.shape(x)
    if any(shape[a] == 0 for a in axes):  # an empty reduction gives the op's identity
        base = {
            "Sum": "sum",
            "Mean": "sum",
            "L1": "sum",
            "L2": "sum",
            "SumSquare": "sum",
            "Prod": "prod",
            "Max": "max",
            "Min": "min",
            "LogSum": "sum",
            "LogSumExp": "sum",
        }[name]
        out = [1 if i in axes else d for i, d in enumerate(shape) if keep or i not in axes]
        value = np.full(out, _IDENTITY[base])
        if name in ("LogSum", "LogSumExp"):
            value = np.full(out, -np.inf)
        if np.dtype(dt) == bool:
            value = np.full(out, base == "min")
        if np.dtype(dt).kind in "iu":
            info = np.iinfo(dt)
            value = np.clip(value, info.min, info.max)
        return P.asarray(value.astype(dt))
    if name in ("Sum", "Mean", "Max", "Min", "Prod"):
        return P.reduce(name.lower(), x, axes, keep)
    if name == "L1":
        return P.reduce("sum", P.unary("abs", x), axes, keep)
    if name == "SumSquare":
        return P.reduce("sum", P.binary("mul", x, x), axes, keep)
    if name == "L2":
        return P.cast(P.unary("sqrt", P.reduce("sum", P.binary("mul", x, x), axes, keep)), dt)
    if name == "LogSum":
        return P.unary("log", P.reduce("sum", x, axes, keep))
    m = P.reduce("max", x, axes, True)
    s = P.reduce("sum", P.unary("exp", P.binary("sub", x, m)), axes, True)
    y = P.binary("add", P.unary("log", s), m)
    return y if keep else P.squeeze(y, axes)


@op("ArgMax", "ArgMin")
def _arg(P, args, attrs, ctx):
    x = args[0]
    rank = _rank(P, x)
    axis = int(attrs.get("axis", 0)) % rank
    keep = bool(attrs.get("keepdims", 1))
    kind = "max" if ctx.op == "ArgMax" else "min"
    if attrs.get("select_last_index", 0):
        n = P.shape(x)[axis]
        i = P.argreduce(kind, P.flip(x, (axis,)), axis, keep)
        return P.binary("sub", P.asarray(np.asarray(n - 1, np.int64)), i)
    return P.argreduce(kind, x, axis, keep)


# ------------------------------------------------------------------------------------------------ shapes
@op("Shape")
def _shape(P, args, attrs, ctx):
    shape = P.shape(args[0])
    rank = len(shape)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = rank if end is None else min(max(int(end) + rank if int(end) < 0 else int(end), 0), rank)
    if all(d is not None for d in shape[start:end]):
        return np.asarray(shape[start:end], np.int64)
    return _slice_axis(P, P.shape_tensor(args[0]), 0, start, end, 1)


@op("Size")
def _size(P, args, attrs, ctx):
    return np.asarray(int(np.prod(_static(P, args[0], ctx), dtype=np.int64)), np.int64)


@op("Reshape", since=5)
def _reshape(P, args, attrs, ctx):
    x = args[0]
    target = _ints(P, args[1], ctx, "shape")
    if not attrs.get("allowzero", 0):
        shape = P.shape(x)
        target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        if any(d is None for d in target):
            if target.count(-1) + sum(d is None for d in target) > 1:
                _refuse(ctx, "a shape copying an unknown size next to -1", "at most one unknown size")
            target = [-1 if d is None else d for d in target]
    return P.reshape(x, tuple(target))


@op("Flatten")
def _flatten(P, args, attrs, ctx):
    x = args[0]
    shape = P.shape(x)
    rank = len(shape)
    axis = int(attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    lead = shape[:axis]
    if any(d is None for d in shape[axis:]):
        if any(d is None for d in lead):
            _refuse(ctx, "unknown sizes on both sides of axis", "static sizes on one side")
        return P.reshape(x, (int(np.prod(lead, dtype=np.int64)), -1))
    tail = int(np.prod(shape[axis:], dtype=np.int64))
    return P.reshape(x, (-1 if any(d is None for d in lead) else int(np.prod(lead, dtype=np.int64)), tail))


@op("Squeeze")
def _squeeze(P, args, attrs, ctx):
    x = args[0]
    axes = _axes_arg(P, args, attrs, ctx, 13)
    shape = P.shape(x)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    return P.squeeze(x, tuple(sorted(a % len(shape) for a in axes)))


@op("Unsqueeze")
def _unsqueeze(P, args, attrs, ctx):
    x = args[0]
    axes = _axes_arg(P, args, attrs, ctx, 13) or []
    out_rank = _rank(P, x) + len(axes)
    for a in sorted(a % out_rank for a in axes):
        x = P.expand_dims(x, a)
    return x


@op("Transpose")
def _transpose(P, args, attrs, ctx):
    perm = attrs.get("perm")
    rank = _rank(P, args[0])
    if perm is not None and sorted(int(i) for i in perm) != list(range(rank)):
        # a file's perm is untrusted: anything but a permutation of the input's axes is refused here, before a
        # framework raises its own error from deep inside (found by scripts/fuzz_files.py)
        raise StdOpError(f"Transpose: perm {list(perm)} is not a permutation of the {rank} input axes")
    return P.transpose(args[0], tuple(perm) if perm is not None else tuple(range(rank))[::-1])


@op("Concat")
def _concat(P, args, attrs, ctx):
    xs = [a for a in args if a is not None]
    rank = _rank(P, xs[0])
    if any(isinstance(a, np.ndarray) for a in xs) and not all(isinstance(a, np.ndarray) for a in xs):
        xs = [P.asarray(a) if isinstance(a, np.ndarray) else a for a in xs]
    return P.concat(xs, int(attrs["axis"]) % rank)


@op("Split")
def _split(P, args, attrs, ctx):
    x = args[0]
    rank = _rank(P, x)
    axis = int(attrs.get("axis", 0)) % rank
    n = P.shape(x)[axis]
    if ctx.opset >= 13:
        v = _opt(args, 1)
        sizes = None if v is None else _ints(P, v, ctx, "split")
    else:
        sizes = attrs.get("split")
    if not sizes:
        if n is None:
            _refuse(ctx, "an unknown size on the split axis", "a static size")
        parts = attrs.get("num_outputs", ctx.n_outputs)
        chunk = -(-n // parts)
        sizes = [min(chunk, n - i * chunk) for i in range(parts)]
    outs, start = [], 0
    for s in sizes:
        outs.append(_slice_axis(P, x, axis, start, start + s, 1))
        start += s
    return tuple(outs)


def _norm_slice(n, start, end, step):
    """``(start, stop, step, flip)`` with a positive step over ``range(n)`` for ONNX's clamped Slice."""
    start, stop, step = slice(start, end, step).indices(n)
    if step > 0:
        return start, max(stop, start), step, False
    # a negative step: the same elements in reverse, as a positive-step slice of the flipped axis
    count = len(range(start, stop, step))
    first = n - 1 - start
    return first, first + (count - 1) * (-step) + 1 if count else first, -step, True


@op("Slice")
def _slice(P, args, attrs, ctx):
    x = args[0]
    if ctx.opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = attrs.get("axes")
        steps = None
    else:
        starts, ends = _ints(P, args[1], ctx, "starts"), _ints(P, args[2], ctx, "ends")
        axes = None if _opt(args, 3) is None else _ints(P, args[3], ctx, "axes")
        steps = None if _opt(args, 4) is None else _ints(P, args[4], ctx, "steps")
    rank = _rank(P, x)
    axes = list(range(len(starts))) if axes is None else [a % rank for a in axes]
    steps = steps or [1] * len(starts)
    shape = P.shape(x)
    spec = [(0, None, 1)] * rank
    flips = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            _refuse(ctx, "steps=0", "non-zero steps")
        n = shape[a]
        if n is None:
            if st == 1 and s >= 0 and e >= 2**62:
                spec[a] = (s, None, 1)
                continue
            _refuse(ctx, "slicing an axis of unknown size", "static sizes (or [start >= 0 : end] with step 1)")
        lo, hi, step, flip = _norm_slice(n, s, e, st)
        spec[a] = (lo, hi, step)
        if flip:
            flips.append(a)
    if flips:
        x = P.flip(x, tuple(flips))
    return P.slice(x, spec)


@op("Gather")
def _gather(P, args, attrs, ctx):
    x, idx = args
    rank = _rank(P, x)
    axis = int(attrs.get("axis", 0)) % rank
    n = P.shape(x)[axis]
    c = P.const(idx)
    if c is not None:
        c = np.asarray(c).astype(np.int64)
        if n is not None:
            c = np.where(c < 0, c + n, c)
        return P.take(x, c, axis)
    idx = P.cast(idx, np.int64)
    if n is not None:
        idx = P.where(
            P.binary("less", idx, P.asarray(np.asarray(0, np.int64))),
            P.binary("add", idx, P.asarray(np.asarray(n, np.int64))),
            idx,
        )
    return P.take(x, idx, axis)


@op("Expand", since=8)
def _expand(P, args, attrs, ctx):
    x = args[0]
    target = _ints(P, args[1], ctx, "shape")
    shape = P.shape(x)
    if any(d is None for d in shape):
        _refuse(ctx, "an input of unknown size", "static sizes")
    return P.broadcast_to(x, tuple(np.broadcast_shapes(tuple(shape), tuple(target))))


@op("ConstantOfShape", since=9)
def _constant_of_shape(P, args, attrs, ctx):
    shape = _ints(P, args[0], ctx, "input")
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(shape, value[0], value.dtype)


@op("Range", since=11)
def _range(P, args, attrs, ctx):
    start, limit, delta = (
        np.asarray(_const(P, a, ctx, w)).reshape(()) for a, w in zip(args, ("start", "limit", "delta"))
    )
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    return (start + np.arange(n).astype(start.dtype) * delta).astype(start.dtype)


@op("Constant")
def _constant(P, args, attrs, ctx):
    for key, dtype in (
        ("value", None),
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attrs:
            return np.asarray(attrs[key], dtype)
    _refuse(ctx, f"attribute {sorted(attrs)}", "value, value_float(s), value_int(s)")


def _pad_mode(P, x, widths, mode):
    """``edge``/``reflect``/``wrap`` padding from slices and concatenation, axis by axis."""
    for axis, (lo, hi) in enumerate(widths):
        if not lo and not hi:
            continue
        n = P.shape(x)[axis]
        parts = []
        if mode == "edge":
            if lo:
                parts.append(P.concat([_slice_axis(P, x, axis, 0, 1, 1)] * lo, axis))
            parts.append(x)
            if hi:
                parts.append(P.concat([_slice_axis(P, x, axis, n - 1, n, 1)] * hi, axis))
        elif mode == "reflect":
            if lo:
                parts.append(P.flip(_slice_axis(P, x, axis, 1, lo + 1, 1), (axis,)))
            parts.append(x)
            if hi:
                parts.append(P.flip(_slice_axis(P, x, axis, n - 1 - hi, n - 1, 1), (axis,)))
        else:  # wrap
            if lo:
                parts.append(_slice_axis(P, x, axis, n - lo, n, 1))
            parts.append(x)
            if hi:
                parts.append(_slice_axis(P, x, axis, 0, hi, 1))
        x = P.concat(parts, axis)
    return x


@op("Pad", since=2)
def _pad(P, args, attrs, ctx):
    x = args[0]
    rank = _rank(P, x)
    if ctx.opset < 11:
        pads = list(attrs["pads"])
        value = attrs.get("value", 0.0)
        axes = list(range(rank))
    else:
        pads = _ints(P, args[1], ctx, "pads")
        v = _opt(args, 2)
        value = np.zeros(0) if v is None else np.asarray(_const(P, v, ctx, "constant_value")).reshape(-1)
        value = value[0] if value.size else 0
        a = _opt(args, 3)
        axes = list(range(rank)) if a is None else [i % rank for i in _ints(P, a, ctx, "axes")]
    k = len(axes)
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + k])
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return _pad_or_crop(P, x, widths, value)
    if mode not in ("edge", "reflect", "wrap"):
        _refuse(ctx, f"mode={mode!r}", "constant, reflect, edge, wrap")
    x = _pad_or_crop(P, x, [(min(lo, 0), min(hi, 0)) for lo, hi in widths])
    return _pad_mode(P, x, [(max(lo, 0), max(hi, 0)) for lo, hi in widths], mode)


# ------------------------------------------------------------------------------------------------ resize
def _source_coords(mode, out, n, scale, roi):
    x = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out / (scale * n)
        center = n / 2
        offset = center * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if mode == "align_corners":  # the resized length is scale * n (a float when scales are given)
        length = scale * n
        return x * (n - 1) / (length - 1) if length != 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_crop_and_resize":
        lo, hi = roi
        if out > 1:
            return lo * (n - 1) + x * (hi - lo) * (n - 1) / (out - 1)
        return np.full(out, 0.5 * (lo + hi) * (n - 1))
    raise KeyError(mode)


def _nearest(xo, rule):
    if rule == "round_prefer_floor":
        return np.where(xo - np.floor(xo) == 0.5, np.floor(xo), np.round(xo))
    if rule == "round_prefer_ceil":
        return np.where(xo - np.floor(xo) == 0.5, np.ceil(xo), np.round(xo))
    if rule == "floor":
        return np.floor(xo)
    if rule == "ceil":
        return np.ceil(xo)
    raise KeyError(rule)


def _cubic_weights(t, a):
    t = t[:, None] + np.array([1.0, 0.0, -1.0, -2.0])  # distances to taps i0-1, i0, i0+1, i0+2
    d = np.abs(t)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


@op("Resize", since=10)
def _resize(P, args, attrs, ctx):
    x = args[0]
    shape = _static(P, x, ctx)
    rank = len(shape)
    if ctx.opset < 11:
        scales, sizes, roi = _const(P, args[1], ctx, "scales"), None, None
    else:
        roi = None if _opt(args, 1) is None else np.asarray(_const(P, args[1], ctx, "roi"), np.float64).reshape(-1)
        scales = None if _opt(args, 2) is None else np.asarray(_const(P, args[2], ctx, "scales")).reshape(-1)
        sizes = None if _opt(args, 3) is None else np.asarray(_const(P, args[3], ctx, "sizes")).reshape(-1)
        if scales is not None and scales.size == 0:
            scales = None
        if roi is not None and roi.size == 0:
            roi = None
    if attrs.get("antialias", 0):
        _refuse(ctx, "antialias=1", "antialias=0")
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear", "cubic"):
        _refuse(ctx, f"mode={mode!r}", "nearest, linear, cubic")
    if ctm not in (
        "half_pixel",
        "half_pixel_symmetric",
        "pytorch_half_pixel",
        "align_corners",
        "asymmetric",
        "tf_crop_and_resize",
    ):
        _refuse(ctx, f"coordinate_transformation_mode={ctm!r}", "the ONNX modes")
    full_scales = [1.0] * rank
    outs = list(shape)
    if sizes is not None:
        sizes = [int(s) for s in sizes]
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        ratios = [sizes[i] / shape[a] for i, a in enumerate(axes)]
        if policy in ("not_larger", "not_smaller"):
            r = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                full_scales[a] = r
                outs[a] = int(math.floor(r * shape[a] + 0.5))
        else:
            for i, a in enumerate(axes):
                full_scales[a] = ratios[i]
                outs[a] = sizes[i]
    else:
        scales = [float(s) for s in scales]
        for i, a in enumerate(axes):
            full_scales[a] = scales[i]
            outs[a] = int(math.floor(shape[a] * scales[i]))
    full_roi = [(0.0, 1.0)] * rank
    if roi is not None:
        k = len(axes)
        for i, a in enumerate(axes):
            full_roi[a] = (float(roi[i]), float(roi[i + k]))
    dt = np.dtype(P.dtype(x))
    for a in range(rank):
        n, out, scale = shape[a], outs[a], full_scales[a]
        if out == n and scale == 1.0 and ctm != "tf_crop_and_resize":
            continue
        xo = _source_coords(ctm, out, n, scale, full_roi[a])
        wshape = [1] * rank
        wshape[a] = out
        outside = (xo < 0) | (xo > n - 1) if ctm == "tf_crop_and_resize" else None
        if mode == "nearest":
            idx = np.clip(_nearest(xo, attrs.get("nearest_mode", "round_prefer_floor")), 0, n - 1).astype(np.int64)
            y = P.take(x, idx, a)
        else:
            if mode == "linear":
                xc = np.clip(xo, 0, n - 1)
                i0 = np.floor(xc).astype(np.int64)
                t = xc - i0
                taps = [i0, np.minimum(i0 + 1, n - 1)]
                weights = np.stack([1 - t, t], 1)
            else:
                i0 = np.floor(xo).astype(np.int64)
                weights = _cubic_weights(xo - i0, attrs.get("cubic_coeff_a", -0.75))
                raw = [i0 - 1, i0, i0 + 1, i0 + 2]
                if attrs.get("exclude_outside", 0):
                    inside = np.stack([(r >= 0) & (r < n) for r in raw], 1)
                    weights = weights * inside
                    weights = weights / weights.sum(1, keepdims=True)
                taps = [np.clip(r, 0, n - 1) for r in raw]
            y = None
            for j, tap in enumerate(taps):
                term = P.binary("mul", P.take(x, tap, a), P.asarray(weights[:, j].reshape(wshape).astype(dt)))
                y = term if y is None else P.binary("add", y, term)
        if outside is not None and outside.any():
            keep = P.asarray((~outside).reshape(wshape))
            fill = P.asarray(np.asarray(attrs.get("extrapolation_value", 0.0), dt))
            y = P.where(keep, y, fill)
        x = y
    return x
