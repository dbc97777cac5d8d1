"""``YatNMN``: the Yat dense layer for Flax Linen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from nmn._jax.functional import check_input
from nmn.core.conv import check_mask
from nmn.core.layer_options import resolve_freeze_kernel
from nmn.core.names import REFUSED_KEYWORDS
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, export_params, resolve_dropconnect
from nmn.linen._ops import (
    FROZEN,
    check_flax_contraction,
    check_initializer,
    check_kernel,
    dropconnect,
    tail_params,
    yat_dense_contract,
)

default_kernel_init = nn.initializers.xavier_normal()
default_bias_init = nn.initializers.zeros_init()


def effective_bias(opts: YatSpec, bias: Any, n_out: int) -> Any:
    """The bias a Yat module adds: ``softplus_bias`` / ``scalar_bias`` applied (``nmn.core.spec``)."""
    return opts.effective_bias(bias, n_out, jax.nn.softplus, jnp.broadcast_to)


def masked_kernel(module: nn.Module, kernel: jax.Array, layout: str) -> jax.Array:
    """``kernel * mask`` when the module has a ``mask`` (checked against the kernel's shape), else ``kernel``."""
    checked = check_mask(module.mask, kernel.shape, type(module).__name__, layout)
    return kernel if checked is None else kernel * jnp.asarray(checked, kernel.dtype)


def module_export_params(module: nn.Module, opts: YatSpec, layout: str, n_out: int) -> dict:
    """The effective ``bias`` / ``weight`` (canonical) of a bound module for its exported file (``{}`` when none
    of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set)."""
    params = module.variables.get("params", {})
    mask = getattr(module, "mask", None)
    kernel = params.get("kernel") if mask is not None else None
    return export_params(
        opts,
        "linen",
        layout,
        n_out,
        bias=None if params.get("bias") is None else np.asarray(params["bias"], np.float32),
        kernel=None if kernel is None else np.asarray(kernel, np.float32),
        mask=None if mask is None else np.asarray(mask, np.float32),
        groups=getattr(module, "feature_group_count", 1),
    )


class YatNMN(nn.Module):
    """Yat dense layer: ``y_o = alpha (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + eps)``.

    Attributes:
        features: number of Yat neurons (the input size is taken from the first call).
        use_bias: learnable bias (default True); constant_bias: fixed bias value (default None).
        use_alpha: learnable ``alpha (1,)`` (default True); constant_alpha: ``True`` -> sqrt(2), or a number.
        epsilon: > 0, checked at construction (default 1e-5); learnable_epsilon: learn ``epsilon_param``
            with eps = softplus(epsilon_param) (default False).
        softplus_bias: nmn 0.3's positive bias: ``params['bias']`` stays raw, the layer adds ``softplus(bias)``
            (default False). scalar_bias: ``params['bias']`` has shape ``(1,)``, broadcast over every output
            (default False). Both need a learnable bias (an error with ``use_bias=False`` or ``constant_bias``). An
            exported file carries the effective bias (broadcast to ``(features,)``): a loaded module is a plain one.
        spherical: unit inputs and weights (default False); weight_normalized: unit weights (default False).
        lazy: keep the kernel in the ``'frozen'`` collection so optimisers over ``'params'`` skip it. An exported
            file marks the kernel non-trainable, and a layer loaded from it keeps it in ``'frozen'`` again.
        freeze_kernel: nmn 0.3's name of ``lazy`` (default None: as ``lazy``; giving both, they must agree).
        alpha_init: nmn 0.3's initializer of ``alpha (1,)`` (default None: ones).
        precision: Flax's ``precision`` of the ``x @ kernel`` contraction (``jax.lax.Precision``; default None).
        promote_dtype: Flax's dtype-promotion hook, called as ``promote_dtype((inputs, kernel, bias, alpha),
            dtype=dtype)`` before the product (default None: nmn's rule).
        dot_general, dot_general_cls: nmn 0.3's contraction hooks: only ``jax.lax.dot_general`` (or None) and no
            ``dot_general_cls`` are accepted; a custom contraction would not be what the exported file computes.
        return_weights: refused when True (as in every framework): returning ``(y, kernel)`` breaks containers
            and export; read ``variables['params']['kernel']`` instead.
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
        >>> sp = YatNMN(features=2, softplus_bias=True, scalar_bias=True)
        >>> v = sp.init(jax.random.key(0), jnp.ones((1, 3)))
        >>> v["params"]["bias"].shape, [round(float(b), 4) for b in sp.bind(v)._export_params()["bias"]]
        ((1,), [0.6931, 0.6931])
    """

    features: int
    use_bias: bool = True
    constant_bias: Any = None
    use_alpha: bool = True
    constant_alpha: Any = None
    epsilon: float = DEFAULT_EPSILON
    learnable_epsilon: bool = False
    softplus_bias: bool = False
    scalar_bias: bool = False
    spherical: bool = False
    weight_normalized: bool = False
    lazy: bool = False
    freeze_kernel: bool | None = None
    positive_init: bool = False
    use_dropconnect: bool = False
    drop_rate: float = 0.0
    deterministic: bool | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    alpha_init: Callable | None = None
    precision: Any = None
    promote_dtype: Callable | None = None
    dot_general: Any = None
    dot_general_cls: Any = None
    return_weights: bool = False

    def __post_init__(self):
        name = type(self).__name__
        check_positive_int(self.features, "features", name)
        if self.return_weights:
            raise TypeError(
                f"{name}: return_weights= (nmn 0.3) is not supported: {REFUSED_KEYWORDS['YatNMN']['return_weights']}"
            )
        check_flax_contraction(name, dot_general=self.dot_general, dot_general_cls=self.dot_general_cls)
        check_initializer(self.alpha_init, "alpha_init", name)
        check_initializer(self.promote_dtype, "promote_dtype", name)
        if self.freeze_kernel is not None:  # fold nmn 0.3's alias into the field export and clone() read
            object.__setattr__(self, "lazy", resolve_freeze_kernel(self.lazy, self.freeze_kernel, name))
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
            softplus_bias=self.softplus_bias,
            scalar_bias=self.scalar_bias,
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
        opts = self.yat_options()
        bias, alpha, eps = tail_params(self, opts, opts.bias_size(self.features))
        bias = effective_bias(opts, bias, self.features)
        return yat_dense_contract(
            inputs,
            kernel,
            bias,
            alpha,
            eps,
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
            dtype=self.dtype,
            precision=self.precision,
            promote_dtype=self.promote_dtype,
        )

    def _export_params(self) -> dict:
        """(Bound module) the effective ``bias`` an exported file carries; ``{}`` without the bias options."""
        return module_export_params(self, self.yat_options(), "dense", self.features)
