"""Linen ``YatConv1D``, ``YatConv2D``, ``YatConv3D``: rank-checked subclasses of a private N-d base."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from nmn._jax.functional import check_input, yat_conv
from nmn._jax.geometry import conv_geometry, conv_padding, dilate_input, input_dilation_tuple
from nmn.core.conv import conv_pads
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, resolve_dropconnect
from nmn.linen._ops import check_kernel, dropconnect, tail_params
from nmn.linen.dense import effective_bias, masked_kernel, module_export_params

default_kernel_init = nn.initializers.xavier_normal()
default_bias_init = nn.initializers.zeros_init()


def input_channels(name: str, inputs: jax.Array, rank: int, groups: int) -> tuple[int, str]:
    """``(C, what)`` of a channels-last ``inputs (N, *spatial, C)``, checked for rank and divisibility by groups."""
    what = f"(N, {', '.join(['*'] * rank)}, C)"
    check_input(name, inputs, rank + 2, None, what)
    c = inputs.shape[-1]
    if c % groups:
        raise ValueError(
            f"{name}: input channels {c} (shape {tuple(inputs.shape)}) are not divisible by "
            f"feature_group_count {groups}"
        )
    return c, what


class _YatConvNd(nn.Module):
    """Yat convolution: ``y = alpha (P.W_m + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 P.W_m) + eps)`` per patch P.

    Attributes:
        features: output channels M (input channels C come from the first call).
        kernel_size: int or tuple of ``rank`` ints. strides: int or tuple (default 1).
        padding: ``'SAME'`` (default), ``'VALID'``, ``'CAUSAL'`` (1-D), ``'CIRCULAR'``, ``'REFLECT'``, ints or
            ``(lo, hi)`` pairs. padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'``, ``'circular'``.
        kernel_dilation: int or tuple (default 1). feature_group_count: groups G (default 1).
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, weight_normalized:
            Yat options as in :class:`~nmn.linen.YatNMN`.
        softplus_bias, scalar_bias: nmn 0.3's bias options, as :class:`~nmn.linen.YatNMN` (``scalar_bias``: one bias
            ``(1,)`` for every filter).
        mask: an array of the kernel's shape ``(*kernel_size, C/G, M)`` multiplied into the kernel before every use, as Flax's
            ``nn.Conv(mask=...)`` (checked at call time, when the kernel's shape is known; default None). An
            exported file carries ``kernel * mask`` and the effective bias: a loaded module is a plain one.
        dtype, param_dtype, kernel_init (Xavier normal), bias_init (zeros); alpha_init: nmn 0.3's initializer of
            ``alpha (1,)`` (a Flax initializer; default None: ones).
        use_dropconnect, drop_rate, deterministic: nmn 0.3's DropConnect on the kernel, as :class:`~nmn.linen.YatNMN`.
        input_dilation: Flax's ``input_dilation`` (``lax.conv_general_dilated``'s ``lhs_dilation``; int or tuple,
            default 1): ``d - 1`` zeros between neighbouring input samples before the padding, which must then be
            explicit or ``'VALID'`` (zero pads;
            Flax takes explicit pads only). ``nmn::YatConv``'s ``input_dilations`` attribute.

    Shape:
        input ``(N, *spatial, C)``, ``kernel (*kernel_size, C/G, M)``, output ``(N, *spatial', M)``.
    """

    _rank: ClassVar[int] = 0

    features: int
    kernel_size: Any
    strides: Any = 1
    padding: Any = "SAME"
    padding_mode: str = "zeros"
    kernel_dilation: Any = 1
    feature_group_count: int = 1
    use_bias: bool = True
    constant_bias: Any = None
    use_alpha: bool = True
    constant_alpha: Any = None
    epsilon: float = DEFAULT_EPSILON
    learnable_epsilon: bool = False
    softplus_bias: bool = False
    scalar_bias: bool = False
    mask: Any = None
    weight_normalized: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    use_dropconnect: bool = False
    drop_rate: float = 0.0
    deterministic: bool | None = None
    input_dilation: Any = 1
    alpha_init: Callable | None = None

    def __post_init__(self):
        self.geometry()
        super().__post_init__()

    def geometry(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, Any, str, YatSpec]:
        """Validated ``(kernel_size, strides, dilations, groups, padding, padding_mode, options)``."""
        name = type(self).__name__
        check_positive_int(self.features, "features", name)
        ks, strides, dil, groups = conv_geometry(
            self.kernel_size, self.strides, self.kernel_dilation, self.feature_group_count, self._rank, name
        )
        if self.features % groups:
            raise ValueError(f"{name}: features ({self.features}) must be divisible by feature_group_count ({groups})")
        padding, mode = conv_padding(self.padding, self.padding_mode, self._rank, ks, dil, name)
        opts = YatSpec.build(
            name,
            use_bias=self.use_bias,
            constant_bias=self.constant_bias,
            use_alpha=self.use_alpha,
            constant_alpha=self.constant_alpha,
            epsilon=self.epsilon,
            learnable_epsilon=self.learnable_epsilon,
            softplus_bias=self.softplus_bias,
            scalar_bias=self.scalar_bias,
        )
        resolve_dropconnect(self.use_dropconnect, self.drop_rate, name)
        input_dilation_tuple(self.input_dilation, self._rank, self.padding, name)
        return ks, strides, dil, groups, padding, mode, opts

    def _export_params(self) -> dict:
        """(Bound module) the effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical)
        an exported file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return module_export_params(self, self.geometry()[-1], "conv", self.features)

    @nn.compact
    def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        """Apply the layer to ``inputs (N, *spatial, C)``."""
        name = type(self).__name__
        ks, strides, dil, groups, padding, mode, opts = self.geometry()
        rank = self._rank
        c, what = input_channels(name, inputs, rank, groups)
        shape = (*ks, c // groups, self.features)
        check_kernel(self, "params", shape, inputs, what)
        kernel = dropconnect(self, self.param("kernel", self.kernel_init, shape, self.param_dtype), deterministic)
        kernel = masked_kernel(self, kernel, "(*kernel_size, C/G, M)")
        bias, alpha, eps = tail_params(self, opts, opts.bias_size(self.features))
        bias = effective_bias(opts, bias, self.features)
        pads = conv_pads(padding, inputs.shape[1:-1], ks, strides, dil)
        lhs = input_dilation_tuple(self.input_dilation, rank, self.padding, name)
        return yat_conv(
            dilate_input(inputs, lhs),
            kernel,
            bias,
            alpha,
            eps,
            strides=strides,
            padding=pads,
            dilations=dil,
            groups=groups,
            padding_mode=mode,
            weight_normalized=self.weight_normalized,
            dtype=self.dtype,
        )


class YatConv1D(_YatConvNd):
    """1-D Yat convolution: input ``(N, L, C)``, ``kernel (k, C/G, M)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> conv = YatConv1D(features=3, kernel_size=3, padding="VALID")
        >>> x = jnp.ones((1, 6, 2))
        >>> conv.apply(conv.init(jax.random.key(0), x), x).shape
        (1, 4, 3)
        >>> causal = YatConv1D(features=3, kernel_size=3, padding="VALID", mask=jnp.ones((3, 2, 3)).at[2].set(0.0))
        >>> v = causal.init(jax.random.key(0), x)
        >>> bool((causal.bind(v)._export_params()["weight"][..., 2] == 0).all())
        True
    """

    _rank: ClassVar[int] = 1


class YatConv2D(_YatConvNd):
    """2-D Yat convolution: input ``(N, H, W, C)``, ``kernel (kh, kw, C/G, M)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> conv = YatConv2D(features=4, kernel_size=(3, 3))
        >>> x = jnp.ones((1, 5, 5, 2))
        >>> conv.apply(conv.init(jax.random.key(0), x), x).shape
        (1, 5, 5, 4)
    """

    _rank: ClassVar[int] = 2


class YatConv3D(_YatConvNd):
    """3-D Yat convolution: input ``(N, D, H, W, C)``, ``kernel (kd, kh, kw, C/G, M)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> conv = YatConv3D(features=2, kernel_size=2, padding="VALID")
        >>> x = jnp.ones((1, 3, 3, 3, 1))
        >>> conv.apply(conv.init(jax.random.key(0), x), x).shape
        (1, 2, 2, 2, 2)
    """

    _rank: ClassVar[int] = 3
