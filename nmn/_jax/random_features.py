"""nmn 0.3's bias-aware random-feature attentions (MAY, RAY, tensor-product / anchor) for JAX, shared by
``nmn.nnx`` and ``nmn.linen``: the layers' frozen MAY / RAY projections and forward, and the functional helpers
that :mod:`nmn.nnx.random_features` and :mod:`nmn.linen.random_features` spell with nmn 0.3.5's signatures.

The math is :mod:`nmn.core.random_features` (numpy samplers, feature maps written once on the ops namespace
``F``) and :func:`nmn.core.yat.linear_readout`; the ONNX functions ``nmn::YatMaclaurinFeatures``,
``nmn::YatRadialFeatures``, ``nmn::YatAnchorFeatures``, ``nmn::YatLinearAttention`` and the two MHA functions
are their normative definition. Sampling takes a JAX key: the key's bits become the numpy seed of the core
sampler inside :func:`jax.pure_callback`, so it also runs under ``jax.jit`` (a jitted Linen ``init``) and
``jax.eval_shape``; one key gives the same arrays in both Flax APIs.

>>> import jax
>>> arrays = layer_projection(jax.random.key(0), "maclaurin", 4, num_features=8, nmax=3, bias=0.0, epsilon=1e-5)
>>> sorted(arrays), arrays["may_omega"].shape
(['may_degmask', 'may_omega', 'may_scale'], (8, 3, 4))
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nmn._jax import layout as _layout
from nmn._jax.ops import F
from nmn.core import random_features as _rf
from nmn.core import yat as _yat
from nmn.core.options import DEFAULT_EPSILON, DEFAULTS, PERFORMER_NUM_FEATURES, performer_spec_options
from nmn.core.random_features import OLD_KEYS, check_helper_number, check_helper_params, check_normalize, pick_array
from nmn.core.spec import PERFORMER_KIND_KEYWORDS

__all__ = [
    "NORM_EPS",
    "RF_KEYWORDS",
    "RF_PARAMS",
    "layer_projection",
    "param_table",
    "performer_kwargs",
    "random_feature_attention",
]

#: the frozen projections of the random-feature performers, by ``performer_kind``: the neutral spec's param
#: names (also the NNX attribute and Linen ``'constants'`` names), in the order of the ONNX node's inputs
RF_PARAMS = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}
#: the kind keywords of ``MultiHeadYatAttention`` beyond performer_nmax / performer_bias (their defaults: DEFAULTS)
RF_KEYWORDS = PERFORMER_KIND_KEYWORDS
#: the features' normalisation epsilon ``x_hat = x / sqrt(|x|^2 + eps)`` (the ONNX functions' value)
NORM_EPS = float(DEFAULTS["random_feature_norm_epsilon"])

# nmn 0.3.5's key names of the sampled arrays -> the core sampler's
MAY_OLD, RAY_OLD, TP_OLD = OLD_KEYS["maclaurin"], OLD_KEYS["radial"], OLD_KEYS["anchor"]

# the helpers' argument checks, written once for the six frameworks (nmn.core.random_features)
number, normalize_flag = check_helper_number, check_normalize
_params, _pick = check_helper_params, pick_array


def _same(a):
    return a


def param_table(kind: str, config: dict):
    """:func:`nmn._jax.layout.param_table` with the MAY / RAY projections (``may_*`` / ``ray_*``, host path = the
    name) in place of the SLAY ``proj`` for ``performer_kind='maclaurin'`` / ``'radial'`` attentions."""
    rows = _layout.param_table(kind, config)
    performer = config.get("performer_kind", "slay") if config.get("use_performer") else None
    if kind == "MultiHeadYatAttention" and performer in RF_PARAMS:
        rows = [r for r in rows if r[0] != "proj"] + [(n, (n,), _same, _same) for n in RF_PARAMS[performer]]
    return rows


# ------------------------------------------------------------------------------------------------- sampling
def _seed_of(bits) -> int:
    hi, lo = (int(b) for b in np.asarray(bits, np.uint32).reshape(-1)[:2])
    return (hi << 32) | lo


def _key_bits(key):
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    return jax.random.bits(key, (2,), jnp.uint32)


def sample_with_key(key, sampler, shapes):
    """``sampler(seed)`` (numpy arrays with ``shapes``: ``[(shape, numpy dtype), ...]``) with the seed drawn from
    the JAX ``key``, through :func:`jax.pure_callback` (so it traces: a jitted ``init``, ``eval_shape``)."""
    specs = tuple(jax.ShapeDtypeStruct(s, d) for s, d in shapes)

    def host(bits):
        out = sampler(_seed_of(bits))
        return tuple(np.asarray(a, d) for a, (_, d) in zip(out, shapes))

    return jax.pure_callback(host, specs, _key_bits(key), vmap_method="sequential")


def layer_projection(
    key,
    kind: str,
    head_dim: int,
    *,
    num_features: int = 256,
    nmax: int = 40,
    sketch_m: int = 128,
    num_radial: int = 8,
    radial_dim: int = 64,
    bias: float = 0.0,
    epsilon: float = DEFAULT_EPSILON,
    dtype: Any = jnp.float32,
) -> dict:
    """The frozen projections of a MAY / RAY ``MultiHeadYatAttention`` (``{may_* | ray_*: array}``), sampled by
    :mod:`nmn.core.random_features` under the layer's kernel (``bias``, ``epsilon``) from a seed of ``key``."""
    f32 = np.float32
    if kind == "maclaurin":

        def sampler(seed):
            p = _rf.maclaurin_projection(head_dim, num_features, bias=bias, epsilon=epsilon, nmax=nmax, seed=seed)
            return p["omega"], p["degmask"], p["scale"]

        shapes = [((num_features, nmax, head_dim), f32), ((num_features, nmax), f32), ((1,), f32)]
    elif kind == "radial":

        def sampler(seed):
            p = _rf.radial_projection(head_dim, sketch_m, num_radial, radial_dim, bias=bias, epsilon=epsilon, seed=seed)
            return p["w1"], p["w2"], p["omega"], p["phase"], p["coef"]

        da = head_dim + 1
        shapes = [((sketch_m, da), f32), ((sketch_m, da), f32), ((num_radial, radial_dim, da), f32)]
        shapes += [((num_radial, radial_dim), f32), ((num_radial,), f32)]
    else:
        raise ValueError(f"layer_projection: performer_kind must be 'maclaurin' or 'radial', got {kind!r}")
    arrays = sample_with_key(key, sampler, shapes)
    return {name: a.astype(dtype) for name, a in zip(RF_PARAMS[kind], arrays)}


