"""nmn 0.3's bias-aware random-feature attentions as ``nmn`` functions (issue 17).

* ``YatMaclaurinFeatures`` (MAY), ``YatRadialFeatures`` (RAY), ``YatAnchorFeatures`` (anchor / 0.3.5's yat_tp):
  feature maps of X (..., D) whose projections are inputs (constants of the file, sampled by
  ``nmn.core.random_features``), so every framework and onnxruntime compute the same features.
* ``YatMaclaurinMultiHeadAttention``, ``YatRadialMultiHeadAttention``: the four projections of
  ``YatMultiHeadAttention`` around MAY / RAY features of the q and k heads and ``YatLinearAttention``.

The kernel they linearise is ``kappa_b(t) = (t + b)^2 / (2 + eps - 2t)`` of ``t = q_hat . k_hat``;
``x_hat = x / sqrt(|x|^2 + epsilon)``. Arithmetic runs in float32; results are cast back to X's type.
"""

from onnxscript import BOOL, FLOAT, script
from onnxscript import opset18 as op

from onnx_ops._common import T, nmn
from onnx_ops.attention import AffineProjection, SplitHeads, YatLinearAttention


@script(nmn, default_opset=op)
def UnitRows(X: FLOAT, epsilon: float = 1e-6) -> FLOAT:
    """``X / sqrt(|X|^2 + epsilon)`` along the last axis."""
    eps = op.Constant(value_float=epsilon)
    return op.Div(X, op.Sqrt(op.Add(op.ReduceSumSquare(X, op.Constant(value_ints=[-1]), keepdims=1), eps)))


