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

from nmn.core.options import inverse_softplus
from nmn.core.spec import YatSpec, resolve_dropconnect

_LOW_PRECISION = (mx.float16, mx.bfloat16)


def _sum(x: mx.array, axis: int | tuple[int, ...] | None, keepdims: bool = False) -> mx.array:
    return mx.sum(x, axis=axis, keepdims=keepdims)


def _tril(lq: int, lk: int) -> mx.array:
    # query i (of lq) sees key j (of lk) when j <= i + (lk - lq): the last query sees the last key
    rows = mx.arange(lq)[:, None] + (lk - lq)
    return mx.arange(lk)[None, :] <= rows


def to_f32(x: mx.array) -> mx.array:
    """Cast float16 / bfloat16 to float32 (the Yat arithmetic never runs below float32)."""
    return x.astype(mx.float32) if x.dtype in _LOW_PRECISION else x


def cast_like(x: mx.array, ref: mx.array) -> mx.array:
    """Cast ``x`` to ``ref``'s dtype when they differ."""
    return x if x.dtype == ref.dtype else x.astype(ref.dtype)


# MLX's CPU matmul is markedly slower (some 1.5x, measured on the mlx[cpu] 0.32 build) when its right operand is a
# transposed view of a row-major matrix and its left one is not; a contiguous copy of a small weight is cheap beside
# that (see ``linear``). The attention contractions of nmn.core.yat run as direct matmuls (at head sizes the key
# view's layout measured the same as a copy, so none is made) and the two squared-norm contractions as a multiply
# and a sum (mx.einsum runs them as batched 1 x d products, 5x slower).
def _scores_dot(q: mx.array, k: mx.array) -> mx.array:  # "bqhd,bkhd->bhqk"
    return mx.matmul(mx.transpose(q, (0, 2, 1, 3)), mx.transpose(k, (0, 2, 3, 1)))


def _row_sq(a: mx.array, b: mx.array) -> mx.array:  # "bqhd,bqhd->bhq"
    return mx.transpose(mx.sum(a * b, axis=-1), (0, 2, 1))


def _weights_values(w: mx.array, v: mx.array) -> mx.array:  # "bhqk,bkhd->bqhd"
    return mx.transpose(mx.matmul(w, mx.transpose(v, (0, 2, 1, 3))), (0, 2, 1, 3))


_EINSUM_FAST = {
    "bqhd,bkhd->bhqk": _scores_dot,
    "bqhd,bqhd->bhq": _row_sq,
    "bkhd,bkhd->bhk": _row_sq,
    "bhqk,bkhd->bqhd": _weights_values,
}


def _einsum(spec: str, *xs: mx.array) -> mx.array:
    """``mx.einsum``, with the attention contractions above as direct matmuls / reductions (4-d operands)."""
    fast = _EINSUM_FAST.get(spec)
    if fast is not None and len(xs) == 2 and xs[0].ndim == 4 and xs[1].ndim == 4:
        return fast(*xs)
    return mx.einsum(spec, *xs)