def _result_dtype(*xs):
    with jax.numpy_dtype_promotion("standard"):  # an explicit promotion (callers may run under 'strict')
        return jnp.result_type(*xs)


def _compute_dtype(*xs):
    dtype = _result_dtype(*xs)
    if not jnp.issubdtype(dtype, jnp.floating) or jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)  # float16 / bfloat16 heads compute in float32
    return dtype


def random_feature_attention(kind, q, k, v, arrays, *, bias: float, causal: bool) -> jax.Array:
    """The MAY / RAY layer forward of ``(B, L, H, D)`` heads: core features with the frozen ``arrays`` (in
    :data:`RF_PARAMS` order), the readout of :func:`nmn.core.yat.linear_readout` (no alpha: it cancels); float16 /
    bfloat16 heads compute in float32, the output has the value's dtype."""
    dtype = _compute_dtype(q, k, v)
    q, k, vv = (jnp.asarray(t).astype(dtype) for t in (q, k, v))
    arrs = [jnp.asarray(a).astype(dtype) for a in arrays]
    if kind == "maclaurin":
        qf = _rf.maclaurin_features(F, q, *arrs, epsilon=NORM_EPS)
        kf = _rf.maclaurin_features(F, k, *arrs, epsilon=NORM_EPS)
    else:
        qf = _rf.radial_features(F, q, *arrs, bias=bias, epsilon=NORM_EPS)
        kf = _rf.radial_features(F, k, *arrs, bias=bias, epsilon=NORM_EPS)
    return _yat.linear_readout(F, qf, kf, vv, causal=causal).astype(v.dtype)


# --------------------------------------------------------------------------------- functional helpers (0.3.5)


def float_input(fn: str, name: str, x: Any) -> jax.Array:
    try:
        x = jnp.asarray(x)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}") from None
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _like(a, x):
    return jnp.asarray(a).astype(x.dtype)


def _arrays(arrays: dict, dtype, old_names: dict) -> dict:
    out = {}
    for k, a in arrays.items():
        out[k] = a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.int32)
    for old, new in old_names.items():
        out[old] = out[new]
    return out


