"""Tracing by execution for the MLX exporter (see :mod:`nmn.interchange.mlx_io` for the supported model shapes).

The example inputs are wrapped in :class:`Traced` values (an ONNX value name plus the eager ``mx.array``); while
the model's own ``__call__`` runs on them, calls of known layers and of a few functions are routed through
:class:`_Tracer`, which emits their ONNX through the neutral emitters and computes the eager value next to it.
"""

from __future__ import annotations

import inspect

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from nmn.core.options import SOFTERMAX_EPSILON, squash_power
from nmn.interchange import emit
from nmn.interchange._export_common import activation as emit_activation
from nmn.interchange._export_common import rms_norm
from nmn.interchange.graph import ExportError, GraphBuilder


def np_array(a) -> np.ndarray:
    """An ``mx.array`` as numpy (float16 / bfloat16 as float32)."""
    a = a.astype(mx.float32) if a.dtype in (mx.float16, mx.bfloat16) else a
    return np.array(a)


def _np_param(module, key):
    return np_array(module[key]) if key in module else None


def _yat_types():
    import nmn.mlx as nm
    from nmn.mlx.conv import _YatConvND
    from nmn.mlx.conv_transpose import _YatConvTransposeND

    return (nm.YatNMN, _YatConvND, _YatConvTransposeND, nm.MultiHeadYatAttention, nm.RotaryYatAttention, nm.YatEmbed)


# mlx.nn activation modules / functions -> activation kinds of _export_common.activation (emit.ACTIVATIONS and
# the extras); the parameters of the parametrised ones are read by _activation_params
_ACTIVATION_MODULES = {
    nn.ReLU: "relu",
    nn.SiLU: "silu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Softplus: "softplus",
    nn.ReLU6: "relu6",
    nn.SELU: "selu",
    nn.Hardswish: "hard_swish",
    nn.Mish: "mish",
    nn.Softsign: "softsign",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.CELU: "celu",
    nn.HardTanh: "clip",
    nn.LogSigmoid: "log_sigmoid",
    nn.Softmin: "softmin",
}
_FN_ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_approx": "gelu_tanh",
    "silu": "silu",
    "sigmoid": "sigmoid",
    "softplus": "softplus",
    "tanh": "tanh",
    "relu6": "relu6",
    "selu": "selu",
    "hardswish": "hard_swish",
    "mish": "mish",
    "softsign": "softsign",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
    "celu": "celu",
    "hard_tanh": "clip",
    "log_sigmoid": "log_sigmoid",
}


