"""nmn 0.3's bias-aware random-feature attentions for TensorFlow: MAY (random Maclaurin), RAY (degree-2 sketch x
radial random Fourier features) and the tensor-product / anchor features (``yat_tp``), with nmn 0.3.5's names.

All of them approximate the bias-aware spherical Yat attention: with ``t = q_hat . k_hat`` and ``C = 2 + eps``,
``kappa_b(t) = (t + b)^2 / (C - 2t)`` and ``out_i = sum_j kappa(t_ij) v_j / sum_j kappa(t_ij)``, in linear time
``phi(q) (phi(k)^T v) / (phi(q) . sum phi(k))``. The projections are sampled once, in numpy, by
:mod:`nmn.core.random_features` (so every framework and the ONNX functions ``nmn::YatMaclaurinFeatures``,
``nmn::YatRadialFeatures``, ``nmn::YatAnchorFeatures`` compute the same thing from the same dict); the features
and the readout (:func:`nmn.core.yat.linear_readout`) are TensorFlow ops and are differentiable.
The layer form is ``MultiHeadYatAttention(use_performer=True, performer_kind="maclaurin" | "radial")``.

Differences from nmn 0.3.5 (the signatures and defaults are 0.3.5's):

- ``omega`` of MAY holds ``nmax`` rows per feature and the rows ``l >= n_r`` are zero; ``degmask`` (1 for
  ``l < n_r``) and ``scale = sqrt(Z / M)`` are tensors of the dict beside 0.3.5's ``omegas``, ``degrees`` and
  ``Z``. A 0.3.5 dict (``omegas``, ``degrees``, ``Z`` only) is accepted too.
- ``normalize=False`` is refused: the features are defined on unit vectors, as the ONNX functions compute them.
- The readout's ``epsilon`` keeps the denominator's sign (``den + sign(den) * epsilon``, ``+epsilon`` at 0)
  instead of adding it: the MAY and RAY features are sign-indefinite. Inside the attentions the features
  normalise with epsilon 1e-6 (the ONNX functions'); ``yat_tp_attention`` adds no epsilon to the features.
- ``spherical_kappa``, ``linear_attention`` (nmn 0.3 Linen's names) and the ``yat_tp_*`` functions (nmn 0.3
  NNX / MLX) were not in nmn 0.3.5's TensorFlow package; they are here with those signatures.

>>> import numpy as np
>>> params = create_maclaurin_projection(4, num_features=8, bias=1.0, nmax=6, seed=0)
>>> q = np.random.default_rng(0).normal(size=(1, 3, 2, 4)).astype("float32")
>>> tuple(maclaurin_features(q, params).shape), tuple(maclaurin_yat_attention(q, q, q, params).shape)
((1, 3, 2, 8), (1, 3, 2, 4))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from nmn._tfkeras import random_features as _rf
from nmn.core.options import DEFAULT_EPSILON
from nmn.tf._ops import F
from nmn.tf._ops import TensorLike as Tensor

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


class _Host:
    F = F

    @staticmethod
    def tensor(array, dtype):
        return tf.convert_to_tensor(array) if dtype is None else tf.convert_to_tensor(array, dtype=tf.as_dtype(dtype))

    @staticmethod
    def cast(x, dtype):
        return tf.cast(x, dtype)

    @staticmethod
    def float_dtype(x):
        dtype = tf.as_dtype(getattr(x, "dtype", tf.float32))
        return dtype if dtype.is_floating else tf.float32

    @staticmethod
    def rank(x):
        return len(x.shape)

    @staticmethod
    def to_numpy(x):
        return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


_HOST = _Host()


def maclaurin_coeffs(b: float, eps: float, nmax: int) -> np.ndarray:
    """Maclaurin coefficients ``a_0..a_nmax`` of ``kappa_b(t) = (t + b)^2 / (2 + eps - 2t)`` (float64 numpy):
    ``a_n = beta_(n-2) + 2 b beta_(n-1) + b^2 beta_n`` with ``beta_n = (1/C) (2/C)^n``, all ``>= 0`` for ``b >= 0``.

    >>> maclaurin_coeffs(1.0, 0.0, 2).tolist()
    [0.5, 1.5, 2.0]
    """
    return _rf.maclaurin_coeffs_array(b, eps, nmax)


def create_maclaurin_projection(
    head_dim: int,
    num_features: int = 256,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    nmax: int = 40,
    dtype: tf.DType = tf.float32,
    seed: int | None = None,
) -> dict[str, Any]:
    """The fixed MAY projection (:func:`nmn.core.random_features.maclaurin_projection`): ``M = num_features``
    degrees ``n_r ~ Categorical(a_n / Z)`` and Rademacher rows, as TensorFlow tensors.

    Returns ``{"omega" (M, nmax, D), "degmask" (M, nmax), "scale" (1,), "degrees" (M,), "omegas" (= omega),
    "Z", "num_features", "nmax", "head_dim", "b", "eps", "epsilon"}``. ``seed``: None, an int or a numpy
    Generator; ``dtype`` of the float tensors.

    >>> p = create_maclaurin_projection(3, num_features=4, nmax=5, seed=1)
    >>> tuple(p["omega"].shape), tuple(p["degmask"].shape), p["nmax"]
    ((4, 5, 3), (4, 5), 5)
    """
    return _rf.maclaurin_projection(_HOST, head_dim, num_features, bias, epsilon, nmax, seed, dtype)


def maclaurin_features(x: Tensor, params: dict[str, Any], normalize: bool = True, epsilon: float = 1e-6) -> Tensor:
    """MAY features ``phi_r(x_hat) = sqrt(Z/M) prod_(l < n_r) (omega[r, l] . x_hat)`` of ``x (..., D)`` ->
    ``(..., M)``; ``epsilon`` normalises ``x_hat = x / sqrt(|x|^2 + epsilon)``. Sign-indefinite, unbiased:
    ``E[phi(q) . phi(k)]`` is the degree-``nmax`` truncation of ``kappa_b``."""
    return _rf.maclaurin_features(_HOST, x, params, normalize, epsilon)


def maclaurin_yat_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    params: dict[str, Any],
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> Tensor:
    """Linear-time bias-aware spherical Yat attention with MAY features of ``query, key (B, L, H, D)`` and
    ``value (B, Lk, H, Dv)`` -> ``(B, Lq, H, Dv)``; ``causal``: prefix sums; ``epsilon``: the denominator's."""
    return _rf.attention(
        _HOST, "maclaurin_yat_attention", _rf.maclaurin_features, query, key, value, params, causal, epsilon, True
    )