def maclaurin_coeffs(b, eps, nmax) -> np.ndarray:
    """``a_0..a_nmax`` of ``(t + b)^2 / (2 + eps - 2t)`` as float64 numpy (nmn 0.3.5 returned an ``ndarray``)."""
    return np.asarray(_rf.maclaurin_coeffs(float(b), float(eps), int(nmax)), np.float64)


def create_maclaurin(key, head_dim, num_features, bias, epsilon, nmax, dtype) -> dict:
    """The MAY dict: ``omega (M, nmax, D)`` (and ``omegas``), ``degmask (M, nmax)``, ``scale (1,)``,
    ``degrees (M,)`` int32 and the scalars ``Z``, ``num_features`` (and ``M``), ``nmax``, ``head_dim``,
    ``bias`` (and ``b``), ``epsilon`` (and ``eps``)."""

    def sampler(seed):
        p = _rf.maclaurin_projection(head_dim, num_features, bias=bias, epsilon=epsilon, nmax=nmax, seed=seed)
        return p["omega"], p["degmask"], p["scale"], p["degrees"]

    _rf.maclaurin_projection(head_dim, num_features, bias=bias, epsilon=epsilon, nmax=nmax, seed=0)  # checks
    m, n, d = int(num_features), int(nmax), int(head_dim)
    shapes = [((m, n, d), np.float32), ((m, n), np.float32), ((1,), np.float32), ((m,), np.int32)]
    arrays = dict(zip(("omega", "degmask", "scale", "degrees"), sample_with_key(key, sampler, shapes)))
    out = _arrays(arrays, dtype, MAY_OLD)
    z = float(maclaurin_coeffs(bias, epsilon, nmax).sum())
    return {**out, "Z": z, "num_features": m, "M": m, "nmax": n, "head_dim": d, "bias": float(bias),
            "b": float(bias), "epsilon": float(epsilon), "eps": float(epsilon)}  # fmt: skip


def create_radial(key, head_dim, sketch_m, num_radial, radial_dim, bias, epsilon, dtype) -> dict:
    """The RAY dict: ``w1``, ``w2 (m, D+1)``, ``omega (J, R, D+1)``, ``phase (J, R)``, ``coef (J,)`` (and 0.3.5's
    ``W1``, ``W2``, ``omegas``, ``phases``) and the scalars ``bias`` (and ``b``), ``sketch_m``, ``radial_dim``,
    ``num_radial``, ``head_dim``, ``epsilon`` (and ``eps``)."""
    _rf.radial_projection(head_dim, sketch_m, num_radial, radial_dim, bias=bias, epsilon=epsilon, seed=0)
    arrays = layer_projection(key, "radial", int(head_dim), sketch_m=int(sketch_m), num_radial=int(num_radial),
                              radial_dim=int(radial_dim), bias=bias, epsilon=epsilon)  # fmt: skip
    arrays = {name[4:]: a for name, a in arrays.items()}
    out = _arrays(arrays, dtype, RAY_OLD)
    return {**out, "bias": float(bias), "b": float(bias), "sketch_m": int(sketch_m), "radial_dim": int(radial_dim),
            "num_radial": int(num_radial), "head_dim": int(head_dim), "epsilon": float(epsilon),
            "eps": float(epsilon)}  # fmt: skip


def create_anchor(key, head_dim, num_prf_features, num_quad_nodes, num_anchor_features, epsilon, dtype) -> dict:
    """The tensor-product dict: ``anchors (P, D)``, ``proj (J, M, D)``, ``nodes (J,)``, ``weights (J,)`` (and
    0.3.5's ``projections``, ``quad_nodes``, ``quad_weights``) plus ``head_dim``, ``num_prf_features``,
    ``num_anchor_features``, ``num_scales``, ``epsilon`` (and ``eps``)."""
    sizes = (int(head_dim), int(num_prf_features), int(num_quad_nodes), int(num_anchor_features))
    _rf.anchor_projection(*sizes, epsilon=epsilon, seed=0)
    d, m, j, p = sizes

    def sampler(seed):
        a = _rf.anchor_projection(d, m, j, p, epsilon=epsilon, seed=seed)
        return a["anchors"], a["proj"], a["nodes"], a["weights"]

    shapes = [((p, d), np.float32), ((j, m, d), np.float32), ((j,), np.float32), ((j,), np.float32)]
    arrays = dict(zip(("anchors", "proj", "nodes", "weights"), sample_with_key(key, sampler, shapes)))
    out = _arrays(arrays, dtype, TP_OLD)
    return {**out, "head_dim": d, "num_prf_features": m, "num_anchor_features": p, "num_scales": j,
            "epsilon": float(epsilon), "eps": float(epsilon)}  # fmt: skip


