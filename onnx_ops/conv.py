"""``nmn::YatConv`` -- the Yat convolution, 1-, 2- and 3-D (docs/design.md §3).

For every output position ``p`` and filter ``m`` with receptive-field patch ``P`` of the padded input::

    Y[n, m, p] = ALPHA * (<P, W_m> + B_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 <P, W_m>) + EPS)

``X (N, C, *S)``, ``W (M, C/group, *k)``, ``B (M)`` or ``(1)``, ``ALPHA (1)``, ``EPS (1)``; output ``(N, M, *S')``.
The rank comes from the inputs (1-D, 2-D and 3-D all run through the same body).

Decisions written down here (the docs leave them open):

* ``pads`` (``[b_1..b_r, e_1..e_r]`` as in ONNX Conv) is applied by an explicit padding step with ``pad_mode``
  (``constant`` = zeros, ``reflect`` = numpy ``reflect`` without the edge sample, ``edge`` = replicate,
  ``wrap`` = circular); the ``Conv`` nodes get no ``pads``. ``auto_pad`` is forwarded to ``Conv`` and applies
  to the already padded tensor; the padding ``auto_pad`` adds is always zeros. Exporters pass ``pads`` all
  zero when they use ``auto_pad`` (onnxruntime refuses a Conv with both).
* ``Pad`` of opset 18 has no ``wrap`` mode and opset 18 cannot compare strings, so ``constant`` uses ``Pad``
  and the other modes ``Gather`` over per-axis index vectors (clip / reflect / modulo); the mode string is
  turned into a one-hot vector with ``TfIdfVectorizer`` and the batch is routed to one path (SpatialPad). Reflect and wrap accept pads larger than
  the axis (periodic continuation, as numpy). An unknown ``pad_mode`` string behaves as ``constant``
  (the nmn validator rejects it before a file is run). At most 3 spatial axes.
* The patch energy is computed as ``Conv(sum_{c in group} Xp_c^2, ones (group, 1, *k), group=group)``: the
  squares are summed over each group's channels first, then one all-ones kernel per group; the map is
  broadcast over that group's ``M/group`` filters. This equals ``Conv(Xp*Xp, ones (M, C/group, *k))``
  (docs/design.md §3.1) at about 1/M of its cost.
* ``weight_normalized=1`` replaces each filter by ``W_m / (|W_m| + 1e-8)`` and uses ``|W_m|^2 = 1``.
* ``input_dilations`` (``jax.lax.conv_general_dilated``'s ``lhs_dilation``, Flax's ``input_dilation``) inserts
  ``d - 1`` zeros between neighbouring input samples of each spatial axis (``n -> (n - 1) d + 1``) *before*
  ``pads`` are applied; the patches are those of the zero-stuffed input (inserted zeros add ``w^2`` to the
  distance). The zeros are inserted by a depthwise ``ConvTranspose`` of X with an all-ones ``(C, 1, 1..)``
  kernel at ``strides = input_dilations``. A node without the attribute (files written before it) means ones.

Arithmetic runs in float32; the result is cast back to X's type.
"""

from collections.abc import Sequence

from onnxscript import BOOL, FLOAT, INT64, script
from onnxscript import opset18 as op

from onnx_ops._common import T, YatTail, nmn

_PAD_MODES = ["constant", "reflect", "edge", "wrap"]


@script(nmn, default_opset=op)
def PadModeCode(pad_mode: str = "constant") -> FLOAT:
    """One-hot float vector ``[constant, reflect, edge, wrap]`` of the ``pad_mode`` string (zeros if unknown)."""
    s = op.Reshape(op.Constant(value_string=pad_mode), op.Constant(value_ints=[1]))
    return op.TfIdfVectorizer(
        s,
        mode="TF",
        min_gram_length=1,
        max_gram_length=1,
        max_skip_count=0,
        pool_strings=["constant", "reflect", "edge", "wrap"],
        ngram_counts=[0],
        ngram_indexes=[0, 1, 2, 3],
    )


