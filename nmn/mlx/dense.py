"""``YatNMN``: the Yat dense layer for MLX."""

from __future__ import annotations

from typing import Any

import numpy as np

from nmn.core.layer_options import resolve_freeze_kernel
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import export_params
from nmn.mlx._ops import F, YatParamsMixin, check_last_dim, glorot_normal, mx, nn
from nmn.mlx.functional import yat_dense

__all__ = ["YatNMN", "YatDense"]

# ``fused=True``: the same product through ``mx.compile``, which fuses the elementwise Yat tail around the matmul
# (nmn 0.3's hand-written Metal kernel of the same formula; compiled once per input shape / option set).
_fused_yat_dense = mx.compile(yat_dense)


class BiasMaskMixin(YatParamsMixin):
    """nmn 0.3's ``softplus_bias`` / ``scalar_bias`` and the conv ``mask`` on an MLX Yat layer (dense, conv, convT).

    The mask is a plain attribute (not in the module dict: never trained, not in ``parameters()``); ``get_config``
    carries it as a nested list.
    """

    _layout = "dense"  # the nmn.core.layouts kind of the kernel

    def _init_bias_options(self, softplus_bias: bool, scalar_bias: bool, n_out: int) -> None:
        """Validate the bias options (``self.yat`` from ``_init_yat_params``) and resize a scalar bias to ``(1,)``."""
        self.yat = self.yat.with_bias_options(softplus_bias, scalar_bias)
        object.__setattr__(self, "_n_out", int(n_out))
        if self.yat.scalar_bias:
            self.bias = mx.zeros((1,), dtype=self["bias"].dtype)

    def _effective_terms(self) -> tuple[mx.array | float | None, mx.array | float | None, mx.array | float]:
        """``_terms()`` with the bias as the layer adds it (softplus / broadcast, ``nmn.core.spec``)."""
        bias, alpha, eps = self._terms()
        return self.yat.effective_bias(bias, self._n_out, F.softplus, mx.broadcast_to), alpha, eps

    def _masked(self, kernel: mx.array) -> mx.array:
        mask = getattr(self, "mask", None)
        return kernel if mask is None else kernel * mx.array(mask).astype(kernel.dtype)

    def _bias_mask_config(self) -> dict[str, object]:
        config = self.yat.bias_options()
        if self._layout != "dense":
            mask = getattr(self, "mask", None)
            config["mask"] = None if mask is None else mask.tolist()
        return config

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical) an exported
        file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        mask = getattr(self, "mask", None)

        def host(name: str) -> np.ndarray | None:
            return np.array(self[name].astype(mx.float32)) if name in self else None

        return export_params(
            self.yat,
            "mlx",
            self._layout,
            self._n_out,
            bias=host("bias"),
            kernel=host("kernel") if mask is not None else None,
            mask=mask,
            groups=getattr(self, "groups", 1),
        )