def maclaurin_arrays(fn, params, x):
    params = _params(fn, params, "create_maclaurin_projection")
    omega = _like(_pick(fn, params, "omega", "omegas", "create_maclaurin_projection"), x)
    if "degmask" in params and "scale" in params:
        return omega, _like(params["degmask"], x), _like(params["scale"], x)
    # nmn 0.3.5's dict: degmask and scale from degrees and Z
    _params(fn, params, "create_maclaurin_projection", ("degrees", "Z"))
    m = params.get("num_features", params.get("M", omega.shape[0]))
    degrees = jnp.asarray(params["degrees"]).reshape(-1, 1)
    degmask = (jnp.arange(omega.shape[1])[None, :] < degrees).astype(x.dtype)
    scale = jnp.full((1,), math.sqrt(float(params["Z"]) / int(m)), x.dtype)
    return omega, degmask, scale


def maclaurin_feats(fn, x, params, normalize, epsilon):
    normalize_flag(fn, normalize)
    eps = number(fn, "epsilon", epsilon, positive=True)
    x = float_input(fn, "x", x)
    return _rf.maclaurin_features(F, x, *maclaurin_arrays(fn, params, x), epsilon=eps)


def radial_feats(fn, x, params, normalize, epsilon):
    normalize_flag(fn, normalize)
    eps = number(fn, "epsilon", epsilon, positive=True)
    x = float_input(fn, "x", x)
    c = "create_radial_projection"
    params = _params(fn, params, c, ("coef",))
    b = number(fn, "params['bias']", _pick(fn, params, "b", "bias", c))
    w1, w2, omega, phase = (_like(_pick(fn, params, new, old, c), x) for old, new in RAY_OLD.items())
    return _rf.radial_features(F, x, w1, w2, omega, phase, _like(params["coef"], x), bias=b, epsilon=eps)


def anchor_feats(fn, x, params, normalize, epsilon):
    normalize_flag(fn, normalize)
    eps = number(fn, "epsilon", epsilon, positive=True)
    x = float_input(fn, "x", x)
    c = "create_yat_tp_projection"
    params = _params(fn, params, c, ("anchors",))
    rest = [_like(_pick(fn, params, new, old, c), x) for old, new in TP_OLD.items()]
    return _rf.anchor_features(F, x, _like(params["anchors"], x), *rest, epsilon=eps)


def heads(fn, query, key, value):
    """``query, key, value`` as ``(B, L, H, D)`` arrays of one floating dtype (at least float32)."""
    ts = [float_input(fn, n, t) for n, t in (("query", query), ("key", key), ("value", value))]
    for name, t in zip(("query", "key", "value"), ts):
        if t.ndim != 4:
            raise ValueError(f"{fn}: expected {name} of shape (B, L, H, D), got shape {tuple(t.shape)}")
    dtype = _compute_dtype(*ts)
    return [t.astype(dtype) for t in ts]


def precision_context(fn, precision):
    """A context applying Flax's / nmn 0.3.5's ``precision`` (None, a ``jax.lax.Precision`` or its name) to every
    contraction inside it (``jax.default_matmul_precision``); ``fn`` names the caller in the error."""
    if precision is None:
        return contextlib.nullcontext()
    if isinstance(precision, lax.Precision):
        precision = precision.name.lower()
    if isinstance(precision, str):
        return jax.default_matmul_precision(precision.lower())
    raise ValueError(
        f"{fn}: precision must be None, a jax.lax.Precision or its name, got {precision!r} (a per-operand pair "
        "has no meaning here: the features and the readout are several contractions)"
    )


def _key_mask(fn, mask, kf):
    """0.3.5's key-padding mask ``[..., heads | 1, 1, kv_length]`` as a multiplier of the key features."""
    if mask is None:
        return kf
    mask = jnp.asarray(mask)
    b, lk, h, _ = kf.shape
    if mask.ndim != 4 or mask.shape[-2] != 1 or mask.shape[-1] != lk or mask.shape[0] not in (1, b):
        raise ValueError(
            f"{fn}: mask must be a key-padding mask of shape (B | 1, H | 1, 1, {lk}) (a query-dependent mask has no "
            f"linear-time readout; use causal=True for the causal one), got shape {tuple(mask.shape)}"
        )
    if mask.shape[1] not in (1, h):
        raise ValueError(f"{fn}: mask's head axis must be 1 or {h}, got shape {tuple(mask.shape)}")
    keep = jnp.swapaxes(mask[:, :, 0, :], 1, 2).astype(kf.dtype)  # (B|1, Lk, H|1)
    return kf * keep[..., None]


