"""nmn 0.3's functional bias-aware random-feature attentions for Flax NNX: MAY, RAY and tensor-product (anchor).

The approximated score of unit vectors ``t = q_hat . k_hat`` is ``kappa_b(t) = (t + b)^2 / (2 + eps - 2t)``
(:func:`spherical_kappa`); an attention is ``phi(q) (phi(K)^T V) / (phi(q) . sum phi(K))`` in linear time.

* **MAY** -- :func:`create_maclaurin_projection`, :func:`maclaurin_features`, :func:`maclaurin_yat_attention`
* **RAY** -- :func:`create_radial_projection`, :func:`radial_features`, :func:`radial_yat_attention`
* **TP / anchor** -- :func:`create_yat_tp_projection`, :func:`yat_tp_features`, :func:`yat_tp_attention`
* readouts -- :func:`linear_attention_readout` (nmn 0.3 torch's name) and :func:`linear_attention` (Linen's)

nmn 0.3.5's NNX signatures and defaults (a JAX ``key`` first in the ``create_*`` functions; ``precision``,
``gradient_scaling`` and a key-padding ``mask`` on the attentions). The samplers are
:mod:`nmn.core.random_features` (numpy, seeded from the key's bits; the dicts hold ``jax.Array``s), the feature
maps are the core's, written once for all six frameworks, and the readout is :func:`nmn.core.yat.linear_readout`;
the ONNX functions ``nmn::YatMaclaurinFeatures``, ``nmn::YatRadialFeatures``, ``nmn::YatAnchorFeatures`` and
``nmn::YatLinearAttention`` are the normative definition. For a layer with its projection frozen in the module
(and an ONNX export) use ``MultiHeadYatAttention(use_performer=True, performer_kind="maclaurin" | "radial")``.

Differences from nmn 0.3.5:

* the MAY dict also holds ``degmask`` and ``scale`` (what the ONNX function takes) and ``omega`` has ``nmax``
  rows (0.3.5: ``nmax + 1``), the unused ones zero; 0.3.5's dicts (``omegas``, ``degrees``, ``Z``) are accepted.
* the readout's denominator shift keeps the sign of ``phi(q) . sum phi(K)`` (0.3.5 added ``+epsilon``, which can
  cross zero for the sign-indefinite MAY / RAY features).
* the features are always computed on the sphere (``normalize=False`` is refused: the ONNX functions define
  the features of ``x_hat = x / sqrt(|x|^2 + epsilon)``); inside the attentions that epsilon is 1e-6.
* ``precision`` applies to every contraction (``jax.default_matmul_precision``); ``gradient_scaling`` has no
  effect, as in 0.3.5; ``mask`` is a key-padding mask ``(B | 1, H | 1, 1, Lk)`` as in 0.3.5.
* the draws of a given key differ from 0.3.5's (same distributions); ``degrees`` is int32.

>>> import jax
>>> p = create_maclaurin_projection(jax.random.key(0), 8, num_features=16, nmax=6)
>>> q = jax.random.normal(jax.random.key(1), (1, 5, 2, 8))
>>> maclaurin_features(q, p).shape, maclaurin_yat_attention(q, q, q, p, causal=True).shape
((1, 5, 2, 16), (1, 5, 2, 8))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from nmn._jax import random_features as _jrf
from nmn.core.options import DEFAULT_EPSILON

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

PrecisionLike = Any


# ------------------------------------------------------------------------------------------------------ MAY
def maclaurin_coeffs(b: float, epsilon: float, nmax: int) -> np.ndarray:
    """The Maclaurin coefficients ``a_0..a_nmax`` of ``(t + b)^2 / (2 + epsilon - 2t)`` (float64 numpy).

    >>> maclaurin_coeffs(0.0, 0.0, 3).tolist()
    [0.0, 0.0, 0.5, 0.5]
    """
    return _jrf.maclaurin_coeffs(b, epsilon, nmax)


def create_maclaurin_projection(
    key: jax.Array,
    head_dim: int,
    num_features: int = 256,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    nmax: int = 40,
    dtype: DTypeLike = jnp.float32,
) -> dict:
    """The fixed MAY projection shared by q and k (:func:`nmn.core.random_features.maclaurin_projection`,
    seeded from ``key``).

    Returns ``omega (M, nmax, D)`` (also as 0.3.5's ``omegas``), ``degmask (M, nmax)``, ``scale (1,)``
    (``dtype``), ``degrees (M,)`` int32 and the scalars ``Z``, ``num_features``, ``nmax``, ``head_dim``, ``bias``,
    ``epsilon`` (also ``M``, ``b``, ``eps``).

    >>> p = create_maclaurin_projection(jax.random.key(0), 4, 8, nmax=5)
    >>> p["omegas"].shape, p["degmask"].shape, p["nmax"]
    ((8, 5, 4), (8, 5), 5)
    """
    return _jrf.create_maclaurin(key, head_dim, num_features, bias, epsilon, nmax, dtype)


def maclaurin_features(x: ArrayLike, params: dict, normalize: bool = True, epsilon: float = 1e-6) -> jax.Array:
    """MAY features ``(..., M)`` of ``x (..., head_dim)`` (:func:`nmn.core.random_features.maclaurin_features`):
    ``E[phi(q) . phi(k)]`` is the degree-``nmax`` Maclaurin truncation of ``kappa_b(q_hat . k_hat)``;
    ``epsilon``: of ``x_hat = x / sqrt(|x|^2 + epsilon)``. Sign-indefinite (odd degrees)."""
    return _jrf.maclaurin_feats("maclaurin_features", x, params, normalize, epsilon)


def maclaurin_yat_attention(
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    params: dict,
    causal: bool = False,
    epsilon: float = 1e-6,
    precision: PrecisionLike = None,
    gradient_scaling: bool = True,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Linear-time bias-aware spherical Yat attention with MAY features: ``(B, Lq, H, D)`` query, ``(B, Lk, H, D)``
    key, ``(B, Lk, H, Dv)`` value -> ``(B, Lq, H, Dv)``; ``causal`` by prefix sums (``Lq == Lk``); ``epsilon``: the
    readout's denominator shift; ``mask``: key padding ``(B | 1, H | 1, 1, Lk)``; ``gradient_scaling``: no effect
    (as in nmn 0.3.5)."""
    fn = "maclaurin_yat_attention"
    return _jrf.attention(fn, "maclaurin", query, key, value, params, causal, epsilon, precision=precision, mask=mask)


# ------------------------------------------------------------------------------------------------------ RAY
def create_radial_projection(
    key: jax.Array,
    head_dim: int,
    sketch_m: int = 128,
    num_radial: int = 8,
    radial_dim: int = 64,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    dtype: DTypeLike = jnp.float32,
) -> dict:
    """The fixed RAY projection shared by q and k (:func:`nmn.core.random_features.radial_projection`).

    Returns ``w1``, ``w2 (m, D+1)``, ``omega (J, R, D+1)``, ``phase (J, R)``, ``coef (J,)`` (also as 0.3.5's
    ``W1``, ``W2``, ``omegas``, ``phases``) and the scalars ``bias``, ``sketch_m``, ``radial_dim``, ``num_radial``,
    ``head_dim``, ``epsilon`` (also ``b``, ``eps``).

    >>> p = create_radial_projection(jax.random.key(0), 4, 8, 2, 3)
    >>> p["W1"].shape, p["omegas"].shape, p["coef"].shape
    ((8, 5), (2, 3, 5), (2,))
    """
    return _jrf.create_radial(key, head_dim, sketch_m, num_radial, radial_dim, bias, epsilon, dtype)


def radial_features(x: ArrayLike, params: dict, normalize: bool = True, epsilon: float = 1e-6) -> jax.Array:
    """RAY features ``(..., sketch_m * num_radial * radial_dim)`` of ``x (..., head_dim)``
    (:func:`nmn.core.random_features.radial_features`): a degree-2 sketch of ``(t + b)^2`` times radial random
    Fourier features of ``1 / (eps + |q_hat - k_hat|^2)``. Sign-indefinite."""
    return _jrf.radial_feats("radial_features", x, params, normalize, epsilon)


def radial_yat_attention(
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    params: dict,
    causal: bool = False,
    epsilon: float = 1e-6,
    precision: PrecisionLike = None,
    gradient_scaling: bool = True,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Linear-time bias-aware spherical Yat attention with RAY features (arguments as
    :func:`maclaurin_yat_attention`)."""
    fn = "radial_yat_attention"
    return _jrf.attention(fn, "radial", query, key, value, params, causal, epsilon, precision=precision, mask=mask)


# ------------------------------------------------------------------------------------------------ TP / anchor
def create_yat_tp_projection(
    key: jax.Array,
    head_dim: int,
    num_prf_features: int = 8,
    num_quad_nodes: int = 1,
    num_anchor_features: int = 16,
    epsilon: float = DEFAULT_EPSILON,
    dtype: DTypeLike = jnp.float32,
) -> dict:
    """nmn 0.3's anchor (tensor-product) projection (:func:`nmn.core.random_features.anchor_projection`).

    Returns ``anchors (P, D)``, ``proj (J, M, D)``, ``nodes (J,)``, ``weights (J,)`` (also as 0.3.5's
    ``projections``, ``quad_nodes``, ``quad_weights``) and ``head_dim``, ``num_prf_features``,
    ``num_anchor_features``, ``num_scales``.

    >>> p = create_yat_tp_projection(jax.random.key(0), 4, 3, 2, 5)
    >>> p["anchors"].shape, p["projections"].shape, p["num_scales"]
    ((5, 4), (2, 3, 4), 2)
    """
    return _jrf.create_anchor(key, head_dim, num_prf_features, num_quad_nodes, num_anchor_features, epsilon, dtype)


def yat_tp_features(x: ArrayLike, params: dict, normalize: bool = True, epsilon: float = 1e-6) -> jax.Array:
    """Anchor x positive-random-feature features ``(..., J * P * M)`` of ``x (..., head_dim)``
    (:func:`nmn.core.random_features.anchor_features`, 0.3.5's quadrature of the ``b = 0`` kernel). Positive."""
    return _jrf.anchor_feats("yat_tp_features", x, params, normalize, epsilon)


def yat_tp_attention(
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    params: dict,
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
    precision: PrecisionLike = None,
    gradient_scaling: bool = True,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Linear-time Yat attention with tensor-product (anchor) features (arguments as
    :func:`maclaurin_yat_attention`; 0.3.5 added ``epsilon`` to every feature too, here only to the readout)."""
    fn = "yat_tp_attention"
    return _jrf.attention(fn, "anchor", query, key, value, params, causal, epsilon, precision=precision, mask=mask)


# --------------------------------------------------------------------------------------------- kernel, readout
def spherical_kappa(s: ArrayLike | float, b: float, eps: float = DEFAULT_EPSILON) -> jax.Array | float:
    """The exact bias-aware spherical Yat score ``(s + b)^2 / (2 + eps - 2 s)`` of cosines ``s`` (nmn 0.3 Linen's
    signature).

    >>> spherical_kappa(jnp.array([0.0, 0.5]), 1.0, 0.0).tolist()
    [0.5, 2.25]
    """
    return _jrf.kappa("spherical_kappa", s, b, eps)


def linear_attention_readout(
    q_feat: ArrayLike, k_feat: ArrayLike, value: ArrayLike, causal: bool = False, epsilon: float = DEFAULT_EPSILON
) -> jax.Array:
    """l1-normalised linear readout ``phi_q (phi_K^T V) / (phi_q . sum phi_K +- epsilon)`` of ``(B, Lq, H, F)``,
    ``(B, Lk, H, F)`` features and a ``(B, Lk, H, Dv)`` value (causal by prefix sums; nmn 0.3 torch's signature);
    the shift keeps the denominator's sign (:func:`nmn.core.yat.linear_readout`).

    >>> f = jnp.ones((1, 3, 1, 2))
    >>> linear_attention_readout(f, f, jnp.ones((1, 3, 1, 4))).shape
    (1, 3, 1, 4)
    """
    return _jrf.readout("linear_attention_readout", q_feat, k_feat, value, causal, epsilon)


def linear_attention(
    phi_q: ArrayLike, phi_k: ArrayLike, value: ArrayLike, causal: bool = False, eps_div: float = 1e-6
) -> jax.Array:
    """nmn 0.3 Linen's name of :func:`linear_attention_readout` (``eps_div``: the denominator shift)."""
    return _jrf.readout("linear_attention", phi_q, phi_k, value, causal, eps_div)