def create_radial_projection(
    head_dim: int,
    sketch_m: int = 128,
    num_radial: int = 8,
    radial_dim: int = 64,
    bias: float = 1.0,
    epsilon: float = DEFAULT_EPSILON,
    dtype: tf.DType = tf.float32,
    seed: int | None = None,
) -> dict[str, Any]:
    """The fixed RAY projection (:func:`nmn.core.random_features.radial_projection`): the degree-2 sketch
    ``w1, w2 (m, D+1)`` and the Gauss-Laguerre radial random Fourier features ``omega (J, R, D+1)``,
    ``phase (J, R)``, ``coef (J,)`` (``m = sketch_m``, ``J = num_radial``, ``R = radial_dim``), as TensorFlow tensors,
    with 0.3.5's names (``W1``, ``W2``, ``omegas``, ``phases``) and ``b``, the sizes, ``head_dim``, ``epsilon``.

    >>> p = create_radial_projection(3, sketch_m=2, num_radial=2, radial_dim=4, seed=0)
    >>> tuple(p["w1"].shape), tuple(p["omega"].shape), tuple(p["coef"].shape)
    ((2, 4), (2, 4, 4), (2,))
    """
    return _rf.radial_projection(_HOST, head_dim, sketch_m, num_radial, radial_dim, bias, epsilon, seed, dtype)


def radial_features(x: Tensor, params: dict[str, Any], normalize: bool = True, epsilon: float = 1e-6) -> Tensor:
    """RAY features of ``x (..., D)`` -> ``(..., m J R)``: ``z = [x_hat, sqrt(b)]``, the sketch
    ``psi = (z w1^T) (z w2^T) / sqrt(m)`` of ``(z . z')^2 = (t + b)^2`` times the radial features of
    ``1 / (eps + |q_hat - k_hat|^2)``; sign-indefinite."""
    return _rf.radial_features(_HOST, x, params, normalize, epsilon)


