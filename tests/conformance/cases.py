"""The conformance table: one row per (op, options, shapes), run for every installed framework.

Each case gives a layer in the neutral spec form of tests/conformance/__init__.py (kind, config, canonical params), its
inputs in the canonical layout, and call-time options. ``onnx_call`` turns a case into the ``nmn`` function
call that defines it, so the same row feeds onnxruntime (forward oracle) and the numpy reference
(finite-difference gradient oracle). A new option is a new row here, not six new test files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nmn.core import random_features as core_rf
from nmn.core import yat as core_yat
from nmn.core.conv import conv_pads, normalize_padding, onnx_pads, transpose_geometry
from nmn.core.options import DEFAULTS, PERFORMER_NUM_FEATURES, resolve_alpha, resolve_bias
from nmn.core.spec import alpha_cancels

YAT_DEFAULTS = dict(
    use_bias=True,
    constant_bias=None,
    use_alpha=True,
    constant_alpha=None,
    epsilon=1e-5,
    learnable_epsilon=False,
    spherical=False,
    weight_normalized=False,
)


@dataclass
class Case:
    id: str
    kind: str
    config: dict
    params: dict
    inputs: list
    call: dict = field(default_factory=dict)
    grad: bool = False
    rtol: float = 1e-5  # forward: max |framework - ort| <= rtol * max |ort|
    grad_rtol: float = 2e-3  # gradient: against a float64 finite difference of the oracle
    # nmn 0.3's layer options that no file carries (softplus_bias, scalar_bias, mask in the canonical weight layout):
    # ``params`` then hold the RAW parameters (bias (1,) with scalar_bias) and the oracle runs on effective_params
    options: dict = field(default_factory=dict)


def _softplus(v):
    return np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)


def _yat_params(rng, cfg, weight_shape, fan_in, fan_out, n_out):
    params = {"weight": (rng.normal(size=weight_shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)}
    bias = resolve_bias(cfg["use_bias"], cfg["constant_bias"])
    if bias.mode == "learnable":
        params["bias"] = rng.normal(scale=0.1, size=(n_out,)).astype(np.float32)
    if resolve_alpha(cfg["use_alpha"], cfg["constant_alpha"]).learnable:
        params["alpha"] = np.array([1.3], np.float32)
    if cfg["learnable_epsilon"]:
        params["epsilon_param"] = np.array([math.log(math.expm1(cfg["epsilon"]))], np.float32)
    return params


def tail_inputs(config, params, n_out, dtype=np.float32):
    """(B, ALPHA, EPS) inputs of a Yat function for a layer's config and params (order: nmn.core.schemas)."""
    bias = resolve_bias(config.get("use_bias", False), config.get("constant_bias"))
    if bias.mode == "learnable":
        b = params["bias"]
    else:
        b = np.full((n_out,), bias.value, dtype)
    alpha = resolve_alpha(config.get("use_alpha", True), config.get("constant_alpha"))
    a = params["alpha"] if alpha.learnable else np.array([alpha.value], dtype)
    if config.get("learnable_epsilon"):
        e = _softplus(params["epsilon_param"].astype(np.float64)).astype(params["epsilon_param"].dtype)
    else:
        e = np.array([config.get("epsilon", 1e-5)], dtype)
    return [np.asarray(b, dtype), np.asarray(a, dtype), np.asarray(e, dtype)]


def effective_params(case: Case, params: dict) -> dict:
    """The parameters the ``nmn`` function sees for a row with ``options``: ``bias = softplus(b)`` (softplus_bias)
    broadcast to ``(n_out,)`` (scalar_bias), ``weight = weight * mask``; written here from the options' definition,
    independently of nmn.core.spec. Keeps the dtype (float64 for the finite-difference oracle)."""
    opts = case.options
    if not opts:
        return params
    out = dict(params)
    n_out = case.config.get("out_features") or case.config["out_channels"]
    if "bias" in out:
        b = out["bias"]
        if opts.get("softplus_bias"):
            b = _softplus(b.astype(np.float64)).astype(b.dtype)
        out["bias"] = np.broadcast_to(b, (n_out,)).copy()
    if opts.get("mask") is not None:
        out["weight"] = out["weight"] * opts["mask"].astype(out["weight"].dtype)
    return out


