"""What the TF export walk writes for a graph op: one converter per TF op type, filed in :data:`OPS`.

Each converter takes the walker, the tensor asked for, its op, the op type, the ONNX node name and ``ins(i)`` (the
ONNX value of the op's ``i``-th input) and returns the ONNX value name, or ``"unsupported"`` after adding a line to
``w.unsupported``.
"""

from __future__ import annotations

import numpy as np
import onnx
import tensorflow as tf

from nmn.interchange import emit
from nmn.interchange.registry import Registry

OPS = Registry("tf ops")  # TF op type -> converter(w, t, op, typ, name, ins)

_TF_ACTIVATIONS = {"Relu6": "relu6", "LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu", "Softsign": "softsign"}


def _swap_last(rank):
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return perm


_BINARY = {
    "AddV2": "Add",
    "Add": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Maximum": "Max",
    "Minimum": "Min",
    "Pow": "Pow",
}
_UNARY = {
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


@OPS.register("Const")
def _const(w, t, op, typ, name, ins):
    b = w.b
    value = np.asarray(tf.make_ndarray(op.get_attr("value")))
    if value.dtype == np.int32:
        value = value.astype(np.int64)
    return b.constant(name, value)


@OPS.register("Identity", "StopGradient", "IdentityN", "Snapshot")
def _identity(w, t, op, typ, name, ins):
    idx = op.outputs.index(t) if typ == "IdentityN" else 0
    return w.value(op.inputs[idx])


@OPS.register("ReadVariableOp")
def _read_variable(w, t, op, typ, name, ins):
    return w._tensor_value(op.inputs[0])


@OPS.register(*_BINARY)
def _binary(w, t, op, typ, name, ins):
    b = w.b
    return b.node(_BINARY[typ], [ins(0), ins(1)], name=name)


@OPS.register(*_TF_ACTIVATIONS)
def _activation(w, t, op, typ, name, ins):
    b = w.b
    kind = _TF_ACTIVATIONS[typ]
    params = {"alpha": float(op.get_attr("alpha"))} if typ == "LeakyRelu" else {}
    return emit.activation(b, kind, ins(0), name=name, **params)


@OPS.register("AddN")
def _add_n(w, t, op, typ, name, ins):
    b = w.b
    y = ins(0)
    for i in range(1, len(op.inputs)):
        y = b.node("Add", [y, ins(i)], name=f"{name}.{i}")
    return y


@OPS.register("Conv2D", "Conv3D", "DepthwiseConv2dNative")
def _conv_op(w, t, op, typ, name, ins):
    return _conv(w, op, name)


@OPS.register("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _fused_batch_norm(w, t, op, typ, name, ins):
    b = w.b
    if op.get_attr("is_training") or op.outputs.index(t) != 0:
        w.unsupported.add(f"{typ} (training mode, or its batch statistics used)")
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


@OPS.register("Pad", "PadV2", "MirrorPad")
def _pad(w, t, op, typ, name, ins):
    b = w.b
    pads = w._const(op.inputs[1])
    if pads is None:
        w.unsupported.add(f"{typ} with dynamic paddings")
        return "unsupported"
    pads = np.asarray(pads, np.int64)
    mode = "constant" if typ != "MirrorPad" else op.get_attr("mode").decode().lower()
    if mode == "symmetric":
        w.unsupported.add("MirrorPad(SYMMETRIC)")
        return "unsupported"
    extra = [ins(2)] if typ == "PadV2" else []
    return b.node(
        "Pad",
        [ins(0), b.constant(name + ".pads", np.concatenate([pads[:, 0], pads[:, 1]])), *extra],
        {"mode": mode},
        name=name,
    )


@OPS.register("LogSoftmax")
def _log_softmax(w, t, op, typ, name, ins):
    b = w.b
    return emit.activation(b, "log_softmax", ins(0), axis=-1, name=name)


@OPS.register(*_UNARY)
def _unary(w, t, op, typ, name, ins):
    b = w.b
    return b.node(_UNARY[typ], [ins(0)], name=name)


@OPS.register("Rsqrt")
def _rsqrt(w, t, op, typ, name, ins):
    # 1 / sqrt(x) with Div (every loader has Div; not all have Reciprocal)
    b = w.b
    one = b.constant(name + ".one", np.array(1.0, op.outputs[0].dtype.as_numpy_dtype))
    return b.node("Div", [one, b.node("Sqrt", [ins(0)], name=name + ".sqrt")], name=name)


@OPS.register("Square")
def _square(w, t, op, typ, name, ins):
    b = w.b
    x = ins(0)
    return b.node("Mul", [x, x], name=name)


@OPS.register("SquaredDifference")
def _squared_difference(w, t, op, typ, name, ins):
    b = w.b
    d = b.node("Sub", [ins(0), ins(1)], name=name + ".diff")
    return b.node("Mul", [d, d], name=name)


@OPS.register("BiasAdd")
def _bias_add(w, t, op, typ, name, ins):
    b = w.b
    return b.node("Add", [ins(0), ins(1)], name=name)


@OPS.register("MatMul", "BatchMatMulV2")
def _matmul(w, t, op, typ, name, ins):
    b = w.b
    a, c = ins(0), ins(1)
    ta = op.get_attr("transpose_a" if typ == "MatMul" else "adj_x")
    tb = op.get_attr("transpose_b" if typ == "MatMul" else "adj_y")
    if ta:
        a = b.node("Transpose", [a], {"perm": _swap_last(op.inputs[0].shape.rank)}, name=name + ".ta")
    if tb:
        c = b.node("Transpose", [c], {"perm": _swap_last(op.inputs[1].shape.rank)}, name=name + ".tb")
    return b.node("MatMul", [a, c], name=name)


@OPS.register("Mean", "Sum", "Max", "Min", "Prod")
def _reduce(w, t, op, typ, name, ins):
    b = w.b
    onnx_op = {
        "Mean": "ReduceMean",
        "Sum": "ReduceSum",
        "Max": "ReduceMax",
        "Min": "ReduceMin",
        "Prod": "ReduceProd",
    }[typ]
    axes = w._const(op.inputs[1])
    if axes is None:
        w.unsupported.add(f"{typ} with dynamic axes")
        return "unsupported"
    axes_name = b.constant(name + ".axes", np.atleast_1d(axes).astype(np.int64))
    return b.node(onnx_op, [ins(0), axes_name], {"keepdims": int(op.get_attr("keep_dims"))}, name=name)


@OPS.register("Softmax")
def _softmax(w, t, op, typ, name, ins):
    b = w.b
    return b.node("Softmax", [ins(0)], {"axis": -1}, name=name)


@OPS.register("Shape")
def _shape(w, t, op, typ, name, ins):
    b = w.b
    s = b.node("Shape", [ins(0)], name=name)
    return s


@OPS.register("Cast")
def _cast(w, t, op, typ, name, ins):
    b = w.b
    dst = op.get_attr("DstT")
    if dst.is_integer:
        return b.node("Cast", [ins(0)], {"to": onnx.TensorProto.INT64}, name=name)
    return b.node(
        "Cast", [ins(0)], {"to": onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dst.as_numpy_dtype))}, name=name
    )