@script(nmn, default_opset=op)
def YatMaclaurinFeatures(X: T, OMEGA: T, DEGMASK: T, SCALE: T, epsilon: float = 1e-6) -> T:
    """MAY features of X (..., D) -> (..., M): ``phi_r = SCALE * prod_(l<N) (DEGMASK[r,l] (OMEGA[r,l] . x_hat)
    + 1 - DEGMASK[r,l])`` with OMEGA (M, N, D), DEGMASK (M, N), SCALE (1,).

    With Rademacher rows, degrees ``n_r ~ a_n / Z`` (``a_n`` the Maclaurin coefficients of ``kappa_b``) and
    ``SCALE = sqrt(Z / M)``, ``E[phi(q) . phi(k)] = sum_(n <= N) a_n t^n``. Implementation: one MatMul of x_hat
    with OMEGA as (M N, D), reshaped to (..., M, N), then ``ReduceProd`` over the degree axis.
    """
    x = UnitRows(op.Cast(X, to=FLOAT.dtype), epsilon=epsilon)
    omega = op.Cast(OMEGA, to=FLOAT.dtype)
    mask = op.Cast(DEGMASK, to=FLOAT.dtype)
    one = op.Constant(value_float=1.0)
    oshape = op.Shape(omega)
    d = op.Slice(oshape, op.Constant(value_ints=[2]), op.Constant(value_ints=[3]))
    mn = op.Slice(oshape, op.Constant(value_ints=[0]), op.Constant(value_ints=[2]))
    flat = op.Reshape(omega, op.Concat(op.Constant(value_ints=[-1]), d, axis=0))
    proj = op.MatMul(x, op.Transpose(flat, perm=[1, 0]))
    lead = op.Slice(op.Shape(x), op.Constant(value_ints=[0]), op.Constant(value_ints=[-1]))
    proj = op.Reshape(proj, op.Concat(lead, mn, axis=0))
    factors = op.Add(op.Mul(proj, mask), op.Sub(one, mask))
    y = op.Mul(op.ReduceProd(factors, op.Constant(value_ints=[-1]), keepdims=0), op.Cast(SCALE, to=FLOAT.dtype))
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def YatRadialFeatures(X: T, W1: T, W2: T, OMEGA: T, PHASE: T, COEF: T, epsilon: float = 1e-6, bias: float = 1.0) -> T:
    """RAY features of X (..., D) -> (..., m J R): ``z = [x_hat, sqrt(bias)]``, ``psi = (z W1^T) * (z W2^T) /
    sqrt(m)``, ``rff_j = sqrt(2/R) sqrt(max(COEF_j, 0)) cos(z OMEGA_j^T + PHASE_j)``, ``phi = flatten(psi (x)
    [rff_1 .. rff_J])`` (psi index slowest, then j, then r).

    ``E[phi(q) . phi(k)] = (t + b)^2 * sum_j COEF_j exp(-u_j |q_hat - k_hat|^2)`` for OMEGA_j ~ N(0, 2 u_j I):
    the Gauss-Laguerre rule of ``kappa_b`` when ``u_j = tau_j / eps``, ``COEF_j = w_j / eps``.
    """
    x = UnitRows(op.Cast(X, to=FLOAT.dtype), epsilon=epsilon)
    w1 = op.Cast(W1, to=FLOAT.dtype)
    w2 = op.Cast(W2, to=FLOAT.dtype)
    omega = op.Cast(OMEGA, to=FLOAT.dtype)
    phase = op.Cast(PHASE, to=FLOAT.dtype)
    coef = op.Cast(COEF, to=FLOAT.dtype)
    zero = op.Constant(value_ints=[0])
    one_i = op.Constant(value_ints=[1])
    minus1 = op.Constant(value_ints=[-1])
    lead = op.Slice(op.Shape(x), zero, minus1)
    sqrt_b = op.Sqrt(op.Constant(value_float=bias))
    z = op.Concat(x, op.Expand(sqrt_b, op.Concat(lead, one_i, axis=0)), axis=-1)
    m = op.Cast(op.Slice(op.Shape(w1), zero, one_i), to=FLOAT.dtype)
    psi = op.Div(
        op.Mul(op.MatMul(z, op.Transpose(w1, perm=[1, 0])), op.MatMul(z, op.Transpose(w2, perm=[1, 0]))), op.Sqrt(m)
    )
    da = op.Slice(op.Shape(omega), op.Constant(value_ints=[2]), op.Constant(value_ints=[3]))
    flat = op.Reshape(omega, op.Concat(minus1, da, axis=0))
    arg = op.Add(op.MatMul(z, op.Transpose(flat, perm=[1, 0])), op.Reshape(phase, minus1))
    r = op.Cast(op.Slice(op.Shape(phase), one_i, op.Constant(value_ints=[2])), to=FLOAT.dtype)
    amp = op.Expand(op.Unsqueeze(op.Sqrt(op.Relu(coef)), one_i), op.Shape(phase))
    amp = op.Mul(op.Reshape(amp, minus1), op.Sqrt(op.Div(op.Constant(value_float=2.0), r)))
    rff = op.Mul(op.Cos(arg), amp)
    y = op.Mul(op.Unsqueeze(psi, minus1), op.Unsqueeze(rff, op.Constant(value_ints=[-2])))
    y = op.Reshape(y, op.Concat(lead, minus1, axis=0))
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def YatAnchorFeatures(X: T, ANCHORS: T, PROJ: T, NODES: T, WEIGHTS: T, epsilon: float = 1e-6) -> T:
    """Anchor features of X (..., D) -> (..., J P M) (nmn 0.3's yat_tp): ``poly = (x_hat . a_p)^2 / sqrt(P)``,
    ``prf_j = exp(clip(sqrt(2 s_j) PROJ_j x_hat - s_j, -20, 20)) / sqrt(M)``, ``phi = concat_j sqrt(max(w_j, 0))
    flatten(poly (x) prf_j)`` (j slowest, then p, then m); ANCHORS (P, D), PROJ (J, M, D), NODES s and
    WEIGHTS w (J,). ``sqrt(2 s_j)`` is taken of ``max(s_j, 0)``.
    """
    x = UnitRows(op.Cast(X, to=FLOAT.dtype), epsilon=epsilon)
    anchors = op.Cast(ANCHORS, to=FLOAT.dtype)
    proj = op.Cast(PROJ, to=FLOAT.dtype)
    s = op.Unsqueeze(op.Cast(NODES, to=FLOAT.dtype), op.Constant(value_ints=[1]))
    w = op.Unsqueeze(op.Cast(WEIGHTS, to=FLOAT.dtype), op.Constant(value_ints=[1]))
    zero = op.Constant(value_ints=[0])
    one_i = op.Constant(value_ints=[1])
    minus1 = op.Constant(value_ints=[-1])
    lead = op.Slice(op.Shape(x), zero, minus1)
    dots = op.MatMul(x, op.Transpose(anchors, perm=[1, 0]))
    p = op.Cast(op.Slice(op.Shape(anchors), zero, one_i), to=FLOAT.dtype)
    poly = op.Div(op.Mul(dots, dots), op.Sqrt(p))
    pshape = op.Shape(proj)
    jm = op.Slice(pshape, zero, op.Constant(value_ints=[2]))
    d = op.Slice(pshape, op.Constant(value_ints=[2]), op.Constant(value_ints=[3]))
    pr = op.MatMul(x, op.Transpose(op.Reshape(proj, op.Concat(minus1, d, axis=0)), perm=[1, 0]))
    pr = op.Reshape(pr, op.Concat(lead, jm, axis=0))
    arg = op.Sub(op.Mul(pr, op.Sqrt(op.Mul(op.Constant(value_float=2.0), op.Relu(s)))), s)
    arg = op.Clip(arg, op.Constant(value_float=-20.0), op.Constant(value_float=20.0))
    m = op.Cast(op.Slice(pshape, one_i, op.Constant(value_ints=[2])), to=FLOAT.dtype)
    prf = op.Mul(op.Div(op.Exp(arg), op.Sqrt(m)), op.Sqrt(op.Relu(w)))
    y = op.Mul(
        op.Unsqueeze(prf, op.Constant(value_ints=[-2])),
        op.Unsqueeze(op.Unsqueeze(poly, minus1), op.Constant(value_ints=[-3])),
    )
    y = op.Reshape(y, op.Concat(lead, minus1, axis=0))
    return op.CastLike(y, X)


