"""Yat attention functions (docs/design.md §5, §6 and §7).

* ``YatAttention`` -- quadratic Yat attention on ``(B, L, H, D)`` heads.
* ``YatMultiHeadAttention`` / ``RotaryYatMultiHeadAttention`` -- four affine projections around it
  (``W`` in ``(out, in)`` layout, ``X @ W^T + b``), the rotary one rotating q and k first.
* ``RotaryEmbedding`` -- RoPE at positions ``0..L-1`` from tables ``COS``/``SIN`` ``(T, D/2)``.
* ``YatPerformerFeatures``, ``YatLinearAttention``, ``YatPerformerMultiHeadAttention`` -- the linear-time
  spherical Yat-Performer (Funk-Hecke random features of the degree-K Maclaurin truncation of the bias-aware
  spherical Yat kernel ``(t + b)^2 / (2 + eps - 2t)``, with the readout of docs/design.md §7.5).

Arithmetic runs in float32; results are cast back to the first input's type. String attributes are turned into
one-hot codes with ``TfIdfVectorizer`` because opset 18 cannot compare strings; an unknown ``normalization``
behaves as ``softmax`` (the nmn validator rejects unknown values before a file is run).
"""

from onnxscript import BOOL, DOUBLE, FLOAT, script
from onnxscript import opset18 as op

from onnx_ops._common import T, nmn

# the most negative finite float32: masked softmax logits (a fully masked row becomes uniform, never NaN)
_MASK_FILL = -3.4028234663852886e38


@script(nmn, default_opset=op)
def NormalizationCode(normalization: str = "softmax") -> FLOAT:
    """One-hot float vector ``[softmax, l1, softermax]`` of the ``normalization`` string (zeros if unknown)."""
    s = op.Reshape(op.Constant(value_string=normalization), op.Constant(value_ints=[1]))
    return op.TfIdfVectorizer(
        s,
        mode="TF",
        min_gram_length=1,
        max_gram_length=1,
        max_skip_count=0,
        pool_strings=["softmax", "l1", "softermax"],
        ngram_counts=[0],
        ngram_indexes=[0, 1, 2],
    )