@script(nmn, default_opset=op)
def PadAxisStep(CUR: FLOAT, D: INT64, BE: INT64, MODE: FLOAT):
    """One step of :func:`SpatialPad`'s index path: pad the first logical axis of ``CUR`` and rotate it to the end.

    ``CUR`` is ``(NC, prod(D))``, ``D`` the three logical spatial sizes (missing axes are 1), ``BE = [begin,
    end]`` the pads of the first one, ``MODE`` the one-hot of :func:`PadModeCode` (reflect, edge or wrap; edge
    otherwise). Returns the new ``CUR`` and ``D`` (first size moved to the end, padded). Reshapes use explicit
    sizes and ``allowzero=1`` so that an empty ``CUR`` (another mode selected) flows through.
    """
    zero = op.Constant(value_ints=[0])
    one = op.Constant(value_ints=[1])
    three = op.Constant(value_ints=[3])
    d0 = op.Slice(D, zero, one)
    rest = op.Slice(D, one, three)
    b = op.Slice(BE, zero, one)
    e = op.Slice(BE, one, op.Constant(value_ints=[2]))
    q = op.ReduceProd(rest, keepdims=1)
    nc = op.Slice(op.Shape(CUR), zero, one)
    v = op.Reshape(CUR, op.Concat(nc, d0, q, axis=0), allowzero=1)
    start = op.Squeeze(op.Neg(b), zero)
    stop = op.Squeeze(op.Add(d0, e), zero)
    idx = op.Range(start, stop, op.Constant(value_int=1))
    last = op.Sub(d0, one)
    idx_edge = op.Min(op.Max(idx, zero), last)
    idx_wrap = op.Mod(idx, d0)
    period = op.Max(op.Add(last, last), one)
    idx_refl = op.Sub(last, op.Abs(op.Sub(op.Mod(idx, period), last)))
    is_reflect = op.Greater(op.Gather(MODE, op.Constant(value_int=1)), op.Constant(value_float=0.5))
    is_wrap = op.Greater(op.Gather(MODE, op.Constant(value_int=3)), op.Constant(value_float=0.5))
    src = op.Where(is_wrap, idx_wrap, op.Where(is_reflect, idx_refl, idx_edge))
    g = op.Gather(v, src, axis=1)
    new_d0 = op.Add(op.Add(d0, b), e)
    new_cur = op.Reshape(op.Transpose(g, perm=[0, 2, 1]), op.Concat(nc, op.Mul(q, new_d0), axis=0), allowzero=1)
    new_d = op.Concat(rest, new_d0, axis=0)
    return new_cur, new_d


@script(nmn, default_opset=op)
def SpatialPad(X: FLOAT, pads: Sequence[int], pad_mode: str = "constant") -> FLOAT:
    """Pad the spatial axes of ``X (N, C, *S)`` (r <= 3) by ``pads = [b_1..b_r, e_1..e_r]`` with ``pad_mode``.

    ``constant`` (zeros) is a ``Pad`` node; ``reflect``/``edge``/``wrap`` gather along each axis with index
    vectors, one axis at a time (``PadAxisStep``). Both paths are in the graph, but the batch is routed whole to
    one of them (the other sees an empty slice), so only the selected path does any work.
    """
    shape = op.Shape(X)
    zero = op.Constant(value_ints=[0])
    one = op.Constant(value_ints=[1])
    two = op.Constant(value_ints=[2])
    three = op.Constant(value_ints=[3])
    big = op.Constant(value_ints=[2147483647])
    p = op.Constant(value_ints=pads)
    begin, end = op.Split(p, num_outputs=2)
    mode = PadModeCode(pad_mode=pad_mode)
    by_index = op.Cast(
        op.Greater(
            op.ReduceSum(op.Slice(mode, one, op.Constant(value_ints=[4])), keepdims=1), op.Constant(value_float=0.5)
        ),
        to=INT64.dtype,
    )
    n_index = op.Mul(op.Slice(shape, zero, one), by_index)
    x_index = op.Slice(X, zero, n_index, zero)
    x_const = op.Slice(X, n_index, big, zero)
    # constant mode: one Pad node
    zeros2 = op.Constant(value_ints=[0, 0])
    padded_const = op.Pad(x_const, op.Concat(zeros2, begin, zeros2, end, axis=0), mode="constant")
    # reflect / edge / wrap: per-axis index vectors
    ishape = op.Shape(x_index)
    nc = op.Slice(ishape, zero, two)
    sp = op.Slice(ishape, two, big)
    r = op.Shape(sp)
    ones3 = op.Constant(value_ints=[1, 1, 1])
    zeros3 = op.Constant(value_ints=[0, 0, 0])
    d = op.Slice(op.Concat(sp, ones3, axis=0), zero, three)
    b3 = op.Slice(op.Concat(begin, zeros3, axis=0), zero, three)
    e3 = op.Slice(op.Concat(end, zeros3, axis=0), zero, three)
    cur = op.Reshape(
        x_index, op.Concat(op.ReduceProd(nc, keepdims=1), op.ReduceProd(sp, keepdims=1), axis=0), allowzero=1
    )
    cur, d = PadAxisStep(cur, d, op.Concat(op.Slice(b3, zero, one), op.Slice(e3, zero, one), axis=0), mode)
    cur, d = PadAxisStep(cur, d, op.Concat(op.Slice(b3, one, two), op.Slice(e3, one, two), axis=0), mode)
    cur, d = PadAxisStep(cur, d, op.Concat(op.Slice(b3, two, three), op.Slice(e3, two, three), axis=0), mode)
    padded_index = op.Reshape(cur, op.Concat(nc, op.Slice(d, zero, r), axis=0), allowzero=1)
    return op.Concat(padded_index, padded_const, axis=0)


