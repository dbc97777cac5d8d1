"""``YatNMN``: the Yat dense layer for PyTorch, and the Yat-option plumbing the conv layers share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as _nnf

from nmn._torch import _fused
from nmn.core.layer_options import resolve_freeze_kernel
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, export_params, pick_alias, resolve_dropconnect
from nmn.torch import functional
from nmn.torch._ops import resolve_param_dtype, to_compute

pick = pick_alias  # the alias-pair rule lives in nmn.core.spec

#: An nmn 0.3 ``*_init`` hook: fills the parameter in place (as ``torch.nn.init.*`` do) or returns its new value.
InitHook = Callable[[torch.Tensor], object]


def check_init_hook(hook: object, keyword: str, layer: str) -> InitHook | None:
    """``hook`` if it is ``None`` or callable; a ``TypeError`` naming the layer and keyword otherwise."""
    if hook is not None and not callable(hook):
        raise TypeError(
            f"{layer}: {keyword} must be a callable taking the parameter tensor (filling it in place like "
            f"torch.nn.init.xavier_normal_, or returning its new value), got {hook!r}"
        )
    return hook


def apply_init_hook(hook: InitHook, param: torch.Tensor, keyword: str, layer: str) -> None:
    """Run ``hook(param)`` without autograd; a returned tensor other than ``param`` is copied into it."""
    with torch.no_grad():
        result = hook(param)
        if isinstance(result, torch.Tensor) and result is not param:
            if tuple(result.shape) != tuple(param.shape):
                raise ValueError(
                    f"{layer}: {keyword} returned a tensor of shape {tuple(result.shape)}; expected the "
                    f"parameter's shape {tuple(param.shape)} (or fill the tensor in place and return it or None)"
                )
            param.copy_(result)


def hook_repr(hook: InitHook) -> str:
    """A short name for an init hook in ``extra_repr`` (its ``__name__``, else its ``repr``)."""
    return getattr(hook, "__name__", None) or repr(hook)


class YatParams:
    """Mixin: the torch parameters of a Yat layer's :class:`~nmn.core.spec.YatSpec` (``self.yat``).

    Parameters (each only when the spec has it): ``bias (n_out,)`` (``(1,)`` with ``scalar_bias``), ``alpha (1,)``,
    ``epsilon_param (1,)``. The state_dict keeps the raw bias under ``bias`` whatever ``softplus_bias`` says.
    """

    _layout = "dense"  # the nmn.core.layouts kind of the weight

    def _init_yat(self, n_out, factory, **keywords):
        self.yat = YatSpec.build(type(self).__name__, **keywords)
        self._n_out = int(n_out)
        self.epsilon = self.yat.epsilon
        self.learnable_epsilon = self.yat.learnable_epsilon
        size = self.yat.bias_size(n_out)
        self.bias = nn.Parameter(torch.empty(size, **factory)) if self.yat.has_bias else None
        self.alpha = nn.Parameter(torch.empty(1, **factory)) if self.yat.has_alpha else None
        self.epsilon_param = nn.Parameter(torch.empty(1, **factory)) if self.yat.has_epsilon_param else None

    @property
    def use_bias(self) -> bool:
        return self.yat.use_bias

    @property
    def constant_bias(self) -> float | None:
        return self.yat.constant_bias

    @property
    def softplus_bias(self) -> bool:
        return self.yat.softplus_bias

    @property
    def scalar_bias(self) -> bool:
        return self.yat.scalar_bias

    @property
    def use_alpha(self) -> bool:
        return self.yat.use_alpha

    @property
    def constant_alpha(self) -> float | None:
        return self.yat.constant_alpha

    def _init_dropconnect(self, use_dropconnect: bool, drop_rate: float) -> None:
        """nmn 0.3's DropConnect: resolved once by :func:`nmn.core.spec.resolve_dropconnect`."""
        self._dropconnect_rate = resolve_dropconnect(use_dropconnect, drop_rate, type(self).__name__)
        self.use_dropconnect = bool(use_dropconnect)
        self.drop_rate = float(drop_rate)

    def _dropconnect(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` times a fresh Bernoulli(1 - rate) mask scaled by 1 / (1 - rate) in training; else ``weight``."""
        if not self.training or self._dropconnect_rate == 0.0:
            return weight
        return _nnf.dropout(weight, self._dropconnect_rate, training=True)

    def _dropconnect_repr(self) -> str:
        if not (self.use_dropconnect or self.drop_rate):
            return ""
        return f", use_dropconnect={self.use_dropconnect}, drop_rate={self.drop_rate}"

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
        bias, alpha, eps = self.yat.terms(self.bias, self.alpha, eps, _nnf.softplus)
        return self.yat.effective_bias(bias, self._n_out, _nnf.softplus, torch.Tensor.expand), alpha, eps

    def _kernel(self) -> torch.Tensor:
        """The weight the Yat product uses: DropConnect (training only), then the conv ``mask`` where one is set."""
        weight = self._dropconnect(self.weight)
        mask = getattr(self, "mask", None)
        return weight if mask is None else weight * mask.to(weight.dtype)

    def _export_params(self) -> dict:
        """The effective ``bias`` / ``weight`` an exported file carries (``{}`` when no option changes them):
        ``softplus(bias)`` broadcast to ``(out,)`` and ``weight * mask``; see :func:`nmn.core.spec.export_params`."""
        mask = getattr(self, "mask", None)
        with torch.no_grad():
            return export_params(
                self.yat,
                "torch",
                self._layout,
                self._n_out,
                bias=None if self.bias is None else self.bias.detach().cpu().float().numpy(),
                kernel=self.weight.detach().cpu().float().numpy() if mask is not None else None,
                mask=None if mask is None else mask.detach().cpu().float().numpy(),
                groups=getattr(self, "groups", 1),
            )

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
        softplus_bias: nmn 0.3's positive bias: the parameter ``bias`` stays raw (and is what the state_dict holds)
            and the layer adds ``softplus(bias)`` (default False).
        scalar_bias: nmn 0.3's shared bias: ``bias`` has shape ``(1,)``, broadcast over every output (default
            False). Both need a learnable bias (an error with ``bias=False`` or ``constant_bias``). An exported
            file carries the effective bias ``softplus(bias)`` broadcast to ``(out_features,)``, so a layer loaded
            from it is a plain ``YatNMN`` holding those values.
        spherical: unit-normalise inputs and weights, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-normalise each weight row at every forward (default False).
        lazy: freeze the weight (``requires_grad=False``); bias/alpha/epsilon stay trainable (default False).
            An exported file marks the weight non-trainable, and a layer loaded from it is frozen again.
        freeze_kernel: nmn 0.3's name of ``lazy`` (default None: as ``lazy``; giving both, they must agree).
        positive_init: initialise the weight with ``abs`` of its Xavier-normal draw, every entry >= 0 (default
            False; an initialisation choice only, as in nmn 0.3). It shapes the default draw: a ``kernel_init``
            hook replaces that draw, ``abs`` included (order: default draw, then ``abs``, then the hook
            overrides); for a positive custom init give e.g. ``kernel_init=lambda w: nn.init.orthogonal_(w).abs_()``.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default False, 0.0; ``0 <= drop_rate < 1``): in training
            (``module.train()``) each forward multiplies the weight by a fresh Bernoulli(1 - drop_rate) mask scaled
            by ``1 / (1 - drop_rate)`` before the Yat product; in ``eval()`` and in every exported file it is the
            identity. nmn 0.3's call flag ``deterministic=`` is ``module.eval()`` / ``module.train()`` here.
        kernel_init, bias_init, alpha_init: nmn 0.3's initialiser hooks, each a callable taking the parameter
            (``weight``, ``bias``, ``alpha``) and filling it in place as ``torch.nn.init.*`` do (a returned tensor
            of the same shape is copied in); run without autograd by every :meth:`reset_parameters`, in place of
            the default (Xavier normal, zeros, 1). A hook for a parameter the layer lacks (``bias=False``,
            ``constant_bias``, ``use_alpha=False``, ``constant_alpha``) is an error. Default None.
        device, dtype: factory arguments of the parameters.
        param_dtype: nmn 0.3's storage dtype of the parameters (default None: ``dtype``); given, ``dtype`` becomes
            the compute dtype (the input and the stored parameters are cast to it for each call), as in nmn 0.3.

    Shape: ``(..., in_features) -> (..., out_features)``.

    Example:
        >>> layer = YatNMN(4, 3)
        >>> layer(torch.randn(2, 4)).shape
        torch.Size([2, 3])
        >>> YatNMN(4, 3, kernel_init=nn.init.orthogonal_, alpha_init=lambda a: a.fill_(2.0)).alpha.item()
        2.0
        >>> bool((YatNMN(4, 3, positive_init=True).weight >= 0).all())
        True
        >>> dc = YatNMN(4, 3, use_dropconnect=True, drop_rate=0.5)
        >>> x = torch.ones(1, 4)
        >>> _ = torch.manual_seed(0)
        >>> torch.equal(dc(x), dc(x))  # training mode: a fresh mask per forward
        False
        >>> torch.equal(dc.eval()(x), dc(x))
        True
        >>> YatNMN(4, 3, freeze_kernel=True).weight.requires_grad
        False
        >>> mixed = YatNMN(4, 3, param_dtype=torch.float32, dtype=torch.float64)
        >>> mixed.weight.dtype, mixed(torch.ones(1, 4)).dtype
        (torch.float32, torch.float64)
        >>> sp = YatNMN(4, 3, softplus_bias=True, scalar_bias=True)
        >>> sp.bias.shape, round(sp._export_params()["bias"][2].item(), 4)  # softplus(0) for every output
        (torch.Size([1]), 0.6931)
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
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        freeze_kernel: bool | None = None,
        positive_init: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        kernel_init: InitHook | None = None,
        bias_init: InitHook | None = None,
        alpha_init: InitHook | None = None,
        device: torch.device | str | int | None = None,
        dtype: torch.dtype | None = None,
        param_dtype: torch.dtype | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__()
        name = type(self).__name__
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.out_features = check_positive_int(out_features, "out_features", name)
        storage, self.compute_dtype = resolve_param_dtype(dtype, param_dtype, name)
        self.param_dtype = storage
        factory = {"device": device, "dtype": storage}
        self._init_yat(
            out_features,
            factory,
            use_bias=pick(bias, use_bias, True, "bias", "use_bias", name),
            constant_bias=constant_bias,
            use_alpha=pick(use_alpha, alpha, True, "use_alpha", "alpha", name),
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
            softplus_bias=softplus_bias,
            scalar_bias=scalar_bias,
        )
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.lazy = resolve_freeze_kernel(lazy, freeze_kernel, name)
        self.positive_init = bool(positive_init)
        self._init_dropconnect(use_dropconnect, drop_rate)
        self.kernel_init = check_init_hook(kernel_init, "kernel_init", name)
        self.bias_init = check_init_hook(bias_init, "bias_init", name)
        self.alpha_init = check_init_hook(alpha_init, "alpha_init", name)
        for keyword, hook, param in (("bias_init", bias_init, self.bias), ("alpha_init", alpha_init, self.alpha)):
            if hook is not None and param is None:
                what = keyword.split("_")[0]
                raise ValueError(
                    f"{name}: {keyword} is given but the layer has no {what} parameter (use_{what}=False or "
                    f"constant_{what} set); drop {keyword}, or make the {what} learnable"
                )
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory), requires_grad=not self.lazy)
        self.reset_parameters()
        _ = self._fast_terms  # computed once here (not first under torch.compile)

    @property
    def freeze_kernel(self) -> bool:
        """nmn 0.3's name of ``lazy``."""
        return self.lazy

    def reset_parameters(self) -> None:
        """Weight ~ Xavier normal (variance ``2 / (in + out)``), bias zeros, alpha 1, epsilon_param inverse-softplus.

        ``positive_init`` takes ``abs`` of the weight's Xavier draw. The ``kernel_init``/``bias_init``/``alpha_init``
        hooks given to the constructor replace those defaults (``kernel_init`` replaces the draw and its ``abs``),
        and are applied again by every call.
        """
        name = type(self).__name__
        if self.kernel_init is None:
            with torch.no_grad():
                nn.init.xavier_normal_(self.weight)
                if self.positive_init:
                    self.weight.abs_()
        else:
            apply_init_hook(self.kernel_init, self.weight, "kernel_init", name)
        self._reset_yat()
        if self.bias_init is not None:
            apply_init_hook(self.bias_init, self.bias, "bias_init", name)
        if self.alpha_init is not None:
            apply_init_hook(self.alpha_init, self.alpha, "alpha_init", name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (..., {self.in_features}) "
                f"(in_features={self.in_features}), got shape {tuple(x.shape)}"
            )
        fast = self._fast_terms
        if fast is not None and not (self.spherical or self.weight_normalized) and self.compute_dtype is None:
            y = self._fast_forward(x, fast)
            if y is not None:
                return y
        bias, alpha, eps = self._yat_terms()
        x, kernel, bias, alpha = to_compute(self.compute_dtype, x, self._kernel(), bias, alpha)
        return functional.yat_dense(
            x,
            kernel,
            bias,
            alpha,
            eps,
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
        )

    @property
    def _fast_terms(self) -> tuple | None:
        """``(has_bias, constant_bias, alpha_learnable, constant_alpha, epsilon)`` when the tail terms are the
        parameters or numbers as they are (no learnable epsilon, no softplus / scalar bias), else ``None``; read from
        the frozen spec, computed once."""
        cached = self.__dict__.get("_fast_terms_cache", False)
        if cached is not False and cached[0] is self.yat:
            return cached[1]
        spec = self.yat
        terms = None
        if not (spec.learnable_epsilon or spec.reshapes_bias):
            alpha = spec.alpha
            terms = (spec.has_bias, spec.constant_bias, alpha.learnable, spec.alpha_term(None), spec.epsilon)
        self.__dict__["_fast_terms_cache"] = (spec, terms)
        return terms

    def _fast_forward(self, x: torch.Tensor, fast: tuple) -> torch.Tensor | None:
        """The plain layer's call straight into :func:`nmn._torch._fused.yat_dense`, or ``None`` (the general path).

        Taken when no option reshapes the weight or the terms (no spherical / weight normalisation, no DropConnect
        in training, no ``param_dtype``) and the input, weight, bias and alpha share one float32/float64 dtype:
        :func:`nmn.torch.functional.yat_dense` would then cast nothing and call the same fused function with the
        same arguments; this skips its per-call dtype promotion and casts and :meth:`_yat_terms`' indirections.
        """
        if self.training and self._dropconnect_rate != 0.0:
            return None
        has_bias, constant_bias, alpha_learnable, constant_alpha, eps = fast
        weight = self.weight
        dtype = x.dtype
        if dtype is not weight.dtype or dtype not in _FAST_DTYPES:
            return None
        bias = self.bias if has_bias else constant_bias
        alpha = self.alpha if alpha_learnable else constant_alpha
        for t in (bias, alpha):
            if isinstance(t, torch.Tensor) and t.dtype is not dtype:
                return None
        if x.dim() == 2:
            return _fused.yat_dense(x, weight, bias, alpha, eps)
        y = _fused.yat_dense(x.reshape(-1, x.shape[-1]), weight, bias, alpha, eps)
        return y.reshape(*x.shape[:-1], weight.shape[0])

    def extra_repr(self) -> str:
        extra = [f"in_features={self.in_features}", f"out_features={self.out_features}", self._yat_repr()]
        extra += [f"{k}=True" for k in ("spherical", "weight_normalized", "lazy", "positive_init") if getattr(self, k)]
        extra += [f"{k}={hook_repr(getattr(self, k))}" for k in _HOOKS if getattr(self, k) is not None]
        if self.compute_dtype is not None:
            extra.append(f"param_dtype={self.param_dtype}, dtype={self.compute_dtype}")
        return ", ".join(extra) + self._dropconnect_repr()


_HOOKS = ("kernel_init", "bias_init", "alpha_init")
_FAST_DTYPES = (torch.float32, torch.float64)  # the dtypes functional.yat_dense computes in without a cast
