"""nmn 0.3's bias-aware random-feature maps of the spherical Yat kernel: MAY, RAY and anchor (TP) features.

All three linearise the bias-aware spherical Yat score of unit vectors ``t = q_hat . k_hat``::

    kappa_b(t) = (t + b)^2 / (C - 2 t),    C = 2 + eps,

so that the l1-normalised attention ``out_i = sum_j kappa(t_ij) v_j / sum_j kappa(t_ij)`` runs in linear time
as ``phi(q_i) (sum_j phi(k_j) v_j^T) / (phi(q_i) . sum_j phi(k_j))`` (:func:`nmn.core.yat.linear_readout`).

* **MAY** (random Maclaurin, :func:`maclaurin_projection`, :func:`maclaurin_features`): unbiased for the
  degree-``nmax`` Maclaurin truncation of ``kappa_b``.
* **RAY** (:func:`radial_projection`, :func:`radial_features`): a degree-2 sketch of ``(t + b)^2`` times radial
  random Fourier features of ``1 / (eps + |q_hat - k_hat|^2)`` discretised by Gauss-Laguerre quadrature.
* **anchor / TP** (:func:`anchor_projection`, :func:`anchor_features`): nmn 0.3.5's ``yat_tp`` features of the
  ``b = 0`` kernel: anchor features of the square times positive random features of ``exp(2 s t)``, on the
  Gauss-Laguerre nodes of ``1 / (C - 2t) = int_0^inf exp(-s C) exp(2 s t) ds``.

The samplers return numpy arrays (numpy is imported inside them: ``nmn.core`` imports only the standard library
at module level); the feature maps are written once against the ops namespace ``F`` of :mod:`nmn.core.yat`
(plus ``cos``), take any leading shape ``(..., D)``, are differentiable in ``x`` and run in the dtype of their
inputs. The ONNX functions ``nmn::YatMaclaurinFeatures``, ``nmn::YatRadialFeatures`` and
``nmn::YatAnchorFeatures`` are their normative definition.

>>> import numpy as np
>>> p = maclaurin_projection(8, 16, bias=1.0, epsilon=0.5, nmax=6, seed=0)
>>> sorted(p), p["omega"].shape, p["degmask"].shape
(['degmask', 'degrees', 'omega', 'scale'], (16, 6, 8), (16, 6))
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from nmn.core.yat import maclaurin_coefficients

__all__ = [
    "OLD_KEYS",
    "check_helper_number",
    "check_helper_params",
    "check_normalize",
    "pick_array",
    "anchor_features",
    "anchor_projection",
    "maclaurin_coeffs",
    "maclaurin_features",
    "maclaurin_projection",
    "radial_features",
    "radial_projection",
    "spherical_kappa",
]

PRF_CLIP = 20.0  # nmn 0.3.5's clip of the positive-random-feature exponent

#: nmn 0.3.5's key names of the sampled tensors in its projection dicts -> this module's (the six frameworks'
#: functional helpers accept either, and return both)
OLD_KEYS = {
    "maclaurin": {"omegas": "omega"},
    "radial": {"W1": "w1", "W2": "w2", "omegas": "omega", "phases": "phase"},
    "anchor": {"projections": "proj", "quad_nodes": "nodes", "quad_weights": "weights"},
}


# ------------------------------------------------------- checks of nmn 0.3's functional helpers (all six hosts)
def check_helper_number(fn: str, name: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as a float, or a ``ValueError`` naming the helper ``fn`` and the argument ``name``.

    >>> check_helper_number("spherical_kappa", "eps", -1.0)
    Traceback (most recent call last):
    ...
    ValueError: spherical_kappa: eps must be a finite number >= 0, got -1.0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy scalars register as Real
    if not ok or not math.isfinite(float(value)) or value < 0 or (positive and value == 0):
        raise ValueError(f"{fn}: {name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def check_normalize(fn: str, normalize: Any) -> None:
    """The features are defined on unit vectors (as the ONNX functions compute them): refuse ``normalize=False``.

    >>> check_normalize("maclaurin_features", False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: maclaurin_features: normalize=False is not offered: the features are defined on unit vectors ...
    """
    if normalize is not True and normalize != 1:
        raise ValueError(
            f"{fn}: normalize={normalize!r} is not offered: the features are defined on unit vectors "
            "(x_hat = x / sqrt(|x|^2 + epsilon)), as nmn's ONNX functions compute them; leave normalize=True"
        )


def check_helper_params(fn: str, params: Any, creator: str, needed: tuple[str, ...] = ()) -> dict:
    """``params`` if it is a dict holding ``needed``; else an error naming ``fn`` and the ``creator`` to call.

    >>> check_helper_params("yat_tp_features", {}, "create_yat_tp_projection", ("anchors",))
    Traceback (most recent call last):
    ...
    ValueError: yat_tp_features: params lacks ['anchors']; pass the dict that create_yat_tp_projection returns
    """
    if not isinstance(params, dict):
        raise TypeError(f"{fn}: params must be the dict that {creator} returns, got {type(params).__name__}")
    missing = [k for k in needed if k not in params]
    if missing:
        raise ValueError(f"{fn}: params lacks {missing}; pass the dict that {creator} returns")
    return params


def pick_array(fn: str, params: dict, new: str, old: str | None, creator: str) -> Any:
    """``params[new]``, else nmn 0.3.5's ``params[old]``; a ``ValueError`` naming ``fn`` when neither is there."""
    if new in params:
        return params[new]
    if old is not None and old in params:
        return params[old]
    raise ValueError(f"{fn}: params lacks {[new]}; pass the dict that {creator} returns")


def _rng(seed):
    import numpy as np

    return np.random.default_rng(seed)  # None, an int, a SeedSequence or a Generator (returned as is)


def _check_int(where, name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{where}: {name} must be an int {span}, got {value!r}")
    return value


def _check_float(where, name, value, *, positive=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a float, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{where}: {name} must be a finite float {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def maclaurin_coeffs(bias: float, eps: float, nmax: int) -> list[float]:
    """``a_0 .. a_nmax`` with ``kappa_b(t) = sum_n a_n t^n`` (nmn 0.3.5's argument order ``(b, eps, nmax)``).

    ``1 / (C - 2t) = sum_n beta_n t^n``, ``beta_n = (2/C)^n / C``, so ``a_n = beta_(n-2) + 2 b beta_(n-1) +
    b^2 beta_n`` (``beta_(-1) = beta_(-2) = 0``), all ``>= 0`` for ``b >= 0``: a categorical distribution over
    degrees after division by ``Z = sum_n a_n``. Pure Python (a list of floats).

    >>> [round(a, 4) for a in maclaurin_coeffs(1.0, 1e-5, 3)]
    [0.5, 1.5, 2.0, 2.0]
    """
    _check_int("maclaurin_coeffs", "nmax", nmax, 0)
    return maclaurin_coefficients(float(eps), float(bias), int(nmax))


def spherical_kappa(F, t, bias, eps):
    """The exact bias-aware spherical Yat score ``(t + b)^2 / (2 + eps - 2t)`` of cosines ``t``.

    ``F`` is only used for its operators (``t`` may be a framework tensor, a numpy array or a float).

    >>> round(spherical_kappa(None, 0.5, 1.0, 1e-5), 4)
    2.25
    """
    return (t + bias) * (t + bias) / (2.0 + eps - 2.0 * t)


def maclaurin_projection(head_dim, num_features=256, *, bias=0.0, epsilon=1e-5, nmax=40, seed=None) -> dict:
    """Sample the MAY projection (shared by q and k): numpy arrays ``omega``, ``degmask``, ``scale``, ``degrees``.

    Each of the ``M = num_features`` features draws a degree ``n_r ~ Categorical(a_n / Z)``, ``n = 0..nmax``
    (:func:`maclaurin_coeffs` of ``bias``, ``epsilon``) and ``nmax`` Rademacher rows ``omega[r, l]`` in
    ``{-1, +1}^D``, of which rows ``l >= n_r`` are zeroed (unused); ``degmask[r, l] = 1`` for ``l < n_r``;
    ``scale = sqrt(Z / M)``. Shapes: omega (M, nmax, D) float32, degmask (M, nmax) float32, scale (1,)
    float32, degrees (M,) int64. ``seed``: None, an int or a numpy Generator.

    Difference from nmn 0.3.5: omega has ``nmax`` rows (0.3.5 stored ``nmax + 1``, the last never used) and
    the unused rows are zero, so the file's constants say which factors are used.

    >>> p = maclaurin_projection(4, 8, bias=1.0, epsilon=1.0, nmax=3, seed=0)
    >>> bool(((p["degmask"].sum(1)) == p["degrees"]).all()), round(float(p["scale"][0]) ** 2 * 8, 4)
    (True, 2.7654)
    """
    import numpy as np

    where = "maclaurin_projection"
    d = _check_int(where, "head_dim", head_dim, 1)
    m = _check_int(where, "num_features", num_features, 1)
    nmax = _check_int(where, "nmax", nmax, 1, 64)
    b = _check_float(where, "bias", bias)
    eps = _check_float(where, "epsilon", epsilon, positive=True)
    a = np.asarray(maclaurin_coeffs(b, eps, nmax), np.float64)
    z = float(a.sum())
    rng = _rng(seed)
    degrees = rng.choice(nmax + 1, size=m, p=a / z).astype(np.int64)
    signs = rng.integers(0, 2, size=(m, nmax, d)).astype(np.float32) * 2.0 - 1.0
    degmask = (np.arange(nmax)[None, :] < degrees[:, None]).astype(np.float32)
    omega = (signs * degmask[:, :, None]).astype(np.float32)
    scale = np.array([math.sqrt(z / m)], np.float32)
    return {"omega": omega, "degmask": degmask, "scale": scale, "degrees": degrees}


def radial_projection(
    head_dim, sketch_m=128, num_radial=8, radial_dim=64, *, bias=0.0, epsilon=1e-5, seed=None
) -> dict:
    """Sample the RAY projection: numpy float32 ``w1``, ``w2`` (m, D+1), ``omega`` (J, R, D+1), ``phase`` (J, R),
    ``coef`` (J,) with ``m = sketch_m``, ``J = num_radial``, ``R = radial_dim``.

    ``w1``, ``w2`` are independent standard normal (the degree-2 sketch); with the Gauss-Laguerre rule
    ``(tau_j, w_j)`` of ``J`` nodes, ``1/(eps + r^2) = (1/eps) int_0^inf e^(-tau) e^(-tau r^2 / eps) dtau
    ~ sum_j coef_j exp(-u_j r^2)``, ``u_j = tau_j / eps``, ``coef_j = w_j / eps``; ``omega[j]`` is standard
    normal times ``sqrt(2 u_j)`` (the spectral measure of ``exp(-u_j r^2)``) and ``phase`` is uniform on
    ``[0, 2 pi)``. ``bias`` is not sampled from (it enters the features as ``z = [x_hat, sqrt(b)]``); it is
    checked (``>= 0``) so that a wrong value fails here. Same construction as nmn 0.3.5 (not the same draws).

    >>> p = radial_projection(4, 8, 2, 3, epsilon=0.5, seed=0)
    >>> [p[k].shape for k in ("w1", "w2", "omega", "phase", "coef")]
    [(8, 5), (8, 5), (2, 3, 5), (2, 3), (2,)]
    """
    import numpy as np

    where = "radial_projection"
    d = _check_int(where, "head_dim", head_dim, 1)
    m = _check_int(where, "sketch_m", sketch_m, 1)
    j = _check_int(where, "num_radial", num_radial, 1)
    r = _check_int(where, "radial_dim", radial_dim, 1)
    _check_float(where, "bias", bias)
    eps = _check_float(where, "epsilon", epsilon, positive=True)
    rng = _rng(seed)
    da = d + 1
    w1 = rng.standard_normal((m, da))
    w2 = rng.standard_normal((m, da))
    tau, wq = np.polynomial.laguerre.laggauss(j)
    u = tau / eps
    omega = rng.standard_normal((j, r, da)) * np.sqrt(2.0 * u)[:, None, None]
    phase = rng.uniform(0.0, 2.0 * math.pi, (j, r))
    coef = wq / eps
    f32 = np.float32
    return {
        "w1": w1.astype(f32),
        "w2": w2.astype(f32),
        "omega": omega.astype(f32),
        "phase": phase.astype(f32),
        "coef": coef.astype(f32),
    }


def anchor_projection(
    head_dim, num_prf_features=8, num_quad_nodes=1, num_anchor_features=16, *, epsilon=1e-5, seed=None
) -> dict:
    """Sample nmn 0.3.5's anchor (``yat_tp``) projection: numpy float32 ``anchors`` (P, D) unit rows, ``proj``
    (J, M, D) standard normal, ``nodes`` (J,), ``weights`` (J,) with ``P = num_anchor_features``,
    ``M = num_prf_features``, ``J = num_quad_nodes``.

    Gauss-Laguerre ``(x_j, w_j)`` and ``s = x / C``: ``1/(C - 2t) = int_0^inf e^(-sC) e^(2st) ds
    ~ sum_j (w_j / C) exp(2 s_j t)``, so ``nodes = x_j / C`` and ``weights = w_j / C`` (``C = 2 + epsilon``).

    >>> p = anchor_projection(4, 3, 2, 5, seed=0)
    >>> [p[k].shape for k in ("anchors", "proj", "nodes", "weights")]
    [(5, 4), (2, 3, 4), (2,), (2,)]
    """
    import numpy as np

    where = "anchor_projection"
    d = _check_int(where, "head_dim", head_dim, 1)
    m = _check_int(where, "num_prf_features", num_prf_features, 1)
    j = _check_int(where, "num_quad_nodes", num_quad_nodes, 1)
    p = _check_int(where, "num_anchor_features", num_anchor_features, 1)
    eps = _check_float(where, "epsilon", epsilon)
    c = 2.0 + eps
    x, w = np.polynomial.laguerre.laggauss(j)
    rng = _rng(seed)
    anchors = rng.standard_normal((p, d))
    anchors = anchors / np.sqrt((anchors * anchors).sum(-1, keepdims=True) + 1e-8)
    proj = rng.standard_normal((j, m, d))
    f32 = np.float32
    return {
        "anchors": anchors.astype(f32),
        "proj": proj.astype(f32),
        "nodes": (x / c).astype(f32),
        "weights": (w / c).astype(f32),
    }


# ----------------------------------------------------------------------------------------------- feature maps


def _lead(x, where, d_expected):
    """The leading shape of ``x (..., d_expected)``; entries may be None (tf.function, a Keras symbolic call).

    The maps keep the leading axes (ellipsis einsums) rather than flattening them, so that the only reshape, the
    last one, has its unknown leading entries at the same positions as its input, where the Keras and TF
    ``F.reshape`` fill them from the dynamic shape.
    """
    shape = tuple(x.shape)
    if len(shape) < 1 or shape[-1] != d_expected:
        raise ValueError(f"{where}: x must have shape (..., {d_expected}) to match the projection, got {shape}")
    return shape[:-1]


def _unit(F, x, epsilon):
    return x / F.sqrt(F.sum(x * x, -1, True) + epsilon)


def _shape(t, where, name, expected):
    got = tuple(int(s) for s in t.shape)
    if len(got) != len(expected) or any(e is not None and g != e for g, e in zip(got, expected)):
        want = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{where}: {name} must have shape {want}, got {got}")
    return got


def maclaurin_features(F, x, omega, degmask, scale, *, epsilon=1e-6):
    """MAY features ``phi_r(x) = scale * prod_(l < nmax) (degmask[r,l] (omega[r,l] . x_hat) + 1 - degmask[r,l])``.

    ``x (..., D)`` -> ``(..., M)``; ``x_hat = x / sqrt(|x|^2 + epsilon)``; arrays of
    :func:`maclaurin_projection` as framework tensors.

    What it estimates: for Rademacher rows, ``E[(w.q)(w.k)] = q.k`` and the rows are independent, so given
    degree ``n``, ``E[prod_(l<n) (w_l.q)(w_l.k)] = t^n`` (``t = q_hat . k_hat``); with ``n ~ a_n / Z`` and the
    scale ``sqrt(Z / M)`` on each of the M features, ``E[phi(q) . phi(k)] = M (Z/M) sum_n (a_n / Z) t^n =
    sum_(n <= nmax) a_n t^n``, the degree-``nmax`` Maclaurin truncation of ``kappa_b`` (exact as nmax -> inf for
    ``|t| < C/2``; at ``t = 1`` the tail decays like ``(2/C)^nmax``, slowly for small eps). Degree-0 draws are the
    constant ``scale``. Sign-indefinite (odd degrees): the readout shifts its denominator keeping the sign.
    """
    where = "maclaurin_features"
    m, n, d = _shape(omega, where, "omega", (None, None, None))
    _shape(degmask, where, "degmask", (m, n))
    _lead(x, where, d)
    xh = _unit(F, x, epsilon)
    proj = F.einsum("...d,mld->...ml", xh, omega)  # (..., M, nmax)
    factors = proj * degmask + (1.0 - degmask)
    out = factors[..., 0]
    for ell in range(1, n):
        out = out * factors[..., ell]
    return out * scale


def radial_features(F, x, w1, w2, omega, phase, coef, *, bias, epsilon=1e-6):
    """RAY features ``phi(x) = flatten(psi(z) (x) [rff_1(z) .. rff_J(z)])`` of ``x (..., D)`` -> ``(..., m J R)``.

    ``z = [x_hat, sqrt(b)]``, ``psi = (z W1^T) * (z W2^T) / sqrt(m)``, ``rff_j = sqrt(2/R) sqrt(max(coef_j, 0))
    cos(z omega_j^T + phase_j)``; arrays of :func:`radial_projection`.

    What it estimates: ``z_q . z_k = t + b`` and ``|z_q - z_k|^2 = |q_hat - k_hat|^2`` (``= 2 - 2t`` on the
    sphere), and ``kappa_b = (z_q.z_k)^2 * 1 / (eps + |z_q - z_k|^2)``, a product of two PSD kernels. For
    independent Gaussian ``w1, w2``, ``E[(w1.z)(w2.z)(w1.z')(w2.z')] = (z.z')^2`` (degree-2 sketch). With
    ``omega ~ N(0, 2u I)`` and a uniform phase, ``E[2 cos(omega.z + p) cos(omega.z' + p)] = exp(-u |z - z'|^2)``,
    and ``sum_j coef_j exp(-u_j r^2)`` is the Gauss-Laguerre rule of ``1/(eps + r^2)``. The two sketches use
    independent draws, so ``E[phi(q) . phi(k)] = (t + b)^2 * GL_J(1 / (eps + 2 - 2t))``: ``kappa_b`` up to the
    J-node quadrature error. Small eps means large frequencies (``u_j = tau_j / eps``), hence large variance.
    """
    where = "radial_features"
    b = _check_float(where, "bias", bias)
    m, da = _shape(w1, where, "w1", (None, None))
    _shape(w2, where, "w2", (m, da))
    j, r, _ = _shape(omega, where, "omega", (None, None, da))
    _shape(phase, where, "phase", (j, r))
    _shape(coef, where, "coef", (j,))
    lead = _lead(x, where, da - 1)
    xh = _unit(F, x, epsilon)
    z = F.concat([xh, F.full_like(xh[..., :1], math.sqrt(b))], -1)  # (..., D+1)
    psi = F.einsum("...d,md->...m", z, w1) * F.einsum("...d,md->...m", z, w2) * (1.0 / math.sqrt(m))
    rff = F.cos(F.einsum("...d,jrd->...jr", z, omega) + phase) * math.sqrt(2.0 / r)
    rff = rff * F.reshape(F.sqrt(F.relu(coef)), (j, 1))
    out = F.einsum("...m,...jr->...mjr", psi, rff)
    return F.reshape(out, (*lead, m * j * r))


def anchor_features(F, x, anchors, proj, nodes, weights, *, epsilon=1e-6):
    """Anchor (nmn 0.3.5 ``yat_tp``) features ``phi = concat_j sqrt(max(w_j, 0)) flatten(poly (x) prf_j)``,
    ``x (..., D)`` -> ``(..., J P M)``.

    ``poly_p = (x_hat . a_p)^2 / sqrt(P)``, ``prf_j = exp(clip(sqrt(2 s_j) proj_j x_hat - s_j, -20, 20)) /
    sqrt(M)`` (``s = nodes``, ``w = weights``); arrays of :func:`anchor_projection`.

    What it estimates (the ``b = 0`` kernel, as 0.3.5): for unit q, k and ``omega ~ N(0, I)``,
    ``E[exp(sqrt(2s) omega.(q + k) - 2s)] = exp(s |q + k|^2 - 2s) = exp(2 s t)`` (positive random features,
    unclipped), and the Gauss-Laguerre rule gives ``sum_j w_j exp(2 s_j t) ~ 1 / (C - 2t)``. The anchor part
    is ``(1/P) sum_p (a_p.q)^2 (a_p.k)^2``, whose mean over anchors uniform on the sphere is
    ``(1 + 2 t^2) / (D (D + 2))``, not ``t^2``: a positive, shifted stand-in for ``(q.k)^2`` (the scale cancels
    under the l1 readout, the shift does not). With ``num_quad_nodes = 1`` (0.3.5's default) the quadrature
    is a single exponential. So ``E[phi(q).phi(k)] ~ (1 + 2t^2) / (D (D + 2)) * GL_J(1 / (C - 2t))`` -- 0.3.5's
    quadrature of ``(q.k)^2 exp(2 s q.k)``, not an unbiased estimate of ``kappa_0``. Features are positive.
    """
    where = "anchor_features"
    p, d = _shape(anchors, where, "anchors", (None, None))
    j, m, _ = _shape(proj, where, "proj", (None, None, d))
    _shape(nodes, where, "nodes", (j,))
    _shape(weights, where, "weights", (j,))
    lead = _lead(x, where, d)
    xh = _unit(F, x, epsilon)
    dots = F.einsum("...d,pd->...p", xh, anchors)
    poly = dots * dots * (1.0 / math.sqrt(p))  # (..., P)
    s = F.reshape(nodes, (j, 1))
    arg = F.einsum("...d,jmd->...jm", xh, proj) * F.sqrt(2.0 * F.relu(s)) - s
    arg = arg - F.relu(arg - PRF_CLIP) + F.relu(-PRF_CLIP - arg)  # clip to [-20, 20]
    prf = F.exp(arg) * (1.0 / math.sqrt(m))  # (..., J, M)
    prf = prf * F.reshape(F.sqrt(F.relu(weights)), (j, 1))
    out = F.einsum("...p,...jm->...jpm", poly, prf)
    return F.reshape(out, (*lead, j * p * m))
