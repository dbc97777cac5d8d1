"""``YatNMN``: the Yat dense layer for PyTorch, and the Yat-option plumbing the conv layers share."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as _nnf

from nmn.core.options import (
    DEFAULT_EPSILON,
    check_epsilon,
    check_positive_int,
    inverse_softplus,
    resolve_alpha,
    resolve_bias,
)
from nmn.torch import functional


def pick(primary, alias, default, name, alias_name, layer):
    """Resolve a torch-style alias pair (``bias=`` / ``use_bias=``): both given and different is an error."""
    if primary is not None and alias is not None and bool(primary) != bool(alias):
        raise ValueError(f"{layer}: {name}={primary!r} and {alias_name}={alias!r} disagree; pass only one")
    if primary is not None:
        return bool(primary)
    return default if alias is None else bool(alias)


class YatOptions:
    """Mixin holding a Yat layer's bias / alpha / epsilon options and their parameters.

    Parameters (each only when it is learnable): ``bias (n_out,)``, ``alpha (1,)``, ``epsilon_param (1,)``.
    """

    def _init_yat(
        self, n_out, *, use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, factory
    ):
        layer = type(self).__name__
        self.epsilon = check_epsilon(epsilon, layer)
        self._bias_spec = resolve_bias(use_bias, constant_bias)
        self._alpha_spec = resolve_alpha(use_alpha, constant_alpha)
        constant = constant_alpha is not None and constant_alpha is not False
        self._alpha_const = self._alpha_spec.value if constant else None
        self.learnable_epsilon = bool(learnable_epsilon)
        learnable_bias = self._bias_spec.mode == "learnable"
        self.bias = nn.Parameter(torch.empty(n_out, **factory)) if learnable_bias else None
        self.alpha = nn.Parameter(torch.empty(1, **factory)) if self._alpha_spec.learnable else None
        self.epsilon_param = nn.Parameter(torch.empty(1, **factory)) if self.learnable_epsilon else None

    @property
    def use_bias(self) -> bool:
        return self._bias_spec.mode != "none"

    @property
    def constant_bias(self):
        return self._bias_spec.value if self._bias_spec.mode == "constant" else None

    @property
    def use_alpha(self) -> bool:
        return self._alpha_spec.learnable or self.constant_alpha is not None

    @property
    def constant_alpha(self):
        return self._alpha_const

    def _reset_yat(self):
        with torch.no_grad():
            if self.bias is not None:
                self.bias.zero_()
            if self.alpha is not None:
                self.alpha.fill_(self._alpha_spec.value)
            if self.epsilon_param is not None:
                self.epsilon_param.fill_(inverse_softplus(self.epsilon))

    def _yat_terms(self):
        """``(bias, alpha, epsilon)`` for :mod:`nmn.torch.functional`: tensors, numbers or ``None``."""
        spec = self._bias_spec
        bias = self.bias if spec.mode == "learnable" else (spec.value if spec.mode == "constant" else None)
        alpha = self.alpha if self.alpha is not None else self._alpha_const
        eps = _nnf.softplus(self.epsilon_param.float()) if self.epsilon_param is not None else self.epsilon
        return bias, alpha, eps

    def _yat_repr(self) -> str:
        parts = []
        if self._bias_spec.mode == "none":
            parts.append("bias=False")
        elif self._bias_spec.mode == "constant":
            parts.append(f"constant_bias={self._bias_spec.value}")
        if self._alpha_spec.learnable:
            pass
        elif self.constant_alpha is not None:
            parts.append(f"constant_alpha={self._alpha_spec.value:.6g}")
        else:
            parts.append("use_alpha=False")
        parts.append(f"epsilon={self.epsilon:g}")
        if self.learnable_epsilon:
            parts.append("learnable_epsilon=True")
        return ", ".join(parts)

    def yat_config(self) -> dict:
        """The shared Yat keys of the neutral spec (docs/CONTRACT.md)."""
        return dict(
            use_bias=self._bias_spec.mode == "learnable",
            constant_bias=self.constant_bias,
            use_alpha=self._alpha_spec.learnable,
            constant_alpha=self.constant_alpha,
            epsilon=self.epsilon,
            learnable_epsilon=self.learnable_epsilon,
        )


class YatNMN(YatOptions, nn.Module):
    """Yat dense layer: ``y_o = alpha * (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + epsilon)``.

    An activation-free replacement for ``nn.Linear`` + ReLU.

    Args:
        in_features: size of the last input axis.
        out_features: number of Yat units.
        bias: learnable bias ``(out_features,)`` (default True); ``use_bias=`` is the same switch.
        constant_bias: a fixed number used as the bias, no parameter (default None).
        use_alpha: learnable output scale ``alpha (1,)`` init 1.0 (default True); ``alpha=`` is an alias.
        constant_alpha: ``True`` (sqrt 2) or a number: fixed scale, no parameter (default None).
        epsilon: > 0, added to the distance (default 1e-5).
        learnable_epsilon: learn ``epsilon_param``, ``epsilon = softplus(epsilon_param)`` (default False).
        spherical: unit-normalise inputs and weights, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-normalise each weight row at every forward (default False).
        lazy: freeze the weight (``requires_grad=False``); bias/alpha/epsilon stay trainable (default False).
        device, dtype: factory arguments of the parameters.

    Shape: ``(..., in_features) -> (..., out_features)``.

    Example:
        >>> layer = YatNMN(4, 3)
        >>> layer(torch.randn(2, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool | None = None,
        *,
        use_bias: bool | None = None,
        constant_bias: float | None = None,
        use_alpha: bool | None = None,
        alpha: bool | None = None,
        constant_alpha=None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        name = type(self).__name__
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.out_features = check_positive_int(out_features, "out_features", name)
        factory = {"device": device, "dtype": dtype}
        self._init_yat(
            out_features,
            use_bias=pick(bias, use_bias, True, "bias", "use_bias", name),
            constant_bias=constant_bias,
            use_alpha=pick(use_alpha, alpha, True, "use_alpha", "alpha", name),
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
            factory=factory,
        )
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.lazy = bool(lazy)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory), requires_grad=not self.lazy)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight ~ Xavier normal (variance ``2 / (in + out)``), bias zeros, alpha 1, epsilon_param inverse-softplus."""
        with torch.no_grad():
            nn.init.xavier_normal_(self.weight)
        self._reset_yat()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (..., {self.in_features}) "
                f"(in_features={self.in_features}), got shape {tuple(x.shape)}"
            )
        bias, alpha, eps = self._yat_terms()
        return functional.yat_dense(
            x, self.weight, bias, alpha, eps, spherical=self.spherical, weight_normalized=self.weight_normalized
        )

    def extra_repr(self) -> str:
        extra = [f"in_features={self.in_features}", f"out_features={self.out_features}", self._yat_repr()]
        extra += [f"{k}=True" for k in ("spherical", "weight_normalized", "lazy") if getattr(self, k)]
        return ", ".join(extra)