def radial_yat_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    params: dict[str, Any],
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> Tensor:
    """As :func:`maclaurin_yat_attention`, with RAY features."""
    return _rf.attention(
        _HOST, "radial_yat_attention", _rf.radial_features, query, key, value, params, causal, epsilon, True
    )


def create_yat_tp_projection(
    head_dim: int,
    num_prf_features: int = 8,
    num_quad_nodes: int = 1,
    num_anchor_features: int = 16,
    epsilon: float = DEFAULT_EPSILON,
    dtype: tf.DType = tf.float32,
    seed: int | None = None,
) -> dict[str, Any]:
    """The fixed tensor-product (anchor) projection (:func:`nmn.core.random_features.anchor_projection`):
    unit ``anchors (P, D)``, Gaussian ``proj (J, M, D)``, Gauss-Laguerre ``nodes, weights (J,)`` for the ``b = 0``
    kernel ``t^2 / (C - 2t)``, with 0.3.5's names (``projections``, ``quad_nodes``, ``quad_weights``).

    >>> p = create_yat_tp_projection(3, num_prf_features=2, num_anchor_features=4, seed=0)
    >>> tuple(p["anchors"].shape), tuple(p["proj"].shape)
    ((4, 3), (1, 2, 3))
    """
    return _rf.anchor_projection(
        _HOST, head_dim, num_prf_features, num_quad_nodes, num_anchor_features, epsilon, seed, dtype
    )


def yat_tp_features(x: Tensor, params: dict[str, Any], normalize: bool = True, epsilon: float = 1e-6) -> Tensor:
    """Tensor-product features of ``x (..., D)`` -> ``(..., J P M)``: ``(x_hat . a_p)^2 / sqrt(P)`` times the
    positive random features ``exp(sqrt(2 s_j) w . x_hat - s_j) / sqrt(M)`` per quadrature node (non-negative)."""
    return _rf.anchor_features(_HOST, x, params, normalize, epsilon)


def yat_tp_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    params: dict[str, Any],
    causal: bool = False,
    epsilon: float = DEFAULT_EPSILON,
) -> Tensor:
    """As :func:`maclaurin_yat_attention`, with the tensor-product features (``b = 0``)."""
    return _rf.attention(
        _HOST, "yat_tp_attention", _rf.anchor_features, query, key, value, params, causal, epsilon, True
    )


def spherical_kappa(s: Tensor, b: float, eps: float = DEFAULT_EPSILON) -> Tensor:
    """The exact bias-aware spherical Yat kernel ``(s + b)^2 / (2 + eps - 2 s)`` of cosines ``s``.

    >>> float(spherical_kappa(np.float32(0.5), 1.0, 0.0))
    2.25
    """
    return _rf.kappa(_HOST, s, b, eps)


def linear_attention_readout(
    q_feat: Tensor, k_feat: Tensor, value: Tensor, causal: bool = False, epsilon: float = DEFAULT_EPSILON
) -> Tensor:
    """``q_feat (k_feat^T value) / (q_feat . sum k_feat)`` of ``(B, L, H, m)`` features and ``value (B, Lk, H, Dv)``
    (:func:`nmn.core.yat.linear_readout`; the denominator's ``epsilon`` keeps its sign); ``causal``: prefix sums.

    >>> f = np.ones((1, 2, 1, 3), "float32")
    >>> v = np.array([[[[1.0]], [[3.0]]]], "float32")
    >>> np.asarray(linear_attention_readout(f, f, v, causal=True)).reshape(-1).round(4).tolist()
    [1.0, 2.0]
    """
    return _rf.readout(_HOST, "linear_attention_readout", q_feat, k_feat, value, causal, epsilon)


def linear_attention(
    phi_q: Tensor, phi_k: Tensor, value: Tensor, causal: bool = False, eps_div: float = 1e-6
) -> Tensor:
    """nmn 0.3 Linen's name of :func:`linear_attention_readout` (``eps_div``: the denominator's epsilon)."""
    return _rf.readout(_HOST, "linear_attention", phi_q, phi_k, value, causal, eps_div)
