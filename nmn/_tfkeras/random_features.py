"""nmn 0.3's functional random-feature attentions (MAY, RAY, tensor-product / anchor), written once for
``nmn.keras.random_features`` and ``nmn.tf.random_features``.

The math is :mod:`nmn.core.random_features` (the samplers and the feature maps) and
:func:`nmn.core.yat.linear_readout`; this module only checks the arguments, converts the sampled numpy arrays to
host tensors and packs / unpacks nmn 0.3's ``params`` dicts. A host is a small object with ``F`` (the ops
namespace of :mod:`nmn.core.yat`), ``tensor(array, dtype)``, ``cast(x, dtype)``, ``float_dtype(x)`` and
``rank(x)``; each framework module binds its host and spells nmn 0.3.5's signatures.

>>> maclaurin_coeffs_array(0.0, 0.0, 3).tolist()
[0.0, 0.0, 0.5, 0.5]
"""

from __future__ import annotations

import math

import numpy as np

from nmn.core import random_features as rf
from nmn.core import yat
from nmn.core.random_features import OLD_KEYS, check_helper_number, check_helper_params, check_normalize

#: nmn 0.3.5 names of the sampled tensors, beside nmn's own (the core sampler's) names
MACLAURIN_ALIASES, RADIAL_ALIASES, ANCHOR_ALIASES = OLD_KEYS["maclaurin"], OLD_KEYS["radial"], OLD_KEYS["anchor"]


def maclaurin_coeffs_array(b: float, eps: float, nmax: int) -> np.ndarray:
    """The Maclaurin coefficients ``a_0..a_nmax`` of ``(t + b)^2 / (2 + eps - 2t)`` as float64 numpy (nmn 0.3.5
    returned an ``ndarray``)."""
    return np.asarray(rf.maclaurin_coeffs(float(b), float(eps), int(nmax)), np.float64)


def _tensors(host, arrays, dtype, aliases):
    out = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        out[key] = host.tensor(value, dtype if value.dtype.kind == "f" else None)
    for old, new in aliases.items():
        out[old] = out[new]
    return out


def maclaurin_projection(host, head_dim, num_features, bias, epsilon, nmax, seed, dtype):
    """nmn 0.3's MAY projection dict: the core sampler's ``omega (M, nmax, D)``, ``degmask (M, nmax)``,
    ``scale (1,)``, ``degrees (M,)`` as host tensors, ``omegas`` (0.3.5's name of ``omega``) and the scalars
    ``Z``, ``num_features``, ``nmax``, ``head_dim``, ``b``, ``eps`` / ``epsilon``."""
    arrays = rf.maclaurin_projection(head_dim, num_features, bias=bias, epsilon=epsilon, nmax=nmax, seed=seed)
    out = _tensors(host, arrays, dtype, MACLAURIN_ALIASES)
    z = float(maclaurin_coeffs_array(bias, epsilon, nmax).sum())
    scalars = dict(Z=z, num_features=int(num_features), nmax=int(nmax), head_dim=int(head_dim), b=float(bias))
    return {**out, **scalars, "eps": float(epsilon), "epsilon": float(epsilon)}


def radial_projection(host, head_dim, sketch_m, num_radial, radial_dim, bias, epsilon, seed, dtype):
    """nmn 0.3's RAY projection dict: ``w1, w2 (m, D+1)``, ``omega (J, R, D+1)``, ``phase (J, R)``, ``coef (J,)``
    (and 0.3.5's names ``W1``, ``W2``, ``omegas``, ``phases``) plus ``b``, ``sketch_m``, ``num_radial``,
    ``radial_dim``, ``head_dim``, ``eps`` / ``epsilon``."""
    arrays = rf.radial_projection(head_dim, sketch_m, num_radial, radial_dim, bias=bias, epsilon=epsilon, seed=seed)
    out = _tensors(host, arrays, dtype, RADIAL_ALIASES)
    sizes = dict(sketch_m=int(sketch_m), num_radial=int(num_radial), radial_dim=int(radial_dim))
    return {**out, **sizes, "head_dim": int(head_dim), "b": float(bias), "eps": float(epsilon), "epsilon": epsilon}


def anchor_projection(host, head_dim, num_prf_features, num_quad_nodes, num_anchor_features, epsilon, seed, dtype):
    """nmn 0.3's tensor-product (anchor) projection dict: ``anchors (P, D)``, ``proj (J, M, D)``, ``nodes (J,)``,
    ``weights (J,)`` (and 0.3.5's names ``projections``, ``quad_nodes``, ``quad_weights``) plus ``head_dim``,
    ``num_prf_features``, ``num_anchor_features``, ``num_scales``, ``eps`` / ``epsilon``."""
    arrays = rf.anchor_projection(
        head_dim, num_prf_features, num_quad_nodes, num_anchor_features, epsilon=epsilon, seed=seed
    )
    out = _tensors(host, arrays, dtype, ANCHOR_ALIASES)
    sizes = dict(num_prf_features=int(num_prf_features), num_anchor_features=int(num_anchor_features))
    return {**out, **sizes, "num_scales": int(num_quad_nodes), "head_dim": int(head_dim), "eps": float(epsilon),
            "epsilon": float(epsilon)}  # fmt: skip


# ------------------------------------------------------------------------------------------------- checks


def check_params(fn, params, keys, creator):
    """``ValueError`` / ``TypeError`` naming ``fn`` unless ``params`` is a dict with ``keys`` (the core's check)."""
    check_helper_params(fn, params, creator, tuple(keys))


