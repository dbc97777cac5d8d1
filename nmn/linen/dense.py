"""``YatNMN``: the Yat dense layer for Flax Linen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from nmn._jax.functional import check_input, yat_dense
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, resolve_dropconnect
from nmn.linen._ops import FROZEN, check_kernel, dropconnect, tail_params

default_kernel_init = nn.initializers.xavier_normal()
default_bias_init = nn.initializers.zeros_init()


class YatNMN(nn.Module):
    """Yat dense layer: ``y_o = alpha (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + eps)``.

    Attributes:
        features: number of Yat neurons (the input size is taken from the first call).
        use_bias: learnable bias (default True); constant_bias: fixed bias value (default None).
        use_alpha: learnable ``alpha (1,)`` (default True); constant_alpha: ``True`` -> sqrt(2), or a number.
        epsilon: > 0, checked at construction (default 1e-5); learnable_epsilon: learn ``epsilon_param``
            with eps = softplus(epsilon_param) (default False).
        spherical: unit inputs and weights (default False); weight_normalized: unit weights (default False).
        lazy: keep the kernel in the ``'frozen'`` collection so optimisers over ``'params'`` skip it.
        positive_init: draw the kernel as ``abs(kernel_init(...))`` (nmn 0.3; default False).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect on the kernel (default False, 0.0): with
            ``deterministic=False`` (field or call) each call masks the kernel with a Bernoulli(1 - drop_rate)
            draw from the ``'dropout'`` rng, scaled by 1 / (1 - drop_rate); deterministic (default None) left
            unset or True, and in exported files, it is the identity.
        dtype: result dtype (default None: promoted); param_dtype (default float32).
        kernel_init: default Xavier normal; bias_init: default zeros.

    Shape:
        input ``(..., in)``, ``kernel (in, features)``, output ``(..., features)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = YatNMN(features=2)
        >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 3)))
        >>> layer.apply(variables, jnp.ones((4, 3))).shape
        (4, 2)
        >>> variables["params"]["kernel"].shape
        (3, 2)
    """

    features: int
    use_bias: bool = True
    constant_bias: Any = None
    use_alpha: bool = True
    constant_alpha: Any = None
    epsilon: float = DEFAULT_EPSILON
    learnable_epsilon: bool = False
    spherical: bool = False
    weight_normalized: bool = False
    lazy: bool = False
    positive_init: bool = False
    use_dropconnect: bool = False
    drop_rate: float = 0.0
    deterministic: bool | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init

    def __post_init__(self):
        check_positive_int(self.features, "features", type(self).__name__)
        self.yat_options()
        super().__post_init__()

    def yat_options(self) -> YatSpec:
        """The resolved Yat options (validated)."""
        resolve_dropconnect(self.use_dropconnect, self.drop_rate, type(self).__name__)
        return YatSpec.build(
            type(self).__name__,
            use_bias=self.use_bias,
            constant_bias=self.constant_bias,
            use_alpha=self.use_alpha,
            constant_alpha=self.constant_alpha,
            epsilon=self.epsilon,
            learnable_epsilon=self.learnable_epsilon,
        )

    @nn.compact
    def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        """Apply the layer to ``inputs (..., in)``."""
        if getattr(inputs, "ndim", 0) < 1:
            check_input(type(self).__name__, inputs, 1, None, "(..., in)")
        shape = (inputs.shape[-1], self.features)
        check_kernel(self, FROZEN if self.lazy else "params", shape, inputs, "(..., in)")
        init = self.kernel_init
        if self.positive_init:

            def init(key, shape, dtype, _base=self.kernel_init):
                return jnp.abs(_base(key, shape, dtype))

        if self.lazy:
            kernel = self.variable(
                FROZEN, "kernel", lambda: init(self.make_rng("params"), shape, self.param_dtype)
            ).value
        else:
            kernel = self.param("kernel", init, shape, self.param_dtype)
        kernel = dropconnect(self, kernel, deterministic)
        bias, alpha, eps = tail_params(self, self.yat_options(), self.features)
        return yat_dense(
            inputs,
            kernel,
            bias,
            alpha,
            eps,
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
            dtype=self.dtype,
        )