@OPS.register("StridedSlice")
def _strided_slice_op(w, t, op, typ, name, ins):
    return _strided_slice(w, op, name)


@OPS.register("Pack")
def _pack(w, t, op, typ, name, ins):
    b = w.b
    axis = op.get_attr("axis")
    parts = [
        b.node("Unsqueeze", [ins(i), b.constant(name + ".axes", np.array([axis], np.int64))], name=f"{name}.u{i}")
        for i in range(len(op.inputs))
    ]
    return b.node("Concat", parts, {"axis": axis}, name=name)


@OPS.register("Reshape")
def _reshape(w, t, op, typ, name, ins):
    b = w.b
    shape = w._const(op.inputs[1])
    if shape is not None:
        s = b.constant(name + ".shape", np.asarray(shape, np.int64))
    else:
        s = ins(1)
    return b.node("Reshape", [ins(0), s], name=name)


@OPS.register("ConcatV2")
def _concat(w, t, op, typ, name, ins):
    b = w.b
    n = len(op.inputs) - 1
    axis = int(w._const(op.inputs[n]))
    return b.node("Concat", [ins(i) for i in range(n)], {"axis": axis}, name=name)


@OPS.register("Transpose")
def _transpose(w, t, op, typ, name, ins):
    b = w.b
    perm = w._const(op.inputs[1])
    return b.node("Transpose", [ins(0)], {"perm": [int(p) for p in perm]}, name=name)