class YatNMN(BiasMaskMixin, nn.Module):
    """Yat dense layer: every output unit is a prototype ``w_o`` compared with the input by the Yat product.

    ``y_o = alpha * (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + eps)``

    Parameters live in the module dict: ``kernel (features, in_features)`` (rows are the neurons, like
    ``mlx.nn.Linear.weight``), ``bias (features,)``, ``alpha (1,)``, ``epsilon_param (1,)``; an absent one is an
    absent key. Without ``in_features`` the parameters are created on the first call (pass ``in_features``, or
    call once, before ``mx.compile`` / ``nn.value_and_grad``).

    Args:
        features: number of output units.
        in_features: size of the input's last axis (default None: taken from the first call).
        use_bias: learnable bias, init zeros (default True).
        constant_bias: a fixed bias added to every unit, no parameter (default None).
        use_alpha: learnable output scale, init 1 (default True); False means alpha = 1.
        constant_alpha: True (sqrt 2) or a number: a fixed alpha, no parameter (default None).
        epsilon: > 0, added to the clamped distance (default 1e-5).
        learnable_epsilon: learn ``epsilon_param`` with ``eps = softplus(epsilon_param)`` (default False).
        softplus_bias: nmn 0.3's positive bias: ``bias`` stays raw, the layer adds ``softplus(bias)`` (default
            False). scalar_bias: ``bias`` has shape ``(1,)``, broadcast over every unit (default False). Both need
            a learnable bias (an error with ``use_bias=False`` or ``constant_bias``). An exported file carries the
            effective bias (broadcast to ``(features,)``): a layer loaded from it is a plain one.
        spherical: unit-normalise inputs and prototypes, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-normalise the prototypes at every call, ``|w|^2 := 1`` (default False).
        lazy: freeze the kernel (``freeze(keys=["kernel"])``); bias / alpha / epsilon still train
            (default False). ``freeze_kernel`` is nmn 0.3's name of it (default None: as ``lazy``; giving both, they must
            agree).
        positive_init: initialise the kernel with ``abs`` of its Glorot-normal draw, every entry >= 0
            (default False; an initialisation choice only, as in nmn 0.3).
        fused: run the product through ``mx.compile`` (MLX's kernel fusion of the elementwise Yat tail; the same
            values, default False). nmn 0.3's hand-written Metal kernel computed the same formula.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default False, 0.0; ``0 <= drop_rate < 1``): in
            training mode (``self.training``, MLX's default until ``layer.eval()``) the kernel is multiplied by a
            fresh Bernoulli(1 - drop_rate) mask scaled by ``1 / (1 - drop_rate)`` before the Yat product; in eval
            mode, and in every exported file, it is the identity. nmn 0.3's call flag ``deterministic=`` is
            ``layer.eval()`` / ``layer.train()`` here.
        dtype: parameter dtype (default ``mx.float32``).

    nmn 0.3 keywords that are not carried over raise a ``TypeError`` saying why and what to use instead
    (:data:`nmn.core.names.REFUSED_KEYWORDS`); any other unknown keyword is a ``TypeError`` naming it.

    Shape: ``(..., in_features) -> (..., features)``.

    >>> import mlx.core as mx
    >>> layer = YatNMN(4, in_features=3)
    >>> layer(mx.ones((2, 3))).shape
    (2, 4)
    >>> sorted(k for k, _ in layer.trainable_parameters().items())
    ['alpha', 'bias', 'kernel']
    >>> mx.random.seed(0)
    >>> dc = YatNMN(4, in_features=3, use_dropconnect=True, drop_rate=0.5)
    >>> x = mx.ones((1, 3))
    >>> bool(mx.array_equal(dc(x), dc(x)))  # training mode (MLX's default): a fresh mask per call
    False
    >>> _ = dc.eval()
    >>> bool(mx.array_equal(dc(x), dc(x)))
    True
    >>> sp = YatNMN(2, in_features=3, softplus_bias=True, scalar_bias=True)
    >>> sp.bias.shape, [round(float(b), 4) for b in sp._export_params()["bias"]]  # softplus(0) per unit
    ((1,), [0.6931, 0.6931])
    """

    def __init__(
        self,
        features: int,
        *,
        in_features: int | None = None,
        use_bias: bool = True,
        constant_bias: float | None = None,
        use_alpha: bool = True,
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
        fused: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        dtype: mx.Dtype = mx.float32,
        **refused: Any,
    ):
        super().__init__()
        name = type(self).__name__
        refuse_keywords(name, refused)
        self.features = check_positive_int(features, "features", name)
        if in_features is not None:
            check_positive_int(in_features, "in_features", name)
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.lazy = resolve_freeze_kernel(lazy, freeze_kernel, name)
        self.positive_init = bool(positive_init)
        self.fused = bool(fused)
        self._init_dropconnect(use_dropconnect, drop_rate)
        self._dtype = dtype
        self._yat_args = (use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon)
        self._init_yat_params(*self._yat_args, (self.features,), dtype)
        self._init_bias_options(softplus_bias, scalar_bias, self.features)
        self.in_features = None
        if in_features is not None:
            self._build(in_features)

    def _build(self, in_features: int) -> None:
        self.in_features = int(in_features)
        kernel = glorot_normal((self.features, self.in_features), self.in_features, self.features, self._dtype)
        self.kernel = mx.abs(kernel) if self.positive_init else kernel
        if self.lazy:
            self.freeze(keys=["kernel"], recurse=False)

    def __call__(self, x: mx.array) -> mx.array:
        if self.in_features is None:
            if x.ndim < 1:
                raise ValueError(f"{type(self).__name__}: expected input of shape (..., in_features), got a scalar")
            self._build(x.shape[-1])
        check_last_dim(type(self).__name__, x, self.in_features)
        product = _fused_yat_dense if self.fused else yat_dense
        return product(
            x,
            self._dropconnect(self["kernel"]),
            *self._effective_terms(),
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
        )

    def get_config(self) -> dict[str, Any]:
        """Constructor keywords as plain JSON; ``YatNMN.from_config(layer.get_config())`` builds the same layer."""
        return {
            "features": self.features,
            "in_features": self.in_features,
            **self._yat_config(),
            **self._bias_mask_config(),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "lazy": self.lazy,
            "positive_init": self.positive_init,
            "fused": self.fused,
            **self._dropconnect_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> YatNMN:
        """A new layer from :meth:`get_config`'s dict (fresh parameters)."""
        return cls(**config)

    def spec_config(self) -> dict[str, Any]:
        """The neutral spec's config (``in_features``/``out_features`` names, every Yat key; not the training-only
        DropConnect nor the init-only ``positive_init``)."""
        return {
            "in_features": self.in_features,
            "out_features": self.features,
            **self._yat_config(),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "lazy": self.lazy,
        }

    def _extra_repr(self) -> str:
        extra = [f"in_features={self.in_features}", f"features={self.features}", self._yat_repr()]
        extra += [
            k + "=True"
            for k in ("spherical", "weight_normalized", "lazy", "positive_init", "fused")
            if getattr(self, k)
        ]
        extra += self._dropconnect_repr()
        return ", ".join(extra)


YatDense = YatNMN  # the nmn 0.3 name (nmn.core.names.ALIASES)