def _activation_params(kind, m=None, args=(), kwargs=None) -> dict:
    """The ``alpha`` / ``min`` / ``max`` of a parametrised activation, from its module or its call's arguments
    (mlx's defaults: leaky_relu 0.01, elu/celu 1.0, hard_tanh [-1, 1]; the HardTanh module has no options)."""
    kwargs = kwargs or {}
    extra = list(args[1:])

    def arg(key, pos, default):
        return kwargs.get(key, extra[pos] if len(extra) > pos else default)

    if kind == "leaky_relu":
        return {"alpha": float(m._negative_slope) if m is not None else float(arg("negative_slope", 0, 0.01))}
    if kind in ("elu", "celu"):
        return {"alpha": float(m._alpha) if m is not None else float(arg("alpha", 0, 1.0))}
    if kind == "clip":
        if m is not None:
            return {"min": -1.0, "max": 1.0}
        return {"min": float(arg("min_val", 0, -1.0)), "max": float(arg("max_val", 1, 1.0))}
    return {}


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_DROPOUT = (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.Identity)
_STANDARD = (
    nn.Linear,
    *_CONV,
    *_CONV_T,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.BatchNorm,
    nn.Embedding,
    *_POOL,
    *_DROPOUT,
    nn.GELU,
    nn.Softmax,
    nn.LogSoftmax,
    *_ACTIVATION_MODULES,
)


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
                    call["mask_rank"] = len(mask.shape)
                elif mask is not None:
                    call["mask"] = b.constant(f"{name}.mask", np.array(mask).astype(bool))
                    call["mask_rank"] = np.ndim(np.array(mask))
                if kind == "RotaryYatAttention" and m._cache_max is not None:
                    raise ExportError(f"{name}: RotaryYatAttention with an active KV cache (call reset_cache())")
            trainable = _trainable(m, kind)
            return emit.yat_layer(
                b,
                name,
                kind,
                config,
                params,
                ins,
                in_shape=tuple(x.shape),
                channels_last=kind in ("YatConv", "YatConvTranspose"),
                call=call,
                param_names=param_names(kind),
                trainable=trainable,
            )
        if isinstance(m, nn.Linear):
            return emit.linear(b, name, x.name, np_array(m.weight), _np_param(m, "bias"), rank=x.ndim)
        if isinstance(m, _CONV):
            rank = m.weight.ndim - 2
            weight = np.moveaxis(np_array(m.weight), -1, 1)
            return emit.conv(
                b,
                name,
                x.name,
                weight,
                _np_param(m, "bias"),
                in_shape=tuple(x.shape),
                strides=_tuple(m.stride, rank),
                dilations=_tuple(m.dilation, rank),
                groups=int(getattr(m, "groups", 1)),
                padding=[(p, p) for p in _tuple(m.padding, rank)],
                channels_last=True,
            )
        if isinstance(m, _CONV_T):
            rank = m.weight.ndim - 2
            w = np_array(m.weight)  # (M, *k, C)
            weight = np.transpose(w, (w.ndim - 1, 0, *range(1, w.ndim - 1)))  # (C, M, *k)
            return emit.conv(
                b,
                name,
                x.name,
                weight,
                _np_param(m, "bias"),
                in_shape=tuple(x.shape),
                strides=_tuple(m.stride, rank),
                dilations=_tuple(m.dilation, rank),
                groups=1,
                padding=[(p, p) for p in _tuple(m.padding, rank)],
                channels_last=True,
                transpose=True,
                output_padding=list(_tuple(m.output_padding, rank)),
            )
        if type(m) in _ACTIVATION_MODULES:
            kind = _ACTIVATION_MODULES[type(m)]
            return emit_activation(b, kind, x.name, name=name, **_activation_params(kind, m))
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
        if isinstance(m, nn.RMSNorm):
            return rms_norm(b, name, x.name, _np_param(m, "weight"), m.eps)
        if isinstance(m, nn.BatchNorm):
            if "running_mean" not in m:
                raise ExportError(f"{name}: BatchNorm(track_running_stats=False) has no inference statistics")
            n = m.num_features
            scale = _np_param(m, "weight")
            shift = _np_param(m, "bias")
            scale = np.ones(n, np.float32) if scale is None else scale
            shift = np.zeros(n, np.float32) if shift is None else shift
            return emit.batch_norm(
                b,
                name,
                x.name,
                scale,
                shift,
                np_array(m.running_mean),
                np_array(m.running_var),
                m.eps,
                rank=x.ndim - 2,
                channels_last=True,
            )
        if isinstance(m, nn.Embedding):
            return emit.embedding(b, name, x.name, np_array(m.weight))
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
        widths = b.constant(
            f"{name}.pads", np.array([0, 0] + [p[0] for p in pads] + [0, 0] + [p[1] for p in pads], np.int64)
        )
        padded = b.node("Pad", [first, widths], {"mode": "constant"}, name=f"{name}.pad")
        y = b.node("AveragePool", [padded], {"kernel_shape": k, "strides": s, "pads": [0] * (2 * rank)}, name=name)
        return b.node("Transpose", [y], {"perm": [0, *range(2, rank + 2), 1]}, name=f"{name}.to_last")

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
        x = args[0]
        try:
            if fname in _FN_ACTIVATIONS:
                kind = _FN_ACTIVATIONS[fname]
                return self.activation(kind, x, value, **_activation_params(kind, None, args, kwargs))
            if fname in ("softmax", "log_softmax", "softmin"):
                axis = kwargs.get("axis", args[1] if len(args) > 1 else -1)
                if not isinstance(axis, int):
                    raise ExportError(f"{fname} over axes {axis!r}: only one axis is supported")
                return self.activation(fname, x, value, axis=axis)
            if fname == "mean":
                return self.reduce(
                    "ReduceMean",
                    x,
                    kwargs.get("axis", args[1] if len(args) > 1 else None),
                    kwargs.get("keepdims", args[2] if len(args) > 2 else False),
                )
            if fname == "concatenate":
                axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
                names = [self.operand(v, self.fresh("concat.const"))[0] for v in x]
                return self.wrap(self.b.node("Concat", names, {"axis": int(axis)}, name=self.fresh("concat")), value)
            if fname in ("softermax", "softer_sigmoid", "soft_tanh"):
                names = ["n", "epsilon", "axis"] if fname == "softermax" else ["n"]
                cfg = {"n": 1.0, "epsilon": SOFTERMAX_EPSILON, "axis": -1} if fname == "softermax" else {"n": 1.0}
                cfg.update(dict(zip(names, args[1:])))
                cfg.update(kwargs)
                if fname != "softermax":  # ``sharpness`` is the seed README's alias of ``n``
                    cfg = {"n": float(squash_power(cfg.get("n", 1.0), cfg.get("sharpness"), fname))}
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


def param_names(kind):
    """Canonical -> MLX parameter names of a Yat layer kind (``weight`` -> ``kernel``, ``q_weight`` -> ...)."""
    if kind in ("YatNMN", "YatConv", "YatConvTranspose"):
        return {"weight": "kernel"}
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        return {
            f"{s}_{leaf}": f"{sub}.{leaf}"
            for s, sub in (("q", "query_proj"), ("k", "key_proj"), ("v", "value_proj"), ("out", "out_proj"))
            for leaf in ("weight", "bias")
        }
    return {}


def _trainable(m, kind):
    """``{canonical param name: trainable}`` of a Yat layer (frozen: a lazy kernel, the performer ``proj``)."""
    from mlx.utils import tree_flatten

    trainable = {k for k, _ in tree_flatten(m.trainable_parameters())}
    inverse = {v: k for k, v in param_names(kind).items()}
    return {inverse.get(path, path): path in trainable for path, _ in tree_flatten(m.parameters())}


def _tuple(v, rank):
    return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * rank


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
            if isinstance(m, _yat_types() + _STANDARD):
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
