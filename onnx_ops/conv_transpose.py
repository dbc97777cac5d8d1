"""``nmn::YatConvTranspose`` -- the Yat transposed convolution, 1-, 2- and 3-D (docs/design.md §4).

The dot map is ONNX ``ConvTranspose`` (``X (N, C, *S)``, ``W (C, M/group, *k)``); for output position ``q``
and channel ``m`` the "patch" is the zero-stuffed input under the kernel, so::

    d(q, m) = sum_{c, i, t : q = i*s - pad + t*dil} x(i, c) W(c, m, t)
    E(q, m) = the same sum of x(i, c)^2          K_m = sum over all c of m's group and ALL taps t of W(c, m, t)^2
    Y = ALPHA * (d + B_m)^2 / (relu(E + K_m - 2 d) + EPS)

(taps that hit an inserted zero contribute ``w^2`` to the distance: docs/design.md §4.1).

Decisions written down here:

* ``pads`` crop the full transposed-convolution output (``[b_1..b_r]`` from the start, ``[e_1..e_r]`` from the
  end of every spatial axis) with a ``Slice`` after a ``ConvTranspose`` that gets no ``pads``: this equals
  ONNX ConvTranspose's ``pads`` and lets ``auto_pad`` be forwarded too (onnxruntime refuses a node with both).
  ``output_padding`` and ``auto_pad`` (``NOTSET``, ``SAME_UPPER``, ``SAME_LOWER``, ``VALID``) are forwarded to
  ``ConvTranspose``. Exporters pass ``pads`` all zero when they use ``auto_pad``.
* ``weight_normalized=1`` (nmn 0.3.5's Keras transposed convolutions) divides filter ``m`` -- the
  ``W[c, m', :]`` of its group's in-channels ``c`` and every tap -- by its norm ``sqrt(K_m) + 1e-8`` and uses
  ``K_m = 1``. A node without the attribute (files written before it) means 0.
* The energy uses an all-ones ``(C, 1, *k)`` kernel with ``group=group``: one map per group, broadcast over
  the group's ``M/group`` output channels.

Arithmetic runs in float32; the result is cast back to X's type.
"""

from collections.abc import Sequence

from onnxscript import BOOL, FLOAT, script
from onnxscript import opset18 as op

from onnx_ops._common import T, YatTail, nmn


@script(nmn, default_opset=op)
def YatConvTranspose(
    X: T,
    W: T,
    B: T,
    ALPHA: T,
    EPS: T,
    dilations: Sequence[int],
    output_padding: Sequence[int],
    pads: Sequence[int],
    strides: Sequence[int],
    auto_pad: str = "NOTSET",
    group: int = 1,
    weight_normalized: int = 0,
) -> T:
    xf = op.Cast(X, to=FLOAT.dtype)
    wf = op.Cast(W, to=FLOAT.dtype)
    zero = op.Constant(value_ints=[0])
    one = op.Constant(value_ints=[1])
    two = op.Constant(value_ints=[2])
    big = op.Constant(value_ints=[100])
    wshape = op.Shape(wf)
    g = op.Reshape(op.Constant(value_int=group), one)
    # K_m: (C, M/G, *k) -> sum over taps -> (G, C/G, M/G) -> sum over in-channels of the group -> (G, M/G)
    wtap = op.ReduceSumSquare(op.Reshape(wf, op.Constant(value_ints=[0, 0, -1])), two, keepdims=0)
    grouped_w = op.Concat(g, op.Constant(value_ints=[-1]), op.Slice(wshape, one, two), axis=0)
    kk = op.ReduceSum(op.Reshape(wtap, grouped_w), one, keepdims=0)
    # optional weight normalisation: every W[c, m'] of group g divided by sqrt(K_(g, m')) + 1e-8, then K = 1
    wn = op.Cast(op.Constant(value_int=weight_normalized), to=BOOL.dtype)
    k_cg = op.Expand(op.Unsqueeze(kk, one), op.Shape(op.Reshape(wtap, grouped_w)))  # (G, C/G, M/G)
    ones_k = op.Expand(one, op.Shape(op.Slice(wshape, two, big)))
    k_c = op.Reshape(k_cg, op.Concat(op.Slice(wshape, zero, two), ones_k, axis=0))  # (C, M/G, 1..)
    wf = op.Where(wn, op.Div(wf, op.Add(op.Sqrt(k_c), op.Constant(value_float=1e-8))), wf)
    kk = op.Where(wn, op.Expand(op.Constant(value_float=1.0), op.Shape(kk)), kk)
    full = op.ConvTranspose(
        xf, wf, auto_pad=auto_pad, dilations=dilations, group=group, output_padding=output_padding, strides=strides
    )
    ones = op.Expand(
        op.Constant(value_float=1.0), op.Concat(op.Slice(wshape, zero, one), one, op.Slice(wshape, two, big), axis=0)
    )
    efull = op.ConvTranspose(
        op.Mul(xf, xf),
        ones,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        output_padding=output_padding,
        strides=strides,
    )
    # crop by pads
    fshape = op.Shape(full)
    spatial_full = op.Slice(fshape, two, big)
    begin, end = op.Split(op.Constant(value_ints=pads), num_outputs=2)
    # (no Range-built axes: onnxruntime's shape inference mis-sizes a Range inside an inlined function)
    start = op.Concat(op.Constant(value_ints=[0, 0]), begin, axis=0)
    stop = op.Concat(op.Slice(fshape, zero, two), op.Sub(spatial_full, end), axis=0)
    dot = op.Slice(full, start, stop)
    energy = op.Slice(efull, start, stop)
    dshape = op.Shape(dot)
    spatial = op.Slice(dshape, two, big)
    ones_r = op.Expand(one, op.Shape(spatial))
    dot_g = op.Reshape(dot, op.Concat(zero, g, op.Constant(value_ints=[-1]), spatial, axis=0))
    e_g = op.Unsqueeze(energy, two)
    k_g = op.Reshape(kk, op.Concat(g, op.Constant(value_ints=[-1]), ones_r, axis=0))
    dist = op.Reshape(op.Sub(op.Add(e_g, k_g), op.Add(dot_g, dot_g)), dshape)
    bf = op.Reshape(op.Cast(B, to=FLOAT.dtype), op.Concat(op.Constant(value_ints=[-1]), ones_r, axis=0))
    y = YatTail(dot, dist, bf, op.Cast(ALPHA, to=FLOAT.dtype), op.Cast(EPS, to=FLOAT.dtype))
    return op.CastLike(y, X)