def readout(fn, qf, kf, v, causal, epsilon, *, mask=None, precision=None):
    eps = number(fn, "epsilon", epsilon)
    if not isinstance(causal, (bool, int, np.bool_)):
        raise ValueError(f"{fn}: causal must be a bool, got {causal!r}")
    names = ("query features", "key features", "value")
    ts = [float_input(fn, n, t) for n, t in zip(names, (qf, kf, v))]
    for name, t in zip(names, ts):
        if t.ndim != 4:
            raise ValueError(f"{fn}: expected {name} of shape (B, L, H, ·), got shape {tuple(t.shape)}")
    dtype = _result_dtype(*ts)
    qf, kf, v = (t.astype(dtype) for t in ts)
    if kf.shape[-1] != qf.shape[-1] or kf.shape[:3] != v.shape[:3] or qf.shape[0] != kf.shape[0]:
        raise ValueError(
            f"{fn}: query features {tuple(qf.shape)}, key features {tuple(kf.shape)} and value {tuple(v.shape)} "
            "must share B, H, the feature count (query/key) and (B, Lk, H) (key/value)"
        )
    if causal and qf.shape[1] != kf.shape[1]:
        raise ValueError(f"{fn}: causal=True needs Lq == Lk, got {qf.shape[1]} and {kf.shape[1]}")
    kf = _key_mask(fn, mask, kf)
    with precision_context(fn, precision):
        return _yat.linear_readout(F, qf, kf, v, causal=bool(causal), epsilon=eps)


_FEATURES = {"maclaurin": maclaurin_feats, "radial": radial_feats, "anchor": anchor_feats}


def attention(fn, kind, query, key, value, params, causal, epsilon, *, precision=None, mask=None):
    """A functional random-feature attention: features (normalisation epsilon :data:`NORM_EPS`) of the heads,
    then :func:`readout` with the caller's ``epsilon``; the output has the promoted input dtype."""
    q, k, v = heads(fn, query, key, value)
    feats = _FEATURES[kind]
    with precision_context(fn, precision):
        qf = feats(fn, q, params, True, NORM_EPS)
        kf = feats(fn, k, params, True, NORM_EPS)
    dtype = _result_dtype(jnp.asarray(query), jnp.asarray(key), jnp.asarray(value))
    out = readout(fn, qf, kf, v, causal, epsilon, mask=mask, precision=precision)
    return out.astype(dtype) if jnp.issubdtype(dtype, jnp.floating) else out


def kappa(fn, s, b, eps):
    """``(s + b)^2 / (2 + eps - 2 s)`` of cosines ``s`` (an array or a number)."""
    s = s if isinstance(s, (int, float)) else jnp.asarray(s)
    return _rf.spherical_kappa(F, s, number(fn, "b", b), number(fn, "eps", eps))


def performer_kwargs(config: dict, params: dict | None) -> dict:
    """The performer keywords of a neutral ``MultiHeadYatAttention`` config for the NNX / Linen ``from_spec``
    (``num_features``, ``performer_nmax``, ``performer_bias`` and, for MAY / RAY, the kind keys). A config
    without ``performer_kind`` is the SLAY performer (files written before the MAY / RAY kinds); a MAY config
    without ``performer_nmax`` takes the degree from its ``may_omega``."""
    c, params = config, params or {}
    kind = c.get("performer_kind", "slay") if c.get("use_performer", False) else "slay"
    first = {"slay": "proj", "maclaurin": "may_omega"}.get(kind)
    held = params.get(first) if first else None
    m = c.get("num_features") or (np.shape(held)[0] if held is not None else PERFORMER_NUM_FEATURES)
    out = dict(num_features=int(m), **performer_spec_options(c))
    if kind == "maclaurin":
        nmax = c.get("performer_nmax")
        out["performer_nmax"] = int(np.shape(held)[1]) if "performer_nmax" not in c and held is not None else nmax
    elif kind == "radial":
        out["performer_nmax"] = None
        out["num_features"] = PERFORMER_NUM_FEATURES  # RAY's feature count is its three sizes
    if kind != "slay":
        out.update({key: c[key] for key in RF_KEYWORDS if key in c})
    return out
