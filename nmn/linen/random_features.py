"""nmn 0.3's functional bias-aware random-feature attentions for Flax Linen: MAY, RAY and tensor-product (anchor).

The approximated score of unit vectors ``t = q_hat . k_hat`` is ``kappa_b(t) = (t + b)^2 / (2 + eps - 2t)``
(:func:`spherical_kappa`); an attention is ``phi(q) (phi(K)^T V) / (phi(q) . sum phi(K))`` in linear time.

nmn 0.3.5 Linen's signatures and defaults (``nmn.linen.performer_yat``: ``eps`` on the features, ``eps_div`` on
the attentions); the tensor-product helpers, which 0.3.5 offered only in NNX, take NNX's signatures, and
:func:`linear_attention_readout` torch's. The arrays and the math are :mod:`nmn.nnx.random_features`' (one
shared JAX implementation, :mod:`nmn._jax.random_features`; one key gives the same dict in both Flax APIs); the
ONNX functions ``nmn::YatMaclaurinFeatures``, ``nmn::YatRadialFeatures``, ``nmn::YatAnchorFeatures`` and
``nmn::YatLinearAttention`` are the normative definition. For a layer with its projection frozen in the module
(and an ONNX export) use ``MultiHeadYatAttention(use_performer=True, performer_kind="maclaurin" | "radial")``.

Differences from nmn 0.3.5: as listed in :mod:`nmn.nnx.random_features` (``omega`` with ``nmax`` rows and
``degmask`` / ``scale`` in the MAY dict, 0.3.5's dicts accepted, the sign-keeping denominator shift,
``normalize=False`` refused, different draws of a given key).

>>> import jax
>>> p = create_radial_projection(jax.random.key(0), 8, sketch_m=4, num_radial=2, radial_dim=4)
>>> q = jax.random.normal(jax.random.key(1), (1, 5, 2, 8))
>>> radial_features(q, p).shape, radial_yat_attention(q, q, q, p, causal=True).shape
((1, 5, 2, 32), (1, 5, 2, 8))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from nmn._jax import random_features as _jrf
from nmn.core.options import DEFAULT_EPSILON
from nmn.nnx.random_features import (
    create_yat_tp_projection,
    linear_attention_readout,
    yat_tp_attention,
    yat_tp_features,
)

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


def spherical_kappa(s: ArrayLike | float, b: float, eps: float = DEFAULT_EPSILON) -> jax.Array | float:
    """The exact bias-aware spherical Yat score ``(s + b)^2 / (2 + eps - 2 s)`` of cosines ``s``.

    >>> spherical_kappa(jnp.array([0.0, 0.5]), 1.0, 0.0).tolist()
    [0.5, 2.25]
    """
    return _jrf.kappa("spherical_kappa", s, b, eps)


def maclaurin_coeffs(b: float, eps: float, nmax: int) -> Any:
    """The Maclaurin coefficients ``a_0..a_nmax`` of ``(t + b)^2 / (2 + eps - 2t)`` (float64 numpy).

    >>> maclaurin_coeffs(0.0, 0.0, 3).tolist()
    [0.0, 0.0, 0.5, 0.5]
    """
    return _jrf.maclaurin_coeffs(b, eps, nmax)


def create_maclaurin_projection(
    key: jax.Array,
    head_dim: int,
    num_features: int = 256,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    nmax: int = 40,
    dtype: DTypeLike = jnp.float32,
) -> dict[str, Any]:
    """The fixed MAY projection shared by q and k (:func:`nmn.core.random_features.maclaurin_projection`):
    ``omega``/``omegas (M, nmax, D)``, ``degmask (M, nmax)``, ``scale (1,)``, ``degrees (M,)`` int32 and the
    scalars ``Z``, ``M`` (0.3.5 Linen's name; also ``num_features``), ``nmax``, ``head_dim``, ``b``/``bias``,
    ``eps``/``epsilon``.

    >>> p = create_maclaurin_projection(jax.random.key(0), 4, 8, nmax=5)
    >>> p["omegas"].shape, p["M"]
    ((8, 5, 4), 8)
    """
    return _jrf.create_maclaurin(key, head_dim, num_features, bias, epsilon, nmax, dtype)


def maclaurin_features(x: ArrayLike, params: dict[str, Any], normalize: bool = True, eps: float = 1e-6) -> jax.Array:
    """MAY features ``(..., M)`` of ``x (..., head_dim)``; ``eps``: of ``x_hat = x / sqrt(|x|^2 + eps)``."""
    return _jrf.maclaurin_feats("maclaurin_features", x, params, normalize, eps)


def create_radial_projection(
    key: jax.Array,
    head_dim: int,
    sketch_m: int = 128,
    num_radial: int = 8,
    radial_dim: int = 64,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    dtype: DTypeLike = jnp.float32,
) -> dict[str, Any]:
    """The fixed RAY projection shared by q and k (:func:`nmn.core.random_features.radial_projection`):
    ``w1``/``W1``, ``w2``/``W2 (m, D+1)``, ``omega``/``omegas (J, R, D+1)``, ``phase``/``phases (J, R)``,
    ``coef (J,)`` and ``bias``, ``sketch_m``, ``radial_dim``, ``num_radial``, ``head_dim``.

    >>> create_radial_projection(jax.random.key(0), 4, 8, 2, 3)["W1"].shape
    (8, 5)
    """
    return _jrf.create_radial(key, head_dim, sketch_m, num_radial, radial_dim, bias, epsilon, dtype)


def radial_features(x: ArrayLike, params: dict[str, Any], normalize: bool = True, eps: float = 1e-6) -> jax.Array:
    """RAY features ``(..., sketch_m * num_radial * radial_dim)`` of ``x (..., head_dim)``. Sign-indefinite."""
    return _jrf.radial_feats("radial_features", x, params, normalize, eps)


def linear_attention(
    phi_q: ArrayLike, phi_k: ArrayLike, value: ArrayLike, causal: bool = False, eps_div: float = 1e-6
) -> jax.Array:
    """l1-normalised linear readout ``phi_q (phi_K^T V) / (phi_q . sum phi_K +- eps_div)`` of ``(B, Lq, H, F)``,
    ``(B, Lk, H, F)`` features and a ``(B, Lk, H, Dv)`` value; causal by prefix sums (``Lq == Lk``)."""
    return _jrf.readout("linear_attention", phi_q, phi_k, value, causal, eps_div)


def maclaurin_yat_attention(
    query: ArrayLike, key: ArrayLike, value: ArrayLike, params: dict[str, Any], causal: bool = False,
    eps_div: float = 1e-6,
) -> jax.Array:  # fmt: skip
    """Linear-time bias-aware spherical Yat attention with MAY features: ``(B, Lq, H, D)`` query, ``(B, Lk, H, D)``
    key, ``(B, Lk, H, Dv)`` value -> ``(B, Lq, H, Dv)``."""
    return _jrf.attention("maclaurin_yat_attention", "maclaurin", query, key, value, params, causal, eps_div)


def radial_yat_attention(
    query: ArrayLike, key: ArrayLike, value: ArrayLike, params: dict[str, Any], causal: bool = False,
    eps_div: float = 1e-6,
) -> jax.Array:  # fmt: skip
    """Linear-time bias-aware spherical Yat attention with RAY features (shapes as
    :func:`maclaurin_yat_attention`)."""
    return _jrf.attention("radial_yat_attention", "radial", query, key, value, params, causal, eps_div)
