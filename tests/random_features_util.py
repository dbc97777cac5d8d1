"""Shared oracles of the random-feature attention tests (issue 17): onnxruntime running an nmn function, and the
exact bias-aware spherical Yat attention in float64.

>>> import numpy as np
>>> q = np.array([[[[1.0, 0.0]], [[0.0, 1.0]]]]); v = np.array([[[[1.0]], [[3.0]]]])
>>> exact_bias_attention(q, q, v, bias=0.0, eps=1.0, causal=False)[0, :, 0, 0].tolist()
[1.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["exact_bias_attention", "ort_run", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array of ``x``: numpy, a Python scalar/list, or a framework tensor (torch, JAX, TF, Keras, MLX)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy") and callable(x.numpy):  # tf eager
        return np.asarray(x.numpy())
    return np.asarray(x)


def ort_run(op_name: str, inputs: Sequence[Any] | Mapping[str, Any], attrs: Mapping[str, Any] | None = None):
    """Run a one-node model calling ``nmn::op_name`` (its function bodies attached) in onnxruntime.

    ``inputs``: arrays in the schema's input order (a sequence), or a mapping from the schema's input names
    (every one of them). ``attrs``: attributes; those left out get the schema default, every attribute is
    written explicitly on the node. Returns the numpy output (a tuple when the function has several).
    The input dtype is kept (float32, float16 or float64); integer/bool inputs must have the schema's type.

    >>> import numpy as np
    >>> ort_run("YatLinearAttention", [np.ones((1, 2, 1, 3), np.float32)] * 2 + [np.ones((1, 2, 1, 1), np.float32)],
    ...         {"epsilon": 1e-6}).shape
    (1, 2, 1, 1)
    """
    import onnx_ops
    from nmn.core.schemas import FUNCTIONS

    if op_name not in FUNCTIONS:
        raise KeyError(f"ort_run: unknown nmn function {op_name!r}")
    names = FUNCTIONS[op_name].inputs
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        extra = sorted(set(inputs) - set(names))
        if missing or extra:
            raise ValueError(f"ort_run({op_name}): inputs must be exactly {names}; missing {missing}, unknown {extra}")
        arrays = [to_numpy(inputs[n]) for n in names]
    else:
        arrays = [to_numpy(x) for x in inputs]
    return onnx_ops.run_function(op_name, arrays, **dict(attrs or {}))


def exact_bias_attention(q, k, v, bias, eps, causal=False, *, norm_epsilon=0.0):
    """Exact bias-aware spherical Yat attention of (B, L, H, D) heads in float64: ``out_i = sum_j kappa(t_ij) v_j /
    sum_j kappa(t_ij)``, ``kappa(t) = (t + bias)^2 / (2 + eps - 2t)``, ``t = q_hat . k_hat``.

    ``x_hat = x / sqrt(|x|^2 + norm_epsilon)`` (0: the plain unit vector; the random features use 1e-6).
    ``causal``: query i sees keys ``j <= i + (Lk - Lq)``. Loops over batch and head; the scores are explicit.
    """
    q, k, v = (np.asarray(to_numpy(a), np.float64) for a in (q, k, v))
    qh = q / np.sqrt((q * q).sum(-1, keepdims=True) + norm_epsilon)
    kh = k / np.sqrt((k * k).sum(-1, keepdims=True) + norm_epsilon)
    bsz, lq, h, _ = q.shape
    lk = k.shape[1]
    out = np.zeros((bsz, lq, h, v.shape[-1]))
    for b in range(bsz):
        for hh in range(h):
            t = qh[b, :, hh] @ kh[b, :, hh].T  # (Lq, Lk)
            score = (t + bias) ** 2 / (2.0 + eps - 2.0 * t)
            if causal:
                keep = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
                score = np.where(keep, score, 0.0)
            out[b, :, hh] = (score @ v[b, :, hh]) / score.sum(-1, keepdims=True)
    return out
