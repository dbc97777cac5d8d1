"""``YatNMN``: the Yat dense layer for PyTorch, and the Yat-option plumbing the conv layers share."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as _nnf

from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, pick_alias
from nmn.torch import functional

pick = pick_alias  # the alias-pair rule lives in nmn.core.spec


class YatParams:
    """Mixin: the torch parameters of a Yat layer's :class:`~nmn.core.spec.YatSpec` (``self.yat``).

    Parameters (each only when the spec has it): ``bias (n_out,)``, ``alpha (1,)``, ``epsilon_param (1,)``.
    """

    def _init_yat(self, n_out, factory, **keywords):
        self.yat = YatSpec.build(type(self).__name__, **keywords)
        self.epsilon = self.yat.epsilon
        self.learnable_epsilon = self.yat.learnable_epsilon
        self.bias = nn.Parameter(torch.empty(n_out, **factory)) if self.yat.has_bias else None
        self.alpha = nn.Parameter(torch.empty(1, **factory)) if self.yat.has_alpha else None
        self.epsilon_param = nn.Parameter(torch.empty(1, **factory)) if self.yat.has_epsilon_param else None

    @property
    def use_bias(self) -> bool:
        return self.yat.use_bias

    @property
    def constant_bias(self) -> float | None:
        return self.yat.constant_bias

    @property
    def use_alpha(self) -> bool:
        return self.yat.use_alpha

    @property
    def constant_alpha(self) -> float | None:
        return self.yat.constant_alpha

    def _reset_yat(self):
        with torch.no_grad():
            if self.bias is not None:
                self.bias.zero_()
            if self.alpha is not None:
                self.alpha.fill_(self.yat.alpha.value)
            if self.epsilon_param is not None:
                self.epsilon_param.fill_(self.yat.epsilon_init)

    def _yat_terms(self):
        """``(bias, alpha, epsilon)`` for :mod:`nmn.torch.functional`: tensors, numbers or ``None``."""
        eps = None if self.epsilon_param is None else self.epsilon_param.float()
        return self.yat.terms(self.bias, self.alpha, eps, _nnf.softplus)

    def _yat_repr(self) -> str:
        return self.yat.repr()

    def yat_config(self) -> dict:
        """The shared Yat keys of the neutral spec."""
        return self.yat.config()


class YatNMN(YatParams, nn.Module):
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
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        device: torch.device | str | int | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.out_features = check_positive_int(out_features, "out_features", name)
        factory = {"device": device, "dtype": dtype}
        self._init_yat(
            out_features,
            factory,
            use_bias=pick(bias, use_bias, True, "bias", "use_bias", name),
            constant_bias=constant_bias,
            use_alpha=pick(use_alpha, alpha, True, "use_alpha", "alpha", name),
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
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
