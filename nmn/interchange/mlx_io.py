"""MLX <-> ONNX: export an ``mlx.nn.Module`` built from nmn and standard layers, load any nmn ONNX file.

MLX has no ONNX path and no graph tracer at module granularity (``mx.export_function`` records primitives), so
export **traces by execution**: the example inputs are wrapped in :class:`Traced` values (an ONNX value name
plus the eager ``mx.array``), the model's own ``__call__`` runs on them, and every call of a known layer, of an
arithmetic operator or of a supported array method / activation function emits its ONNX through the
framework-neutral :class:`~nmn.interchange.graph.GraphBuilder` while computing the eager value next to it.

Model shapes the walk supports:

* any tree of ``mlx.nn.Module`` (``nn.Sequential``, lists of layers, your own modules) whose ``__call__``
  composes supported layers (your own parameter-free modules, e.g. a flatten, are traced through), also as DAGs (residual additions ``h + block(h)``, one output feeding several
  layers, several inputs, tuple outputs, a ``YatEmbed`` used for lookup and for ``attend``);
* layers: every ``nmn.mlx`` Yat layer (one ``nmn::`` node each), ``nn.Linear``, ``nn.Conv1d/2d/3d``,
  ``nn.ConvTranspose1d/2d/3d``, ``nn.LayerNorm``, ``nn.BatchNorm`` (run in eval mode), ``nn.Dropout*`` (dropped),
  ``nn.Embedding``, ``nn.MaxPool1d/2d/3d``, ``nn.AvgPool1d/2d/3d``, ``nn.Identity``, and the activation modules
  ``nn.ReLU``, ``nn.GELU`` (exact or ``approx='tanh'``), ``nn.SiLU``, ``nn.Sigmoid``, ``nn.Tanh``, ``nn.Softplus``,
  ``nn.Softmax``, ``nn.LogSoftmax``;
* between layers: ``+ - * /`` and ``@`` (with arrays or Python numbers), ``x.reshape(...)``,
  ``x.flatten(1)``, ``x.transpose(...)``, ``x.mean(axis)``, ``x.sum(axis)``, ``x.shape``, and the functions
  ``nn.relu``, ``nn.gelu``, ``nn.gelu_approx``, ``nn.silu``, ``nn.sigmoid``, ``nn.softplus``, ``mx.tanh``,
  ``mx.sigmoid``, ``mx.softmax``, ``mx.mean``, ``mx.concatenate`` and the squashers ``nmn.mlx.softermax`` /
  ``softer_sigmoid`` / ``soft_tanh`` (looked up through their module at call time).

Anything else (other ``mx`` functions on intermediate values, indexing, Python control flow on values, unknown
layers) fails with an :class:`~nmn.interchange.graph.ExportError` that lists every unsupported layer or
operation. Data stays in MLX's layout: conv inputs are channels-last in the file, with ``Transpose`` nodes around
each convolution. Initializers are named by the MLX parameter paths (``layers.0.kernel``).

Load builds an :class:`OnnxModule`: the file's ``nmn`` nodes become ``nmn.mlx`` layers holding its weights, the
other tensors become parameters (trainable) or constants, and ``__call__`` runs the file's graph with MLX ops. It
trains with ``mlx.optimizers``, round-trips ``save_weights`` / ``load_weights``, and ``export`` writes it back
with the file's names and the current weights (bit for bit when untrained).
"""

from __future__ import annotations

import inspect
import math
import os
from typing import Any, Sequence

import numpy as np
import onnx

from nmn.interchange import emit
from nmn.interchange.graph import ExportError, GraphBuilder, check_against, save_model
from nmn.interchange.interpret import check_supported, execute, replay
from nmn.interchange.reader import OnnxGraph, read_model

try:
    import mlx.core as mx
    import mlx.nn as nn
except ImportError as err:  # pragma: no cover - exercised only without mlx
    raise ImportError('nmn.interchange.mlx_io needs MLX: pip install "nmn[mlx]"') from err

__all__ = ["export", "load", "OnnxModule", "Traced", "TABLE"]


def _np(a) -> np.ndarray:
    a = a.astype(mx.float32) if a.dtype in (mx.float16, mx.bfloat16) else a
    return np.array(a)


def _np_param(module, key):
    return _np(module[key]) if key in module else None


def _yat_types():
    import nmn.mlx as nm
    from nmn.mlx.conv import _YatConvND
    from nmn.mlx.conv_transpose import _YatConvTransposeND

    return (nm.YatNMN, _YatConvND, _YatConvTransposeND, nm.MultiHeadYatAttention, nm.RotaryYatAttention,
            nm.YatEmbed)


