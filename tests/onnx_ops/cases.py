"""The case table of tests/onnx_ops: (function, inputs, attributes, tolerance) rows, built from a seeded RNG.

Each row is run by onnxruntime (``onnx_ops.run_function``), by ``onnx.reference.ReferenceEvaluator`` and by the
float64 numpy oracle (``onnx_ops.reference``); they must agree within ``rtol * max|oracle|``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

F32_RTOL = 1e-5
# float16 outputs: the oracle sees the same float16 inputs, the result is rounded once to float16
# (half an ulp is 2^-11 ~ 4.9e-4 of the value); float32 arithmetic inside adds nothing visible.
F16_RTOL = 1e-3


@dataclass
class Case:
    id: str
    name: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    rtol: float = F32_RTOL
    skip_evaluator: str = ""  # reason, when onnx.reference cannot run the case


def _rng(seed):
    return np.random.default_rng(seed)


def _t(rng, *shape, scale=1.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _scalars(alpha=1.0, eps=1e-5, dtype=np.float32):
    return [np.full(1, alpha, dtype), np.full(1, eps, dtype)]


def dense_cases():
    r = _rng(1)
    cases = [
        Case("basic", "YatDense", [_t(r, 4, 6), _t(r, 5, 6), _t(r, 5)] + _scalars(1.3, 1e-3)),
        Case("batch3d-scalar-bias", "YatDense", [_t(r, 2, 3, 6), _t(r, 5, 6), _t(r, 1)] + _scalars()),
        Case("spherical", "YatDense", [_t(r, 4, 6), _t(r, 5, 6), _t(r, 5)] + _scalars(1.0, 1e-2), {"spherical": 1}),
        Case(
            "weight-normalized", "YatDense", [_t(r, 4, 6), _t(r, 5, 6), _t(r, 5)] + _scalars(), {"weight_normalized": 1}
        ),
        Case("large-norms", "YatDense", [_t(r, 4, 6, scale=100.0), _t(r, 5, 6, scale=100.0), _t(r, 5)] + _scalars()),
        Case(
            "float16",
            "YatDense",
            [_t(r, 4, 6, dtype=np.float16), _t(r, 5, 6, dtype=np.float16), _t(r, 5, dtype=np.float16)]
            + _scalars(1.0, 1e-2, np.float16),
            rtol=F16_RTOL,
        ),
    ]
    # near-coincident x and w: w = x + 1e-2 noise, eps large enough that float32 cancellation in
    # |x|^2 + |w|^2 - 2x.w (about 1e-6 here) stays below 1e-5 of the denominator
    x = _t(r, 4, 6)
    w = np.concatenate([x + 1e-2 * _t(r, 4, 6), _t(r, 2, 6)]).astype(np.float32)
    cases.append(Case("near-coincident", "YatDense", [x, w, _t(r, 6)] + _scalars(1.0, 1.0)))
    cases.append(Case("embed-attend", "YatEmbedAttend", [_t(r, 3, 5), _t(r, 9, 5)] + _scalars(1.5, 1e-3)))
    cases.append(
        Case(
            "embed-attend-spherical",
            "YatEmbedAttend",
            [_t(r, 2, 3, 5), _t(r, 9, 5)] + _scalars(1.0, 1e-2),
            {"spherical": 1},
        )
    )
    cases.append(
        Case(
            "embed-attend-float16",
            "YatEmbedAttend",
            [_t(r, 3, 5, dtype=np.float16), _t(r, 9, 5, dtype=np.float16)] + _scalars(1.0, 1e-2, np.float16),
            rtol=F16_RTOL,
        )
    )
    return cases


def conv_cases():
    r = _rng(2)
    s = _scalars
    c = []
    add = lambda id, x, w, b, attrs=None, **kw: c.append(
        Case(id, "YatConv", [x, w, b] + kw.pop("sc", s()), attrs or {}, **kw)
    )
    add("1d", _t(r, 2, 3, 9), _t(r, 4, 3, 3), _t(r, 4))
    add("1d-stride-pads", _t(r, 2, 3, 9), _t(r, 4, 3, 3), _t(r, 4), {"strides": [2], "pads": [1, 2]})
    add("2d", _t(r, 2, 3, 6, 5), _t(r, 4, 3, 3, 3), _t(r, 4))
    add(
        "2d-strides-pads-dilations",
        _t(r, 2, 3, 8, 7),
        _t(r, 4, 3, 3, 2),
        _t(r, 4),
        {"strides": [2, 1], "pads": [1, 0, 2, 1], "dilations": [1, 2]},
    )
    add("2d-groups", _t(r, 2, 4, 6, 6), _t(r, 6, 2, 3, 3), _t(r, 6), {"group": 2, "pads": [1, 1, 1, 1]})
    add("2d-depthwise", _t(r, 1, 4, 5, 5), _t(r, 4, 1, 3, 3), _t(r, 4), {"group": 4})
    add(
        "2d-same-upper-stride2",
        _t(r, 2, 3, 7, 6),
        _t(r, 4, 3, 3, 3),
        _t(r, 1),
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    )
    add("2d-same-lower", _t(r, 1, 3, 6, 5), _t(r, 2, 3, 2, 2), _t(r, 2), {"auto_pad": "SAME_LOWER"})
    add("2d-valid", _t(r, 1, 3, 6, 5), _t(r, 2, 3, 3, 3), _t(r, 2), {"auto_pad": "VALID", "strides": [2, 2]})
    add("3d", _t(r, 1, 2, 4, 5, 3), _t(r, 3, 2, 2, 2, 2), _t(r, 3), {"pads": [1, 0, 1, 0, 1, 1]})
    add("3d-groups-strides", _t(r, 1, 4, 5, 4, 4), _t(r, 2, 2, 2, 2, 2), _t(r, 2), {"group": 2, "strides": [2, 1, 2]})
    for mode in ("reflect", "edge", "wrap"):
        add(f"1d-{mode}", _t(r, 2, 3, 7), _t(r, 4, 3, 3), _t(r, 4), {"pads": [2, 1], "pad_mode": mode})
        add(f"2d-{mode}", _t(r, 1, 2, 5, 4), _t(r, 3, 2, 3, 3), _t(r, 3), {"pads": [1, 2, 2, 1], "pad_mode": mode})
        add(
            f"3d-{mode}",
            _t(r, 1, 2, 3, 4, 3),
            _t(r, 2, 2, 2, 2, 2),
            _t(r, 2),
            {"pads": [1, 0, 1, 1, 1, 0], "pad_mode": mode},
        )
    add("1d-wrap-pads-longer-than-axis", _t(r, 1, 2, 3), _t(r, 2, 2, 3), _t(r, 2), {"pads": [4, 5], "pad_mode": "wrap"})
    add(
        "1d-reflect-pads-longer-than-axis",
        _t(r, 1, 2, 3),
        _t(r, 2, 2, 3),
        _t(r, 2),
        {"pads": [4, 5], "pad_mode": "reflect"},
    )
    add(
        "2d-reflect-same-upper",
        _t(r, 1, 2, 5, 5),
        _t(r, 3, 2, 3, 3),
        _t(r, 3),
        {"pads": [1, 1, 1, 1], "pad_mode": "reflect", "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    )
    add(
        "2d-weight-normalized",
        _t(r, 2, 3, 6, 5),
        _t(r, 4, 3, 3, 3),
        _t(r, 4),
        {"weight_normalized": 1, "pads": [1, 1, 1, 1]},
    )
    add("2d-large-norms", _t(r, 2, 3, 6, 5, scale=100.0), _t(r, 4, 3, 3, 3, scale=100.0), _t(r, 4))
    add("2d-alpha-eps", _t(r, 2, 3, 6, 5), _t(r, 4, 3, 3, 3), _t(r, 4), sc=s(0.3, 0.5))
    # near-coincident: filter 0 equals the first patch up to 1e-2 noise (eps 1.0, see dense near-coincident)
    x = _t(r, 1, 2, 4, 4)
    w = _t(r, 3, 2, 3, 3)
    w[0] = x[0, :, :3, :3] + 1e-2 * _t(r, 2, 3, 3)
    add("2d-near-coincident", x, w, _t(r, 3), sc=s(1.0, 1.0))
    add(
        "2d-float16",
        _t(r, 2, 3, 6, 5, dtype=np.float16),
        _t(r, 4, 3, 3, 3, dtype=np.float16),
        _t(r, 4, dtype=np.float16),
        {"pads": [1, 1, 1, 1], "group": 1},
        sc=s(1.0, 1e-2, np.float16),
        rtol=F16_RTOL,
    )
    return c


# onnx.reference's ConvTranspose with group > 1 slices W (C, M/group, *k) by *output* channels
# (onnx/reference/ops/op_conv_transpose.py), so it is only right when C == M; our energy kernel has G outputs.
_EV_CT_GROUP = "onnx.reference ConvTranspose is wrong for group > 1 unless C == M == group"


def conv_transpose_cases():
    r = _rng(3)
    s = _scalars
    c = []
    add = lambda id, x, w, b, attrs=None, **kw: c.append(
        Case(id, "YatConvTranspose", [x, w, b] + kw.pop("sc", s()), attrs or {}, **kw)
    )
    add("1d", _t(r, 2, 3, 5), _t(r, 3, 4, 3), _t(r, 4))
    add("1d-stride2-pads", _t(r, 2, 3, 5), _t(r, 3, 4, 3), _t(r, 4), {"strides": [2], "pads": [1, 1]})
    add(
        "2d-stride-outpad-dilations",
        _t(r, 2, 3, 4, 3),
        _t(r, 3, 2, 3, 2),
        _t(r, 2),
        {"strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 2], "dilations": [1, 2]},
    )
    add(
        "2d-groups",
        _t(r, 2, 4, 4, 3),
        _t(r, 4, 3, 3, 2),
        _t(r, 6),
        {"group": 2, "strides": [2, 1], "pads": [1, 0, 0, 1], "dilations": [1, 2], "output_padding": [1, 0]},
        skip_evaluator=_EV_CT_GROUP,
    )
    add("2d-depthwise", _t(r, 1, 3, 4, 3), _t(r, 3, 1, 2, 2), _t(r, 3), {"group": 3, "strides": [2, 2]})
    add("2d-same-upper", _t(r, 2, 3, 4, 3), _t(r, 3, 2, 3, 3), _t(r, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 2]})
    add("2d-valid", _t(r, 2, 3, 4, 3), _t(r, 3, 2, 3, 3), _t(r, 1), {"auto_pad": "VALID", "strides": [2, 1]})
    add("3d", _t(r, 1, 2, 3, 2, 3), _t(r, 2, 2, 2, 2, 2), _t(r, 2), {"strides": [2, 1, 2], "pads": [0, 1, 0, 1, 0, 0]})
    add("2d-large-norms", _t(r, 2, 3, 4, 3, scale=100.0), _t(r, 3, 2, 3, 3, scale=100.0), _t(r, 2), {"strides": [2, 2]})
    add(
        "2d-float16",
        _t(r, 2, 3, 4, 3, dtype=np.float16),
        _t(r, 3, 2, 3, 3, dtype=np.float16),
        _t(r, 2, dtype=np.float16),
        {"strides": [2, 2]},
        sc=s(1.0, 1e-2, np.float16),
        rtol=F16_RTOL,
    )
    return c


def _mask(r, b, h, lq, lk, p=0.7):
    m = r.random((b, h, lq, lk)) < p
    m[..., 0, :] = False  # one fully masked row in every (batch, head)
    return m


def attention_cases():
    r = _rng(4)
    s = _scalars
    c = []
    B, Lq, Lk, H, D = 2, 4, 5, 2, 4
    qkv = lambda dt=np.float32, sc=1.0: [
        _t(r, B, Lq, H, D, dtype=dt, scale=sc),
        _t(r, B, Lk, H, D, dtype=dt, scale=sc),
        _t(r, B, Lk, H, 3, dtype=dt),
    ]
    full = np.ones((1, 1, 1, 1), bool)
    for norm in ("softmax", "l1", "softermax"):
        c.append(Case(f"{norm}", "YatAttention", qkv() + [full] + s(1.2, 1e-3), {"normalization": norm}))
        c.append(
            Case(
                f"{norm}-mask-fully-masked-row",
                "YatAttention",
                qkv() + [_mask(r, B, H, Lq, Lk)] + s(),
                {"normalization": norm},
            )
        )
        c.append(
            Case(
                f"{norm}-causal-spherical",
                "YatAttention",
                qkv() + [full] + s(1.0, 1e-2),
                {"normalization": norm, "causal": 1, "spherical": 1},
            )
        )
    c.append(
        Case(
            "softermax-power3-key-mask",
            "YatAttention",
            qkv() + [r.random((B, 1, 1, Lk)) < 0.6] + s(),
            {"normalization": "softermax", "power": 3.0},
        )
    )
    c.append(Case("causal-lq<lk-bottom-right", "YatAttention", qkv() + [full] + s(), {"causal": 1}))
    c.append(Case("large-norms", "YatAttention", qkv(sc=30.0) + [full] + s(1.0, 1e-3), {"normalization": "l1"}))
    c.append(
        Case(
            "float16",
            "YatAttention",
            qkv(np.float16) + [_mask(r, B, H, Lq, Lk)] + s(1.0, 1e-2, np.float16),
            rtol=F16_RTOL,
        )
    )
    E = 8
    lin = lambda: [_t(r, E, E, scale=0.5), _t(r, E)]
    xs = [_t(r, B, Lq, E), _t(r, B, Lk, E), _t(r, B, Lk, E)]
    weights = lin() + lin() + lin() + lin()
    c.append(Case("mha", "YatMultiHeadAttention", xs + [full] + weights + s(), {"num_heads": 2}))
    c.append(
        Case(
            "mha-l1-mask",
            "YatMultiHeadAttention",
            xs + [_mask(r, B, 1, Lq, Lk)] + weights + s(1.0, 1e-3),
            {"num_heads": 4, "normalization": "l1"},
        )
    )
    c.append(
        Case(
            "mha-softermax-spherical-causal",
            "YatMultiHeadAttention",
            xs + [full] + weights + s(),
            {"num_heads": 2, "normalization": "softermax", "power": 2.0, "spherical": 1, "causal": 1},
        )
    )
    T = 7
    angles = np.arange(T)[:, None] * (10000.0 ** (-2 * np.arange(2) / 4))[None]
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    for il in (1, 0):
        tag = "interleaved" if il else "half"
        c.append(Case(f"rope-{tag}", "RotaryEmbedding", [_t(r, B, 5, H, 4), cos, sin], {"interleaved": il}))
        c.append(
            Case(
                f"rotary-mha-{tag}",
                "RotaryYatMultiHeadAttention",
                xs + [full] + weights + s() + [cos, sin],
                {"num_heads": 2, "interleaved": il, "causal": 1},
            )
        )
    c.append(
        Case(
            "rope-float16",
            "RotaryEmbedding",
            [_t(r, B, 5, H, 4, dtype=np.float16), cos.astype(np.float16), sin.astype(np.float16)],
            rtol=F16_RTOL,
        )
    )
    # linear-time performer
    m = 6
    proj = _t(r, m, 4)
    c.append(Case("performer-features", "YatPerformerFeatures", [_t(r, B, Lq, H, 4), proj], {"epsilon": 1e-5}))
    c.append(Case("performer-features-eps", "YatPerformerFeatures", [_t(r, 3, 4), proj], {"epsilon": 1e-2}))
    # the signed features make the l1 denominator ill-conditioned with very few features (m = 6 gives rows near
    # 0, where float32 rounding is amplified); 32 features keep it away from 0 for these inputs
    proj_mha = _t(r, 32, 4)
    feats = lambda L: np.abs(_t(r, B, L, H, m))
    for causal in (0, 1):
        c.append(
            Case(
                f"linear-attention-causal{causal}",
                "YatLinearAttention",
                [feats(Lk), feats(Lk), _t(r, B, Lk, H, 3)],
                {"causal": causal},
            )
        )
        xs_self = [_t(r, B, Lk, E)] * 3
        c.append(
            Case(
                f"performer-mha-causal{causal}",
                "YatPerformerMultiHeadAttention",
                xs_self + [full] + weights + s(1.0, 1e-5) + [proj_mha],
                {"num_heads": 2, "causal": causal},
            )
        )
    # sign-indefinite features exercise the sign-preserving shift of the denominator
    c.append(
        Case(
            "linear-attention-signed",
            "YatLinearAttention",
            [_t(r, B, Lq, H, m), _t(r, B, Lk, H, m), _t(r, B, Lk, H, 3)],
        )
    )
    c.append(
        Case(
            "linear-attention-zero-den",
            "YatLinearAttention",
            [np.zeros((1, 2, 1, 3), np.float32), _t(r, 1, 2, 1, 3), _t(r, 1, 2, 1, 2)],
        )
    )
    return c


def squash_cases():
    r = _rng(5)
    x = np.abs(_t(r, 3, 5))
    x[0, 0] = 0.0
    return [
        Case("softermax", "Softermax", [x]),
        Case("softermax-n2-axis0", "Softermax", [x], {"n": 2.0, "axis": 0, "epsilon": 1e-3}),
        Case("softermax-zeros", "Softermax", [np.zeros((2, 3), np.float32)]),
        Case("softer-sigmoid", "SofterSigmoid", [x], {"n": 1.5}),
        Case("soft-tanh", "SoftTanh", [x], {"n": 3.0}),
        Case("softermax-float16", "Softermax", [x.astype(np.float16)], {"n": 2.0}, rtol=F16_RTOL),
    ]


def random_feature_cases():
    """MAY / RAY / anchor features and attentions (issue 17), projections from nmn.core.random_features."""
    from nmn.core import random_features as rf

    r = _rng(6)
    B, L, H, E = 2, 5, 2, 8
    D = E // H
    may = rf.maclaurin_projection(D, 16, bias=1.0, epsilon=0.5, nmax=5, seed=1)
    may_args = [may["omega"], may["degmask"], may["scale"]]
    ray = rf.radial_projection(D, 3, 2, 4, bias=1.0, epsilon=0.5, seed=2)
    ray_args = [ray[k] for k in ("w1", "w2", "omega", "phase", "coef")]
    anc = rf.anchor_projection(D, 3, 2, 4, epsilon=1e-5, seed=3)
    anc_args = [anc[k] for k in ("anchors", "proj", "nodes", "weights")]
    c = [
        Case("may-features", "YatMaclaurinFeatures", [_t(r, B, L, H, D)] + may_args),
        Case("may-features-2d-eps", "YatMaclaurinFeatures", [_t(r, 3, D)] + may_args, {"epsilon": 1e-2}),
        Case(
            "may-features-float16",
            "YatMaclaurinFeatures",
            [_t(r, 3, D, dtype=np.float16)] + [a.astype(np.float16) for a in may_args],
            rtol=F16_RTOL,
        ),
        Case("ray-features", "YatRadialFeatures", [_t(r, B, L, H, D)] + ray_args),
        Case("ray-features-bias0", "YatRadialFeatures", [_t(r, 3, D)] + ray_args, {"bias": 0.0, "epsilon": 1e-3}),
        Case("anchor-features", "YatAnchorFeatures", [_t(r, B, L, H, D)] + anc_args),
        # large projections push exponents past the +-20 clip
        Case(
            "anchor-features-clip",
            "YatAnchorFeatures",
            [_t(r, 3, D)] + anc_args[:1] + [anc_args[1] * 40.0] + anc_args[2:],
        ),
        Case(
            "linear-attention-epsilon",
            "YatLinearAttention",
            [np.abs(_t(r, 1, 3, 1, 4)), np.abs(_t(r, 1, 3, 1, 4)), _t(r, 1, 3, 1, 2)],
            {"epsilon": 0.5},
        ),
        Case(
            "linear-attention-epsilon-causal",
            "YatLinearAttention",
            [np.abs(_t(r, 1, 3, 1, 4)), np.abs(_t(r, 1, 3, 1, 4)), _t(r, 1, 3, 1, 2)],
            {"epsilon": 0.25, "causal": 1},
        ),
    ]
    weights = []
    for _ in range(4):
        weights += [_t(r, E, E, scale=0.5), _t(r, E, scale=0.1)]
    full = np.ones((1, 1, 1, 1), bool)
    for causal in (0, 1):
        xs = [_t(r, B, L, E)] * 3
        c.append(
            Case(
                f"may-mha-causal{causal}",
                "YatMaclaurinMultiHeadAttention",
                xs + [full] + weights + _scalars() + may_args,
                {"num_heads": H, "causal": causal},
                rtol=1e-4,
            )
        )
        c.append(
            Case(
                f"ray-mha-causal{causal}",
                "YatRadialMultiHeadAttention",
                xs + [full] + weights + _scalars() + ray_args,
                {"num_heads": H, "causal": causal, "bias": 1.0},
                rtol=1e-4,
            )
        )
    return c


def all_cases():
    return (
        dense_cases()
        + conv_cases()
        + conv_transpose_cases()
        + attention_cases()
        + squash_cases()
        + random_feature_cases()
    )
