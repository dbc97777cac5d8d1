"""Tracing by execution for the MLX exporter (see :mod:`nmn.interchange.mlx_io` for the supported model shapes).

The example inputs are wrapped in :class:`Traced` values (an ONNX value name plus the eager ``mx.array``); while
the model's own ``__call__`` runs on them, calls of known layers and of a few functions are routed through
:class:`_Tracer`, which emits their ONNX through the neutral emitters and computes the eager value next to it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from nmn.interchange import emit
from nmn.interchange._export_common import activation as emit_activation
from nmn.interchange.graph import ExportError, GraphBuilder
from nmn.interchange.mlx_io.layers import (
    _FN_ACTIVATIONS,
    FUNCTIONS,
    MODULES,
    _trainable,
    _yat_module,
    _yat_types,
    np_array,
    param_names,
)


# ------------------------------------------------------------------------------------------------ tracing
class Traced:
    """A value of the traced model: its ONNX name and its eager ``mx.array`` (shapes, the export check)."""

    __slots__ = ("name", "value", "tracer")

    def __init__(self, tracer: _Tracer, name: str, value: mx.array):
        self.tracer, self.name, self.value = tracer, name, value

    # metadata comes from the eager value
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def dtype(self) -> mx.Dtype:
        return self.value.dtype

    @property
    def size(self) -> int:
        return self.value.size

    def __repr__(self):
        return f"Traced({self.name!r}, shape={tuple(self.shape)}, dtype={self.dtype})"

    # arithmetic
    def _binary(self, op, other, fn, reverse=False):
        return self.tracer.binary(op, other, self, fn) if reverse else self.tracer.binary(op, self, other, fn)

    def __add__(self, o):
        return self._binary("Add", o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._binary("Add", o, lambda a, b: a + b, True)

    def __sub__(self, o):
        return self._binary("Sub", o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._binary("Sub", o, lambda a, b: a - b, True)

    def __mul__(self, o):
        return self._binary("Mul", o, lambda a, b: a * b)

    def __rmul__(self, o):
        return self._binary("Mul", o, lambda a, b: a * b, True)

    def __truediv__(self, o):
        return self._binary("Div", o, lambda a, b: a / b)

    def __rtruediv__(self, o):
        return self._binary("Div", o, lambda a, b: a / b, True)

    def __matmul__(self, o):
        return self._binary("MatMul", o, lambda a, b: a @ b)

    def __rmatmul__(self, o):
        return self._binary("MatMul", o, lambda a, b: a @ b, True)

    def __neg__(self):
        return self.tracer.unary("Neg", self, lambda a: -a)

    # array methods
    def reshape(self, *shape: int | Sequence[int]) -> Traced:
        shape = list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(shape)
        return self.tracer.reshape(self, shape)

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Traced:
        return self.tracer.flatten(self, start_axis, end_axis)

    def transpose(self, *axes: int | Sequence[int]) -> Traced:
        axes = list(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else list(axes)
        return self.tracer.transpose(self, axes)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Traced:
        return self.tracer.reduce("ReduceMean", self, axis, keepdims)

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Traced:
        return self.tracer.reduce("ReduceSum", self, axis, keepdims)

    def __getattr__(self, name):
        raise AttributeError(
            f"{name!r} is not supported on traced values during nmn export (supported: + - * / @, "
            "reshape, flatten, transpose, mean, sum, shape)"
        )

    def __getitem__(self, item):
        raise TypeError("indexing a traced value is not supported by nmn's MLX export")

    def __bool__(self):
        raise TypeError("Python control flow on a traced value is not supported by nmn's MLX export")


def _has_traced(args, kwargs):
    return any(isinstance(a, Traced) for a in list(args) + list(kwargs.values())) or any(
        isinstance(v, Traced) for a in args if isinstance(a, (list, tuple)) for v in a
    )


def _value(a):
    if isinstance(a, Traced):
        return a.value
    if isinstance(a, (list, tuple)):
        return type(a)(_value(v) for v in a)
    return a


class _Tracer:
    def __init__(self, model):
        self.model = model
        self.b = GraphBuilder(source="mlx", layout="channels_last")
        self.paths = {}
        for path, m in _named_modules(model):
            self.paths.setdefault(id(m), path)
        self.unsupported: list[str] = []
        self.counter = 0

    # ------------------------------------------------------------------------------------------ helpers
    def name_of(self, m):
        path = self.paths.get(id(m))
        if path is None:
            path = type(m).__name__
        return path or type(m).__name__

    def fresh(self, hint):
        self.counter += 1
        return f"{hint}_{self.counter}"

    def wrap(self, name, value):
        return Traced(self, name, value)

    def operand(self, v, hint):
        if isinstance(v, Traced):
            return v.name, v.value
        if isinstance(v, (int, float)):
            return self.b.constant(hint, np.array(v, np.float32)), v
        if isinstance(v, mx.array):
            return self.b.constant(hint, np_array(v)), v
        raise TypeError(f"operand of type {type(v).__name__} is not supported by nmn's MLX export")

    def binary(self, op, a, b, fn):
        hint = self.fresh(op.lower())
        na, va = self.operand(a, f"{hint}.a")
        nb, vb = self.operand(b, f"{hint}.b")
        return self.wrap(self.b.node(op, [na, nb], name=hint), fn(va, vb))

    def unary(self, op, a, fn):
        return self.wrap(self.b.node(op, [a.name], name=self.fresh(op.lower())), fn(a.value))

    def reshape(self, x, shape):
        value = x.value.reshape(shape)
        dims = [int(d) for d in shape]
        if dims and dims[0] == x.shape[0] and dims[0] != -1:
            dims[0] = 0  # keep the (symbolic) batch dimension
        return self.wrap(emit.reshape(self.b, x.name, dims, name=self.fresh("reshape")), value)

    def flatten(self, x, start, end):
        value = x.value.flatten(start, end)
        if start % max(x.ndim, 1) != 1 or end % max(x.ndim, 1) != x.ndim - 1:
            raise ExportError(
                f"flatten({start}, {end}) on a rank-{x.ndim} value: only flatten(1) (start_axis=1, "
                "end_axis=-1) is supported"
            )
        return self.wrap(emit.flatten(self.b, x.name, name=self.fresh("flatten")), value)

    def transpose(self, x, axes):
        axes = list(range(x.ndim))[::-1] if not axes else [int(a) % x.ndim for a in axes]
        return self.wrap(
            self.b.node("Transpose", [x.name], {"perm": axes}, name=self.fresh("transpose")), x.value.transpose(axes)
        )

    def reduce(self, op, x, axis, keepdims):
        axes = list(range(x.ndim)) if axis is None else [axis] if isinstance(axis, int) else list(axis)
        fn = mx.mean if op == "ReduceMean" else mx.sum
        value = fn(x.value, axis=axis, keepdims=keepdims)
        hint = self.fresh(op.lower())
        const = self.b.constant(f"{hint}.axes", np.array([a % x.ndim for a in axes], np.int64))
        return self.wrap(self.b.node(op, [x.name, const], {"keepdims": int(bool(keepdims))}, name=hint), value)

    def activation(self, kind, x, value, axis=-1, name=None, **params):
        out = emit_activation(self.b, kind, x.name, axis=axis, name=name or self.fresh(kind), **params)
        return self.wrap(out, value)

    # ------------------------------------------------------------------------------------------ layers
    def call_module(self, m, original, args, kwargs):
        value = original(m, *_value(args), **{k: _value(v) for k, v in kwargs.items()})
        name = self.name_of(m)
        x = args[0] if args else next(iter(kwargs.values()))
        if not isinstance(x, Traced):
            self.unsupported.append(f"{name}: its first input is not a traced value")
            return value
        try:
            out = self._emit_module(m, name, x, args, kwargs, value)
        except ExportError as error:
            self.unsupported.append(str(error))
            out = None
        # after an unsupported layer, keep tracing (with a placeholder name) to list every problem at once
        return self.wrap(out or f"<unsupported {name}>", value)

    def _emit_module(self, m, name, x, args, kwargs, value):
        fn = _yat_module if isinstance(m, _yat_types()) else MODULES.for_type(type(m))
        if fn is None:
            raise ExportError(f"{name}: module {type(m).__name__}")
        return fn(self, m, name, x, args, kwargs, value)

    def attend(self, layer, original, query):
        import nmn.mlx.spec as mspec

        value = original(layer, _value(query))
        if not isinstance(query, Traced):
            return value
        kind, config, params = mspec.to_spec(layer)
        out = emit.yat_layer(
            self.b,
            self.name_of(layer),
            kind,
            config,
            params,
            [query.name],
            call={"method": "attend"},
            param_names=param_names(kind),
            trainable=_trainable(layer, kind),
        )
        return self.wrap(out, value)

    def function(self, fname, original, args, kwargs):
        value = original(*_value(args), **{k: _value(v) for k, v in kwargs.items()})
        fn = FUNCTIONS.get(fname)
        if fn is None:  # pragma: no cover - only registered functions are patched
            raise ExportError(f"function {fname} has no ONNX emitter")
        try:
            return fn(self, fname, args[0], value, args, kwargs)
        except ExportError as error:
            self.unsupported.append(str(error))
            return self.wrap(f"<unsupported {fname}>", value)


def _named_modules(model):
    out = [("", model)]
    for path, m in model.named_modules():
        if m is not model:
            out.append((path, m))
    return out


_FUNCTIONS = [
    *[(nn, f) for f in _FN_ACTIVATIONS],
    (nn, "log_softmax"),
    (nn, "softmin"),
    (mx, "tanh"),
    (mx, "sigmoid"),
    (mx, "softmax"),
    (mx, "mean"),
    (mx, "concatenate"),
]


class _Patched:
    """Route calls of known layers / functions through the tracer while exporting (restored afterwards)."""

    def __init__(self, tracer):
        self.tracer = tracer
        self.saved = []

    def __enter__(self):
        from mlx.utils import tree_flatten

        import nmn.mlx as nm

        tracer = self.tracer
        classes = set()
        for _, m in _named_modules(tracer.model):
            if isinstance(m, _yat_types()) or MODULES.for_type(type(m)) is not None:
                classes.add(type(m))
            elif not m.children() and tree_flatten(m.parameters()):
                classes.add(type(m))  # an unknown layer with weights: recorded as unsupported, run eagerly
        for cls in classes:
            original = cls.__call__
            self.saved.append((cls, "__call__", cls.__dict__.get("__call__")))

            def call(m, *args, __original=original, **kwargs):
                if not _has_traced(args, kwargs):
                    return __original(m, *args, **kwargs)
                return tracer.call_module(m, __original, args, kwargs)

            cls.__call__ = call
        original_attend = nm.YatEmbed.attend
        self.saved.append((nm.YatEmbed, "attend", nm.YatEmbed.__dict__.get("attend")))
        nm.YatEmbed.attend = lambda layer, query: tracer.attend(layer, original_attend, query)
        targets = list(_FUNCTIONS) + [(nm, f) for f in ("softermax", "softer_sigmoid", "soft_tanh")]
        for owner, fname in targets:
            original = getattr(owner, fname)
            self.saved.append((owner, fname, original))

            def fn(*args, __original=original, __name=fname, **kwargs):
                if not _has_traced(args, kwargs):
                    return __original(*args, **kwargs)
                return tracer.function(__name, __original, args, kwargs)

            setattr(owner, fname, fn)
        return self

    def __exit__(self, *exc):
        for owner, attr, original in reversed(self.saved):
            if original is None and isinstance(owner, type):
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        return False


def trace(model, inputs, input_names, output_names):
    """Run ``model`` on traced ``inputs``; returns the built ``ModelProto`` and the eager outputs (numpy)."""
    tracer = _Tracer(model)
    if input_names is None:
        try:
            params = [
                p
                for p in inspect.signature(model.__call__).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            input_names = [p.name for p in params][: len(inputs)]
        except (TypeError, ValueError):
            input_names = []
        if len(input_names) < len(inputs):
            input_names = [f"input_{i}" for i in range(len(inputs))]
    traced = []
    for name, x in zip(input_names, inputs):
        shape = (None, *x.shape[1:]) if x.ndim else ()
        dtype = np.float32 if x.dtype in (mx.float16, mx.bfloat16) else np.array(x[:0] if x.ndim else x).dtype
        traced.append(Traced(tracer, tracer.b.input(name, shape, dtype), x))
    with _Patched(tracer):
        try:
            result = model(*traced)
        except (TypeError, ValueError) as error:
            if tracer.unsupported:
                raise ExportError(_unsupported_message(model, tracer.unsupported)) from error
            if "Traced" not in str(error) and "traced" not in str(error):
                raise  # a genuine error of the model on these inputs (e.g. a layer's shape check)
            raise ExportError(
                f"{type(model).__name__}: tracing failed ({error}); nmn's MLX export supports the model "
                "shapes listed in nmn.interchange.mlx_io's documentation (an mx function applied "
                "to an intermediate value is the usual cause)"
            ) from error
    if tracer.unsupported:
        raise ExportError(_unsupported_message(model, tracer.unsupported))
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not all(isinstance(o, Traced) for o in outs):
        raise ExportError(
            f"{type(model).__name__}: an output is not computed from the inputs through traceable "
            "operations (see nmn.interchange.mlx_io for what the walk supports)"
        )
    expected = []
    for i, out in enumerate(outs):
        name = output_names[i] if output_names else ("output" if len(outs) == 1 else f"output_{i}")
        tracer.b.output(out.name, name)
        expected.append(np_array(out.value))
    return tracer.b.build(), expected


def _unsupported_message(model, items):
    items = list(dict.fromkeys(items))
    return (
        f"{type(model).__name__}: cannot export {len(items)} layer(s) / operation(s):\n  - "
        + "\n  - ".join(items)
        + "\n(supported model shapes: see nmn.interchange.mlx_io)"
    )