@OPS.register("ExpandDims")
def _expand_dims(w, t, op, typ, name, ins):
    b = w.b
    axis = int(w._const(op.inputs[1]))
    return b.node("Unsqueeze", [ins(0), b.constant(name + ".axes", np.array([axis], np.int64))], name=name)


@OPS.register("Squeeze")
def _squeeze(w, t, op, typ, name, ins):
    b = w.b
    dims = list(op.get_attr("squeeze_dims"))
    if not dims:
        return b.node("Squeeze", [ins(0)], name=name)
    return b.node("Squeeze", [ins(0), b.constant(name + ".axes", np.array(dims, np.int64))], name=name)


@OPS.register("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D")
def _pool(w, t, op, typ, name, ins):
    b = w.b
    if op.get_attr("data_format").decode() not in ("NHWC", "NDHWC", "NWC"):
        w.unsupported.add(f"{typ} (channels-first)")
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


def _conv(w, op, name):
    """``tf.nn.conv2d`` / ``conv3d`` / ``depthwise_conv2d`` (channels-last, SAME/VALID/EXPLICIT padding): the
    filter variable stays in TF's layout, a Transpose (and for depthwise a Reshape) gives ONNX's."""
    b, typ = w.b, op.type
    fmt = op.get_attr("data_format").decode()
    if fmt not in ("NHWC", "NDHWC"):
        w.unsupported.add(f"{typ} ({fmt})")
        return "unsupported"
    rank = op.inputs[0].shape.rank - 2
    kshape = [int(d) for d in op.inputs[1].shape]
    if any(d is None for d in op.inputs[0].shape[1:-1]) or None in kshape:
        w.unsupported.add(f"{typ} with unknown spatial or filter sizes")
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
    kernel = w._tensor_value(op.inputs[1])
    group = 1
    if typ == "DepthwiseConv2dNative":  # (H, W, C, mult) -> (H, W, 1, C * mult), group C
        group = kshape[2]
        kernel = b.node(
            "Reshape",
            [kernel, b.constant(name + ".wshape", np.array([*kshape[:2], 1, kshape[2] * kshape[3]], np.int64))],
            name=name + ".wreshape",
        )
    kernel = b.node("Transpose", [kernel], {"perm": [rank + 1, rank, *range(rank)]}, name=name + ".weight")
    x = b.node(
        "Transpose",
        [w._tensor_value(op.inputs[0])],
        {"perm": [0, rank + 1, *range(1, rank + 1)]},
        name=name + ".to_first",
    )
    y = b.node(
        "Conv",
        [x, kernel],
        {
            "strides": strides,
            "dilations": dilations,
            "group": group,
            "pads": [p[0] for p in pairs] + [p[1] for p in pairs],
        },
        name=name,
    )
    return b.node("Transpose", [y], {"perm": [0, *range(2, rank + 2), 1]}, name=name + ".to_last")


def _strided_slice(w, op, name):
    b = w.b
    begin, end, strides = (w._const(op.inputs[i]) for i in (1, 2, 3))
    if begin is None or end is None or strides is None or op.get_attr("ellipsis_mask") or op.get_attr("new_axis_mask"):
        w.unsupported.add("StridedSlice (dynamic or with ellipsis/new axes)")
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
            w._tensor_value(op.inputs[0]),
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
