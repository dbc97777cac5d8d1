"""``YatNMN``: the Yat dense layer for Flax NNX."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.typing import Initializer
from jax.typing import DTypeLike

from nmn._jax.functional import check_input
from nmn.core.conv import check_mask
from nmn.core.layer_options import resolve_freeze_kernel
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, export_params
from nmn.nnx._ops import (
    Buffer,
    FrozenParam,
    check_flax_contraction,
    check_initializer,
    dropconnect,
    init_dropconnect,
    init_tail_params,
    tail_of,
    yat_dense_contract,
)

default_kernel_init = nnx.initializers.xavier_normal()
default_bias_init = nnx.initializers.zeros_init()


def init_mask(layer: nnx.Module, mask: Any, shape: tuple, layout: str) -> None:
    """Store a conv ``mask`` (Flax ``nnx.Conv(mask=...)`` meaning, the kernel's shape) as a ``Buffer`` (in
    ``nnx.state``, not trained), or ``None``."""
    checked = check_mask(mask, shape, type(layer).__name__, layout)
    layer.mask = nnx.data(None) if checked is None else Buffer(jnp.asarray(checked, layer.param_dtype))


def effective_tail(layer: nnx.Module, n_out: int) -> tuple:
    """``(bias, alpha, eps)`` of a Yat layer with ``softplus_bias`` / ``scalar_bias`` applied to the bias."""
    bias, alpha, eps = tail_of(layer)
    return layer.opts.effective_bias(bias, n_out, jax.nn.softplus, jnp.broadcast_to), alpha, eps


def effective_kernel(layer: nnx.Module, deterministic: bool | None, rngs: Any) -> jax.Array:
    """The kernel a Yat layer uses: DropConnect (training only), then ``mask`` where one is set."""
    kernel = dropconnect(layer, layer.kernel[...], deterministic, rngs)
    mask = getattr(layer, "mask", None)
    return kernel if mask is None else kernel * mask[...].astype(kernel.dtype)


def layer_export_params(layer: nnx.Module, layout: str, n_out: int) -> dict:
    """The effective ``bias`` / ``weight`` (canonical) an exported file carries; ``{}`` when no option is on."""
    mask = getattr(layer, "mask", None)
    return export_params(
        layer.opts,
        "nnx",
        layout,
        n_out,
        bias=None if layer.bias is None else np.asarray(layer.bias[...], np.float32),
        kernel=None if mask is None else np.asarray(layer.kernel[...], np.float32),
        mask=None if mask is None else np.asarray(mask[...], np.float32),
        groups=getattr(layer, "feature_group_count", 1),
    )


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
        softplus_bias: nmn 0.3's positive bias: the ``bias`` parameter stays raw, the layer adds ``softplus(bias)``
            (default False).
        scalar_bias: nmn 0.3's shared bias: ``bias`` has shape ``(1,)``, broadcast over every output (default
            False). Both need a learnable bias (an error with ``use_bias=False`` or ``constant_bias``). An exported
            file carries the effective bias (``softplus``, broadcast to ``(out_features,)``): a layer loaded from it
            is a plain ``YatNMN`` holding those values.
        spherical: use unit-norm inputs and weights, distance ``2 - 2 cos`` (default False).
        weight_normalized: unit-norm weights at every call, ``|w|^2 := 1`` (default False).
        lazy: freeze the kernel (a ``FrozenParam``, not trained); bias/alpha stay trainable (default False).
            An exported file marks the kernel non-trainable, and a layer loaded from it is frozen again.
        freeze_kernel: nmn 0.3's name of ``lazy`` (default None: as ``lazy``; giving both, they must agree).
        positive_init: draw the kernel as ``abs(kernel_init(...))`` (nmn 0.3; default False).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default False, 0.0): in training each call multiplies
            the kernel by a Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate) (rng stream ``'dropout'``);
            the identity when deterministic, after ``model.eval()`` and in exported files.
        deterministic: default of the call's ``deterministic`` (default False; ``model.eval()`` sets True).
        dtype: result dtype (default None: promoted from the input and parameters).
        param_dtype: parameter dtype (default float32).
        kernel_init: kernel initializer (default Xavier normal); bias_init: bias initializer (default zeros).
        alpha_init: nmn 0.3's initializer of ``alpha (1,)`` (default None: ones).
        precision: Flax's ``precision`` of the ``x @ kernel`` contraction (``jax.lax.Precision``; default None).
        promote_dtype: Flax's dtype-promotion hook, called as ``promote_dtype((inputs, kernel, bias, alpha),
            dtype=dtype)`` before the product (default None: nmn's rule, computing in float32, result in the
            promoted dtype).
        dot_general: nmn 0.3's contraction hook: only ``jax.lax.dot_general`` (or None) is accepted, a custom one
            (e.g. quantised) would not be what the exported ONNX function computes.
        compute_mode: nmn 0.3's numerics mode: only ``'fp32'`` (what the ONNX function computes) is accepted.
        distance_floor: nmn 0.3's lower bound of the squared distance: only 0.0 (the ONNX function's relu).
        fused: nmn 0.3's fused-derivative switch (default False): accepted, and both values compute the same,
            since the Yat tail always has its hand-written derivative (``nmn._jax.ops.yat_tail``).
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
        >>> YatNMN(3, 2, alpha_init=nnx.initializers.constant(2.0), rngs=nnx.Rngs(0)).alpha[...].tolist()
        [2.0]
        >>> type(YatNMN(3, 2, freeze_kernel=True, rngs=nnx.Rngs(0)).kernel).__name__
        'FrozenParam'
        >>> sp = YatNMN(3, 2, softplus_bias=True, scalar_bias=True, rngs=nnx.Rngs(0))
        >>> sp.bias.shape, [round(float(b), 4) for b in sp._export_params()["bias"]]  # softplus(0), per output
        ((1,), [0.6931, 0.6931])
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
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        freeze_kernel: bool | None = None,
        positive_init: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        deterministic: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        alpha_init: Initializer | None = None,
        precision: Any = None,
        promote_dtype: Any = None,
        dot_general: Any = None,
        compute_mode: str = "fp32",
        distance_floor: float = 0.0,
        fused: bool = False,
        rngs: nnx.Rngs,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        name = type(self).__name__
        check_flax_contraction(name, dot_general=dot_general, compute_mode=compute_mode, distance_floor=distance_floor)
        check_initializer(alpha_init, "alpha_init", name)
        check_initializer(promote_dtype, "promote_dtype", name)
        self.precision, self.promote_dtype = precision, promote_dtype
        self.compute_mode, self.distance_floor, self.fused = "fp32", 0.0, bool(fused)
        lazy = resolve_freeze_kernel(lazy, freeze_kernel, name)
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
            softplus_bias=softplus_bias,
            scalar_bias=scalar_bias,
        )
        self.spherical, self.weight_normalized, self.lazy = bool(spherical), bool(weight_normalized), bool(lazy)
        self.dtype, self.param_dtype = dtype, param_dtype
        kernel = kernel_init(rngs.params(), (in_features, out_features), param_dtype)
        if positive_init:
            kernel = jnp.abs(kernel)
        self.positive_init = bool(positive_init)
        self.kernel = FrozenParam(kernel) if lazy else nnx.Param(kernel)
        init_tail_params(self, self.opts, self.opts.bias_size(out_features), param_dtype, bias_init, rngs, alpha_init)
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
        bias, alpha, eps = effective_tail(self, self.out_features)
        return yat_dense_contract(
            inputs,
            effective_kernel(self, deterministic, rngs),
            bias,
            alpha,
            eps,
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
            dtype=self.dtype,
            precision=self.precision,
            promote_dtype=self.promote_dtype,
        )

    @property
    def freeze_kernel(self) -> bool:
        """nmn 0.3's name of ``lazy``."""
        return self.lazy

    def _export_params(self) -> dict:
        """The effective ``bias`` an exported file carries (``{}`` without ``softplus_bias`` / ``scalar_bias``)."""
        return layer_export_params(self, "dense", self.out_features)