@script(nmn, default_opset=op)
def YatMaclaurinMultiHeadAttention(
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
    OMEGA: T,
    DEGMASK: T,
    SCALE: T,
    num_heads: int = 1,
    causal: int = 0,
) -> T:
    """Linear-time bias-aware spherical Yat attention with MAY features.

    Projections and heads as ``YatMultiHeadAttention``; ``QF = YatMaclaurinFeatures(q)``, ``KF =
    YatMaclaurinFeatures(k)`` (epsilon 1e-6); ``YatLinearAttention(QF, KF, v, causal, epsilon 1e-6)``; heads
    merged; output projection. ALPHA and EPS are unused (alpha cancels under the l1 readout; the kernel's eps
    and bias live in the sampled DEGMASK and SCALE); MASK is ignored (no linear-time form; use ``causal``).
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
    omega = op.Cast(OMEGA, to=FLOAT.dtype)
    mask = op.Cast(DEGMASK, to=FLOAT.dtype)
    scale = op.Cast(SCALE, to=FLOAT.dtype)
    qf = YatMaclaurinFeatures(qh, omega, mask, scale, epsilon=1e-6)
    kf = YatMaclaurinFeatures(kh, omega, mask, scale, epsilon=1e-6)
    o = YatLinearAttention(qf, kf, vh, causal=causal, epsilon=1e-6)
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)


@script(nmn, default_opset=op)
def YatRadialMultiHeadAttention(
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
    W1: T,
    W2: T,
    OMEGA: T,
    PHASE: T,
    COEF: T,
    num_heads: int = 1,
    causal: int = 0,
    bias: float = 1.0,
) -> T:
    """Linear-time bias-aware spherical Yat attention with RAY features.

    As ``YatMaclaurinMultiHeadAttention`` with ``YatRadialFeatures(., W1, W2, OMEGA, PHASE, COEF, epsilon 1e-6,
    bias)`` of the q and k heads. ALPHA and EPS are unused (eps lives in COEF and OMEGA); MASK is ignored.
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
    w1 = op.Cast(W1, to=FLOAT.dtype)
    w2 = op.Cast(W2, to=FLOAT.dtype)
    omega = op.Cast(OMEGA, to=FLOAT.dtype)
    phase = op.Cast(PHASE, to=FLOAT.dtype)
    coef = op.Cast(COEF, to=FLOAT.dtype)
    qf = YatRadialFeatures(qh, w1, w2, omega, phase, coef, epsilon=1e-6, bias=bias)
    kf = YatRadialFeatures(kh, w1, w2, omega, phase, coef, epsilon=1e-6, bias=bias)
    o = YatLinearAttention(qf, kf, vh, causal=causal, epsilon=1e-6)
    o = op.Reshape(o, op.Constant(value_ints=[0, 0, -1]))
    y = AffineProjection(o, op.Cast(WO, to=FLOAT.dtype), op.Cast(BO, to=FLOAT.dtype))
    return op.CastLike(y, XQ)