_ACTIVATION_MODULES = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
                       nn.Softplus: "softplus"}
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_DROPOUT = (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.Identity)
_STANDARD = (nn.Linear, *_CONV, *_CONV_T, nn.LayerNorm, nn.BatchNorm, nn.Embedding, *_POOL, *_DROPOUT, nn.GELU,
             nn.Softmax, nn.LogSoftmax, *_ACTIVATION_MODULES)


# ------------------------------------------------------------------------------------------------ tracing
class Traced:
    """A value of the traced model: its ONNX name and its eager ``mx.array`` (shapes, the export check)."""

    __slots__ = ("name", "value", "tracer")

    def __init__(self, tracer, name, value):
        self.tracer, self.name, self.value = tracer, name, value

    # metadata comes from the eager value
    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: self.value.size)

    def __repr__(self):
        return f"Traced({self.name!r}, shape={tuple(self.shape)}, dtype={self.dtype})"

    # arithmetic
    def _binary(self, op, other, fn, reverse=False):
        return self.tracer.binary(op, other, self, fn) if reverse else self.tracer.binary(op, self, other, fn)

    def __add__(self, o): return self._binary("Add", o, lambda a, b: a + b)
    def __radd__(self, o): return self._binary("Add", o, lambda a, b: a + b, True)
    def __sub__(self, o): return self._binary("Sub", o, lambda a, b: a - b)
    def __rsub__(self, o): return self._binary("Sub", o, lambda a, b: a - b, True)
    def __mul__(self, o): return self._binary("Mul", o, lambda a, b: a * b)
    def __rmul__(self, o): return self._binary("Mul", o, lambda a, b: a * b, True)
    def __truediv__(self, o): return self._binary("Div", o, lambda a, b: a / b)
    def __rtruediv__(self, o): return self._binary("Div", o, lambda a, b: a / b, True)
    def __matmul__(self, o): return self._binary("MatMul", o, lambda a, b: a @ b)
    def __rmatmul__(self, o): return self._binary("MatMul", o, lambda a, b: a @ b, True)

    def __neg__(self):
        return self.tracer.unary("Neg", self, lambda a: -a)

    # array methods
    def reshape(self, *shape):
        shape = list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(shape)
        return self.tracer.reshape(self, shape)

    def flatten(self, start_axis=0, end_axis=-1):
        return self.tracer.flatten(self, start_axis, end_axis)

    def transpose(self, *axes):
        axes = list(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else list(axes)
        return self.tracer.transpose(self, axes)

    def mean(self, axis=None, keepdims=False):
        return self.tracer.reduce("ReduceMean", self, axis, keepdims)

    def sum(self, axis=None, keepdims=False):
        return self.tracer.reduce("ReduceSum", self, axis, keepdims)

    def __getattr__(self, name):
        raise AttributeError(f"{name!r} is not supported on traced values during nmn export (supported: + - * / @, "
                             "reshape, flatten, transpose, mean, sum, shape)")

    def __getitem__(self, item):
        raise TypeError("indexing a traced value is not supported by nmn's MLX export")

    def __bool__(self):
        raise TypeError("Python control flow on a traced value is not supported by nmn's MLX export")


def _has_traced(args, kwargs):
    return any(isinstance(a, Traced) for a in list(args) + list(kwargs.values())) or any(
        isinstance(v, Traced) for a in args if isinstance(a, (list, tuple)) for v in a)


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
            return self.b.constant(hint, _np(v)), v
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
            raise ExportError(f"flatten({start}, {end}) on a rank-{x.ndim} value: only flatten(1) (start_axis=1, "
                              "end_axis=-1) is supported")
        return self.wrap(emit.flatten(self.b, x.name, name=self.fresh("flatten")), value)

    def transpose(self, x, axes):
        axes = list(range(x.ndim))[::-1] if not axes else [int(a) % x.ndim for a in axes]
        return self.wrap(self.b.node("Transpose", [x.name], {"perm": axes}, name=self.fresh("transpose")),
                         x.value.transpose(axes))

    def reduce(self, op, x, axis, keepdims):
        axes = list(range(x.ndim)) if axis is None else [axis] if isinstance(axis, int) else list(axis)
        fn = mx.mean if op == "ReduceMean" else mx.sum
        value = fn(x.value, axis=axis, keepdims=keepdims)
        hint = self.fresh(op.lower())
        const = self.b.constant(f"{hint}.axes", np.array([a % x.ndim for a in axes], np.int64))
        return self.wrap(self.b.node(op, [x.name, const], {"keepdims": int(bool(keepdims))}, name=hint), value)

    def activation(self, kind, x, value, axis=-1, name=None):
        return self.wrap(emit.activation(self.b, kind, x.name, axis=axis, name=name or self.fresh(kind)), value)

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
        import nmn.mlx.spec as mspec

        b = self.b
        if isinstance(m, _yat_types()):
            kind, config, params = mspec.to_spec(m)
            ins, call = [x.name], {}
            if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
                given = dict(zip(["queries", "keys", "values", "mask"], args))
                given.update(kwargs)
                ins = [given[k].name if isinstance(given.get(k), Traced) else "" for k in ("queries", "keys", "values")]
                mask = given.get("mask")
                if isinstance(mask, Traced):
                    call["mask"] = mask.name
                elif mask is not None:
                    call["mask"] = b.constant(f"{name}.mask", np.array(mask).astype(bool))
                if kind == "RotaryYatAttention" and m._cache_max is not None:
                    raise ExportError(f"{name}: RotaryYatAttention with an active KV cache (call reset_cache())")
            trainable = _trainable(m, kind)
            return emit.yat_layer(b, name, kind, config, params, ins, in_shape=tuple(x.shape),
                                  channels_last=kind in ("YatConv", "YatConvTranspose"), call=call,
                                  param_names=_param_names(kind), trainable=trainable)
        if isinstance(m, nn.Linear):
            return emit.linear(b, name, x.name, _np(m.weight), _np_param(m, "bias"), rank=x.ndim)
        if isinstance(m, _CONV):
            rank = m.weight.ndim - 2
            weight = np.moveaxis(_np(m.weight), -1, 1)
            return emit.conv(b, name, x.name, weight, _np_param(m, "bias"), in_shape=tuple(x.shape),
                             strides=_tuple(m.stride, rank), dilations=_tuple(m.dilation, rank),
                             groups=int(getattr(m, "groups", 1)), padding=[(p, p) for p in _tuple(m.padding, rank)],
                             channels_last=True)
        if isinstance(m, _CONV_T):
            rank = m.weight.ndim - 2
            w = _np(m.weight)                               # (M, *k, C)
            weight = np.transpose(w, (w.ndim - 1, 0, *range(1, w.ndim - 1)))   # (C, M, *k)
            return emit.conv(b, name, x.name, weight, _np_param(m, "bias"), in_shape=tuple(x.shape),
                             strides=_tuple(m.stride, rank), dilations=_tuple(m.dilation, rank), groups=1,
                             padding=[(p, p) for p in _tuple(m.padding, rank)], channels_last=True, transpose=True,
                             output_padding=list(_tuple(m.output_padding, rank)))
        if type(m) in _ACTIVATION_MODULES:
            return emit.activation(b, _ACTIVATION_MODULES[type(m)], x.name, name=name)
        if isinstance(m, nn.GELU):
            approx = getattr(m, "_approx", "none")
            if approx not in ("none", "precise", "tanh"):
                raise ExportError(f"{name}: GELU(approx={approx!r}) (only 'none' or 'tanh')")
            return emit.activation(b, "gelu" if approx == "none" else "gelu_tanh", x.name, name=name)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            return emit.activation(b, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", x.name, name=name)
        if isinstance(m, _DROPOUT):
            return x.name
        if isinstance(m, nn.LayerNorm):
            return emit.layer_norm(b, name, x.name, _np_param(m, "weight"), _np_param(m, "bias"), m.eps)
        if isinstance(m, nn.BatchNorm):
            if "running_mean" not in m:
                raise ExportError(f"{name}: BatchNorm(track_running_stats=False) has no inference statistics")
            n = m.num_features
            scale = _np_param(m, "weight")
            shift = _np_param(m, "bias")
            scale = np.ones(n, np.float32) if scale is None else scale
            shift = np.zeros(n, np.float32) if shift is None else shift
            return emit.batch_norm(b, name, x.name, scale, shift, _np(m.running_mean), _np(m.running_var), m.eps,
                                   rank=x.ndim - 2, channels_last=True)
        if isinstance(m, nn.Embedding):
            return emit.embedding(b, name, x.name, _np(m.weight))
        if isinstance(m, _POOL):
            return self._pool(m, name, x)
        raise ExportError(f"{name}: module {type(m).__name__}")

    def _pool(self, m, name, x):
        b = self.b
        rank = x.ndim - 2
        k, s = list(m["_kernel_size"]), list(m["_stride"])
        pads = [tuple(p) for p in m["_padding"]]
        kind = "max" if type(m).__name__.startswith("Max") else "avg"
        if kind == "max" or not any(p != (0, 0) for p in pads):
            return emit.pool(b, kind, x.name, kernel=k, strides=s, pads=pads, channels_last=True, name=name)
        # mlx's average pooling counts the zero padding: pad explicitly, then pool without pads
        first = b.node("Transpose", [x.name], {"perm": [0, rank + 1, *range(1, rank + 1)]}, name=f"{name}.to_first")
        widths = b.constant(f"{name}.pads", np.array([0, 0] + [p[0] for p in pads] + [0, 0] + [p[1] for p in pads],
                                                       np.int64))
        padded = b.node("Pad", [first, widths], {"mode": "constant"}, name=f"{name}.pad")
        y = b.node("AveragePool", [padded], {"kernel_shape": k, "strides": s, "pads": [0] * (2 * rank)}, name=name)
        return b.node("Transpose", [y], {"perm": [0, *range(2, rank + 2), 1]}, name=f"{name}.to_last")

    def attend(self, layer, original, query):
        import nmn.mlx.spec as mspec

        value = original(layer, _value(query))
        if not isinstance(query, Traced):
            return value
        kind, config, params = mspec.to_spec(layer)
        out = emit.yat_layer(self.b, self.name_of(layer), kind, config, params, [query.name],
                             call={"method": "attend"}, param_names=_param_names(kind), trainable=_trainable(layer, kind))
        return self.wrap(out, value)

    def function(self, fname, original, args, kwargs):
        value = original(*_value(args), **{k: _value(v) for k, v in kwargs.items()})
        x = args[0]
        try:
            if fname in ("relu", "gelu", "gelu_approx", "silu", "sigmoid", "softplus", "tanh"):
                kind = {"gelu_approx": "gelu_tanh"}.get(fname, fname)
                return self.activation(kind, x, value)
            if fname == "softmax":
                axis = kwargs.get("axis", args[1] if len(args) > 1 else -1)
                if not isinstance(axis, int):
                    raise ExportError(f"softmax over axes {axis!r}: only one axis is supported")
                return self.activation("softmax", x, value, axis=axis)
            if fname == "mean":
                return self.reduce("ReduceMean", x, kwargs.get("axis", args[1] if len(args) > 1 else None),
                                   kwargs.get("keepdims", args[2] if len(args) > 2 else False))
            if fname == "concatenate":
                axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
                names = [self.operand(v, self.fresh("concat.const"))[0] for v in x]
                return self.wrap(self.b.node("Concat", names, {"axis": int(axis)}, name=self.fresh("concat")), value)
            if fname in ("softermax", "softer_sigmoid", "soft_tanh"):
                names = ["n", "epsilon", "axis"] if fname == "softermax" else ["n"]
                cfg = {"n": 1.0, "epsilon": 1e-12, "axis": -1} if fname == "softermax" else {"n": 1.0}
                cfg.update(dict(zip(names, args[1:])))
                cfg.update(kwargs)
                out = emit.yat_layer(self.b, self.fresh(fname), fname, cfg, {}, [x.name])
                return self.wrap(out, value)
        except ExportError as error:
            self.unsupported.append(str(error))
            return self.wrap(f"<unsupported {fname}>", value)
        raise ExportError(f"function {fname} has no ONNX emitter")  # pragma: no cover


def _named_modules(model):
    out = [("", model)]
    for path, m in model.named_modules():
        if m is not model:
            out.append((path, m))
    return out


def _param_names(kind):
    if kind in ("YatNMN", "YatConv", "YatConvTranspose"):
        return {"weight": "kernel"}
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        return {f"{s}_{leaf}": f"{sub}.{leaf}" for s, sub in (("q", "query_proj"), ("k", "key_proj"),
                                                             ("v", "value_proj"), ("out", "out_proj"))
                for leaf in ("weight", "bias")}
    return {}


def _trainable(m, kind):
    """``{canonical param name: trainable}`` of a Yat layer (frozen: a lazy kernel, the performer ``proj``)."""
    from mlx.utils import tree_flatten

    trainable = {k for k, _ in tree_flatten(m.trainable_parameters())}
    inverse = {v: k for k, v in _param_names(kind).items()}
    return {inverse.get(path, path): path in trainable for path, _ in tree_flatten(m.parameters())}


def _tuple(v, rank):
    return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * rank


_FUNCTIONS = [(nn, "relu"), (nn, "gelu"), (nn, "gelu_approx"), (nn, "silu"), (nn, "sigmoid"), (nn, "softplus"),
              (mx, "tanh"), (mx, "sigmoid"), (mx, "softmax"), (mx, "mean"), (mx, "concatenate")]


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
            if isinstance(m, _yat_types() + _STANDARD):
                classes.add(type(m))
            elif not m.children() and tree_flatten(m.parameters()):
                classes.add(type(m))   # an unknown layer with weights: recorded as unsupported, run eagerly
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


def _trace(model, inputs, input_names, output_names):
    tracer = _Tracer(model)
    if input_names is None:
        try:
            params = [p for p in inspect.signature(model.__call__).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
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
            raise ExportError(f"{type(model).__name__}: tracing failed ({error}); nmn's MLX export supports the model "
                              "shapes listed in nmn.interchange.mlx_io's documentation (an mx function applied "
                              "to an intermediate value is the usual cause)") from error
    if tracer.unsupported:
        raise ExportError(_unsupported_message(model, tracer.unsupported))
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not all(isinstance(o, Traced) for o in outs):
        raise ExportError(f"{type(model).__name__}: an output is not computed from the inputs through traceable "
                          "operations (see nmn.interchange.mlx_io for what the walk supports)")
    expected = []
    for i, out in enumerate(outs):
        name = output_names[i] if output_names else ("output" if len(outs) == 1 else f"output_{i}")
        tracer.b.output(out.name, name)
        expected.append(_np(out.value))
    return tracer.b.build(), expected


def _unsupported_message(model, items):
    items = list(dict.fromkeys(items))
    return (f"{type(model).__name__}: cannot export {len(items)} layer(s) / operation(s):\n  - " + "\n  - ".join(items)
            + "\n(supported model shapes: see nmn.interchange.mlx_io)")


# ---------------------------------------------------------------------------------------------------------- API
def export(model, example_inputs: Any, path: str | os.PathLike | None = None, *,
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           rtol: float = 1e-5, inline: bool = False) -> onnx.ModelProto:
    """Export an MLX model of nmn and standard layers to ONNX, checked in onnxruntime before writing.

    Args:
        model: an ``mlx.nn.Module`` (run in eval mode during the export), or a model returned by :func:`load`
            (written back with the file's names and the current weights).
        example_inputs: an ``mx.array`` or a tuple of them; the first dimension becomes the symbolic ``batch``.
        path: where to write the file (atomically; nothing is written if any check fails).
        input_names, output_names: graph names (default: the ``__call__`` argument names, ``output``).
        rtol: the onnxruntime check's tolerance, relative to each output's largest magnitude.
        inline: also write ``<path stem>.inlined.onnx`` with the functions inlined.

    Returns:
        the ``onnx.ModelProto``.

    Example:
        >>> import mlx.core as mx, mlx.nn as nn, nmn.mlx as nm
        >>> from nmn.interchange import mlx_io
        >>> net = nn.Sequential(nm.YatNMN(5, in_features=4), nn.Linear(5, 2))
        >>> model = mlx_io.export(net, mx.random.normal((3, 4)))
        >>> [n.op_type for n in model.graph.node]
        ['YatDense', 'Gemm']
    """
    inputs = list(example_inputs) if isinstance(example_inputs, (tuple, list)) else [example_inputs]
    inputs = [x if isinstance(x, mx.array) else mx.array(np.asarray(x)) for x in inputs]
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, OnnxModule):
            proto = model._replay()
            out = model(*inputs)
            expected = [_np(o) for o in (out if isinstance(out, (tuple, list)) else (out,))]
        else:
            proto, expected = _trace(model, inputs, input_names, output_names)
        feeds = {vi.name: np.array(x) for vi, x in zip(proto.graph.input, inputs)}
        check_against(proto, feeds, expected, rtol=rtol, what=type(model).__name__)
    finally:
        model.train(was_training)
    if path is not None:
        save_model(proto, path)
        if inline:
            from nmn.interchange.graph import inline_copy

            p = os.fspath(path)
            save_model(inline_copy(proto), p[:-5] + ".inlined.onnx" if p.endswith(".onnx") else p + ".inlined")
    return proto


# ------------------------------------------------------------------------------------------------------ load ops
def _pads(a, rank):
    pads = a.get("pads") or [0] * (2 * rank)
    return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]


def _last(x):
    return mx.moveaxis(x, 1, -1)


def _first(x):
    return mx.moveaxis(x, -1, 1)


def _conv(args, a):
    x, w = args[0], args[1]
    rank = w.ndim - 2
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise ValueError(f"Conv with auto_pad={a['auto_pad']!r} is not supported by the MLX loader")
    pairs = _pads(a, rank)
    from nmn.mlx.functional import _conv as grouped_conv

    y = grouped_conv(_last(x), mx.moveaxis(w, 1, -1), groups=int(a.get("group", 1)),
                     stride=list(a.get("strides") or [1] * rank),
                     padding=([p[0] for p in pairs], [p[1] for p in pairs]),
                     kernel_dilation=list(a.get("dilations") or [1] * rank))
    if len(args) > 2 and args[2] is not None:
        y = y + args[2]
    return _first(y)


def _conv_transpose(args, a):
    from nmn.mlx.functional import _conv as grouped_conv
    from nmn.mlx.spec import canonical_to_mlx  # noqa: F401  (layout documented there)

    x, w = args[0], args[1]
    rank = w.ndim - 2
    g = int(a.get("group", 1))
    c, mg, *k = w.shape
    wm = mx.reshape(mx.moveaxis(mx.reshape(w, (g, c // g, mg, *k)), 1, -1), (g * mg, *k, c // g))
    strides = list(a.get("strides") or [1] * rank)
    dil = list(a.get("dilations") or [1] * rank)
    outpad = list(a.get("output_padding") or [0] * rank)
    lo, hi, crop = [], [], []
    for (p0, p1), kk, d, op in zip(_pads(a, rank), k, dil, outpad):
        s0, s1 = (kk - 1) * d - p0, (kk - 1) * d - p1 + op
        lo.append(max(s0, 0))
        hi.append(max(s1, 0))
        crop.append((max(-s0, 0), max(-s1, 0)))
    y = grouped_conv(_last(x), wm, groups=g, stride=1, padding=(lo, hi), kernel_dilation=dil, input_dilation=strides,
                     flip=True)
    if any(cc != (0, 0) for cc in crop):
        y = y[(slice(None),) + tuple(slice(c0, y.shape[i + 1] - c1) for i, (c0, c1) in enumerate(crop))]
    if len(args) > 2 and args[2] is not None:
        y = y + args[2]
    return _first(y)


def _pool(args, a, kind):
    x = _last(args[0])
    rank = x.ndim - 2
    k = list(a["kernel_shape"])
    s = list(a.get("strides") or [1] * rank)
    pairs = _pads(a, rank)
    if a.get("ceil_mode", 0) or any(d != 1 for d in (a.get("dilations") or [1])):
        raise ValueError("pooling with ceil_mode or dilations is not supported by the MLX loader")
    cls = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d,
           ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d, ("avg", 3): nn.AvgPool3d}[(kind, rank)]
    widths = [(0, 0)] + pairs + [(0, 0)]
    pool = cls(k, s, 0)
    if kind == "max":
        xp = mx.pad(x, widths, constant_values=-mx.inf) if any(p != (0, 0) for p in pairs) else x
        return _first(pool(xp))
    if not any(p != (0, 0) for p in pairs) or a.get("count_include_pad", 0):
        return _first(pool(mx.pad(x, widths) if any(p != (0, 0) for p in pairs) else x))
    ones = mx.pad(mx.ones((1, *x.shape[1:-1], 1), dtype=x.dtype), widths)
    return _first(pool(mx.pad(x, widths)) / pool(ones))


def _shape_arg(v):
    return [int(i) for i in np.array(v).reshape(-1).tolist()]


def _reshape(args, a):
    x, shape = args
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(_shape_arg(shape))]
    return mx.reshape(x, dims)


def _gemm(args, a):
    x, w = args[0], args[1]
    x = x.T if a.get("transA", 0) else x
    w = w.T if a.get("transB", 0) else w
    y = (x @ w) * a.get("alpha", 1.0) if a.get("alpha", 1.0) != 1.0 else x @ w
    if len(args) > 2 and args[2] is not None:
        y = y + (args[2] * a.get("beta", 1.0) if a.get("beta", 1.0) != 1.0 else args[2])
    return y


def _batch_norm(args, a):
    x, scale, bias, mean, var = args
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda t: mx.reshape(t, shape)  # noqa: E731
    return (x - r(mean)) * mx.rsqrt(r(var) + a.get("epsilon", 1e-5)) * r(scale) + r(bias)


def _layer_norm(args, a):
    if a.get("axis", -1) not in (-1,):
        raise ValueError("LayerNormalization over more than the last axis is not supported by the MLX loader")
    return mx.fast.layer_norm(args[0], args[1], args[2] if len(args) > 2 else None, a.get("epsilon", 1e-5))


def _axes(args, a):
    if len(args) > 1 and args[1] is not None:
        return _shape_arg(args[1])
    return a.get("axes")


def _reduce(fn):
    def run(args, a):
        axes = _axes(args, a)
        if axes is None and a.get("noop_with_empty_axes", 0):
            return args[0]
        return fn(args[0], axis=axes, keepdims=bool(a.get("keepdims", 1)))
    return run


def _gather(args, a):
    table, ids = args
    ids = ids if isinstance(ids, mx.array) else mx.array(np.asarray(ids))
    return mx.take(table, ids, axis=int(a.get("axis", 0)))


def _pad(args, a):
    x, pads = args[0], _shape_arg(args[1])
    if a.get("mode", "constant") != "constant":
        raise ValueError(f"Pad mode {a['mode']!r} is not supported by the MLX loader")
    r = x.ndim
    value = float(np.array(args[2]).reshape(-1)[0]) if len(args) > 2 and args[2] is not None else 0.0
    return mx.pad(x, [(pads[i], pads[i + r]) for i in range(r)], constant_values=value)


_SQRT_HALF = 1.0 / math.sqrt(2.0)

TABLE = {
    "Gemm": _gemm,
    "MatMul": lambda x, a: x[0] @ x[1],
    "Add": lambda x, a: x[0] + x[1],
    "Sub": lambda x, a: x[0] - x[1],
    "Mul": lambda x, a: x[0] * x[1],
    "Div": lambda x, a: x[0] / x[1],
    "Neg": lambda x, a: -x[0],
    "Pow": lambda x, a: x[0] ** x[1],
    "Sqrt": lambda x, a: mx.sqrt(x[0]),
    "Relu": lambda x, a: nn.relu(x[0]),
    "Sigmoid": lambda x, a: mx.sigmoid(x[0]),
    "Tanh": lambda x, a: mx.tanh(x[0]),
    "Erf": lambda x, a: mx.erf(x[0]),
    "Softplus": lambda x, a: mx.logaddexp(x[0], 0.0),
    "Softmax": lambda x, a: mx.softmax(x[0], axis=a.get("axis", -1), precise=True),
    "LogSoftmax": lambda x, a: x[0] - mx.logsumexp(x[0], axis=a.get("axis", -1), keepdims=True),
    "Flatten": lambda x, a: mx.reshape(x[0], (int(np.prod(x[0].shape[: a.get("axis", 1)])), -1)),
    "Reshape": _reshape,
    "Transpose": lambda x, a: mx.transpose(x[0], a.get("perm") or list(range(x[0].ndim))[::-1]),
    "Identity": lambda x, a: x[0],
    "Dropout": lambda x, a: x[0],
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": lambda x, a: _pool(x, a, "max"),
    "AveragePool": lambda x, a: _pool(x, a, "avg"),
    "GlobalAveragePool": lambda x, a: mx.mean(x[0], axis=tuple(range(2, x[0].ndim)), keepdims=True),
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Gather": _gather,
    "Concat": lambda x, a: mx.concatenate(list(x), axis=a["axis"]),
    "ReduceMean": _reduce(mx.mean),
    "ReduceSum": _reduce(mx.sum),
    "Squeeze": lambda x, a: mx.squeeze(x[0], axis=_axes(x, a)) if _axes(x, a) else mx.squeeze(x[0]),
    "Unsqueeze": lambda x, a: mx.expand_dims(x[0], _axes(x, a)),
    "Pad": _pad,
}


def _key(name: str) -> str:
    key = name.replace(".", "__")
    return "n" + key if not key or key[0] == "_" or key[0].isdigit() else key


def _mx(array: np.ndarray):
    return mx.array(np.ascontiguousarray(array))


class OnnxModule(nn.Module):
    """An MLX module loaded from an nmn ONNX file.

    ``layers`` holds one ``nmn.mlx`` layer per ``nmn`` node (keys are the file's layer names with ``.`` written
    ``__``), ``params`` the file's other trainable tensors (Linear / Conv / norm weights, in the file's ONNX
    layout); constants (shapes, running statistics, constant biases) are kept outside the parameters.
    ``__call__`` takes the file's inputs in the file's layout (a file exported from MLX takes channels-last data).
    """

    def __init__(self, graph: OnnxGraph, *, dtype=None):
        super().__init__()
        import nmn.mlx.spec as mspec

        object.__setattr__(self, "_graph", graph)
        self.layers = {}
        for name, spec in graph.layers.items():
            if spec.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
                continue
            opts = {} if dtype is None else {"dtype": dtype}
            self.layers[_key(name)] = mspec.from_spec(spec.kind, spec.config, spec.params, **opts)
            for canonical, trainable in spec.trainable.items():
                if not trainable:
                    _freeze(self.layers[_key(name)], spec.kind, canonical)
        owned = {init for spec in graph.layers.values() for init in spec.param_inits.values()}
        trainable = graph.trainable_initializers()
        used = {i for n in graph.nodes for i in n.inputs}
        self.params = {}
        consts = {}
        for name, array in graph.initializers.items():
            if name in owned or name not in used:
                continue
            if name in trainable and array.dtype.kind == "f":
                self.params[_key(name)] = _mx(array)
            else:
                consts[name] = array if array.dtype.kind in "iub" else _mx(array)
        object.__setattr__(self, "_consts", consts)
        check_supported(graph, TABLE, "mlx")

    def _tensor(self, name: str):
        key = _key(name)
        if key in self["params"]:
            return self["params"][key]
        return self._consts.get(name)

    def _yat(self, node, args):
        import nmn.mlx as nm

        spec = self._graph.layers[self._graph.node_layer[node.name]]
        op = node.op
        if op in ("Softermax", "SofterSigmoid", "SoftTanh"):
            cfg = spec.config
            if op == "Softermax":
                return nm.softermax(args[0], n=cfg["n"], epsilon=cfg["epsilon"], axis=cfg["axis"])
            return (nm.softer_sigmoid if op == "SofterSigmoid" else nm.soft_tanh)(args[0], n=cfg["n"])
        layer = self["layers"][_key(spec.name)]
        if op == "YatEmbedAttend":
            return layer.attend(args[0])
        if op == "Gather":
            ids = args[1] if isinstance(args[1], mx.array) else mx.array(np.asarray(args[1]))
            return layer(ids)
        if op in ("YatMultiHeadAttention", "YatPerformerMultiHeadAttention", "RotaryYatMultiHeadAttention"):
            mask = None if node.inputs[3] in self._graph.initializers else args[3]
            if mask is not None and not isinstance(mask, mx.array):
                mask = mx.array(np.asarray(mask))
            return layer(args[0], args[1], args[2], mask=mask)
        if op in ("YatConv", "YatConvTranspose"):
            return _first(layer(_last(args[0])))
        return layer(args[0])

    def __call__(self, *inputs):
        inputs = [x if isinstance(x, mx.array) else mx.array(np.asarray(x)) for x in inputs]
        outs = execute(self._graph, list(inputs), tensor=self._tensor, table=TABLE, yat=self._yat)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _replay(self) -> onnx.ModelProto:
        import nmn.mlx.spec as mspec

        def param(name):
            t = self._tensor(name)
            if t is None:
                return self._graph.initializers[name]
            if isinstance(t, np.ndarray):
                return t
            return np.array(t).astype(self._graph.initializers[name].dtype, copy=False)

        def spec(layer_name):
            layer_spec = self._graph.layers[layer_name]
            if layer_spec.kind in ("softermax", "softer_sigmoid", "soft_tanh"):
                return layer_spec.kind, layer_spec.config, {}
            return mspec.to_spec(self["layers"][_key(layer_name)])

        return replay(self._graph, source="mlx", param=param, yat_spec=spec).build()


def _freeze(layer, kind, canonical):
    if kind in ("YatNMN", "YatConv", "YatConvTranspose"):
        host = {"weight": "kernel"}.get(canonical, canonical)
        if host in layer:
            layer.freeze(keys=[host], recurse=False)
        return
    sub = _param_names(kind).get(canonical)
    if sub:
        module, leaf = sub.split(".")
        if module in layer and leaf in layer[module]:
            layer[module].freeze(keys=[leaf], recurse=False)
    elif canonical in layer:
        layer.freeze(keys=[canonical], recurse=False)


def load(source: str | os.PathLike | onnx.ModelProto, *, dtype=None) -> OnnxModule:
    """Load an nmn ONNX file (from any framework) as a trainable MLX module.

    Args:
        source: a path or an ``onnx.ModelProto`` (files are opened through the safe loader and validated).
        dtype: parameter dtype of the Yat layers (default float32).

    Example:
        >>> import mlx.core as mx, mlx.nn as nn, nmn.mlx as nm
        >>> from nmn.interchange import mlx_io
        >>> net = nn.Sequential(nm.YatNMN(3, in_features=4), nn.Linear(3, 2))
        >>> loaded = mlx_io.load(mlx_io.export(net, mx.random.normal((2, 4))))
        >>> x = mx.random.normal((5, 4))
        >>> bool(mx.allclose(loaded(x), net(x), atol=1e-6))
        True
    """
    return OnnxModule(read_model(source), dtype=dtype)
