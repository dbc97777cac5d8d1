"""The ``nmn`` ONNX domain, version 1: every function's name, inputs and attributes.

This table is the contract between ``onnx_ops`` (which implements each function with onnxscript), the
exporters (which write every attribute explicitly on every call node) and the validator (which checks a file's
calls against it). It is plain data so that ``nmn.core`` stays free of onnx.

All inputs are required (docs/design.md §N1b): a layer without a bias passes zeros, without alpha a 1,
and the effective epsilon is always an input ``EPS`` of shape (1,) -- a constant initializer, or the output of a
``Softplus`` node fed by the raw learnable parameter (docs/design.md §D7).

>>> FUNCTIONS["YatDense"].inputs
('X', 'W', 'B', 'ALPHA', 'EPS')
>>> sorted(FUNCTIONS["YatDense"].attributes)
['spherical', 'weight_normalized']
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAIN = "nmn"
DOMAIN_VERSION = 1
OPSET = 18


@dataclass(frozen=True)
class FunctionSchema:
    """One function of the ``nmn`` domain: ordered inputs, attributes ``{name: (type, default)}``, outputs."""

    name: str
    inputs: tuple[str, ...]
    attributes: dict[str, tuple[str, object]] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("Y",)
    doc: str = ""


def _schema(name, inputs, attributes=None, outputs=("Y",), doc=""):
    return FunctionSchema(name, tuple(inputs), dict(attributes or {}), tuple(outputs), doc)


_CONV_ATTRS = {
    "auto_pad": ("string", "NOTSET"),
    "dilations": ("ints", None),
    "group": ("int", 1),
    "pads": ("ints", None),
    "strides": ("ints", None),
}
_MHA_INPUTS = ("XQ", "XK", "XV", "MASK", "WQ", "BQ", "WK", "BK", "WV", "BV", "WO", "BO", "ALPHA", "EPS")
_ATTN_ATTRS = {
    "num_heads": ("int", 1),
    "spherical": ("int", 0),
    "normalization": ("string", "softmax"),
    "power": ("float", 1.0),
    "causal": ("int", 0),
}

# the Yat-Performer's kernel: degree K of the Maclaurin truncation and numerator bias b; the defaults are the map
# of the files written before these attributes (degree 3, bias 0), so those files still mean what they meant
_PERFORMER_ATTRS = {"degree": ("int", 3), "bias": ("float", 0.0)}

#: attributes added after files were first written: a node without them means the schema default, which is what
#: those files computed (the exporters always write them; nmn.interchange.validate accepts their absence)
LATER_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "YatPerformerMultiHeadAttention": ("degree", "bias"),
    "YatPerformerFeatures": ("degree", "bias"),
    "YatLinearAttention": ("epsilon",),
    "YatConv": ("input_dilations",),
    "YatConvTranspose": ("weight_normalized",),
}

# nmn 0.3's bias-aware random-feature maps (issue 17); their projections are inputs (constants of the file), so
# every framework and onnxruntime compute the same features; x_hat = x / sqrt(|x|^2 + epsilon)
_RF_ATTRS = {"epsilon": ("float", 1e-6)}

FUNCTIONS: dict[str, FunctionSchema] = {
    s.name: s
    for s in (
        _schema(
            "YatDense",
            ("X", "W", "B", "ALPHA", "EPS"),
            {"spherical": ("int", 0), "weight_normalized": ("int", 0)},
            doc="Y[..., o] = ALPHA * (x.w_o + B_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + EPS); W (O, I).",
        ),
        _schema(
            "YatConv",
            ("X", "W", "B", "ALPHA", "EPS"),
            {
                **_CONV_ATTRS,
                "pad_mode": ("string", "constant"),
                "weight_normalized": ("int", 0),
                "input_dilations": ("ints", None),
            },
            doc="Yat product of every (padded) patch of X (N, C, *S) with each filter of W (M, C/group, *k); "
            "input_dilations (absent: ones) inserts d - 1 zeros between input samples before the padding.",
        ),
        _schema(
            "YatConvTranspose",
            ("X", "W", "B", "ALPHA", "EPS"),
            {**_CONV_ATTRS, "output_padding": ("ints", None), "weight_normalized": ("int", 0)},
            doc="Transposed-convolution Yat product; X (N, C, *S), W (C, M/group, *k) as ONNX ConvTranspose; "
            "weight_normalized: each filter (its group's W[c, m', :]) unit-normalised, |W_m|^2 := 1.",
        ),
        _schema(
            "YatAttention",
            ("Q", "K", "V", "MASK", "ALPHA", "EPS"),
            {k: _ATTN_ATTRS[k] for k in ("spherical", "normalization", "power", "causal")},
            doc="Yat attention on (B, L, H, D) heads; MASK bool broadcastable to (B, H, Lq, Lk), True = attend.",
        ),
        _schema(
            "YatMultiHeadAttention",
            _MHA_INPUTS,
            dict(_ATTN_ATTRS),
            doc="Four affine projections (W in (out, in) layout) around YatAttention; X* (B, L, E).",
        ),
        _schema(
            "RotaryYatMultiHeadAttention",
            _MHA_INPUTS + ("COS", "SIN"),
            {**_ATTN_ATTRS, "interleaved": ("int", 1)},
            doc="YatMultiHeadAttention with rotary embeddings of Q and K at positions 0..L-1; COS/SIN (T, D/2).",
        ),
        _schema(
            "YatPerformerMultiHeadAttention",
            _MHA_INPUTS + ("PROJ",),
            {"num_heads": ("int", 1), "causal": ("int", 0), **_PERFORMER_ATTRS},
            doc="Linear-time spherical Yat-Performer: YatPerformerFeatures of q, k with PROJ (m, D) read out by "
            "YatLinearAttention; it estimates l1 attention with the degree-K (attribute degree) Maclaurin "
            "truncation of the bias-aware spherical Yat score (t + b)^2 / (C - 2t) (b = attribute bias, "
            "C = 2 + EPS, t = q_hat.k_hat); degree 3, bias 0 (the defaults) is t^2/C + 2 t^3/C^2, the map of "
            "files written before these attributes. Cost O(L m (D + K)).",
        ),
        _schema(
            "YatEmbedAttend",
            ("Q", "E", "ALPHA", "EPS"),
            {"spherical": ("int", 0)},
            doc="Embedding attend: ALPHA * (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + EPS), E (V, F).",
        ),
        _schema(
            "RotaryEmbedding",
            ("X", "COS", "SIN"),
            {"interleaved": ("int", 1)},
            doc="Rotate X (B, L, H, D) at positions 0..L-1 with tables COS/SIN (T, D/2).",
        ),
        _schema(
            "YatPerformerFeatures",
            ("X", "PROJ"),
            {"epsilon": ("float", 1e-5), **_PERFORMER_ATTRS},
            doc="phi(x) = [c_0, c_1 x_hat, sum_(n=2..K) c_n P_n(u)] (1 + D + m per row), K = degree, "
            "x_hat = x/sqrt(|x|^2 + epsilon), u = x_hat.w_hat for the unit rows of PROJ (m, D), P_n the "
            "Gegenbauer polynomials of the D-sphere; E[phi(q).phi(k)] = the degree-K Maclaurin truncation of "
            "(t + bias)^2 / (C - 2t) (C = 2 + epsilon) in the Gegenbauer basis, degrees n >= 2 shrunk by "
            "m/(m + N_n).",
        ),
        _schema(
            "YatLinearAttention",
            ("QF", "KF", "V"),
            {"causal": ("int", 0), "epsilon": ("float", 1e-6)},
            doc="Linear readout QF (KF^T V) / (QF . sum KF +- epsilon) on (B, L, H, m) features (the shift keeps "
            "the denominator's sign; 0 gets +epsilon).",
        ),
        _schema(
            "YatMaclaurinFeatures",
            ("X", "OMEGA", "DEGMASK", "SCALE"),
            dict(_RF_ATTRS),
            doc="MAY (random Maclaurin) features of X (..., D): phi_r = SCALE * prod_(l<N) (DEGMASK[r,l] * "
            "(OMEGA[r,l] . x_hat) + 1 - DEGMASK[r,l]), OMEGA (M, N, D) Rademacher rows, DEGMASK (M, N) 0/1 with "
            "row r's first n_r entries 1 (n_r ~ a_n / Z, a_n the Maclaurin coefficients of (t + b)^2 / (2 + eps - 2t)), "
            "SCALE (1,) = sqrt(Z / M); E[phi(q) . phi(k)] = the degree-N truncation of that score.",
        ),
        _schema(
            "YatRadialFeatures",
            ("X", "W1", "W2", "OMEGA", "PHASE", "COEF"),
            {**_RF_ATTRS, "bias": ("float", 1.0)},
            doc="RAY features of X (..., D): z = [x_hat, sqrt(bias)], psi = (z W1^T) * (z W2^T) / sqrt(m) "
            "(W1, W2 (m, D+1)), rff_j = sqrt(2/R) sqrt(max(COEF_j, 0)) cos(z OMEGA_j^T + PHASE_j) (OMEGA (J, R, D+1), "
            "PHASE (J, R), COEF (J,)); phi = flatten(psi (x) [rff_1..rff_J]) (m J R per row).",
        ),
        _schema(
            "YatAnchorFeatures",
            ("X", "ANCHORS", "PROJ", "NODES", "WEIGHTS"),
            dict(_RF_ATTRS),
            doc="Anchor x positive-random-feature tensor-product features of X (..., D) (nmn 0.3's yat_tp): "
            "poly = (x_hat . a_p)^2 / sqrt(P) (ANCHORS (P, D)), prf_j = exp(clip(sqrt(2 s_j) PROJ_j x_hat - s_j, "
            "-20, 20)) / sqrt(M) (PROJ (J, M, D), s = NODES (J,)); phi = concat_j sqrt(max(WEIGHTS_j, 0)) "
            "flatten(poly (x) prf_j) (J P M per row).",
        ),
        _schema(
            "YatMaclaurinMultiHeadAttention",
            _MHA_INPUTS + ("OMEGA", "DEGMASK", "SCALE"),
            {"num_heads": ("int", 1), "causal": ("int", 0)},
            doc="Linear-time bias-aware spherical Yat attention with MAY features (YatMaclaurinFeatures of q and k "
            "heads, epsilon 1e-6) read out by YatLinearAttention (epsilon 1e-6); ALPHA and EPS are unused (the "
            "kernel's eps and bias live in the sampled DEGMASK and SCALE).",
        ),
        _schema(
            "YatRadialMultiHeadAttention",
            _MHA_INPUTS + ("W1", "W2", "OMEGA", "PHASE", "COEF"),
            {"num_heads": ("int", 1), "causal": ("int", 0), "bias": ("float", 1.0)},
            doc="Linear-time bias-aware spherical Yat attention with RAY features (YatRadialFeatures of q and k "
            "heads, epsilon 1e-6) read out by YatLinearAttention (epsilon 1e-6); ALPHA and EPS are unused (eps "
            "lives in COEF and OMEGA).",
        ),
        _schema("Softermax", ("X",), {"n": ("float", 1.0), "epsilon": ("float", 1e-12), "axis": ("int", -1)}),
        _schema("SofterSigmoid", ("X",), {"n": ("float", 1.0)}),
        _schema("SoftTanh", ("X",), {"n": ("float", 1.0)}),
    )
}
