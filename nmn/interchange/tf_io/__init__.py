"""TensorFlow <-> ONNX: export a ``tf.Module`` built from ``nmn.tf`` layers and TF ops, load any nmn file.

**Export** traces the module's ``__call__`` into a ``tf.function`` graph (batch dimension ``None``) while
recording every call of an ``nmn.tf`` layer, then walks the graph backwards from its outputs: a recorded Yat call
becomes one ``nmn::`` node (its internal TF ops are never visited), every other TF op is converted to ONNX
(``MatMul``, ``AddV2``, ``Mean``, ``Reshape`` with a computed shape, pooling, ...). Initializers are named by the
module attribute paths (``fc1.kernel``, ``out.bias``); data stays channels-last with ``Transpose`` nodes around
each convolution. Unknown TF ops are all listed in one :class:`~nmn.interchange.graph.ExportError`.

**Load** builds an :class:`OnnxModule` (a ``tf.Module``): ``nmn`` nodes become ``nmn.tf`` layers holding the
file's weights (convolutions ``channels_first``, the file's layout), the other float tensors ``tf.Variable`` s;
its ``__call__`` is a ``tf.function`` with the file's input signature, so it trains with ``tf.GradientTape`` and
saves as a SavedModel. ``export(load(f))`` writes the file's initializers back bit for bit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

try:
    import tensorflow as tf
except ImportError as err:  # pragma: no cover
    raise ImportError('nmn.interchange.tf_io needs TensorFlow: pip install "nmn[tf]>=1.0"') from err

import nmn.tf as nt
from nmn.interchange import emit
from nmn.interchange._export_common import write
from nmn.interchange.tf_io.holder import TABLE, OnnxModule, load, predict  # the load half
from nmn.interchange._tfkeras_common import HOST_NAMES
from nmn.interchange.graph import ExportError, GraphBuilder, check_against
from nmn.tf import spec as tspec
from nmn.tf.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.tf.conv import _YatConvNd
from nmn.tf.conv_transpose import _YatConvTransposeNd

__all__ = ["export", "load", "predict", "OnnxModule", "TABLE"]


# ======================================================================================================= export
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


def export(
    model,
    example_inputs: Any,
    path: str | os.PathLike | None = None,
    *,
    rtol: float = 1e-5,
    input_names: Sequence[str] | None = None,
    inline: bool = False,
) -> onnx.ModelProto:
    """Export a ``tf.Module`` of ``nmn.tf`` layers and TF ops (or a model from :func:`load`) to ONNX.

    Args:
        model: a callable ``tf.Module`` (its ``__call__`` is traced with the batch dimension left ``None``) or a
            single ``nmn.tf`` layer.
        example_inputs: a tensor or a list of them (numpy or ``tf``).
        path: where to write the file (atomically, after the onnxruntime check passed).
        rtol: tolerance of the onnxruntime check. input_names: graph input names (default ``x``, ``x1``...).
        inline: also write ``<stem>.inlined.onnx`` with the functions inlined.

    Example:
        >>> import numpy as np, tensorflow as tf, nmn.tf as nt
        >>> from nmn.interchange import tf_io
        >>> layer = nt.YatNMN(3)
        >>> proto = tf_io.export(layer, np.ones((2, 4), np.float32))
        >>> [n.op_type for n in proto.graph.node]
        ['YatDense']
    """
    inputs = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    inputs = [np.asarray(x) for x in inputs]
    expected_out = model(*[tf.constant(x) for x in inputs])
    outs = expected_out if isinstance(expected_out, (list, tuple)) else [expected_out]
    expected = [np.asarray(o) for o in outs]
    if isinstance(model, OnnxModule):
        proto = model._replay()
    else:
        proto = _trace(model, inputs, input_names)
    feeds = {vi.name: x for vi, x in zip(proto.graph.input, inputs)}
    check_against(proto, feeds, expected, rtol=rtol, what=getattr(model, "name", type(model).__name__))
    write(proto, path, inline)
    return proto


def _trace(model, inputs, input_names):
    names = list(input_names or (["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]))
    specs = [tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype)) for x in inputs]
    calls: dict = {}
    with _recording(calls):
        concrete = tf.function(lambda *xs: model(*xs)).get_concrete_function(*specs)
    paths = _paths(model) if isinstance(model, tf.Module) else {}
    b = GraphBuilder(source="tf", layout="channels_last")
    walker = _Walker(b, concrete, model, paths, calls.get("list", []))
    for name, placeholder, x in zip(names, concrete.inputs, inputs):
        walker.values[placeholder.ref()] = b.input(name, [None, *x.shape[1:]], x.dtype)
    outs = [walker.value(t) for t in concrete.outputs]
    if walker.unsupported:
        raise ExportError(
            f"{getattr(model, 'name', type(model).__name__)}: {len(walker.unsupported)} TF op(s) "
            f"have no ONNX converter: " + ", ".join(sorted(walker.unsupported))
        )
    for i, o in enumerate(outs):
        b.output(o, "output" if len(outs) == 1 else f"output_{i}")
    return b.build()


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
        b = self.b
        typ = op.type
        name = op.name.replace("/", ".")
        if typ == "Const":
            value = np.asarray(tf.make_ndarray(op.get_attr("value")))
            if value.dtype == np.int32:
                value = value.astype(np.int64)
            return b.constant(name, value)
        if typ in ("Identity", "StopGradient", "IdentityN", "Snapshot"):
            idx = op.outputs.index(t) if typ == "IdentityN" else 0
            return self.value(op.inputs[idx])
        if typ == "ReadVariableOp":
            return self._tensor_value(op.inputs[0])
        ins = lambda i: self._tensor_value(op.inputs[i])
        binary = {
            "AddV2": "Add",
            "Add": "Add",
            "Sub": "Sub",
            "Mul": "Mul",
            "RealDiv": "Div",
            "Maximum": "Max",
            "Minimum": "Min",
            "Pow": "Pow",
        }
        unary = {
            "Relu": "Relu",
            "Sigmoid": "Sigmoid",
            "Tanh": "Tanh",
            "Sqrt": "Sqrt",
            "Neg": "Neg",
            "Exp": "Exp",
            "Log": "Log",
            "Abs": "Abs",
            "Softplus": "Softplus",
            "Erf": "Erf",
            "Reciprocal": "Reciprocal",
            "Inv": "Reciprocal",
            "Floor": "Floor",
            "Ceil": "Ceil",
            "Sign": "Sign",
            "Sin": "Sin",
            "Cos": "Cos",
        }
        if typ in binary:
            return b.node(binary[typ], [ins(0), ins(1)], name=name)
        if typ in _TF_ACTIVATIONS:
            kind = _TF_ACTIVATIONS[typ]
            params = {"alpha": float(op.get_attr("alpha"))} if typ == "LeakyRelu" else {}
            return emit.activation(b, kind, ins(0), name=name, **params)
        if typ == "AddN":
            y = ins(0)
            for i in range(1, len(op.inputs)):
                y = b.node("Add", [y, ins(i)], name=f"{name}.{i}")
            return y
        if typ in ("Conv2D", "Conv3D", "DepthwiseConv2dNative"):
            return self._conv(op, name)
        if typ in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
            if op.get_attr("is_training") or op.outputs.index(t) != 0:
                self.unsupported.add(f"{typ} (training mode, or its batch statistics used)")
                return "unsupported"
            channels_last = op.get_attr("data_format").decode() in ("NHWC", "NDHWC")
            rank = op.inputs[0].shape.rank
            x = ins(0)
            if channels_last:
                x = b.node("Transpose", [x], {"perm": [0, rank - 1, *range(1, rank - 1)]}, name=name + ".to_first")
            y = b.node(
                "BatchNormalization",
                [x, ins(1), ins(2), ins(3), ins(4)],
                {"epsilon": float(op.get_attr("epsilon"))},
                name=name,
            )
            if channels_last:
                y = b.node("Transpose", [y], {"perm": [0, *range(2, rank), 1]}, name=name + ".to_last")
            return y
        if typ in ("Pad", "PadV2", "MirrorPad"):
            pads = self._const(op.inputs[1])
            if pads is None:
                self.unsupported.add(f"{typ} with dynamic paddings")
                return "unsupported"
            pads = np.asarray(pads, np.int64)
            mode = "constant" if typ != "MirrorPad" else op.get_attr("mode").decode().lower()
            if mode == "symmetric":
                self.unsupported.add("MirrorPad(SYMMETRIC)")
                return "unsupported"
            extra = [ins(2)] if typ == "PadV2" else []
            return b.node(
                "Pad",
                [ins(0), b.constant(name + ".pads", np.concatenate([pads[:, 0], pads[:, 1]])), *extra],
                {"mode": mode},
                name=name,
            )
        if typ == "LogSoftmax":
            return emit.activation(b, "log_softmax", ins(0), axis=-1, name=name)
        if typ in unary:
            return b.node(unary[typ], [ins(0)], name=name)
        if typ == "Rsqrt":  # 1 / sqrt(x) with Div (every loader has Div; not all have Reciprocal)
            one = b.constant(name + ".one", np.array(1.0, op.outputs[0].dtype.as_numpy_dtype))
            return b.node("Div", [one, b.node("Sqrt", [ins(0)], name=name + ".sqrt")], name=name)
        if typ == "Square":
            x = ins(0)
            return b.node("Mul", [x, x], name=name)
        if typ == "SquaredDifference":
            d = b.node("Sub", [ins(0), ins(1)], name=name + ".diff")
            return b.node("Mul", [d, d], name=name)
        if typ == "BiasAdd":
            return b.node("Add", [ins(0), ins(1)], name=name)
        if typ in ("MatMul", "BatchMatMulV2"):
            a, c = ins(0), ins(1)
            ta = op.get_attr("transpose_a" if typ == "MatMul" else "adj_x")
            tb = op.get_attr("transpose_b" if typ == "MatMul" else "adj_y")
            if ta:
                a = b.node("Transpose", [a], {"perm": _swap_last(op.inputs[0].shape.rank)}, name=name + ".ta")
            if tb:
                c = b.node("Transpose", [c], {"perm": _swap_last(op.inputs[1].shape.rank)}, name=name + ".tb")
            return b.node("MatMul", [a, c], name=name)
        if typ in ("Mean", "Sum", "Max", "Min", "Prod"):
            onnx_op = {
                "Mean": "ReduceMean",
                "Sum": "ReduceSum",
                "Max": "ReduceMax",
                "Min": "ReduceMin",
                "Prod": "ReduceProd",
            }[typ]
            axes = self._const(op.inputs[1])
            if axes is None:
                self.unsupported.add(f"{typ} with dynamic axes")
                return "unsupported"
            axes_name = b.constant(name + ".axes", np.atleast_1d(axes).astype(np.int64))
            return b.node(onnx_op, [ins(0), axes_name], {"keepdims": int(op.get_attr("keep_dims"))}, name=name)
        if typ == "Softmax":
            return b.node("Softmax", [ins(0)], {"axis": -1}, name=name)
        if typ == "Shape":
            s = b.node("Shape", [ins(0)], name=name)
            return s
        if typ == "Cast":
            dst = op.get_attr("DstT")
            if dst.is_integer:
                return b.node("Cast", [ins(0)], {"to": onnx.TensorProto.INT64}, name=name)
            return b.node(
                "Cast", [ins(0)], {"to": onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dst.as_numpy_dtype))}, name=name
            )
        if typ == "StridedSlice":
            return self._strided_slice(op, name)
        if typ == "Pack":
            axis = op.get_attr("axis")
            parts = [
                b.node(
                    "Unsqueeze", [ins(i), b.constant(name + ".axes", np.array([axis], np.int64))], name=f"{name}.u{i}"
                )
                for i in range(len(op.inputs))
            ]
            return b.node("Concat", parts, {"axis": axis}, name=name)
        if typ == "Reshape":
            shape = self._const(op.inputs[1])
            if shape is not None:
                s = b.constant(name + ".shape", np.asarray(shape, np.int64))
            else:
                s = ins(1)
            return b.node("Reshape", [ins(0), s], name=name)
        if typ == "ConcatV2":
            n = len(op.inputs) - 1
            axis = int(self._const(op.inputs[n]))
            return b.node("Concat", [ins(i) for i in range(n)], {"axis": axis}, name=name)
        if typ == "Transpose":
            perm = self._const(op.inputs[1])
            return b.node("Transpose", [ins(0)], {"perm": [int(p) for p in perm]}, name=name)
        if typ == "ExpandDims":
            axis = int(self._const(op.inputs[1]))
            return b.node("Unsqueeze", [ins(0), b.constant(name + ".axes", np.array([axis], np.int64))], name=name)
        if typ == "Squeeze":
            dims = list(op.get_attr("squeeze_dims"))
            if not dims:
                return b.node("Squeeze", [ins(0)], name=name)
            return b.node("Squeeze", [ins(0), b.constant(name + ".axes", np.array(dims, np.int64))], name=name)
        if typ in ("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D"):
            if op.get_attr("data_format").decode() not in ("NHWC", "NDHWC", "NWC"):
                self.unsupported.add(f"{typ} (channels-first)")
                return "unsupported"
            ksize = list(op.get_attr("ksize"))[1:-1]
            strides = list(op.get_attr("strides"))[1:-1]
            padding = op.get_attr("padding").decode().lower()
            from nmn.core.conv import conv_pads

            spatial = list(op.inputs[0].shape[1:-1])
            pads = conv_pads(padding, spatial, ksize, strides, [1] * len(ksize))
            return emit.pool(
                b,
                "max" if typ.startswith("Max") else "avg",
                ins(0),
                kernel=ksize,
                strides=strides,
                pads=pads,
                channels_last=True,
                name=name,
            )
        self.unsupported.add(typ)
        for i in op.inputs:  # keep walking, so that every unsupported op is listed at once
            self.value(i)
        return "unsupported"

    def _conv(self, op, name):
        """``tf.nn.conv2d`` / ``conv3d`` / ``depthwise_conv2d`` (channels-last, SAME/VALID/EXPLICIT padding): the
        filter variable stays in TF's layout, a Transpose (and for depthwise a Reshape) gives ONNX's."""
        b, typ = self.b, op.type
        fmt = op.get_attr("data_format").decode()
        if fmt not in ("NHWC", "NDHWC"):
            self.unsupported.add(f"{typ} ({fmt})")
            return "unsupported"
        rank = op.inputs[0].shape.rank - 2
        kshape = [int(d) for d in op.inputs[1].shape]
        if any(d is None for d in op.inputs[0].shape[1:-1]) or None in kshape:
            self.unsupported.add(f"{typ} with unknown spatial or filter sizes")
            return "unsupported"
        strides = list(op.get_attr("strides"))[1:-1]
        dilations = list(op.get_attr("dilations"))[1:-1]
        padding = op.get_attr("padding").decode()
        spatial = [int(d) for d in op.inputs[0].shape[1:-1]]
        if padding == "EXPLICIT":
            flat = list(op.get_attr("explicit_paddings"))
            pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(1, rank + 1)]
        else:
            from nmn.core.conv import conv_pads

            pairs = conv_pads(padding.lower(), spatial, kshape[:rank], strides, dilations)
        w = self._tensor_value(op.inputs[1])
        group = 1
        if typ == "DepthwiseConv2dNative":  # (H, W, C, mult) -> (H, W, 1, C * mult), group C
            group = kshape[2]
            w = b.node(
                "Reshape",
                [w, b.constant(name + ".wshape", np.array([*kshape[:2], 1, kshape[2] * kshape[3]], np.int64))],
                name=name + ".wreshape",
            )
        w = b.node("Transpose", [w], {"perm": [rank + 1, rank, *range(rank)]}, name=name + ".weight")
        x = b.node(
            "Transpose",
            [self._tensor_value(op.inputs[0])],
            {"perm": [0, rank + 1, *range(1, rank + 1)]},
            name=name + ".to_first",
        )
        y = b.node(
            "Conv",
            [x, w],
            {
                "strides": strides,
                "dilations": dilations,
                "group": group,
                "pads": [p[0] for p in pairs] + [p[1] for p in pairs],
            },
            name=name,
        )
        return b.node("Transpose", [y], {"perm": [0, *range(2, rank + 2), 1]}, name=name + ".to_last")

    def _strided_slice(self, op, name):
        b = self.b
        begin, end, strides = (self._const(op.inputs[i]) for i in (1, 2, 3))
        if (
            begin is None
            or end is None
            or strides is None
            or op.get_attr("ellipsis_mask")
            or op.get_attr("new_axis_mask")
        ):
            self.unsupported.add("StridedSlice (dynamic or with ellipsis/new axes)")
            return "unsupported"
        bm, em, sm = op.get_attr("begin_mask"), op.get_attr("end_mask"), op.get_attr("shrink_axis_mask")
        starts, ends, axes, steps, squeeze = [], [], [], [], []
        big = np.iinfo(np.int64).max
        for i, (s, e, st) in enumerate(zip(begin, end, strides)):
            s = 0 if bm >> i & 1 else int(s)
            e = (big if st > 0 else -big) if em >> i & 1 else int(e)
            if sm >> i & 1:
                e = s + 1 if s != -1 else big
                squeeze.append(i)
            starts.append(s), ends.append(e), axes.append(i), steps.append(int(st))
        c = lambda k, v: b.constant(f"{name}.{k}", np.array(v, np.int64))
        y = b.node(
            "Slice",
            [
                self._tensor_value(op.inputs[0]),
                c("starts", starts),
                c("ends", ends),
                c("axes", axes),
                c("steps", steps),
            ],
            name=name,
        )
        if squeeze:
            y = b.node("Squeeze", [y, c("squeeze", squeeze)], name=name + ".squeeze")
        return y


_TF_ACTIVATIONS = {"Relu6": "relu6", "LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu", "Softsign": "softsign"}


def _swap_last(rank):
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return perm


def _all_variables(model):
    if isinstance(model, tf.Module):
        return list(model.variables)
    return []