# ---------------------------------------------------------------------------------------------- legacy body
# The body files carried before the attribute weight_normalized existed (a node of those files has no such attribute
# and means its default, which is exactly what this body computes); nmn.interchange.validate accepts it as
# canonical through :func:`legacy_conv_transpose_versions`.
@script(nmn, default_opset=op)
def YatConvTransposeV1(
    X: T,
    W: T,
    B: T,
    ALPHA: T,
    EPS: T,
    dilations: Sequence[int],
    output_padding: Sequence[int],
    pads: Sequence[int],
    strides: Sequence[int],
    auto_pad: str = "NOTSET",
    group: int = 1,
) -> T:
    xf = op.Cast(X, to=FLOAT.dtype)
    wf = op.Cast(W, to=FLOAT.dtype)
    zero = op.Constant(value_ints=[0])
    one = op.Constant(value_ints=[1])
    two = op.Constant(value_ints=[2])
    big = op.Constant(value_ints=[100])
    wshape = op.Shape(wf)
    g = op.Reshape(op.Constant(value_int=group), one)
    full = op.ConvTranspose(
        xf, wf, auto_pad=auto_pad, dilations=dilations, group=group, output_padding=output_padding, strides=strides
    )
    ones = op.Expand(
        op.Constant(value_float=1.0), op.Concat(op.Slice(wshape, zero, one), one, op.Slice(wshape, two, big), axis=0)
    )
    efull = op.ConvTranspose(
        op.Mul(xf, xf),
        ones,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        output_padding=output_padding,
        strides=strides,
    )
    # crop by pads
    fshape = op.Shape(full)
    spatial_full = op.Slice(fshape, two, big)
    begin, end = op.Split(op.Constant(value_ints=pads), num_outputs=2)
    # (no Range-built axes: onnxruntime's shape inference mis-sizes a Range inside an inlined function)
    start = op.Concat(op.Constant(value_ints=[0, 0]), begin, axis=0)
    stop = op.Concat(op.Slice(fshape, zero, two), op.Sub(spatial_full, end), axis=0)
    dot = op.Slice(full, start, stop)
    energy = op.Slice(efull, start, stop)
    # K_m: (C, M/G, *k) -> sum over taps -> (G, C/G, M/G) -> sum over in-channels of the group -> (G, M/G)
    wtap = op.ReduceSumSquare(op.Reshape(wf, op.Constant(value_ints=[0, 0, -1])), two, keepdims=0)
    kk = op.ReduceSum(
        op.Reshape(wtap, op.Concat(g, op.Constant(value_ints=[-1]), op.Slice(wshape, one, two), axis=0)),
        one,
        keepdims=0,
    )
    dshape = op.Shape(dot)
    spatial = op.Slice(dshape, two, big)
    ones_r = op.Expand(one, op.Shape(spatial))
    dot_g = op.Reshape(dot, op.Concat(zero, g, op.Constant(value_ints=[-1]), spatial, axis=0))
    e_g = op.Unsqueeze(energy, two)
    k_g = op.Reshape(kk, op.Concat(g, op.Constant(value_ints=[-1]), ones_r, axis=0))
    dist = op.Reshape(op.Sub(op.Add(e_g, k_g), op.Add(dot_g, dot_g)), dshape)
    bf = op.Reshape(op.Cast(B, to=FLOAT.dtype), op.Concat(op.Constant(value_ints=[-1]), ones_r, axis=0))
    y = YatTail(dot, dist, bf, op.Cast(ALPHA, to=FLOAT.dtype), op.Cast(EPS, to=FLOAT.dtype))
    return op.CastLike(y, X)


def legacy_conv_transpose_versions():
    """``{"YatConvTranspose": [FunctionProto]}``: the earlier canonical body of ``nmn::YatConvTranspose``, named as in the files."""
    proto = YatConvTransposeV1.to_function_proto()
    proto.name = "YatConvTranspose"
    return {"YatConvTranspose": [proto]}
