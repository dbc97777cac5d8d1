"""``YatConv`` (rank from ``kernel_size``) and the rank-checked ``YatConv1D``, ``YatConv2D``, ``YatConv3D``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer
from jax.typing import DTypeLike
from numpy.typing import ArrayLike

from nmn._jax.functional import check_input, yat_conv
from nmn._jax.geometry import (
    check_conv_general_dilated,
    conv_geometry,
    conv_padding,
    dilate_input,
    input_dilation_tuple,
    precision_name,
    precision_scope,
)
from nmn.core.conv import conv_pads
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.nnx._ops import check_initializer, init_dropconnect, init_tail_params
from nmn.nnx.dense import effective_kernel, effective_tail, init_mask, layer_export_params

default_kernel_init = nnx.initializers.xavier_normal()
default_bias_init = nnx.initializers.zeros_init()


class YatConv(nnx.Module):
    """Yat convolution: the Yat product of every input patch with each filter.

    .. math:: y_{p,m} = \\alpha \\frac{(P_p \\cdot W_m + b_m)^2}{\\mathrm{relu}(\\|P_p\\|^2 + \\|W_m\\|^2 - 2 P_p \\cdot W_m) + \\epsilon}

    The rank is ``len(kernel_size)`` (an int means 1-D); ``YatConv1D/2D/3D`` pin it.

    Args:
        in_features: input channels C.
        out_features: output channels (filters) M.
        kernel_size: window size, an int or a tuple of ints.
        strides: stride, int or tuple (default 1).
        padding: ``'SAME'`` (default), ``'VALID'``, ``'CAUSAL'`` (1-D), ``'CIRCULAR'``, ``'REFLECT'``, an int,
            ints or ``(lo, hi)`` pairs.
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.
        kernel_dilation: dilation, int or tuple (default 1).
        input_dilation: Flax's ``input_dilation`` (``lax.conv_general_dilated``'s ``lhs_dilation``; int or
            tuple, default 1): ``d - 1`` zeros between neighbouring input samples before the padding, which must
            then be explicit or ``'VALID'`` (zero pads;
            Flax takes explicit pads only). ``nmn::YatConv``'s ``input_dilations`` attribute.
        feature_group_count: groups G; C and M must be divisible by G (default 1).
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, weight_normalized:
            the Yat options, as in :class:`YatNMN` (defaults True, None, True, None, 1e-5, False, False).
        softplus_bias, scalar_bias: nmn 0.3's bias options, as in :class:`YatNMN` (``scalar_bias``: one bias
            ``(1,)`` for every filter).
        mask: an array of the kernel's shape ``(*kernel_size, C/G, M)`` multiplied into the kernel before every
            use, exactly as Flax's ``nnx.Conv(mask=...)`` (held as a non-trained ``Buffer``; default None). An
            exported file carries ``kernel * mask`` and the effective bias, so a loaded layer is a plain one.
        alpha_init: nmn 0.3's initializer of ``alpha (1,)`` (default ones; None: ones).
        positive_init: draw the kernel as ``abs(kernel_init(...))`` (nmn 0.3; default False).
        precision: Flax's ``precision`` of the convolutions (``jax.lax.Precision`` or its name, applied through
            ``jax.default_matmul_precision``; default None). Numerics only: an exported file computes in float32.
        promote_dtype: Flax's dtype-promotion hook, called as ``promote_dtype((inputs, kernel, bias, alpha),
            dtype=dtype)`` before the Yat map (default None: nmn's own promotion).
        conv_general_dilated: only ``jax.lax.conv_general_dilated`` (the default) or None (anything else is refused: the
            ONNX function defines the convolution).
        dtype: result dtype (default None: promoted); param_dtype: parameter dtype (default float32).
        kernel_init: default Xavier normal; bias_init: default zeros; rngs: ``nnx.Rngs``.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect on the kernel (default False, 0.0), as :class:`YatNMN`;
            deterministic: default of the call's ``deterministic`` (default False; ``model.eval()`` sets True).

    Shape:
        input ``(N, *spatial, C)``, ``kernel (*kernel_size, C/G, M)``, output ``(N, *spatial', M)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> conv = YatConv(3, 4, kernel_size=(3, 3), rngs=nnx.Rngs(0))
        >>> conv(jnp.ones((1, 5, 5, 3))).shape
        (1, 5, 5, 4)
        >>> causal = jnp.ones((3, 1, 1)).at[2].set(0.0)  # a 1-D kernel that never sees the next step
        >>> masked = YatConv(1, 1, 3, mask=causal, rngs=nnx.Rngs(0))
        >>> abs(float(masked._export_params()["weight"][0, 0, 2]))
        0.0
    """

    _rank: ClassVar[int | None] = None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        *,
        padding: str | int | Sequence[Any] = "SAME",
        padding_mode: str = "zeros",
        input_dilation: int | Sequence[int] | None = 1,
        kernel_dilation: int | Sequence[int] = 1,
        feature_group_count: int = 1,
        use_bias: bool = True,
        constant_bias: float | None = None,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        mask: jax.Array | ArrayLike | None = None,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        deterministic: bool = False,
        weight_normalized: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        alpha_init: Initializer | None = nnx.initializers.ones,
        positive_init: bool = False,
        precision: Any = None,
        promote_dtype: Any = None,
        conv_general_dilated: Any = jax.lax.conv_general_dilated,
        rngs: nnx.Rngs,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        name = type(self).__name__
        check_initializer(alpha_init, "alpha_init", name)
        check_initializer(promote_dtype, "promote_dtype", name)
        self.precision, self.promote_dtype = precision, promote_dtype
        self._precision = precision_name(precision, name)
        self.positive_init = bool(positive_init)
        check_conv_general_dilated(conv_general_dilated, name)
        self.conv_general_dilated = conv_general_dilated
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.out_features = check_positive_int(out_features, "out_features", name)
        self.kernel_size, self.strides, self.kernel_dilation, groups = conv_geometry(
            kernel_size, strides, kernel_dilation, feature_group_count, self._rank, name
        )
        rank = len(self.kernel_size)
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"{name}: in_features ({in_features}) and out_features ({out_features}) must be "
                f"divisible by feature_group_count ({groups})"
            )
        self.feature_group_count = groups
        self.input_dilation = input_dilation_tuple(input_dilation, rank, padding, name)
        self.padding, self.padding_mode = conv_padding(
            padding, padding_mode, rank, self.kernel_size, self.kernel_dilation, name
        )
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
        self.weight_normalized = bool(weight_normalized)
        self.dtype, self.param_dtype = dtype, param_dtype
        shape = (*self.kernel_size, in_features // groups, out_features)
        kernel = kernel_init(rngs.params(), shape, param_dtype)
        self.kernel = nnx.Param(jnp.abs(kernel) if positive_init else kernel)
        init_mask(self, mask, shape, "(*kernel_size, C/G, M)")
        init_tail_params(self, self.opts, self.opts.bias_size(out_features), param_dtype, bias_init, rngs, alpha_init)
        init_dropconnect(self, use_dropconnect, drop_rate, deterministic, rngs)

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.kernel_size)

    def _export_params(self) -> dict:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical layout) an
        exported file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return layer_export_params(self, "conv", self.out_features)

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Apply the layer to ``inputs (N, *spatial, in_features)``."""
        rank = self.rank
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) != rank + 2 or shape[-1] != self.in_features:
            check_input(
                type(self).__name__,
                inputs,
                rank + 2,
                self.in_features,
                f"(N, {', '.join(['*'] * rank)}, {self.in_features}) for kernel {tuple(self.kernel.shape)}",
            )
        pads = conv_pads(self.padding, shape[1:-1], self.kernel_size, self.strides, self.kernel_dilation)
        bias, alpha, eps = effective_tail(self, self.out_features)
        x, kernel = dilate_input(inputs, self.input_dilation), effective_kernel(self, deterministic, rngs)
        if self.promote_dtype is not None:
            x, kernel, bias, alpha = self.promote_dtype((x, kernel, bias, alpha), dtype=self.dtype)
        with precision_scope(self._precision):
            return yat_conv(
                x,
                kernel,
                bias,
                alpha,
                eps,
                strides=self.strides,
                padding=pads,
                dilations=self.kernel_dilation,
                groups=self.feature_group_count,
                padding_mode=self.padding_mode,
                weight_normalized=self.weight_normalized,
                dtype=self.dtype,
            )


class YatConv1D(YatConv):
    """1-D :class:`YatConv`: input ``(N, L, C)``, ``kernel (k, C/G, M)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> YatConv1D(2, 3, 3, padding="VALID", rngs=nnx.Rngs(0))(jnp.ones((1, 6, 2))).shape
        (1, 4, 3)
    """

    _rank = 1


class YatConv2D(YatConv):
    """2-D :class:`YatConv`: input ``(N, H, W, C)``, ``kernel (kh, kw, C/G, M)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> YatConv2D(2, 4, 3, strides=2, rngs=nnx.Rngs(0))(jnp.ones((1, 6, 6, 2))).shape
        (1, 3, 3, 4)
    """

    _rank = 2


class YatConv3D(YatConv):
    """3-D :class:`YatConv`: input ``(N, D, H, W, C)``, ``kernel (kd, kh, kw, C/G, M)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> YatConv3D(1, 2, 2, padding="VALID", rngs=nnx.Rngs(0))(jnp.ones((1, 3, 3, 3, 1))).shape
        (1, 2, 2, 2, 2)
    """

    _rank = 3
