"""The ``F`` namespace of MLX ops that :mod:`nmn.core.yat` is written against, plus small MLX helpers.

Only this module (and the layer files) touches ``mlx.core``; the Yat math itself lives in ``nmn.core.yat``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

try:
    import mlx.core as mx
    import mlx.nn as nn
except ImportError as error:  # pragma: no cover - exercised only without mlx
    raise ImportError('nmn.mlx needs MLX: pip install "nmn[mlx]>=1.0"') from error

from nmn.core.options import check_epsilon, inverse_softplus, resolve_alpha, resolve_bias

_LOW_PRECISION = (mx.float16, mx.bfloat16)


def _sum(x, axis, keepdims=False):
    return mx.sum(x, axis=axis, keepdims=keepdims)


def _tril(lq, lk):
    # query i (of lq) sees key j (of lk) when j <= i + (lk - lq): the last query sees the last key
    rows = mx.arange(lq)[:, None] + (lk - lq)
    return mx.arange(lk)[None, :] <= rows


def to_f32(x):
    """Cast float16 / bfloat16 to float32 (the Yat arithmetic never runs below float32)."""
    return x.astype(mx.float32) if x.dtype in _LOW_PRECISION else x


def cast_like(x, ref):
    """Cast ``x`` to ``ref``'s dtype when they differ."""
    return x if x.dtype == ref.dtype else x.astype(ref.dtype)


F = SimpleNamespace(
    sum=_sum,
    sqrt=mx.sqrt,
    relu=lambda x: mx.maximum(x, 0.0),
    softplus=lambda x: mx.logaddexp(x, 0.0),
    exp=mx.exp,
    abs=mx.abs,
    sign=mx.sign,
    matmul=mx.matmul,
    einsum=mx.einsum,
    where=mx.where,
    softmax=lambda x, axis: mx.softmax(x, axis=axis, precise=True),
    cumsum=lambda x, axis: mx.cumsum(x, axis=axis),
    tril=_tril,
    logical_and=mx.logical_and,
    full_like=lambda x, value: mx.full(x.shape, value, dtype=x.dtype),
    to_f32=to_f32,
    cast_like=cast_like,
    reshape=mx.reshape,
    stack=lambda xs, axis: mx.stack(xs, axis=axis),
    concat=lambda xs, axis: mx.concatenate(xs, axis=axis),
)


def result_dtype(x, *params):
    """The promoted dtype of the input and the parameters (the dtype a Yat layer returns)."""
    dtype = x.dtype
    if not mx.issubdtype(dtype, mx.floating):
        dtype = mx.float32
    for p in params:
        if p is not None:
            dtype = mx.result_type(dtype, p.dtype)
    return dtype


def glorot_normal(shape, fan_in, fan_out, dtype):
    """Plain normal with variance ``2 / (fan_in + fan_out)`` (yat-ops.md 2.5, the MLX idiom)."""
    return mx.random.normal(shape, dtype=dtype) * math.sqrt(2.0 / (fan_in + fan_out))


def fan_in_normal(shape, fan_in, dtype):
    """Normal with variance ``1 / fan_in`` (the MLX conv init of yat-ops.md 3.2)."""
    return mx.random.normal(shape, dtype=dtype) * math.sqrt(1.0 / fan_in)


def raw_epsilon(epsilon, dtype):
    """The raw learnable-epsilon parameter, ``inverse_softplus(epsilon)`` computed in float64, shape (1,)."""
    return mx.array([inverse_softplus(epsilon)], dtype=dtype)


class PlainConfigMixin:
    """Keep tuple / list configuration (kernel sizes, pads) as plain attributes, out of the module dict.

    ``mlx.nn.Module`` stores every tuple or list in its dict, where ``children()`` and tree utilities would see
    it; only arrays and submodules belong there.
    """

    def __setattr__(self, key, val):
        if isinstance(val, (tuple, list)) and not any(isinstance(v, (mx.array, nn.Module, dict)) for v in val):
            object.__setattr__(self, key, val)
            self.pop(key, None)
        else:
            super().__setattr__(key, val)


class YatParamsMixin(PlainConfigMixin):
    """Bias / alpha / epsilon handling shared by the Yat layers (all state lives in the module dict)."""

    def _init_yat_params(
        self, use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, bias_shape, dtype
    ):
        layer = type(self).__name__
        self._bias_spec = resolve_bias(use_bias, constant_bias)
        self._alpha_spec = resolve_alpha(use_alpha, constant_alpha)
        self._use_alpha = bool(use_alpha)
        self._epsilon = check_epsilon(epsilon, layer)
        self._learnable_epsilon = bool(learnable_epsilon)
        if self._bias_spec.mode == "learnable":
            self.bias = mx.zeros(bias_shape, dtype=dtype)
        if self._alpha_spec.learnable:
            self.alpha = mx.ones((1,), dtype=dtype)
        if self._learnable_epsilon:
            self.epsilon_param = raw_epsilon(self._epsilon, dtype)

    def _bias_value(self):
        mode = self._bias_spec.mode
        if mode == "learnable":
            return to_f32(self["bias"])
        if mode == "constant":
            return self._bias_spec.value
        return None

    def _alpha_value(self):
        if self._alpha_spec.learnable:
            return to_f32(self["alpha"])
        return None if self._alpha_spec.value == 1.0 else self._alpha_spec.value

    def _eps_value(self):
        if self._learnable_epsilon:
            return F.softplus(to_f32(self["epsilon_param"]))
        return self._epsilon

    def _yat_config(self):
        """The Yat keys of the neutral spec (constant_alpha resolved to a float or None)."""
        bias, alpha = self._bias_spec, self._alpha_spec
        return {
            "use_bias": bias.mode != "none",
            "constant_bias": bias.value if bias.mode == "constant" else None,
            "use_alpha": self._use_alpha,
            "constant_alpha": None if alpha.learnable or (not self._use_alpha and alpha.value == 1.0) else alpha.value,
            "epsilon": self._epsilon,
            "learnable_epsilon": self._learnable_epsilon,
        }

    def _yat_repr(self):
        cfg = self._yat_config()
        parts = [f"epsilon={cfg['epsilon']}"]
        if cfg["constant_bias"] is not None:
            parts.append(f"constant_bias={cfg['constant_bias']}")
        elif not cfg["use_bias"]:
            parts.append("use_bias=False")
        if cfg["constant_alpha"] is not None:
            parts.append(f"constant_alpha={cfg['constant_alpha']}")
        elif not cfg["use_alpha"]:
            parts.append("use_alpha=False")
        if cfg["learnable_epsilon"]:
            parts.append("learnable_epsilon=True")
        return ", ".join(parts)


def check_last_dim(layer, x, expected, what="features"):
    """``ValueError`` naming the layer and both shapes when ``x``'s last axis is not ``expected``."""
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ValueError(
            f"{layer}: expected input of shape (..., {expected}) ({expected} {what} on the last axis), "
            f"got shape {tuple(x.shape)}"
        )


__all__ = [
    "F",
    "mx",
    "nn",
    "to_f32",
    "cast_like",
    "result_dtype",
    "glorot_normal",
    "fan_in_normal",
    "raw_epsilon",
    "PlainConfigMixin",
    "YatParamsMixin",
    "check_last_dim",
]