@script(nmn, default_opset=op)
def YatConv(
    X: T,
    W: T,
    B: T,
    ALPHA: T,
    EPS: T,
    dilations: Sequence[int],
    pads: Sequence[int],
    strides: Sequence[int],
    auto_pad: str = "NOTSET",
    group: int = 1,
    pad_mode: str = "constant",
    weight_normalized: int = 0,
    input_dilations: Sequence[int] = None,
) -> T:
    xf = op.Cast(X, to=FLOAT.dtype)
    wf = op.Cast(W, to=FLOAT.dtype)
    zero = op.Constant(value_ints=[0])
    one = op.Constant(value_ints=[1])
    two = op.Constant(value_ints=[2])
    big = op.Constant(value_ints=[100])
    wshape = op.Shape(wf)
    # per-filter squared norm (M, 1, 1.., 1); optional weight normalisation
    ones_w = op.Expand(one, op.Shape(op.Slice(wshape, one, big)))
    wss = op.Reshape(
        op.ReduceSumSquare(op.Reshape(wf, op.Constant(value_ints=[0, -1])), one, keepdims=1),
        op.Concat(op.Slice(wshape, zero, one), ones_w, axis=0),
    )
    wn = op.Cast(op.Constant(value_int=weight_normalized), to=BOOL.dtype)
    w_unit = op.Div(wf, op.Add(op.Sqrt(wss), op.Constant(value_float=1e-8)))
    wf = op.Where(wn, w_unit, wf)
    kk = op.Where(wn, op.Constant(value_float=1.0), wss)
    # input dilation (zero insertion): (N*C, 1, *S) through a ConvTranspose with a (1, 1, 1..) ones kernel
    xshape0 = op.Shape(xf)
    sp0 = op.Slice(xshape0, two, big)
    flat = op.Reshape(xf, op.Concat(op.Constant(value_ints=[-1]), one, sp0, axis=0))
    stuff = op.Expand(op.Constant(value_float=1.0), op.Concat(one, one, op.Expand(one, op.Shape(sp0)), axis=0))
    stuffed = op.ConvTranspose(flat, stuff, strides=input_dilations)
    xd = op.Reshape(stuffed, op.Concat(op.Slice(xshape0, zero, two), op.Slice(op.Shape(stuffed), two, big), axis=0))
    # explicit padding, then the two convolutions with no pads
    xp = SpatialPad(xd, pads=pads, pad_mode=pad_mode)
    dot = op.Conv(xp, wf, auto_pad=auto_pad, dilations=dilations, group=group, strides=strides)
    # patch energy: sum x^2 over each group's channels first, then one all-ones (1, *k) kernel per group
    g = op.Reshape(op.Constant(value_int=group), one)
    xshape = op.Shape(xp)
    sq = op.Mul(xp, xp)
    sq_g = op.ReduceSum(
        op.Reshape(sq, op.Concat(zero, g, op.Constant(value_ints=[-1]), op.Slice(xshape, two, big), axis=0)),
        two,
        keepdims=0,
    )
    ones = op.Expand(op.Constant(value_float=1.0), op.Concat(g, one, op.Slice(wshape, two, big), axis=0))
    energy = op.Conv(sq_g, ones, auto_pad=auto_pad, dilations=dilations, group=group, strides=strides)
    # grouped view (N, G, M/G, *S'): each group's energy map broadcasts over its filters
    dshape = op.Shape(dot)
    spatial = op.Slice(dshape, two, big)
    grouped = op.Concat(zero, g, op.Constant(value_ints=[-1]), spatial, axis=0)
    dot_g = op.Reshape(dot, grouped)
    e_g = op.Unsqueeze(energy, two)
    ones_r = op.Slice(op.Shape(kk), two, big)
    k_g = op.Reshape(kk, op.Concat(g, op.Constant(value_ints=[-1]), ones_r, axis=0))
    dist = op.Reshape(op.Sub(op.Add(e_g, k_g), op.Add(dot_g, dot_g)), dshape)
    bshape = op.Concat(op.Constant(value_ints=[-1]), ones_r, axis=0)
    bf = op.Reshape(op.Cast(B, to=FLOAT.dtype), bshape)
    y = YatTail(dot, dist, bf, op.Cast(ALPHA, to=FLOAT.dtype), op.Cast(EPS, to=FLOAT.dtype))
    return op.CastLike(y, X)


