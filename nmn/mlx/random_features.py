"""nmn 0.3's functional bias-aware random-feature attentions for MLX: MAY, RAY and tensor-product (anchor).

The approximated score of unit vectors ``t = q_hat . k_hat`` is ``kappa_b(t) = (t + b)^2 / (2 + eps - 2t)``
(:func:`spherical_kappa`); an attention is ``phi(q) (phi(K)^T V) / (phi(q) . sum phi(K))`` in linear time.

* **MAY** -- :func:`create_maclaurin_projection`, :func:`maclaurin_features`, :func:`maclaurin_yat_attention`
  (nmn 0.3's ``nmn.mlx.may``)
* **RAY** -- :func:`create_radial_projection`, :func:`radial_features`, :func:`radial_yat_attention`
  (``nmn.mlx.ray``; MLX's own defaults ``sketch_m=8, num_radial=4, radial_dim=8``)
* **TP / anchor** -- :func:`create_yat_tp_projection`, :func:`yat_tp_features`, :func:`yat_tp_attention`
  (``nmn.mlx.performer``)
* readouts -- :func:`linear_attention_readout` (nmn 0.3 torch's name) and :func:`linear_attention` (Linen's)

The samplers are :mod:`nmn.core.random_features` (numpy; the dicts here hold their arrays as ``mx.array``), the
feature maps are the core's, written once for all six frameworks, and the readout is
:func:`nmn.core.yat.linear_readout`; the ONNX functions ``nmn::YatMaclaurinFeatures``, ``nmn::YatRadialFeatures``,
``nmn::YatAnchorFeatures`` and ``nmn::YatLinearAttention`` are the normative definition. For a layer with its
projection frozen in the module (and an ONNX export) use
``MultiHeadYatAttention(use_performer=True, performer_kind="maclaurin" | "radial")``.

Differences from nmn 0.3.5 (same names, signatures and defaults):

* the MAY dict also holds ``degmask`` and ``scale`` (what the ONNX function takes) and the unused rows of
  ``omega`` are zero; 0.3.5's dicts (``omegas``, ``degrees``, ``Z``) are accepted by the feature functions.
* the readout's denominator shift keeps the sign of ``phi(q) . sum phi(K)`` (0.3.5 added ``+epsilon``, which can
  cross zero for the sign-indefinite MAY / RAY features).
* the features are always computed on the sphere (``normalize=False`` is refused, as the ONNX functions define
  the features of ``x_hat = x / sqrt(|x|^2 + epsilon)``).
* :func:`yat_tp_attention` reads the features out as they are (0.3.5 added ``epsilon`` to every feature and
  normalised with the caller's ``epsilon``; here the attentions normalise with 1e-6, as the ONNX functions do).
* the draws of a given ``seed`` differ from 0.3.5's (same distributions); ``degrees`` is int64.

>>> import mlx.core as mx
>>> p = create_maclaurin_projection(8, num_features=16, nmax=6, seed=0)
>>> q = mx.random.normal((1, 5, 2, 8))
>>> maclaurin_features(q, p).shape, maclaurin_yat_attention(q, q, q, p, causal=True).shape
((1, 5, 2, 16), (1, 5, 2, 8))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nmn.core import random_features as _rf
from nmn.core import yat as _yat
from nmn.core.options import DEFAULT_EPSILON, DEFAULTS
from nmn.core.random_features import OLD_KEYS, check_helper_number, check_helper_params, check_normalize
from nmn.mlx._ops import F, mx

__all__ = [
    "maclaurin_coeffs",
    "create_maclaurin_projection",
    "maclaurin_features",
    "maclaurin_yat_attention",
    "create_radial_projection",
    "radial_features",
    "radial_yat_attention",
    "create_yat_tp_projection",
    "yat_tp_features",
    "yat_tp_attention",
    "spherical_kappa",
    "linear_attention",
    "linear_attention_readout",
]

#: the normalisation epsilon of the features inside the attentions (the ONNX functions' value)
_NORM_EPS = float(DEFAULTS["random_feature_norm_epsilon"])

# nmn 0.3.5's key names of the sampled tensors -> the core sampler's
_MAY_OLD, _RAY_OLD, _TP_OLD = OLD_KEYS["maclaurin"], OLD_KEYS["radial"], OLD_KEYS["anchor"]


# ---------------------------------------------------------------------------------------------------- checks


def _pick(params: dict, new: str, old: str) -> Any:
    return params[new] if new in params else params[old]


def _like(t: Any, x: mx.array) -> mx.array:
    return (t if isinstance(t, mx.array) else mx.array(np.asarray(t))).astype(x.dtype)


def _float_input(fn: str, name: str, x: Any) -> mx.array:
    if not isinstance(x, mx.array):
        raise TypeError(f"{fn}: {name} must be an mx.array, got {type(x).__name__}")
    return x if mx.issubdtype(x.dtype, mx.floating) else x.astype(mx.float32)


def _common(*ts: mx.array) -> list[mx.array]:
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = mx.result_type(dtype, t.dtype)
    return [t.astype(dtype) for t in ts]


def _heads(fn: str, query, key, value):
    """``query, key, value`` as ``(B, L, H, D)`` arrays of one floating dtype."""
    ts = [_float_input(fn, n, t) for n, t in (("query", query), ("key", key), ("value", value))]
    for name, t in zip(("query", "key", "value"), ts):
        if t.ndim != 4:
            raise ValueError(f"{fn}: expected {name} of shape (B, L, H, D), got shape {tuple(t.shape)}")
    return _common(*ts)


def _arrays(arrays: dict, dtype: mx.Dtype, old_names: dict) -> dict:
    out = {}
    for k, a in arrays.items():
        a = np.asarray(a)
        out[k] = mx.array(a).astype(dtype) if a.dtype.kind == "f" else mx.array(a.astype(np.int64))
    for old, new in old_names.items():
        out[old] = out[new]
    return out


# ------------------------------------------------------------------------------------------------------ MAY
def maclaurin_coeffs(b: float, epsilon: float, nmax: int) -> np.ndarray:
    """The Maclaurin coefficients ``a_0..a_nmax`` of ``(t + b)^2 / (2 + epsilon - 2t)`` (float64, ``nmax + 1``).

    >>> maclaurin_coeffs(0.0, 0.0, 3).tolist()
    [0.0, 0.0, 0.5, 0.5]
    """
    return np.asarray(_rf.maclaurin_coeffs(float(b), float(epsilon), int(nmax)), np.float64)


def create_maclaurin_projection(
    head_dim: int,
    num_features: int = 256,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    nmax: int = 40,
    dtype: mx.Dtype = mx.float32,
    seed: int | np.random.Generator | None = None,
) -> dict[str, Any]:
    """The fixed MAY projection shared by q and k (:func:`nmn.core.random_features.maclaurin_projection`).

    Returns a dict of ``omega (M, nmax, D)`` (also under 0.3.5's name ``omegas``), ``degmask (M, nmax)``,
    ``scale (1,)`` (``dtype``), ``degrees (M,)`` int64, and the scalars ``Z``, ``num_features``, ``nmax``,
    ``head_dim``, ``b``, ``eps``. ``seed``: None, an int or a numpy Generator.

    >>> p = create_maclaurin_projection(4, 8, nmax=5, seed=0)
    >>> p["omegas"].shape, p["degmask"].shape, p["nmax"]
    ((8, 5, 4), (8, 5), 5)
    """
    arrays = _rf.maclaurin_projection(head_dim, num_features, bias=bias, epsilon=epsilon, nmax=nmax, seed=seed)
    out = _arrays(arrays, dtype, _MAY_OLD)
    z = float(maclaurin_coeffs(bias, epsilon, nmax).sum())
    return {**out, "Z": z, "head_dim": int(head_dim), "num_features": int(num_features), "nmax": int(nmax),
            "b": float(bias), "eps": float(epsilon)}  # fmt: skip


def _maclaurin_arrays(fn: str, params: Any, x: mx.array):
    params = check_helper_params(fn, params, "create_maclaurin_projection", ())
    if "degmask" in params and "scale" in params:
        return _like(_pick(params, "omega", "omegas"), x), _like(params["degmask"], x), _like(params["scale"], x)
    check_helper_params(fn, params, "create_maclaurin_projection", ("omegas", "degrees", "Z", "num_features"))
    omega = _like(params["omegas"], x)  # nmn 0.3.5's dict: degmask and scale from degrees and Z
    degrees = mx.array(np.asarray(params["degrees"])).reshape(-1, 1)
    degmask = (mx.arange(omega.shape[1])[None, :] < degrees).astype(x.dtype)
    scale = mx.array([math.sqrt(float(params["Z"]) / int(params["num_features"]))]).astype(x.dtype)
    return omega, degmask, scale


def maclaurin_features(x: mx.array, params: dict[str, Any], normalize: bool = True, epsilon: float = 1e-6) -> mx.array:
    """MAY features ``phi(x) (..., M)`` of ``x (..., head_dim)``
    (:func:`nmn.core.random_features.maclaurin_features`): ``E[phi(q) . phi(k)]`` is the degree-``nmax``
    Maclaurin truncation of ``kappa_b(q_hat . k_hat)``. ``epsilon``: of ``x_hat = x / sqrt(|x|^2 + epsilon)``.
    Sign-indefinite (odd degrees)."""
    fn = "maclaurin_features"
    check_normalize(fn, normalize)
    eps = check_helper_number(fn, "epsilon", epsilon, positive=True)
    x = _float_input(fn, "x", x)
    omega, degmask, scale = _maclaurin_arrays(fn, params, x)
    return _rf.maclaurin_features(F, x, omega, degmask, scale, epsilon=eps)


def maclaurin_yat_attention(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    params: dict[str, Any],
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> mx.array:
    """Linear-time bias-aware spherical Yat attention with MAY features: ``(B, Lq, H, D)`` query,
    ``(B, Lk, H, D)`` key, ``(B, Lk, H, Dv)`` value -> ``(B, Lq, H, Dv)``; ``causal`` by prefix sums (``Lq == Lk``);
    ``epsilon``: the readout's denominator shift."""
    fn = "maclaurin_yat_attention"
    q, k, v = _heads(fn, query, key, value)
    qf = maclaurin_features(q, params, epsilon=_NORM_EPS)
    kf = maclaurin_features(k, params, epsilon=_NORM_EPS)
    return _readout(fn, qf, kf, v, causal, epsilon)


# ------------------------------------------------------------------------------------------------------ RAY
def create_radial_projection(
    head_dim: int,
    sketch_m: int = 8,
    num_radial: int = 4,
    radial_dim: int = 8,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    dtype: mx.Dtype = mx.float32,
    seed: int | np.random.Generator | None = None,
) -> dict[str, Any]:
    """The fixed RAY projection shared by q and k (:func:`nmn.core.random_features.radial_projection`).

    Returns ``w1``, ``w2 (m, D+1)``, ``omega (J, R, D+1)``, ``phase (J, R)``, ``coef (J,)`` (also under 0.3.5's
    names ``W1``, ``W2``, ``omegas``, ``phases``) and the scalars ``bias`` (and ``b``), ``eps``, ``head_dim``,
    ``sketch_m``, ``radial_dim``, ``num_radial``.

    >>> p = create_radial_projection(4, seed=0)
    >>> p["W1"].shape, p["omegas"].shape, p["coef"].shape
    ((8, 5), (4, 8, 5), (4,))
    """
    arrays = _rf.radial_projection(head_dim, sketch_m, num_radial, radial_dim, bias=bias, epsilon=epsilon, seed=seed)
    out = _arrays(arrays, dtype, _RAY_OLD)
    return {**out, "bias": float(bias), "b": float(bias), "eps": float(epsilon), "head_dim": int(head_dim),
            "sketch_m": int(sketch_m), "radial_dim": int(radial_dim), "num_radial": int(num_radial)}  # fmt: skip


def radial_features(x: mx.array, params: dict[str, Any], normalize: bool = True, epsilon: float = 1e-6) -> mx.array:
    """RAY features ``phi(x) (..., sketch_m * num_radial * radial_dim)`` of ``x (..., head_dim)``
    (:func:`nmn.core.random_features.radial_features`): a degree-2 sketch of ``(t + b)^2`` times radial random
    Fourier features of ``1 / (eps + |q_hat - k_hat|^2)``. Sign-indefinite."""
    fn = "radial_features"
    check_normalize(fn, normalize)
    eps = check_helper_number(fn, "epsilon", epsilon, positive=True)
    x = _float_input(fn, "x", x)
    params = check_helper_params(fn, params, "create_radial_projection", ("coef",))
    if "b" not in params and "bias" not in params:
        raise ValueError(f"{fn}: params lacks ['bias']; pass the dict that create_radial_projection returns")
    b = check_helper_number(fn, "params['bias']", _pick(params, "b", "bias"))
    try:
        w1, w2, omega, phase = [_like(_pick(params, new, old), x) for old, new in _RAY_OLD.items()]
    except KeyError as err:
        raise ValueError(f"{fn}: params lacks {err}; pass the dict that create_radial_projection returns") from None
    return _rf.radial_features(F, x, w1, w2, omega, phase, _like(params["coef"], x), bias=b, epsilon=eps)


def radial_yat_attention(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    params: dict[str, Any],
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> mx.array:
    """Linear-time bias-aware spherical Yat attention with RAY features (shapes as
    :func:`maclaurin_yat_attention`)."""
    fn = "radial_yat_attention"
    q, k, v = _heads(fn, query, key, value)
    qf = radial_features(q, params, epsilon=_NORM_EPS)
    kf = radial_features(k, params, epsilon=_NORM_EPS)
    return _readout(fn, qf, kf, v, causal, epsilon)


# ------------------------------------------------------------------------------------------------ TP / anchor
def create_yat_tp_projection(
    head_dim: int,
    num_prf_features: int = 8,
    num_quad_nodes: int = 1,
    num_anchor_features: int = 16,
    epsilon: float = DEFAULT_EPSILON,
    dtype: mx.Dtype = mx.float32,
    seed: int | np.random.Generator | None = None,
) -> dict[str, Any]:
    """nmn 0.3's anchor (tensor-product) projection (:func:`nmn.core.random_features.anchor_projection`).

    Returns ``anchors (P, D)``, ``proj (J, M, D)``, ``nodes (J,)``, ``weights (J,)`` (also under 0.3.5's names
    ``projections``, ``quad_nodes``, ``quad_weights``) and ``head_dim``, ``num_prf_features``,
    ``num_anchor_features``, ``num_scales``.

    >>> p = create_yat_tp_projection(4, 3, 2, 5, seed=0)
    >>> p["anchors"].shape, p["projections"].shape, p["num_scales"]
    ((5, 4), (2, 3, 4), 2)
    """
    arrays = _rf.anchor_projection(
        head_dim, num_prf_features, num_quad_nodes, num_anchor_features, epsilon=epsilon, seed=seed
    )
    out = _arrays(arrays, dtype, _TP_OLD)
    return {**out, "head_dim": int(head_dim), "num_prf_features": int(num_prf_features),
            "num_anchor_features": int(num_anchor_features), "num_scales": int(num_quad_nodes),
            "eps": float(epsilon)}  # fmt: skip


def yat_tp_features(x: mx.array, params: dict[str, Any], normalize: bool = True, epsilon: float = 1e-6) -> mx.array:
    """Anchor x positive-random-feature features ``(..., J * P * M)`` of ``x (..., head_dim)``
    (:func:`nmn.core.random_features.anchor_features`, 0.3.5's quadrature of the ``b = 0`` kernel). Positive."""
    fn = "yat_tp_features"
    check_normalize(fn, normalize)
    eps = check_helper_number(fn, "epsilon", epsilon, positive=True)
    x = _float_input(fn, "x", x)
    params = check_helper_params(fn, params, "create_yat_tp_projection", ("anchors",))
    try:
        rest = [_like(_pick(params, new, old), x) for old, new in _TP_OLD.items()]
    except KeyError as err:
        raise ValueError(f"{fn}: params lacks {err}; pass the dict that create_yat_tp_projection returns") from None
    return _rf.anchor_features(F, x, _like(params["anchors"], x), *rest, epsilon=eps)


def yat_tp_attention(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    params: dict[str, Any],
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> mx.array:
    """Linear-time Yat attention with tensor-product (anchor) features (shapes as :func:`maclaurin_yat_attention`)."""
    fn = "yat_tp_attention"
    q, k, v = _heads(fn, query, key, value)
    qf = yat_tp_features(q, params, epsilon=_NORM_EPS)
    kf = yat_tp_features(k, params, epsilon=_NORM_EPS)
    return _readout(fn, qf, kf, v, causal, epsilon)


# --------------------------------------------------------------------------------------------- kernel, readout
def spherical_kappa(s: mx.array | float, b: float, eps: float = DEFAULT_EPSILON) -> mx.array | float:
    """The exact bias-aware spherical Yat score ``(s + b)^2 / (2 + eps - 2 s)`` of cosines ``s``.

    >>> spherical_kappa(mx.array([0.0, 0.5]), 1.0, 0.0).tolist()
    [0.5, 2.25]
    """
    fn = "spherical_kappa"
    return _rf.spherical_kappa(F, s, check_helper_number(fn, "b", b), check_helper_number(fn, "eps", eps))


def _readout(fn, qf, kf, v, causal, epsilon):
    eps = check_helper_number(fn, "epsilon", epsilon)
    if not isinstance(causal, (bool, int, np.bool_)):
        raise ValueError(f"{fn}: causal must be a bool, got {causal!r}")
    names = ("query features", "key features", "value")
    ts = [_float_input(fn, n, t) for n, t in zip(names, (qf, kf, v))]
    for name, t in zip(names, ts):
        if t.ndim != 4:
            raise ValueError(f"{fn}: expected {name} of shape (B, L, H, ·), got shape {tuple(t.shape)}")
    qf, kf, v = _common(*ts)
    if kf.shape[-1] != qf.shape[-1] or kf.shape[:3] != v.shape[:3] or qf.shape[0] != kf.shape[0]:
        raise ValueError(
            f"{fn}: query features {tuple(qf.shape)}, key features {tuple(kf.shape)} and value {tuple(v.shape)} "
            "must share B, H, the feature count (query/key) and (B, Lk, H) (key/value)"
        )
    if causal and qf.shape[1] != kf.shape[1]:
        raise ValueError(f"{fn}: causal=True needs Lq == Lk, got {qf.shape[1]} and {kf.shape[1]}")
    return _yat.linear_readout(F, qf, kf, v, causal=bool(causal), epsilon=eps)


def linear_attention_readout(
    q_feat: mx.array,
    k_feat: mx.array,
    value: mx.array,
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> mx.array:
    """l1-normalised linear readout ``phi_q (phi_K^T V) / (phi_q . sum phi_K +- epsilon)`` of ``(B, Lq, H, F)``,
    ``(B, Lk, H, F)`` features and a ``(B, Lk, H, Dv)`` value (causal by prefix sums); the shift keeps the
    denominator's sign (:func:`nmn.core.yat.linear_readout`).

    >>> f = mx.ones((1, 3, 1, 2))
    >>> linear_attention_readout(f, f, mx.ones((1, 3, 1, 4))).shape
    (1, 3, 1, 4)
    """
    return _readout("linear_attention_readout", q_feat, k_feat, value, causal, epsilon)


def linear_attention(
    phi_q: mx.array,
    phi_k: mx.array,
    value: mx.array,
    causal: bool = False,
    eps_div: float = 1e-6,
) -> mx.array:
    """nmn 0.3 Linen's name of :func:`linear_attention_readout` (``eps_div``: the denominator shift)."""
    return _readout("linear_attention", phi_q, phi_k, value, causal, eps_div)
