"""``YatNMN``: the Yat dense layer for Flax NNX."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer
from jax.typing import DTypeLike

from nmn._jax.functional import check_input, yat_dense
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.nnx._ops import FrozenParam, dropconnect, init_dropconnect, init_tail_params, tail_of

default_kernel_init = nnx.initializers.xavier_normal()
default_bias_init = nnx.initializers.zeros_init()


class YatNMN(nnx.Module):
    """Yat dense layer: an activation-free neuron that scores similarity and proximity at once.

    .. math:: y_o = \\alpha \\frac{(x \\cdot w_o + b_o)^2}{\\mathrm{relu}(\\|x\\|^2 + \\|w_o\\|^2 - 2 x \\cdot w_o) + \\epsilon}

    Args:
        in_features: size of the input's last axis.
        out_features: number of Yat neurons.
        use_bias: learnable bias ``(out_features,)`` in the numerator (default True).
        constant_bias: a fixed bias value (no parameter); overrides ``use_bias`` (default None).
        use_alpha: learnable output scale ``alpha (1,)``, init 1 (default True).
        constant_alpha: ``True`` for a fixed sqrt(2), a number for that number (default None).
        epsilon: added to the clamped distance, must be > 0 (default 1e-5).
        learnable_epsilon: learn ``epsilon_param``, eps = softplus(epsilon_param) (default False).
        spherical: use unit-norm inputs and weights, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-norm weights at every call, ``|w|^2 := 1`` (default False).
        lazy: freeze the kernel (a ``FrozenParam``, not trained); bias/alpha stay trainable (default False).
        positive_init: draw the kernel as ``abs(kernel_init(...))`` (nmn 0.3; default False).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default False, 0.0): in training each call multiplies
            the kernel by a Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate) (rng stream ``'dropout'``);
            the identity when deterministic, after ``model.eval()`` and in exported files.
        deterministic: default of the call's ``deterministic`` (default False; ``model.eval()`` sets True).
        dtype: result dtype (default None: promoted from the input and parameters).
        param_dtype: parameter dtype (default float32).
        kernel_init: kernel initializer (default Xavier normal); bias_init: bias initializer (default zeros).
        rngs: ``nnx.Rngs`` for the initializers.

    Shape:
        input ``(..., in_features)``, ``kernel (in_features, out_features)``, output ``(..., out_features)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> layer = YatNMN(3, 2, rngs=nnx.Rngs(0))
        >>> layer(jnp.ones((4, 3))).shape
        (4, 2)
        >>> layer.kernel.shape, layer.alpha.shape
        ((3, 2), (1,))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        constant_bias: float | None = None,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        positive_init: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        deterministic: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        rngs: nnx.Rngs,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        name = type(self).__name__
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.out_features = check_positive_int(out_features, "out_features", name)
        self.opts = YatSpec.build(
            name,
            use_bias=use_bias,
            constant_bias=constant_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
        )
        self.spherical, self.weight_normalized, self.lazy = bool(spherical), bool(weight_normalized), bool(lazy)
        self.dtype, self.param_dtype = dtype, param_dtype
        kernel = kernel_init(rngs.params(), (in_features, out_features), param_dtype)
        if positive_init:
            kernel = jnp.abs(kernel)
        self.positive_init = bool(positive_init)
        self.kernel = FrozenParam(kernel) if lazy else nnx.Param(kernel)
        init_tail_params(self, self.opts, out_features, param_dtype, bias_init, rngs)
        init_dropconnect(self, use_dropconnect, drop_rate, deterministic, rngs)

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Apply the layer to ``inputs (..., in_features)``.

        ``deterministic`` (default: the layer's) turns DropConnect off; ``rngs`` overrides its rng stream.
        """
        if getattr(inputs, "ndim", 0) < 1 or inputs.shape[-1] != self.in_features:
            check_input(
                type(self).__name__,
                inputs,
                None,
                self.in_features,
                f"(..., {self.in_features}) for kernel {tuple(self.kernel.shape)}",
            )
        bias, alpha, eps = tail_of(self)
        return yat_dense(
            inputs,
            dropconnect(self, self.kernel[...], deterministic, rngs),
            bias,
            alpha,
            eps,
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
            dtype=self.dtype,
        )
