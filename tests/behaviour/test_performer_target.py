"""The Yat-Performer estimates a documented target (issue 18 item 3).

Target: the exact spherical Yat attention with the l1 readout,
``O_i = sum_j s(t_ij) v_j / sum_j s(t_ij)`` with ``s(t) = t^2 / (2 + eps - 2 t)`` and
``t = q_hat . k_hat`` (alpha and 1/sqrt(D) cancel in the ratio). The random features of
:func:`nmn.core.yat.performer_features` are unbiased (up to the ``m / (m + N_n)`` shrinkage) for the degree-3
Maclaurin truncation ``s3(t) = t^2 / C + 2 t^3 / C^2``, ``C = 2 + eps``, so as the number of features ``m``
grows the performer's output converges to the l1 attention with ``s3``, and its error against the exact
attention falls to the truncation's error.

The oracles are written here in float64 numpy from these formulas alone: the exact attention, the truncated
one, and averaging V (what the old feature map amounted to: relative error 0.9 at every ``m``). Inputs: queries
and keys around four directions (so the attention is far from uniform), D = 16, 32 queries, 128 keys; errors
are ``|O - O_exact| / |O_exact|`` (Frobenius), averaged over 8 draws of nmn's orthogonal-block projection.

Measured (``python -m pytest -q -s tests/behaviour/test_performer_target.py``, which prints the table):
against the exact attention 0.49 (m = 16), 0.40 (64), 0.33 (256, the default), 0.30 (1024), 0.29 (4096),
approaching 0.29, the truncation's own error; averaging V: 0.84. Against the truncated attention: 0.35, 0.24,
0.12, 0.063, 0.037 (about 1/sqrt(m)). Core (numpy) and torch give the same table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nmn.core import yat
from nmn.core.options import DEFAULTS

EPS = 1e-5
D, LQ, LK, DV = 16, 32, 128, 8
FEATURES = (16, 64, 256, 1024, 4096)
SEEDS = range(8)
#: the documented bound on the relative error against the exact spherical Yat attention at the default m
BOUND_AT_DEFAULT = 0.40


class _NumpyOps:
    """``F`` of :mod:`nmn.core.yat` on float64 numpy (only what the feature map and the readout use)."""

    sqrt, sign, where, abs = staticmethod(np.sqrt), staticmethod(np.sign), staticmethod(np.where), staticmethod(np.abs)
    einsum = staticmethod(np.einsum)

    @staticmethod
    def sum(x, axis, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def full_like(x, value):
        return np.full_like(x, value)

    @staticmethod
    def concat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def cumsum(x, axis):
        return np.cumsum(x, axis=axis)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, D))
    centres /= np.linalg.norm(centres, axis=-1, keepdims=True)
    q = centres[rng.integers(0, 4, LQ)] + 0.3 * rng.normal(size=(LQ, D)) / math.sqrt(D)
    k = centres[rng.integers(0, 4, LK)] + 0.3 * rng.normal(size=(LK, D)) / math.sqrt(D)
    return q, k, rng.normal(size=(LK, DV))


def _l1_attention(q, k, v, kernel):
    qh = q / np.sqrt(np.sum(q * q, -1, keepdims=True) + EPS)
    kh = k / np.sqrt(np.sum(k * k, -1, keepdims=True) + EPS)
    s = kernel(qh @ kh.T)
    return (s / s.sum(-1, keepdims=True)) @ v


def _exact(t):
    return t * t / (2.0 + EPS - 2.0 * t)


def _truncated(t):
    c = 2.0 + EPS
    return t * t / c + 2.0 * t**3 / c**2


def _projection(m, seed):
    """nmn's projection (orthogonal blocks, rows of norm sqrt(D)), drawn by the torch helper when torch is here."""
    try:
        import torch

        from nmn.torch.attention import performer_projection
    except ImportError:
        rng = np.random.default_rng(seed)
        blocks = [np.linalg.qr(rng.normal(size=(D, D)))[0].T for _ in range(-(-m // D))]
        return np.concatenate(blocks)[:m] * math.sqrt(D)
    return performer_projection(m, D, generator=torch.Generator().manual_seed(seed)).double().numpy()


def _performer_core(q, k, v, proj):
    F = _NumpyOps()
    qf = yat.performer_features(F, q[None, :, None], proj, EPS)
    kf = yat.performer_features(F, k[None, :, None], proj, EPS)
    return yat.linear_readout(F, qf, kf, v[None, :, None])[0, :, 0]


def _performer_torch(q, k, v, proj):
    import torch

    from nmn.torch import functional

    t = lambda a: torch.as_tensor(a[None, :, None], dtype=torch.float64)
    qf = functional.performer_features(t(q), torch.as_tensor(proj), EPS)
    kf = functional.performer_features(t(k), torch.as_tensor(proj), EPS)
    return functional.linear_attention(qf, kf, t(v))[0, :, 0].numpy()


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _errors(performer):
    q, k, v = _inputs()
    exact, truncated = _l1_attention(q, k, v, _exact), _l1_attention(q, k, v, _truncated)
    table = {}
    for m in FEATURES:
        outs = [performer(q, k, v, _projection(m, s)) for s in SEEDS]
        table[m] = (np.mean([_rel(o, exact) for o in outs]), np.mean([_rel(o, truncated) for o in outs]))
    average = _rel(np.broadcast_to(v.mean(0), exact.shape), exact)
    rows = ", ".join(f"m={m}: {a:.3f} / {b:.3f}" for m, (a, b) in table.items())
    print(
        f"\nerror vs exact / vs truncated: {rows}; truncation {_rel(truncated, exact):.3f}, averaging V {average:.3f}"
    )
    return table, average, _rel(truncated, exact)


@pytest.fixture(scope="module", params=["core", "torch"])
def errors(request):
    if request.param == "torch":
        pytest.importorskip("torch")
        return _errors(_performer_torch)
    return _errors(_performer_core)


def test_error_against_exact_attention_decreases_with_features(errors):
    table, average, _ = errors
    against_exact = [table[m][0] for m in FEATURES]
    assert all(a > b for a, b in zip(against_exact, against_exact[1:])), against_exact
    assert against_exact[-1] < 0.5 * average, (against_exact, average)  # not "averaging V"


def test_error_at_the_default_feature_count_is_below_the_documented_bound(errors):
    table, average, _ = errors
    m = DEFAULTS["performer_num_features"]
    assert m in table
    assert table[m][0] < BOUND_AT_DEFAULT, f"relative error {table[m][0]:.3f} at m = {m} (averaging V: {average:.3f})"


def test_converges_to_the_truncated_kernel_attention(errors):
    """The limit is the attention with the degree-3 truncation: the error to it falls like 1/sqrt(m) (a factor
    of about 2 per 4x features; asserted: at least 1.4 per 4x, and below 0.06 at m = 4096)."""
    table, _, _ = errors
    against_truncated = [table[m][1] for m in FEATURES]
    assert all(a > 1.4 * b for a, b in zip(against_truncated[:-1], against_truncated[1:])), against_truncated
    assert against_truncated[-1] < 0.06, against_truncated