def onnx_call(case: Case, params: dict, inputs: list, dtype=np.float32):
    """The ``nmn`` function name, its input list and its attributes for a case (params may be float64)."""
    cfg, kind = case.config, case.kind
    params = effective_params(case, params)
    if kind == "YatNMN":
        return (
            "YatDense",
            [inputs[0], params["weight"], *tail_inputs(cfg, params, cfg["out_features"], dtype)],
            dict(spherical=int(cfg["spherical"]), weight_normalized=int(cfg["weight_normalized"])),
        )
    if kind == "YatConv":
        x = inputs[0]
        pairs = conv_pads(cfg["padding"], x.shape[2:], cfg["kernel_size"], cfg["strides"], cfg["dilations"])
        mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[cfg["padding_mode"]]
        return (
            "YatConv",
            [x, params["weight"], *tail_inputs(cfg, params, cfg["out_channels"], dtype)],
            dict(
                auto_pad="NOTSET",
                strides=list(cfg["strides"]),
                dilations=list(cfg["dilations"]),
                group=cfg["groups"],
                pads=onnx_pads(pairs),
                pad_mode=mode,
                weight_normalized=int(cfg["weight_normalized"]),
            ),
        )
    if kind == "YatConvTranspose":
        pairs, outpad = transpose_geometry(
            cfg["padding"], cfg["kernel_size"], cfg["strides"], cfg["dilations"], cfg["output_padding"]
        )
        return (
            "YatConvTranspose",
            [inputs[0], params["weight"], *tail_inputs(cfg, params, cfg["out_channels"], dtype)],
            dict(
                auto_pad="NOTSET",
                strides=list(cfg["strides"]),
                dilations=list(cfg["dilations"]),
                group=cfg["groups"],
                pads=onnx_pads(pairs),
                output_padding=list(outpad),
                weight_normalized=int(cfg.get("weight_normalized", False)),
            ),
        )
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        x = inputs[0]
        xk = inputs[1] if len(inputs) > 1 else x
        xv = inputs[2] if len(inputs) > 2 else xk
        e = cfg["embed_dim"]
        mask = case.call.get("mask")
        mask = np.ones((1, 1, 1, 1), bool) if mask is None else mask
        zeros = np.zeros((e,), dtype)
        proj = [params[f"{p}_weight"] for p in "qkv"]
        biases = [params.get(f"{p}_bias", zeros) for p in "qkv"]
        if cfg["use_out_proj"]:
            wo, bo = params["out_weight"], params.get("out_bias", zeros)
        else:
            wo, bo = np.eye(e, dtype=dtype), zeros
        alpha = resolve_alpha(cfg["use_alpha"], cfg["constant_alpha"])
        if "alpha" in params:
            a = params["alpha"]
        else:  # a constant, or 1 where a learnable alpha would cancel (issue 18 item 2: no parameter there)
            a = np.array([1.0 if alpha.learnable else alpha.value], dtype)
        eps = np.array([cfg["epsilon"]], dtype)
        ins = [x, xk, xv, mask, proj[0], biases[0], proj[1], biases[1], proj[2], biases[2], wo, bo, a, eps]
        attrs = dict(num_heads=cfg["num_heads"], causal=int(cfg["causal"]))
        performer = cfg.get("performer_kind", "slay") if cfg.get("use_performer") else None
        if performer == "maclaurin":  # MAY: the sampled projections after the 14 inputs (nmn.core.schemas)
            rf = [params[k] for k in ("may_omega", "may_degmask", "may_scale")]
            return "YatMaclaurinMultiHeadAttention", ins + rf, attrs
        if performer == "radial":  # RAY: bias is the sqrt(b) coordinate of z, an attribute
            rf = [params[k] for k in ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef")]
            attrs["bias"] = float(cfg.get("performer_bias", 0.0))
            return "YatRadialMultiHeadAttention", ins + rf, attrs
        if cfg.get("use_performer"):
            if "performer_nmax" in cfg or "performer_bias" in cfg:  # a config without them: the degree-3 bias-0 map
                m, head_dim = params["proj"].shape[0], e // cfg["num_heads"]
                attrs["degree"] = core_yat.performer_degree(m, head_dim, cfg.get("performer_nmax"))
                attrs["bias"] = float(cfg.get("performer_bias", 0.0))
            return "YatPerformerMultiHeadAttention", ins + [params["proj"]], attrs
        attrs.update(spherical=int(cfg["spherical"]), normalization=cfg["normalization"], power=float(cfg["power"]))
        if kind == "RotaryYatAttention":
            cos, sin = core_yat.rope_tables(e // cfg["num_heads"], cfg["max_seq_len"], cfg["theta"])
            attrs["interleaved"] = int(cfg["rope_style"] == "interleaved")
            return "RotaryYatMultiHeadAttention", ins + [np.array(cos, dtype), np.array(sin, dtype)], attrs
        return "YatMultiHeadAttention", ins, attrs
    if kind == "YatEmbed":
        alpha = resolve_alpha(cfg["use_alpha"], cfg["constant_alpha"])
        a = params["alpha"] if alpha.learnable else np.array([alpha.value], dtype)
        return (
            "YatEmbedAttend",
            [inputs[0], params["embedding"], a, np.array([cfg["epsilon"]], dtype)],
            dict(spherical=int(cfg["spherical"])),
        )
    if kind in ("softermax", "softer_sigmoid", "soft_tanh"):
        name = {"softermax": "Softermax", "softer_sigmoid": "SofterSigmoid", "soft_tanh": "SoftTanh"}[kind]
        attrs = {"n": float(cfg["n"])}
        if kind == "softermax":
            attrs.update(epsilon=float(cfg["epsilon"]), axis=int(cfg["axis"]))
        return name, [inputs[0]], attrs
    raise KeyError(kind)


# ----------------------------------------------------------------------------------------------------- builders
def dense_case(id, *, batch=3, n_in=5, n_out=4, grad=False, seed=0, scale=1.0, **opts):
    rng = np.random.default_rng(seed)
    cfg = dict(YAT_DEFAULTS, in_features=n_in, out_features=n_out, lazy=False)
    cfg.update(opts)
    params = _yat_params(rng, cfg, (n_out, n_in), n_in, n_out, n_out)
    x = (rng.normal(size=(*np.atleast_1d(batch), n_in)) * scale).astype(np.float32)
    return Case(id, "YatNMN", cfg, params, [x], grad=grad)


def _padding(padding, rank):
    p = normalize_padding(padding, rank, "case")
    return p if isinstance(p, str) else [list(pair) for pair in p]


def conv_case(
    id,
    *,
    rank=2,
    n=2,
    c=4,
    m=6,
    k=3,
    size=7,
    strides=1,
    dilations=1,
    groups=1,
    padding="valid",
    padding_mode="zeros",
    grad=False,
    seed=0,
    **opts,
):
    rng = np.random.default_rng(seed)
    ks = (k,) * rank
    cfg = dict(
        YAT_DEFAULTS,
        rank=rank,
        in_channels=c,
        out_channels=m,
        kernel_size=ks,
        strides=(strides,) * rank,
        dilations=(dilations,) * rank,
        groups=groups,
        padding=_padding(padding, rank),
        padding_mode=padding_mode,
    )
    cfg.update(opts)
    fan_in = (c // groups) * k**rank
    params = _yat_params(rng, cfg, (m, c // groups, *ks), fan_in, m * k**rank // groups, m)
    x = rng.normal(size=(n, c, *(size,) * rank)).astype(np.float32)
    return Case(id, "YatConv", cfg, params, [x], grad=grad)


def conv_transpose_case(
    id,
    *,
    rank=2,
    n=2,
    c=4,
    m=6,
    k=3,
    size=5,
    strides=2,
    dilations=1,
    groups=1,
    padding="valid",
    output_padding=None,
    grad=False,
    seed=0,
    **opts,
):
    rng = np.random.default_rng(seed)
    ks = (k,) * rank
    cfg = dict(
        YAT_DEFAULTS,
        rank=rank,
        in_channels=c,
        out_channels=m,
        kernel_size=ks,
        strides=(strides,) * rank,
        dilations=(dilations,) * rank,
        groups=groups,
        padding=_padding(padding, rank),
        output_padding=tuple(output_padding or (0,) * rank),
    )
    cfg.update(opts)
    params = _yat_params(rng, cfg, (c, m // groups, *ks), c * k**rank, m * k**rank, m)
    x = rng.normal(size=(n, c, *(size,) * rank)).astype(np.float32)
    return Case(id, "YatConvTranspose", cfg, params, [x], grad=grad)


def attention_case(
    id,
    *,
    kind="MultiHeadYatAttention",
    b=2,
    l=5,
    e=8,
    h=2,
    cross=False,
    mask=None,
    grad=False,
    seed=0,
    rtol=1e-5,
    **opts,
):
    rng = np.random.default_rng(seed)
    cfg = dict(
        embed_dim=e,
        num_heads=h,
        use_bias=True,
        use_alpha=True,
        constant_alpha=None,
        epsilon=1e-5,
        spherical=False,
        normalization="softmax",
        power=1.0,
        use_out_proj=True,
        causal=False,
        use_performer=False,
        num_features=16,
    )
    if kind == "RotaryYatAttention":
        cfg.update(max_seq_len=32, theta=10000.0, rope_style="interleaved")
    cfg.update(opts)
    params = {}
    for p in ("q", "k", "v", "out"):
        if p == "out" and not cfg["use_out_proj"]:
            continue
        params[f"{p}_weight"] = (rng.normal(size=(e, e)) / math.sqrt(e)).astype(np.float32)
        if cfg["use_bias"]:
            params[f"{p}_bias"] = rng.normal(scale=0.1, size=(e,)).astype(np.float32)
    learnable = resolve_alpha(cfg["use_alpha"], cfg["constant_alpha"]).learnable
    if learnable and not alpha_cancels(cfg["normalization"], cfg["use_performer"]):
        params["alpha"] = np.array([1.2], np.float32)
    performer = cfg.get("performer_kind", "slay") if cfg["use_performer"] else None
    if performer == "slay":
        params["proj"] = rng.normal(size=(cfg["num_features"], e // h)).astype(np.float32)
    elif performer is not None:
        params.update(random_feature_params(cfg, e // h, seed=seed + 100))
    inputs = [rng.normal(size=(b, l, e)).astype(np.float32)]
    if cross:
        inputs += [rng.normal(size=(b, l + 2, e)).astype(np.float32)] * 2
    call = {} if mask is None else {"mask": mask}
    return Case(id, kind, cfg, params, inputs, call=call, grad=grad, rtol=rtol)


def random_feature_params(cfg: dict, head_dim: int, *, seed: int) -> dict:
    """The frozen MAY / RAY projections of an attention row, sampled by nmn's core samplers
    (``nmn.core.random_features``) under the row's kernel (``performer_bias``, ``epsilon``), float32, by their
    neutral names (``may_*`` / ``ray_*``)."""
    common = dict(bias=cfg.get("performer_bias", 0.0), epsilon=cfg["epsilon"], seed=seed)
    if cfg["performer_kind"] == "maclaurin":
        nmax = cfg.get("performer_nmax") or 40
        p = core_rf.maclaurin_projection(head_dim, cfg["num_features"], nmax=nmax, **common)
        arrays = {"may_omega": p["omega"], "may_degmask": p["degmask"], "may_scale": p["scale"]}
    else:
        sizes = (cfg["performer_sketch_m"], cfg["performer_num_radial"], cfg["performer_radial_dim"])
        p = core_rf.radial_projection(head_dim, *sizes, **common)
        arrays = {f"ray_{k}": p[k] for k in ("w1", "w2", "omega", "phase", "coef")}
    return {k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}


def may_case(id, **opts):
    """A MAY row (``performer_kind='maclaurin'``): tiny sizes, degree 6 unless given."""
    cfg = dict(use_performer=True, performer_kind="maclaurin", num_features=16, performer_nmax=6, performer_bias=0.0)
    cfg.update(RAY_DEFAULTS, **opts)
    return attention_case(id, rtol=RF_RTOL, **cfg)


def ray_case(id, **opts):
    """A RAY row (``performer_kind='radial'``): sketch width 4, 2 radial nodes of 4 Fourier features each,
    ``epsilon`` 1.0 (the kernel's eps: see the rows' comment)."""
    cfg = dict(use_performer=True, performer_kind="radial", num_features=PERFORMER_NUM_FEATURES, performer_nmax=None)
    cfg.update(performer_bias=0.0, performer_sketch_m=4, performer_num_radial=2, performer_radial_dim=4, epsilon=1.0)
    cfg.update(opts)
    return attention_case(id, rtol=RF_RTOL, **cfg)


#: the sizes' defaults a MAY row's config carries (every exporter writes all four kind keys)
RAY_DEFAULTS = {k: DEFAULTS[k] for k in ("performer_sketch_m", "performer_num_radial", "performer_radial_dim")}
#: the forward tolerance of the MAY / RAY rows: sign-indefinite features under an l1 denominator, as the SLAY
#: performer's export check (nmn.interchange.graph.PERFORMER_RTOL)
RF_RTOL = 5e-5


def embed_case(id, *, v=7, f=6, grad=False, seed=0, **opts):
    rng = np.random.default_rng(seed)
    cfg = dict(num_embeddings=v, features=f, use_alpha=True, constant_alpha=None, epsilon=1e-5, spherical=False)
    cfg.update(opts)
    params = {"embedding": (rng.normal(size=(v, f)) / math.sqrt(f)).astype(np.float32)}
    if resolve_alpha(cfg["use_alpha"], cfg["constant_alpha"]).learnable:
        params["alpha"] = np.array([0.9], np.float32)
    q = rng.normal(size=(3, 2, f)).astype(np.float32)
    return Case(id, "YatEmbed", cfg, params, [q], call={"method": "attend"}, grad=grad)


def squash_case(id, kind, *, grad=False, seed=0, **opts):
    rng = np.random.default_rng(seed)
    cfg = dict(n=1.0, epsilon=1e-12, axis=-1) if kind == "softermax" else dict(n=1.0)
    cfg.update(opts)
    x = rng.uniform(0.05, 2.0, size=(3, 5)).astype(np.float32)
    return Case(id, kind, cfg, {}, [x], grad=grad)


_LAYOUT = {"YatNMN": "dense", "YatConv": "conv", "YatConvTranspose": "conv_transpose"}


def host_options(case_kind: str, options: dict, framework: str, groups: int = 1) -> dict:
    """A row's ``options`` as constructor keywords of ``framework``: the canonical mask in the host's kernel layout
    (``nmn.core.layouts``, the documented meaning of ``mask``)."""
    from nmn.core import layouts

    out = dict(options)
    if out.get("mask") is not None:
        out["mask"] = np.ascontiguousarray(
            layouts.to_host(framework, _LAYOUT[case_kind], out["mask"], groups=groups), np.float32
        )
    return out


def with_options(case: Case, id: str, *, grad: bool = False, seed: int = 11, mask=None, **options) -> Case:
    """``case`` with nmn 0.3's ``softplus_bias`` / ``scalar_bias`` and a kernel ``mask`` (canonical weight layout;
    ``mask='random'`` draws a 0/1 mask with about a third of the taps off, ``'causal'`` zeroes the last tap of a
    1-D kernel). With ``scalar_bias`` the raw bias becomes one number; with ``softplus_bias`` the raw bias is
    spread over both signs so that softplus bends it."""
    rng = np.random.default_rng(seed)
    params = dict(case.params)
    if options.get("scalar_bias"):
        params["bias"] = np.array([rng.normal(scale=0.5)], np.float32)
    elif options.get("softplus_bias"):
        params["bias"] = rng.normal(scale=0.8, size=params["bias"].shape).astype(np.float32)
    opts = dict(options)
    if isinstance(mask, str):
        shape = params["weight"].shape
        if mask == "random":
            m = (rng.random(shape) > 0.35).astype(np.float32)
        else:
            m = np.ones(shape, np.float32)
            m[..., -1] = 0.0
        opts["mask"] = m
    return Case(id, case.kind, case.config, params, case.inputs, call=case.call, grad=grad, options=opts)


_rng = np.random.default_rng(7)
_MASK = _rng.random((2, 1, 5, 5)) > 0.3
_MASK[0, 0, 1, :] = False  # one fully masked row: uniform weights, never NaN

CASES = [
    # dense
    dense_case("dense-default", grad=True),
    dense_case("dense-nobias", use_bias=False, grad=True),
    dense_case("dense-constbias", constant_bias=0.5),
    dense_case("dense-constalpha", constant_alpha=True, grad=True),
    dense_case("dense-constalpha-num", constant_alpha=0.7),
    dense_case("dense-noalpha", use_alpha=False),
    dense_case("dense-learnable-eps", learnable_epsilon=True, epsilon=0.1, grad=True),
    dense_case("dense-spherical", spherical=True, grad=True),
    dense_case("dense-weightnorm", weight_normalized=True, grad=True),
    dense_case("dense-eps-large", epsilon=2.0),
    dense_case("dense-large-norm", scale=100.0),
    dense_case("dense-3d-input", batch=(2, 3), n_in=5, n_out=3),
    # conv
    conv_case("conv2d-valid", grad=True, size=5),
    conv_case("conv2d-same", padding="same"),
    conv_case("conv2d-stride2-pad1", strides=2, padding=1),
    conv_case("conv2d-dilation2", dilations=2, padding="same"),
    conv_case("conv2d-groups2", groups=2, grad=True, size=5),
    conv_case("conv2d-depthwise", groups=4, m=8),
    conv_case("conv2d-reflect", padding=1, padding_mode="reflect"),
    conv_case("conv2d-replicate", padding=1, padding_mode="replicate"),
    conv_case("conv2d-circular", padding=1, padding_mode="circular"),
    conv_case("conv2d-nobias-noalpha", use_bias=False, use_alpha=False),
    conv_case("conv2d-weightnorm", weight_normalized=True),
    conv_case("conv2d-learnable-eps", learnable_epsilon=True, epsilon=0.05, grad=True, size=5),
    conv_case("conv1d-valid", rank=1, size=9, grad=True),
    conv_case("conv1d-causal", rank=1, size=9, padding="causal", dilations=2),
    conv_case("conv1d-stride2-same", rank=1, size=9, strides=2, padding="same"),
    conv_case("conv3d-valid", rank=3, c=2, m=3, k=2, size=4),
    conv_case("conv3d-same-groups", rank=3, c=2, m=4, k=3, size=4, groups=2, padding="same"),
    # conv-transpose
    conv_transpose_case("convT2d-stride2", grad=True, size=3),
    conv_transpose_case("convT2d-same", padding="same"),
    conv_transpose_case("convT2d-pad1-outpad1", padding=1, output_padding=(1, 1)),
    conv_transpose_case("convT2d-groups2", groups=2, grad=True, size=3),
    conv_transpose_case("convT2d-dilation2", dilations=2, strides=1),
    conv_transpose_case("convT1d", rank=1, size=6, k=4),
    conv_transpose_case("convT1d-k1-stride3", rank=1, size=4, k=1, strides=3),
    conv_transpose_case("convT3d", rank=3, c=2, m=2, k=2, size=3),
    conv_transpose_case("convT2d-constalpha-nobias", constant_alpha=True, use_bias=False),
    conv_transpose_case("convT2d-weightnorm", weight_normalized=True, grad=True, size=3),
    conv_transpose_case("convT2d-groups2-weightnorm", groups=2, weight_normalized=True),
    # attention
    attention_case("mha-default", grad=True),
    attention_case("mha-mask", mask=_MASK),
    attention_case("mha-causal", causal=True),
    attention_case("mha-cross", cross=True),
    attention_case("mha-l1", normalization="l1"),
    attention_case("mha-softermax", normalization="softermax", power=2.0, mask=_MASK),
    attention_case("mha-spherical", spherical=True, grad=True),
    attention_case("mha-constalpha-noout", constant_alpha=True, use_out_proj=False),
    attention_case("mha-nobias", use_bias=False),
    attention_case("performer", use_performer=True, grad=True),
    attention_case("performer-causal", use_performer=True, causal=True),
    # nmn 0.3's bias-aware random-feature attentions (issue 17): projections from nmn.core.random_features
    # (seeds picked so that float32 and float64 agree to ~1e-6 in torch: with 16 features the l1 denominator of
    # some seeds comes near 0; RAY at epsilon 1.0, since eps = 1e-5 puts radial frequencies ~ 1/sqrt(eps) into
    # its cosines, which float32 cannot resolve: relative errors ~1e-3 at these tiny sizes)
    # no MAY gradient row: SCALE cancels in the l1 readout (its gradient ~1e-4 of the others is float32 noise in
    # the frameworks that differentiate in float32); RAY's row checks every parameter's gradient, buffers included
    may_case("may"),
    may_case("may-causal", causal=True, seed=10),
    may_case("may-bias1", performer_bias=1.0, performer_nmax=8, seed=2),
    ray_case("ray", seed=2, grad=True),
    ray_case("ray-causal", causal=True, seed=1),
    ray_case("ray-bias1", performer_bias=1.0, seed=1),
    attention_case("rotary", kind="RotaryYatAttention", grad=True),
    attention_case("rotary-half-causal", kind="RotaryYatAttention", rope_style="half", causal=True),
    # embedding attend
    embed_case("embed-attend", grad=True),
    embed_case("embed-attend-constalpha-spherical", constant_alpha=True, spherical=True),
    # nmn 0.3's bias options and the conv kernel mask (the oracle runs on effective_params)
    with_options(dense_case("d"), "dense-softplus-bias", softplus_bias=True, grad=True),
    with_options(dense_case("d"), "dense-scalar-bias", scalar_bias=True, grad=True),
    with_options(
        dense_case("d", weight_normalized=True), "dense-softplus-scalar-wn", softplus_bias=True, scalar_bias=True
    ),
    with_options(conv_case("c", size=5), "conv2d-mask", mask="random", grad=True),
    with_options(
        conv_case("c", groups=2, size=5, padding="same"),
        "conv2d-mask-softplus-scalar-groups2",
        mask="random",
        softplus_bias=True,
        scalar_bias=True,
        grad=True,
    ),
    with_options(conv_case("c", weight_normalized=True, size=5), "conv2d-mask-weightnorm", mask="random"),
    with_options(conv_case("c", rank=1, size=9), "conv1d-mask-lasttap-softplus", mask="causal", softplus_bias=True),
    with_options(conv_case("c", rank=3, c=2, m=3, k=2, size=4), "conv3d-mask-scalar", mask="random", scalar_bias=True),
    with_options(
        conv_transpose_case("t", size=3), "convT2d-mask-softplus", mask="random", softplus_bias=True, grad=True
    ),
    with_options(
        conv_transpose_case("t", rank=1, size=4, groups=2),
        "convT1d-mask-scalar-groups2",
        mask="random",
        scalar_bias=True,
        grad=True,
    ),
    # squashers
    squash_case("softermax", "softermax", grad=True),
    squash_case("softermax-n2-axis0", "softermax", n=2.0, axis=0),
    squash_case("softer-sigmoid", "softer_sigmoid", n=1.5, grad=True),
    squash_case("soft-tanh", "soft_tanh", n=2.0, grad=True),
]
