"""``YatNMN``: the Yat dense layer for MLX."""

from __future__ import annotations

from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.mlx._ops import YatParamsMixin, check_last_dim, glorot_normal, mx, nn
from nmn.mlx.functional import yat_dense

__all__ = ["YatNMN", "YatDense"]


class YatNMN(YatParamsMixin, nn.Module):
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
        spherical: unit-normalise inputs and prototypes, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-normalise the prototypes at every call, ``|w|^2 := 1`` (default False).
        lazy: freeze the kernel (``freeze(keys=["kernel"])``); bias / alpha / epsilon still train
            (default False). ``freeze_kernel`` is an alias.
        dtype: parameter dtype (default ``mx.float32``).

    Shape: ``(..., in_features) -> (..., features)``.

    >>> import mlx.core as mx
    >>> layer = YatNMN(4, in_features=3)
    >>> layer(mx.ones((2, 3))).shape
    (2, 4)
    >>> sorted(k for k, _ in layer.trainable_parameters().items())
    ['alpha', 'bias', 'kernel']
    """

    def __init__(
        self,
        features,
        *,
        in_features=None,
        use_bias=True,
        constant_bias=None,
        use_alpha=True,
        constant_alpha=None,
        epsilon=DEFAULT_EPSILON,
        learnable_epsilon=False,
        spherical=False,
        weight_normalized=False,
        lazy=False,
        freeze_kernel=False,
        dtype=mx.float32,
    ):
        super().__init__()
        name = type(self).__name__
        self.features = check_positive_int(features, "features", name)
        if in_features is not None:
            check_positive_int(in_features, "in_features", name)
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.lazy = bool(lazy or freeze_kernel)
        self._dtype = dtype
        self._yat_args = (use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon)
        self._init_yat_params(*self._yat_args, (self.features,), dtype)
        self.in_features = None
        if in_features is not None:
            self._build(in_features)

    def _build(self, in_features):
        self.in_features = int(in_features)
        self.kernel = glorot_normal((self.features, self.in_features), self.in_features, self.features, self._dtype)
        if self.lazy:
            self.freeze(keys=["kernel"], recurse=False)

    def __call__(self, x):
        if self.in_features is None:
            if x.ndim < 1:
                raise ValueError(f"{type(self).__name__}: expected input of shape (..., in_features), got a scalar")
            self._build(x.shape[-1])
        check_last_dim(type(self).__name__, x, self.in_features)
        return yat_dense(
            x,
            self["kernel"],
            *self._terms(),
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
        )

    def get_config(self):
        """Constructor keywords as plain JSON; ``YatNMN.from_config(layer.get_config())`` builds the same layer."""
        return {
            "features": self.features,
            "in_features": self.in_features,
            **self._yat_config(),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "lazy": self.lazy,
        }

    @classmethod
    def from_config(cls, config):
        """A new layer from :meth:`get_config`'s dict (fresh parameters)."""
        return cls(**config)

    def spec_config(self):
        """The neutral spec's config (``in_features``/``out_features`` names, every Yat key)."""
        return {
            "in_features": self.in_features,
            "out_features": self.features,
            **self._yat_config(),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "lazy": self.lazy,
        }

    def _extra_repr(self):
        extra = [f"in_features={self.in_features}", f"features={self.features}", self._yat_repr()]
        extra += [k + "=True" for k in ("spherical", "weight_normalized", "lazy") if getattr(self, k)]
        return ", ".join(extra)


YatDense = YatNMN  # the nmn 0.3 name (nmn.core.names.ALIASES)