def check_epsilon(fn, name, value, positive=True):
    """A float ``> 0`` (``>= 0`` unless ``positive``) or a ``ValueError`` naming ``fn`` and ``name``."""
    return check_helper_number(fn, name, value, positive=positive)


def check_rank(host, fn, name, x, rank):
    if host.rank(x) != rank:
        raise ValueError(f"{fn}: expected {name} of rank {rank} (B, L, H, D), got shape {tuple(x.shape)}")


def _pick(params, key, old=None):
    return params[key] if key in params else params[old]


def _float(host, x, like):
    return host.cast(x, host.float_dtype(like))


# ------------------------------------------------------------------------------------------------ features
def maclaurin_arrays(host, params):
    """``(omega, degmask, scale)`` of a MAY params dict: nmn's, or nmn 0.3.5's (``omegas``, ``degrees``, ``Z``)."""
    fn = "maclaurin_features"
    if "degmask" in params and "scale" in params:
        check_params(fn, params, ("degmask", "scale"), "create_maclaurin_projection")
        return _pick(params, "omega", "omegas"), params["degmask"], params["scale"]
    check_params(fn, params, ("omegas", "degrees", "Z", "num_features"), "create_maclaurin_projection")
    omega = params["omegas"]
    degrees = np.asarray(host.to_numpy(params["degrees"])).reshape(-1)
    nmax = int(omega.shape[1])
    degmask = (np.arange(nmax)[None, :] < degrees[:, None]).astype(np.float32)
    scale = np.asarray([math.sqrt(float(params["Z"]) / int(params["num_features"]))], np.float32)
    return omega, host.tensor(degmask, host.float_dtype(omega)), host.tensor(scale, host.float_dtype(omega))


def maclaurin_features(host, x, params, normalize, epsilon):
    check_normalize("maclaurin_features", normalize)
    eps = check_epsilon("maclaurin_features", "epsilon", epsilon)
    check_params("maclaurin_features", params, (), "create_maclaurin_projection")
    omega, degmask, scale = maclaurin_arrays(host, params)
    x = _float(host, x, omega)
    return rf.maclaurin_features(
        host.F, x, omega, _float(host, degmask, omega), _float(host, scale, omega), epsilon=eps
    )


def radial_features(host, x, params, normalize, epsilon):
    fn = "radial_features"
    check_normalize(fn, normalize)
    eps = check_epsilon(fn, "epsilon", epsilon)
    check_params(fn, params, ("coef", "b"), "create_radial_projection")
    w1 = _pick(params, "w1", "W1")
    arrays = [_float(host, a, w1) for a in (w1, _pick(params, "w2", "W2"), _pick(params, "omega", "omegas"))]
    phase, coef = _float(host, _pick(params, "phase", "phases"), w1), _float(host, params["coef"], w1)
    x = _float(host, x, w1)
    return rf.radial_features(host.F, x, *arrays, phase, coef, bias=float(params["b"]), epsilon=eps)


def anchor_features(host, x, params, normalize, epsilon):
    fn = "yat_tp_features"
    check_normalize(fn, normalize)
    eps = check_epsilon(fn, "epsilon", epsilon)
    check_params(fn, params, ("anchors",), "create_yat_tp_projection")
    anchors = params["anchors"]
    rest = [_pick(params, "proj", "projections"), _pick(params, "nodes", "quad_nodes")]
    rest.append(_pick(params, "weights", "quad_weights"))
    x = _float(host, x, anchors)
    return rf.anchor_features(host.F, x, anchors, *[_float(host, a, anchors) for a in rest], epsilon=eps)


# ------------------------------------------------------------------------------------------------- readout
def readout(host, fn, q_feat, k_feat, value, causal, epsilon):
    """``linear_readout`` of ``(B, L, H, m)`` features with the caller's denominator ``epsilon``."""
    eps = check_epsilon(fn, "epsilon", epsilon, positive=False)
    for name, t in (("q_feat", q_feat), ("k_feat", k_feat), ("value", value)):
        check_rank(host, fn, name, t, 4)
    dtype = host.float_dtype(q_feat)
    q_feat, k_feat, value = host.cast(q_feat, dtype), host.cast(k_feat, dtype), host.cast(value, dtype)
    return yat.linear_readout(host.F, q_feat, k_feat, value, causal=bool(causal), epsilon=eps)


def attention(host, fn, features, query, key, value, params, causal, epsilon, normalize):
    """``readout(features(q), features(k), v)`` for ``(B, L, H, D)`` heads."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_rank(host, fn, name, t, 4)
    qf = features(host, query, params, normalize, rf_norm_epsilon())
    kf = features(host, key, params, normalize, rf_norm_epsilon())
    return readout(host, fn, qf, kf, value, causal, epsilon)


def rf_norm_epsilon() -> float:
    """The feature maps' normalisation epsilon inside the attentions (the ONNX functions' 1e-6)."""
    from nmn.core.options import DEFAULTS

    return float(DEFAULTS["random_feature_norm_epsilon"])


def kappa(host, s, b, eps):
    """``(s + b)^2 / (2 + eps - 2 s)`` (:func:`nmn.core.random_features.spherical_kappa`)."""
    check_epsilon("spherical_kappa", "eps", eps, positive=False)
    if isinstance(s, (np.ndarray, np.generic, float, int, list, tuple)):
        s = host.tensor(np.asarray(s, np.float32) if np.asarray(s).dtype.kind != "f" else s, None)
    return rf.spherical_kappa(host.F, s, float(b), float(eps))