@script(nmn, default_opset=op)
def YatAttention(
    Q: T,
    K: T,
    V: T,
    MASK: BOOL,
    ALPHA: T,
    EPS: T,
    spherical: int = 0,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: int = 0,
) -> T:
    """Yat attention. Q (B, Lq, H, D), K (B, Lk, H, D), V (B, Lk, H, Dv), MASK bool broadcastable to (B, H, Lq, Lk).

    ``score = ALPHA * (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + EPS) * sqrt(D))``; ``spherical=1`` first maps
    q, k to ``v / sqrt(|v|^2 + EPS)`` and uses the distance ``relu(2 - 2 q.k)``. Then, over the keys:
    ``softmax`` (masked logits = most negative finite float32), ``l1`` (``z / (sum z + EPS)``, masked z = 0) or
    ``softermax`` (``z^power / (sum z^power + 1e-12)``, masked = 0). ``O = A V`` with shape (B, Lq, H, Dv).

    Decisions: ``causal=1`` ANDs the mask with ``key j <= query i + (Lk - Lq)`` (bottom-right aligned, so a
    query chunk at the end of a longer key sequence -- a KV-cache decode step -- sees exactly its past; equal to
    the usual lower triangle when Lq == Lk). A row with no attended key gets uniform weights ``1/Lk`` in
    every normalisation (docs/design.md §D5), never NaN.
    """
    qf = op.Transpose(op.Cast(Q, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    kf = op.Transpose(op.Cast(K, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    vf = op.Transpose(op.Cast(V, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    eps = op.Cast(EPS, to=FLOAT.dtype)
    alpha = op.Cast(ALPHA, to=FLOAT.dtype)
    last = op.Constant(value_ints=[-1])
    one = op.Constant(value_float=1.0)
    two = op.Constant(value_float=2.0)
    qq = op.ReduceSumSquare(qf, last, keepdims=1)
    kk = op.ReduceSumSquare(kf, last, keepdims=1)
    sph = op.Cast(op.Constant(value_int=spherical), to=BOOL.dtype)
    qf = op.Where(sph, op.Div(qf, op.Sqrt(op.Add(qq, eps))), qf)
    kf = op.Where(sph, op.Div(kf, op.Sqrt(op.Add(kk, eps))), kf)
    dot = op.MatMul(qf, op.Transpose(kf, perm=[0, 1, 3, 2]))
    dist_e = op.Sub(op.Add(qq, op.Transpose(kk, perm=[0, 1, 3, 2])), op.Mul(two, dot))
    dist_s = op.Sub(two, op.Mul(two, dot))
    dist = op.Where(sph, dist_s, dist_e)
    qshape = op.Shape(Q)
    sqrt_d = op.Sqrt(
        op.Cast(op.Slice(qshape, op.Constant(value_ints=[3]), op.Constant(value_ints=[4])), to=FLOAT.dtype)
    )
    score = op.Mul(op.Div(op.Mul(dot, dot), op.Mul(op.Add(op.Relu(dist), eps), sqrt_d)), alpha)
    # mask: user mask AND (optional) causal mask
    lq = op.Squeeze(
        op.Slice(qshape, op.Constant(value_ints=[1]), op.Constant(value_ints=[2])), op.Constant(value_ints=[0])
    )
    lk = op.Squeeze(
        op.Slice(op.Shape(K), op.Constant(value_ints=[1]), op.Constant(value_ints=[2])), op.Constant(value_ints=[0])
    )
    step = op.Constant(value_int=1)
    start = op.Constant(value_int=0)
    qi = op.Unsqueeze(op.Range(start, lq, step), op.Constant(value_ints=[1]))
    kj = op.Unsqueeze(op.Range(start, lk, step), op.Constant(value_ints=[0]))
    tri = op.LessOrEqual(kj, op.Add(qi, op.Sub(lk, lq)))
    is_causal = op.Cast(op.Constant(value_int=causal), to=BOOL.dtype)
    allowed = op.And(op.Cast(MASK, to=BOOL.dtype), op.Or(tri, op.Not(is_causal)))
    allowed = op.Expand(allowed, op.Shape(score))
    code = NormalizationCode(normalization=normalization)
    half = op.Constant(value_float=0.5)
    is_l1 = op.Greater(op.Gather(code, op.Constant(value_int=1)), half)
    is_soft = op.Greater(op.Gather(code, op.Constant(value_int=2)), half)
    zero = op.Constant(value_float=0.0)
    z_sm = op.Where(allowed, score, op.Constant(value_float=_MASK_FILL))
    w_sm = op.Softmax(z_sm, axis=-1)
    z_l1 = op.Where(allowed, score, zero)
    w_l1 = op.Div(z_l1, op.Add(op.ReduceSum(z_l1, last, keepdims=1), eps))
    z_sf = op.Where(allowed, op.Pow(score, op.Constant(value_float=power)), zero)
    w_sf = op.Div(z_sf, op.Add(op.ReduceSum(z_sf, last, keepdims=1), op.Constant(value_float=1e-12)))
    w = op.Where(is_l1, w_l1, op.Where(is_soft, w_sf, w_sm))
    any_key = op.Greater(op.ReduceMax(op.Cast(allowed, to=FLOAT.dtype), last, keepdims=1), half)
    uniform = op.Div(one, op.Cast(lk, to=FLOAT.dtype))
    w = op.Where(any_key, w, uniform)
    out = op.Transpose(op.MatMul(w, vf), perm=[0, 2, 1, 3])
    return op.CastLike(out, Q)


@script(nmn, default_opset=op)
def RotaryEmbedding(X: T, COS: T, SIN: T, interleaved: int = 1) -> T:
    """Rotate X (B, L, H, D) at positions 0..L-1 with tables COS, SIN (T, D/2), T >= L.

    ``interleaved=1`` rotates pairs ``(x[2i], x[2i+1])``: ``x'[2i] = x[2i] c_i - x[2i+1] s_i``,
    ``x'[2i+1] = x[2i] s_i + x[2i+1] c_i``; ``interleaved=0`` rotates half-split pairs ``(x[i], x[i + D/2])``
    the same way. Rows ``0..L-1`` of the tables are used.
    """
    xf = op.Cast(X, to=FLOAT.dtype)
    shape = op.Shape(xf)
    zero = op.Constant(value_ints=[0])
    l = op.Slice(shape, op.Constant(value_ints=[1]), op.Constant(value_ints=[2]))
    tshape = op.Concat(op.Constant(value_ints=[1]), l, op.Constant(value_ints=[1, -1]), axis=0)
    c = op.Reshape(op.Slice(op.Cast(COS, to=FLOAT.dtype), zero, l, zero), tshape)
    s = op.Reshape(op.Slice(op.Cast(SIN, to=FLOAT.dtype), zero, l, zero), tshape)
    # interleaved pairs
    xi = op.Reshape(
        xf, op.Concat(op.Slice(shape, zero, op.Constant(value_ints=[3])), op.Constant(value_ints=[-1, 2]), axis=0)
    )
    four = op.Constant(value_ints=[4])
    x0 = op.Squeeze(op.Slice(xi, zero, op.Constant(value_ints=[1]), four), four)
    x1 = op.Squeeze(op.Slice(xi, op.Constant(value_ints=[1]), op.Constant(value_ints=[2]), four), four)
    o0 = op.Sub(op.Mul(x0, c), op.Mul(x1, s))
    o1 = op.Add(op.Mul(x0, s), op.Mul(x1, c))
    y_int = op.Reshape(op.Concat(op.Unsqueeze(o0, four), op.Unsqueeze(o1, four), axis=4), shape)
    # half-split pairs
    three = op.Constant(value_ints=[3])
    h = op.Slice(op.Shape(c), three, four)
    a = op.Slice(xf, zero, h, three)
    b = op.Slice(xf, h, op.Add(h, h), three)
    y_half = op.Concat(op.Sub(op.Mul(a, c), op.Mul(b, s)), op.Add(op.Mul(b, c), op.Mul(a, s)), axis=3)
    y = op.Where(op.Cast(op.Constant(value_int=interleaved), to=BOOL.dtype), y_int, y_half)
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def AffineProjection(X: FLOAT, W: FLOAT, B: FLOAT) -> FLOAT:
    """``X @ W^T + B`` with W in (out, in) layout."""
    return op.Add(op.MatMul(X, op.Transpose(W, perm=[1, 0])), B)


@script(nmn, default_opset=op)
def SplitHeads(X: FLOAT, num_heads: int = 1) -> FLOAT:
    """(B, L, E) -> (B, L, num_heads, E / num_heads)."""
    h = op.Reshape(op.Constant(value_int=num_heads), op.Constant(value_ints=[1]))
    return op.Reshape(X, op.Concat(op.Constant(value_ints=[0, 0]), h, op.Constant(value_ints=[-1]), axis=0))


@script(nmn, default_opset=op)
def YatMultiHeadAttention(
    XQ: T,
    XK: T,
    XV: T,
    MASK: BOOL,
    WQ: T,
    BQ: T,
    WK: T,
    BK: T,
    WV: T,
    BV: T,
    WO: T,
    BO: T,
    ALPHA: T,
    EPS: T,
    num_heads: int = 1,
    spherical: int = 0,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: int = 0,
) -> T:
    """Multi-head Yat attention: ``YatAttention`` between affine q/k/v projections and the output projection.

    XQ (B, Lq, E), XK/XV (B, Lk, E); ``q = XQ @ WQ^T + BQ`` (W in (out, in) layout) split into ``num_heads``
    heads of size ``E' / num_heads``; the heads are merged back to (B, Lq, H*Dv) and ``@ WO^T + BO``.
    """
    qh = SplitHeads(
        AffineProjection(op.Cast(XQ, to=FLOAT.dtype), op.Cast(WQ, to=FLOAT.dtype), op.Cast(BQ, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    kh = SplitHeads(
        AffineProjection(op.Cast(XK, to=FLOAT.dtype), op.Cast(WK, to=FLOAT.dtype), op.Cast(BK, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    vh = SplitHeads(
        AffineProjection(op.Cast(XV, to=FLOAT.dtype), op.Cast(WV, to=FLOAT.dtype), op.Cast(BV, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    o = YatAttention(
        qh,
        kh,
        vh,
        MASK,
        op.Cast(ALPHA, to=FLOAT.dtype),
        op.Cast(EPS, to=FLOAT.dtype),
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
    )
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)


@script(nmn, default_opset=op)
def RotaryYatMultiHeadAttention(
    XQ: T,
    XK: T,
    XV: T,
    MASK: BOOL,
    WQ: T,
    BQ: T,
    WK: T,
    BK: T,
    WV: T,
    BV: T,
    WO: T,
    BO: T,
    ALPHA: T,
    EPS: T,
    COS: T,
    SIN: T,
    num_heads: int = 1,
    spherical: int = 0,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: int = 0,
    interleaved: int = 1,
) -> T:
    """``YatMultiHeadAttention`` with RoPE applied to the projected q and k heads (not v).

    Queries are rotated at positions 0..Lq-1 and keys at 0..Lk-1 (``RotaryEmbedding``); a decoder with a KV
    cache rotates its tokens at their absolute positions before the call instead (docs/design.md §6).
    """
    cf = op.Cast(COS, to=FLOAT.dtype)
    sf = op.Cast(SIN, to=FLOAT.dtype)
    qh = SplitHeads(
        AffineProjection(op.Cast(XQ, to=FLOAT.dtype), op.Cast(WQ, to=FLOAT.dtype), op.Cast(BQ, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    kh = SplitHeads(
        AffineProjection(op.Cast(XK, to=FLOAT.dtype), op.Cast(WK, to=FLOAT.dtype), op.Cast(BK, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    vh = SplitHeads(
        AffineProjection(op.Cast(XV, to=FLOAT.dtype), op.Cast(WV, to=FLOAT.dtype), op.Cast(BV, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    qh = RotaryEmbedding(qh, cf, sf, interleaved=interleaved)
    kh = RotaryEmbedding(kh, cf, sf, interleaved=interleaved)
    o = YatAttention(
        qh,
        kh,
        vh,
        MASK,
        op.Cast(ALPHA, to=FLOAT.dtype),
        op.Cast(EPS, to=FLOAT.dtype),
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
    )
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)


@script(nmn, default_opset=op)
def PerformerFeatureMap(X: FLOAT, PROJ: FLOAT, EPS: FLOAT, degree: int = 3, bias: float = 0.0) -> FLOAT:
    """Spherical Yat random features ``[c_0, c_1 x_hat, sum_(n=2..K) c_n P_n(u)]`` of X (..., D): (..., 1 + D + m).

    ``x_hat = x / sqrt(|x|^2 + EPS)``, ``u = x_hat . w_hat`` (unit rows of PROJ (m, D)), ``P_0 = 1``,
    ``P_1 = u``, ``P_(n+1) = ((2n + D - 2) u P_n - n P_(n-1)) / max(n + D - 2, 1)`` (the Gegenbauer polynomials
    of the D-sphere, ``P_n(1) = 1``) and weights ``c_0 .. c_K`` (``K = degree``, ``b = bias``):
    ``a_n = beta_(n-2) + 2 b beta_(n-1) + b^2 beta_n`` (``beta_n = (2/C)^n / C``, ``C = 2 + EPS``, ``b = bias``):
    the Maclaurin coefficients of ``(t + b)^2 / (C - 2t)`` up to degree K; ``b_k``: the Gegenbauer coefficients
    of ``sum_n a_n t^n`` on the D-sphere (``P_k(1) = 1``), by Horner's rule with the matrix of ``t P_k =
    alpha_k P_(k+1) + gamma_k P_(k-1)``, ``alpha_0 = 1``, ``alpha_k = (k + D - 2)/(2k + D - 2)``,
    ``gamma_k = k/(2k + D - 2)``; ``N_n`` the harmonic dimensions (``N_0 = 1``, ``N_1 = D``,
    ``N_n / N_(n-1) = (2n + D - 2)(n + D - 3) / (n (2n + D - 4))``). ``c_0 = sqrt(b_0)``, ``c_1 = sqrt(b_1)``,
    ``c_n = sqrt(b_n N_n / (m + N_n))`` for n >= 2 (nmn.core.yat.performer_coefficients).

    ``E[phi(q) . phi(k)]`` is the degree-K Maclaurin truncation of the bias-aware spherical Yat score
    ``(t + b)^2 / (C - 2t)`` (``C = 2 + EPS``) in the Gegenbauer basis, the random degrees n >= 2 shrunk by
    ``m/(m+N_n)`` (nmn.core.yat.performer_features). ``degree=3, bias=0`` (the defaults) is the map of the
    files written before these attributes: ``t^2/C + 2 t^3/C^2``.
    """
    last = op.Constant(value_ints=[-1])
    one = op.Constant(value_float=1.0)
    two = op.Constant(value_float=2.0)
    xh = op.Div(X, op.Sqrt(op.Add(op.ReduceSumSquare(X, last, keepdims=1), EPS)))
    pn = op.Div(PROJ, op.Add(op.Sqrt(op.ReduceSumSquare(PROJ, last, keepdims=1)), op.Constant(value_float=1e-8)))
    d = op.Cast(op.Slice(op.Shape(X), last, op.Constant(value_ints=[100])), to=FLOAT.dtype)
    m = op.Cast(op.Slice(op.Shape(PROJ), op.Constant(value_ints=[0]), op.Constant(value_ints=[1])), to=FLOAT.dtype)
    # the weights c_0 .. c_K (nmn.core.yat.performer_coefficients), in float64 as the layers compute them
    one_d = op.Cast(op.Constant(value_float=1.0), to=DOUBLE.dtype)
    two_d = op.Cast(op.Constant(value_float=2.0), to=DOUBLE.dtype)
    dd = op.Cast(d, to=DOUBLE.dtype)
    md = op.Cast(m, to=DOUBLE.dtype)
    zero = op.Cast(op.Constant(value_float=0.0), to=DOUBLE.dtype)
    k1 = op.Add(op.Constant(value_int=degree), op.Constant(value_int=1))
    n = op.Cast(op.Range(op.Constant(value_int=0), k1, op.Constant(value_int=1)), to=DOUBLE.dtype)
    c = op.Add(two_d, op.Cast(EPS, to=DOUBLE.dtype))
    r = op.Div(two_d, c)
    b = op.Cast(op.Constant(value_float=bias), to=DOUBLE.dtype)
    beta0 = op.Div(op.Pow(r, n), c)
    beta1 = op.Mul(
        op.Div(op.Pow(r, op.Max(op.Sub(n, one_d), zero)), c), op.Cast(op.GreaterOrEqual(n, one_d), to=DOUBLE.dtype)
    )
    beta2 = op.Mul(
        op.Div(op.Pow(r, op.Max(op.Sub(n, two_d), zero)), c), op.Cast(op.GreaterOrEqual(n, two_d), to=DOUBLE.dtype)
    )
    a = op.Add(op.Add(op.Mul(op.Mul(b, b), beta0), op.Mul(op.Mul(two_d, b), beta1)), beta2)
    is0 = op.Equal(n, zero)
    den = op.Add(op.Mul(two_d, n), op.Sub(dd, two_d))
    alpha = op.Where(is0, one_d, op.Div(op.Add(n, op.Sub(dd, two_d)), den))
    gamma = op.Where(is0, zero, op.Div(n, den))
    col = op.Unsqueeze(n, op.Constant(value_ints=[1]))  # row index i, as a column
    tmat = op.Add(
        op.Mul(op.Cast(op.Equal(col, op.Add(n, one_d)), to=DOUBLE.dtype), alpha),
        op.Mul(op.Cast(op.Equal(col, op.Sub(n, one_d)), to=DOUBLE.dtype), gamma),
    )
    e0 = op.Cast(is0, to=DOUBLE.dtype)
    vec = op.Mul(n, zero)
    top = op.Sub(k1, op.Constant(value_int=1))
    # explicit while loops (a counted ``for`` leaves Loop's condition input empty, which
    # onnx.reference.ReferenceEvaluator reads as false)
    step = op.Constant(value_int=0)
    more = op.Less(step, k1)
    while more:
        vec = op.Add(op.MatMul(tmat, vec), op.Mul(op.Gather(a, op.Sub(top, step)), e0))
        step = op.Add(step, op.Constant(value_int=1))
        more = op.Less(step, k1)
    ratio = op.Where(
        is0,
        one_d,
        op.Where(
            op.Equal(n, one_d),
            op.Mul(one_d, dd),
            op.Div(
                op.Mul(den, op.Add(n, op.Sub(dd, op.Cast(op.Constant(value_float=3.0), to=DOUBLE.dtype)))),
                op.Mul(n, op.Sub(den, two_d)),
            ),
        ),
    )
    dims = op.ReduceProd(
        op.Where(op.LessOrEqual(n, col), ratio, op.Add(op.Mul(ratio, zero), one_d)),
        op.Constant(value_ints=[1]),
        keepdims=0,
    )
    shrunk = op.Div(op.Mul(vec, dims), op.Add(md, dims))
    coef = op.Cast(op.Sqrt(op.Where(op.GreaterOrEqual(n, two_d), shrunk, vec)), to=FLOAT.dtype)
    u = op.MatMul(xh, op.Transpose(pn, perm=[1, 0]))
    prev = op.Add(op.Mul(u, op.Constant(value_float=0.0)), one)
    cur = op.Identity(u)
    rand = op.Mul(u, op.Constant(value_float=0.0))
    trips = op.Sub(op.Constant(value_int=degree), op.Constant(value_int=1))
    i = op.Constant(value_int=0)
    more_p = op.Less(i, trips)
    while more_p:
        nf = op.Add(op.Cast(i, to=FLOAT.dtype), one)
        lead = op.Add(op.Mul(two, nf), op.Sub(d, two))
        scale = op.Max(op.Add(nf, op.Sub(d, two)), one)
        nxt = op.Div(op.Sub(op.Mul(op.Mul(lead, u), cur), op.Mul(nf, prev)), scale)
        rand = op.Add(rand, op.Mul(nxt, op.Gather(coef, op.Add(i, op.Constant(value_int=2)))))
        prev = op.Identity(cur)
        cur = op.Identity(nxt)
        i = op.Add(i, op.Constant(value_int=1))
        more_p = op.Less(i, trips)
    c0 = op.Gather(coef, op.Constant(value_ints=[0]))
    c1 = op.Gather(coef, op.Constant(value_ints=[1]))
    const = op.Mul(
        op.Expand(one, op.Shape(op.Slice(X, op.Constant(value_ints=[0]), op.Constant(value_ints=[1]), last))), c0
    )
    return op.Concat(const, op.Mul(xh, c1), rand, axis=-1)


@script(nmn, default_opset=op)
def YatPerformerFeatures(X: T, PROJ: T, epsilon: float = 1e-5, degree: int = 3, bias: float = 0.0) -> T:
    """Spherical Yat-Performer features of X (..., D) with PROJ (m, D); output (..., 1 + D + m).

    The feature map of ``PerformerFeatureMap`` (its EPS = ``epsilon``, its ``degree`` K and ``bias`` b):
    ``E[phi(q) . phi(k)]`` estimates the degree-K Maclaurin truncation of ``(t + b)^2 / (C - 2t)``
    (``C = 2 + epsilon``, ``t = q_hat . k_hat``), the bias-aware spherical Yat score. Decision:
    ``x_hat = x / sqrt(|x|^2 + epsilon)`` (the guarded unit vector of the spherical attention, docs/design.md
    §5.1; it is ``x / |x|`` up to epsilon and finite at x = 0).
    """
    eps = op.Reshape(op.Constant(value_float=epsilon), op.Constant(value_ints=[1]))
    y = PerformerFeatureMap(op.Cast(X, to=FLOAT.dtype), op.Cast(PROJ, to=FLOAT.dtype), eps, degree=degree, bias=bias)
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def YatLinearAttention(QF: T, KF: T, V: T, causal: int = 0, epsilon: float = 1e-6) -> T:
    """Linear readout of features QF (B, Lq, H, m), KF (B, Lk, H, m) and values V (B, Lk, H, Dv).

    Non-causal: ``O_i = QF_i (sum_j KF_j V_j^T) / den_i``, ``den_i = QF_i . sum_j KF_j``.
    Causal (needs Lq == Lk): the sums run over ``j <= i`` (inclusive prefix sums, ``CumSum``).
    ``den`` is shifted away from 0 keeping its sign: ``den + sign(den) epsilon + [den == 0] epsilon`` (files
    written before the ``epsilon`` attribute mean its default, 1e-6).

    Implementation: the first ``Lq * causal`` queries take the causal path and the rest the non-causal one, so
    only the selected path does any work (the causal path holds (B, H, L, m, Dv) prefix sums).
    """
    q = op.Transpose(op.Cast(QF, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    k = op.Transpose(op.Cast(KF, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    v = op.Transpose(op.Cast(V, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    two = op.Constant(value_ints=[2])
    zero = op.Constant(value_ints=[0])
    big = op.Constant(value_ints=[2147483647])
    last = op.Constant(value_ints=[-1])
    lq = op.Slice(op.Shape(q), two, op.Constant(value_ints=[3]))
    lc = op.Mul(lq, op.Reshape(op.Constant(value_int=causal), op.Constant(value_ints=[1])))
    # causal part: queries [0, lc) (all of them, or none)
    qc = op.Slice(q, zero, lc, two)
    kc = op.Slice(k, zero, lc, two)
    vc = op.Slice(v, zero, lc, two)
    axis = op.Constant(value_int=2)
    kv_c = op.CumSum(
        op.Mul(op.Unsqueeze(kc, op.Constant(value_ints=[4])), op.Unsqueeze(vc, op.Constant(value_ints=[3]))), axis
    )
    num_c = op.Squeeze(op.MatMul(op.Unsqueeze(qc, op.Constant(value_ints=[3])), kv_c), op.Constant(value_ints=[3]))
    den_c = op.ReduceSum(op.Mul(qc, op.CumSum(kc, axis)), last, keepdims=1)
    # non-causal part: queries [lc, Lq)
    qn = op.Slice(q, lc, big, two)
    kv = op.MatMul(op.Transpose(k, perm=[0, 1, 3, 2]), v)
    num_n = op.MatMul(qn, kv)
    den_n = op.ReduceSum(op.Mul(qn, op.ReduceSum(k, two, keepdims=1)), last, keepdims=1)
    num = op.Concat(num_c, num_n, axis=2)
    den = op.Concat(den_c, den_n, axis=2)
    tiny = op.Constant(value_float=epsilon)
    is_zero = op.Cast(op.Equal(den, op.Constant(value_float=0.0)), to=FLOAT.dtype)
    den = op.Add(op.Add(den, op.Mul(op.Sign(den), tiny)), op.Mul(is_zero, tiny))
    out = op.Transpose(op.Div(num, den), perm=[0, 2, 1, 3])
    return op.CastLike(out, QF)


@script(nmn, default_opset=op)
def YatPerformerMultiHeadAttention(
    XQ: T,
    XK: T,
    XV: T,
    MASK: BOOL,
    WQ: T,
    BQ: T,
    WK: T,
    BK: T,
    WV: T,
    BV: T,
    WO: T,
    BO: T,
    ALPHA: T,
    EPS: T,
    PROJ: T,
    num_heads: int = 1,
    causal: int = 0,
    degree: int = 3,
    bias: float = 0.0,
) -> T:
    """Linear-time spherical Yat-Performer multi-head attention (``PerformerFeatureMap``, docs/design.md §7.5 readout).

    Projections and heads as ``YatMultiHeadAttention``; ``QF = ALPHA * phi(q)``, ``KF = phi(k)`` with the
    feature map of ``YatPerformerFeatures`` (its epsilon = the ``EPS`` input, its ``degree`` and ``bias``; the
    defaults 3 and 0 are the files written before these attributes); ``YatLinearAttention(QF, KF, v, causal)``;
    heads merged; output projection.

    Decisions: ALPHA multiplies the query features, so it cancels between numerator and denominator except
    against the +-1e-6 shift of the denominator (it is kept so that the op has the same inputs as the
    quadratic one). ``MASK`` is accepted for a uniform signature but ignored: a general (B, H, Lq, Lk) mask has
    no linear-time form; use ``causal=1`` for causality. The readout's epsilon is written (1e-6) because
    ``onnx.reference`` does not fill in a nested call's attribute defaults.
    """
    eps = op.Cast(EPS, to=FLOAT.dtype)
    proj = op.Cast(PROJ, to=FLOAT.dtype)
    qh = SplitHeads(
        AffineProjection(op.Cast(XQ, to=FLOAT.dtype), op.Cast(WQ, to=FLOAT.dtype), op.Cast(BQ, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    kh = SplitHeads(
        AffineProjection(op.Cast(XK, to=FLOAT.dtype), op.Cast(WK, to=FLOAT.dtype), op.Cast(BK, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    vh = SplitHeads(
        AffineProjection(op.Cast(XV, to=FLOAT.dtype), op.Cast(WV, to=FLOAT.dtype), op.Cast(BV, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    qf = op.Mul(PerformerFeatureMap(qh, proj, eps, degree=degree, bias=bias), op.Cast(ALPHA, to=FLOAT.dtype))
    kf = PerformerFeatureMap(kh, proj, eps, degree=degree, bias=bias)
    o = YatLinearAttention(qf, kf, vh, causal=causal, epsilon=1e-6)
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)


# ------------------------------------------------------------------------------------------- legacy bodies
# The bodies of the three performer functions as files written before the ``degree``/``bias`` attributes carry
# them (degree 3, bias 0; numerically what the current bodies compute with the default attributes). They are
# kept verbatim so that nmn.interchange.validate can recognise those files as canonical; ``legacy_function_protos``
# names them as they appear in a file.


@script(nmn, default_opset=op)
def PerformerFeatureMapV1(X: FLOAT, PROJ: FLOAT, EPS: FLOAT) -> FLOAT:
    """The body of ``PerformerFeatureMap`` in the files written before its degree/bias attributes."""
    last = op.Constant(value_ints=[-1])
    one = op.Constant(value_float=1.0)
    two = op.Constant(value_float=2.0)
    three = op.Constant(value_float=3.0)
    xh = op.Div(X, op.Sqrt(op.Add(op.ReduceSumSquare(X, last, keepdims=1), EPS)))
    pn = op.Div(PROJ, op.Add(op.Sqrt(op.ReduceSumSquare(PROJ, last, keepdims=1)), op.Constant(value_float=1e-8)))
    d = op.Cast(op.Slice(op.Shape(X), last, op.Constant(value_ints=[100])), to=FLOAT.dtype)
    m = op.Cast(op.Slice(op.Shape(PROJ), op.Constant(value_ints=[0]), op.Constant(value_ints=[1])), to=FLOAT.dtype)
    c = op.Add(two, EPS)
    a2 = op.Div(one, c)
    a3 = op.Div(two, op.Mul(c, c))
    dm1 = op.Sub(d, one)
    dp2 = op.Add(d, two)
    n2 = op.Div(op.Mul(dp2, dm1), two)
    n3 = op.Div(op.Mul(op.Mul(d, op.Add(d, op.Constant(value_float=4.0))), dm1), op.Constant(value_float=6.0))
    c0 = op.Sqrt(op.Div(a2, d))
    c1 = op.Sqrt(op.Div(op.Mul(three, a3), dp2))
    c2 = op.Sqrt(op.Mul(op.Mul(a2, op.Div(dm1, d)), op.Div(n2, op.Add(m, n2))))
    c3 = op.Sqrt(op.Mul(op.Mul(a3, op.Div(dm1, dp2)), op.Div(n3, op.Add(m, n3))))
    u = op.MatMul(xh, op.Transpose(pn, perm=[1, 0]))
    p2 = op.Div(op.Sub(op.Mul(d, op.Mul(u, u)), one), op.Max(dm1, one))
    p3 = op.Div(op.Sub(op.Mul(op.Mul(dp2, u), p2), op.Mul(two, u)), d)
    rand = op.Add(op.Mul(p2, c2), op.Mul(p3, c3))
    const = op.Mul(
        op.Expand(one, op.Shape(op.Slice(X, op.Constant(value_ints=[0]), op.Constant(value_ints=[1]), last))), c0
    )
    return op.Concat(const, op.Mul(xh, c1), rand, axis=-1)


@script(nmn, default_opset=op)
def YatPerformerFeaturesV1(X: T, PROJ: T, epsilon: float = 1e-5) -> T:
    """The body of ``YatPerformerFeatures`` in the files written before its degree/bias attributes."""
    eps = op.Reshape(op.Constant(value_float=epsilon), op.Constant(value_ints=[1]))
    y = PerformerFeatureMapV1(op.Cast(X, to=FLOAT.dtype), op.Cast(PROJ, to=FLOAT.dtype), eps)
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def YatPerformerMultiHeadAttentionV1(
    XQ: T,
    XK: T,
    XV: T,
    MASK: BOOL,
    WQ: T,
    BQ: T,
    WK: T,
    BK: T,
    WV: T,
    BV: T,
    WO: T,
    BO: T,
    ALPHA: T,
    EPS: T,
    PROJ: T,
    num_heads: int = 1,
    causal: int = 0,
) -> T:
    """The body of ``YatPerformerMultiHeadAttention`` in the files written before its degree/bias attributes."""
    eps = op.Cast(EPS, to=FLOAT.dtype)
    proj = op.Cast(PROJ, to=FLOAT.dtype)
    qh = SplitHeads(
        AffineProjection(op.Cast(XQ, to=FLOAT.dtype), op.Cast(WQ, to=FLOAT.dtype), op.Cast(BQ, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    kh = SplitHeads(
        AffineProjection(op.Cast(XK, to=FLOAT.dtype), op.Cast(WK, to=FLOAT.dtype), op.Cast(BK, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    vh = SplitHeads(
        AffineProjection(op.Cast(XV, to=FLOAT.dtype), op.Cast(WV, to=FLOAT.dtype), op.Cast(BV, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    qf = op.Mul(PerformerFeatureMapV1(qh, proj, eps), op.Cast(ALPHA, to=FLOAT.dtype))
    kf = PerformerFeatureMapV1(kh, proj, eps)
    o = YatLinearAttention(qf, kf, vh, causal=causal)
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)


@script(nmn, default_opset=op)
def YatLinearAttentionV1(QF: T, KF: T, V: T, causal: int = 0) -> T:
    """The body of ``YatLinearAttention`` in the files written before its ``epsilon`` attribute."""
    q = op.Transpose(op.Cast(QF, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    k = op.Transpose(op.Cast(KF, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    v = op.Transpose(op.Cast(V, to=FLOAT.dtype), perm=[0, 2, 1, 3])
    two = op.Constant(value_ints=[2])
    zero = op.Constant(value_ints=[0])
    big = op.Constant(value_ints=[2147483647])
    last = op.Constant(value_ints=[-1])
    lq = op.Slice(op.Shape(q), two, op.Constant(value_ints=[3]))
    lc = op.Mul(lq, op.Reshape(op.Constant(value_int=causal), op.Constant(value_ints=[1])))
    # causal part: queries [0, lc) (all of them, or none)
    qc = op.Slice(q, zero, lc, two)
    kc = op.Slice(k, zero, lc, two)
    vc = op.Slice(v, zero, lc, two)
    axis = op.Constant(value_int=2)
    kv_c = op.CumSum(
        op.Mul(op.Unsqueeze(kc, op.Constant(value_ints=[4])), op.Unsqueeze(vc, op.Constant(value_ints=[3]))), axis
    )
    num_c = op.Squeeze(op.MatMul(op.Unsqueeze(qc, op.Constant(value_ints=[3])), kv_c), op.Constant(value_ints=[3]))
    den_c = op.ReduceSum(op.Mul(qc, op.CumSum(kc, axis)), last, keepdims=1)
    # non-causal part: queries [lc, Lq)
    qn = op.Slice(q, lc, big, two)
    kv = op.MatMul(op.Transpose(k, perm=[0, 1, 3, 2]), v)
    num_n = op.MatMul(qn, kv)
    den_n = op.ReduceSum(op.Mul(qn, op.ReduceSum(k, two, keepdims=1)), last, keepdims=1)
    num = op.Concat(num_c, num_n, axis=2)
    den = op.Concat(den_c, den_n, axis=2)
    tiny = op.Constant(value_float=1e-6)
    is_zero = op.Cast(op.Equal(den, op.Constant(value_float=0.0)), to=FLOAT.dtype)
    den = op.Add(op.Add(den, op.Mul(op.Sign(den), tiny)), op.Mul(is_zero, tiny))
    out = op.Transpose(op.Div(num, den), perm=[0, 2, 1, 3])
    return op.CastLike(out, QF)


@script(nmn, default_opset=op)
def YatPerformerMultiHeadAttentionV2(
    XQ: T,
    XK: T,
    XV: T,
    MASK: BOOL,
    WQ: T,
    BQ: T,
    WK: T,
    BK: T,
    WV: T,
    BV: T,
    WO: T,
    BO: T,
    ALPHA: T,
    EPS: T,
    PROJ: T,
    num_heads: int = 1,
    causal: int = 0,
    degree: int = 3,
    bias: float = 0.0,
) -> T:
    """The body of ``YatPerformerMultiHeadAttention`` in the files written before ``YatLinearAttention``'s epsilon."""
    eps = op.Cast(EPS, to=FLOAT.dtype)
    proj = op.Cast(PROJ, to=FLOAT.dtype)
    qh = SplitHeads(
        AffineProjection(op.Cast(XQ, to=FLOAT.dtype), op.Cast(WQ, to=FLOAT.dtype), op.Cast(BQ, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    kh = SplitHeads(
        AffineProjection(op.Cast(XK, to=FLOAT.dtype), op.Cast(WK, to=FLOAT.dtype), op.Cast(BK, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    vh = SplitHeads(
        AffineProjection(op.Cast(XV, to=FLOAT.dtype), op.Cast(WV, to=FLOAT.dtype), op.Cast(BV, to=FLOAT.dtype)),
        num_heads=num_heads,
    )
    qf = op.Mul(PerformerFeatureMap(qh, proj, eps, degree=degree, bias=bias), op.Cast(ALPHA, to=FLOAT.dtype))
    kf = PerformerFeatureMap(kh, proj, eps, degree=degree, bias=bias)
    o = YatLinearAttention(qf, kf, vh, causal=causal)
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)


_LEGACY = {
    "PerformerFeatureMap": PerformerFeatureMapV1,
    "YatPerformerFeatures": YatPerformerFeaturesV1,
    "YatPerformerMultiHeadAttention": YatPerformerMultiHeadAttentionV1,
    "YatLinearAttention": YatLinearAttentionV1,
}
# later legacy bodies of a function that already has one above (name, function)
_LEGACY_MORE = [("YatPerformerMultiHeadAttention", YatPerformerMultiHeadAttentionV2)]


def legacy_function_versions():
    """``{name: [FunctionProto, ...]}``: every legacy body of each function (see :func:`legacy_function_protos`)."""
    out = {name: [proto] for name, proto in legacy_function_protos().items()}
    for name, fn in _LEGACY_MORE:
        proto = fn.to_function_proto()
        proto.name = name
        out.setdefault(name, []).append(proto)
    # the convolutions' bodies before input_dilations / weight_normalized (imported here, not at the top: the
    # conv modules do not depend on attention, and this table is the one place the validator reads)
    from onnx_ops.conv import legacy_conv_versions
    from onnx_ops.conv_transpose import legacy_conv_transpose_versions

    for table in (legacy_conv_versions(), legacy_conv_transpose_versions()):
        for name, protos in table.items():
            out.setdefault(name, []).extend(protos)
    return out


def legacy_function_protos():
    """``{name: FunctionProto}`` of the legacy performer bodies, named (and calling each other) as in the files."""
    out = {}
    for name, fn in _LEGACY.items():
        proto = fn.to_function_proto()
        proto.name = name
        for node in proto.node:
            if node.domain == proto.domain and node.op_type.endswith("V1") and node.op_type[:-2] in _LEGACY:
                node.op_type = node.op_type[:-2]
        out[name] = proto
    return out