# ---------------------------------------------------------------------------------------------- legacy body
# The body files carried before the attribute input_dilations existed (a node of those files has no such attribute
# and means its default, which is exactly what this body computes); nmn.interchange.validate accepts it as
# canonical through :func:`legacy_conv_versions`.
@script(nmn, default_opset=op)
def YatConvV1(
    X: T,
    W: T,
    B: T,
    ALPHA: T,
    EPS: T,
    dilations: Sequence[int],
    pads: Sequence[int],
    strides: Sequence[int],
    auto_pad: str = "NOTSET",
    group: int = 1,
    pad_mode: str = "constant",
    weight_normalized: int = 0,
) -> T:
    xf = op.Cast(X, to=FLOAT.dtype)
    wf = op.Cast(W, to=FLOAT.dtype)
    zero = op.Constant(value_ints=[0])
    one = op.Constant(value_ints=[1])
    two = op.Constant(value_ints=[2])
    big = op.Constant(value_ints=[100])
    wshape = op.Shape(wf)
    # per-filter squared norm (M, 1, 1.., 1); optional weight normalisation
    ones_w = op.Expand(one, op.Shape(op.Slice(wshape, one, big)))
    wss = op.Reshape(
        op.ReduceSumSquare(op.Reshape(wf, op.Constant(value_ints=[0, -1])), one, keepdims=1),
        op.Concat(op.Slice(wshape, zero, one), ones_w, axis=0),
    )
    wn = op.Cast(op.Constant(value_int=weight_normalized), to=BOOL.dtype)
    w_unit = op.Div(wf, op.Add(op.Sqrt(wss), op.Constant(value_float=1e-8)))
    wf = op.Where(wn, w_unit, wf)
    kk = op.Where(wn, op.Constant(value_float=1.0), wss)
    # explicit padding, then the two convolutions with no pads
    xp = SpatialPad(xf, pads=pads, pad_mode=pad_mode)
    dot = op.Conv(xp, wf, auto_pad=auto_pad, dilations=dilations, group=group, strides=strides)
    # patch energy: sum x^2 over each group's channels first, then one all-ones (1, *k) kernel per group
    g = op.Reshape(op.Constant(value_int=group), one)
    xshape = op.Shape(xp)
    sq = op.Mul(xp, xp)
    sq_g = op.ReduceSum(
        op.Reshape(sq, op.Concat(zero, g, op.Constant(value_ints=[-1]), op.Slice(xshape, two, big), axis=0)),
        two,
        keepdims=0,
    )
    ones = op.Expand(op.Constant(value_float=1.0), op.Concat(g, one, op.Slice(wshape, two, big), axis=0))
    energy = op.Conv(sq_g, ones, auto_pad=auto_pad, dilations=dilations, group=group, strides=strides)
    # grouped view (N, G, M/G, *S'): each group's energy map broadcasts over its filters
    dshape = op.Shape(dot)
    spatial = op.Slice(dshape, two, big)
    grouped = op.Concat(zero, g, op.Constant(value_ints=[-1]), spatial, axis=0)
    dot_g = op.Reshape(dot, grouped)
    e_g = op.Unsqueeze(energy, two)
    ones_r = op.Slice(op.Shape(kk), two, big)
    k_g = op.Reshape(kk, op.Concat(g, op.Constant(value_ints=[-1]), ones_r, axis=0))
    dist = op.Reshape(op.Sub(op.Add(e_g, k_g), op.Add(dot_g, dot_g)), dshape)
    bshape = op.Concat(op.Constant(value_ints=[-1]), ones_r, axis=0)
    bf = op.Reshape(op.Cast(B, to=FLOAT.dtype), bshape)
    y = YatTail(dot, dist, bf, op.Cast(ALPHA, to=FLOAT.dtype), op.Cast(EPS, to=FLOAT.dtype))
    return op.CastLike(y, X)


def legacy_conv_versions():
    """``{"YatConv": [FunctionProto]}``: the earlier canonical body of ``nmn::YatConv``, named as in the files."""
    proto = YatConvV1.to_function_proto()
    proto.name = "YatConv"
    return {"YatConv": [proto]}