@mx.custom_function
def _linear_bias(x: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
    return mx.matmul(x, mx.contiguous(mx.transpose(weight))) + bias


@mx.custom_function
def _linear_nobias(x: mx.array, weight: mx.array) -> mx.array:
    return mx.matmul(x, mx.contiguous(mx.transpose(weight)))


def _linear_grads(x: mx.array, weight: mx.array, g: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    # every product with its operands in a fast layout: dx = g W, dW = g^T x (no transposed right operand)
    g2 = mx.reshape(g, (-1, g.shape[-1]))
    dx = mx.matmul(g, weight).astype(x.dtype)
    dw = mx.matmul(mx.transpose(g2), mx.reshape(x, (-1, x.shape[-1]))).astype(weight.dtype)
    return dx, dw, g2


@_linear_bias.vjp
def _linear_bias_vjp(primals, cotangent, output):
    x, weight, bias = primals
    dx, dw, g2 = _linear_grads(x, weight, cotangent)
    return dx, dw, mx.sum(g2, axis=0).astype(bias.dtype)


@_linear_nobias.vjp
def _linear_nobias_vjp(primals, cotangent, output):
    x, weight = primals
    dx, dw, _ = _linear_grads(x, weight, cotangent)
    return dx, dw


def linear(layer: nn.Module, x: mx.array) -> mx.array:
    """``layer(x)`` for a projection; a plain ``mlx.nn.Linear`` (exactly that class, not a quantised or other
    subclass) runs as ``x @ contiguous(W^T) + b`` with a backward whose products avoid the slow transposed-right
    layout (same values up to float32 rounding)."""
    if type(layer) is not nn.Linear or x.ndim < 2:
        return layer(x)
    if "bias" in layer:
        return _linear_bias(x, layer.weight, layer.bias)
    return _linear_nobias(x, layer.weight)


F = SimpleNamespace(
    sum=_sum,
    sqrt=mx.sqrt,
    relu=lambda x: mx.maximum(x, 0.0),
    softplus=lambda x: mx.logaddexp(x, 0.0),
    exp=mx.exp,
    cos=mx.cos,
    abs=mx.abs,
    sign=mx.sign,
    matmul=mx.matmul,
    einsum=_einsum,
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


def result_dtype(x: mx.array, *params: mx.array | None) -> mx.Dtype:
    """The promoted dtype of the input and the parameters (the dtype a Yat layer returns)."""
    dtype = x.dtype
    if not mx.issubdtype(dtype, mx.floating):
        dtype = mx.float32
    for p in params:
        if p is not None:
            dtype = mx.result_type(dtype, p.dtype)
    return dtype


def glorot_normal(shape: tuple[int, ...], fan_in: int, fan_out: int, dtype: mx.Dtype) -> mx.array:
    """Plain normal with variance ``2 / (fan_in + fan_out)`` (docs/design.md §2.5, the MLX idiom)."""
    return mx.random.normal(shape, dtype=dtype) * math.sqrt(2.0 / (fan_in + fan_out))


def fan_in_normal(shape: tuple[int, ...], fan_in: int, dtype: mx.Dtype) -> mx.array:
    """Normal with variance ``1 / fan_in`` (the MLX conv init of docs/design.md §3.2)."""
    return mx.random.normal(shape, dtype=dtype) * math.sqrt(1.0 / fan_in)


def raw_epsilon(epsilon: float, dtype: mx.Dtype) -> mx.array:
    """The raw learnable-epsilon parameter, ``inverse_softplus(epsilon)`` computed in float64, shape (1,)."""
    return mx.array([inverse_softplus(epsilon)], dtype=dtype)


class PlainConfigMixin:
    """Keep tuple / list configuration (kernel sizes, pads) as plain attributes, out of the module dict.

    ``mlx.nn.Module`` stores every tuple or list in its dict, where ``children()`` and tree utilities would see
    it; only arrays and submodules belong there.
    """

    def __setattr__(self, key: str, val: object) -> None:
        if isinstance(val, (tuple, list)) and not any(isinstance(v, (mx.array, nn.Module, dict)) for v in val):
            object.__setattr__(self, key, val)
            self.pop(key, None)
        else:
            super().__setattr__(key, val)


class YatParamsMixin(PlainConfigMixin):
    """The MLX parameters of a Yat layer's :class:`~nmn.core.spec.YatSpec` (``self.yat``; arrays in the module
    dict)."""

    def _init_yat_params(
        self,
        use_bias: bool,
        constant_bias: float | None,
        use_alpha: bool,
        constant_alpha: bool | float | None,
        epsilon: float,
        learnable_epsilon: bool,
        bias_shape: tuple[int, ...],
        dtype: mx.Dtype,
    ) -> None:
        self.yat = spec = YatSpec.build(
            type(self).__name__,
            use_bias=use_bias,
            constant_bias=constant_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
        )
        if spec.has_bias:
            self.bias = mx.zeros(bias_shape, dtype=dtype)
        if spec.has_alpha:
            self.alpha = mx.ones((1,), dtype=dtype)
        if spec.has_epsilon_param:
            self.epsilon_param = raw_epsilon(spec.epsilon, dtype)

    def _terms(self) -> tuple[mx.array | float | None, mx.array | float | None, mx.array | float]:
        """``(bias, alpha, eps)`` for :mod:`nmn.core.yat` (float32 arrays, numbers or ``None``)."""
        spec = self.yat
        bias = to_f32(self["bias"]) if spec.has_bias else None
        alpha = to_f32(self["alpha"]) if spec.has_alpha else None
        raw = to_f32(self["epsilon_param"]) if spec.has_epsilon_param else None
        return spec.terms(bias, alpha, raw, F.softplus)

    def _yat_config(self) -> dict[str, object]:
        """The Yat keys of the neutral spec."""
        return self.yat.config()

    def _yat_repr(self) -> str:
        return self.yat.repr()

    def _init_dropconnect(self, use_dropconnect: bool, drop_rate: float) -> None:
        """nmn 0.3's DropConnect, resolved once by :func:`nmn.core.spec.resolve_dropconnect` (rate 0.0 when off)."""
        self._dropconnect_rate = resolve_dropconnect(use_dropconnect, drop_rate, type(self).__name__)
        self.use_dropconnect = bool(use_dropconnect)
        self.drop_rate = float(drop_rate)

    def _dropconnect(self, kernel: mx.array) -> mx.array:
        """In training mode (``self.training``, MLX's default until ``eval()``) ``kernel`` times a fresh
        Bernoulli(1 - rate) mask scaled by ``1 / (1 - rate)``; otherwise ``kernel`` itself."""
        rate = self._dropconnect_rate
        if not (self.training and rate > 0.0):
            return kernel
        keep = 1.0 - rate
        return mx.where(mx.random.bernoulli(keep, kernel.shape), kernel * (1.0 / keep), mx.zeros_like(kernel))

    def _dropconnect_config(self) -> dict[str, object]:
        return {"use_dropconnect": self.use_dropconnect, "drop_rate": self.drop_rate}

    def _dropconnect_repr(self) -> list[str]:
        return [f"use_dropconnect=True, drop_rate={self.drop_rate:g}"] if self.use_dropconnect else []


def check_last_dim(layer: str, x: mx.array, expected: int, what: str = "features") -> None:
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
    "linear",
]
