"""Linen ``YatConvTranspose1D/2D/3D``: rank-checked subclasses of a private N-d base."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from nmn._jax.functional import yat_conv_transpose
from nmn._jax.geometry import conv_geometry, transpose_padding
from nmn._jax.layout import unit_transpose_filters
from nmn.core.conv import output_padding_tuple, transpose_geometry
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec, resolve_dropconnect
from nmn.linen._ops import check_kernel, dropconnect, tail_params
from nmn.linen.conv import input_channels
from nmn.linen.dense import effective_bias, masked_kernel, module_export_params

default_kernel_init = nn.initializers.xavier_normal()
default_bias_init = nn.initializers.zeros_init()


class _YatConvTransposeNd(nn.Module):
    """Yat transposed convolution (ONNX ``ConvTranspose`` geometry, Yat product per zero-stuffed patch).

    Attributes:
        features: output channels M. kernel_size: int or tuple. strides: int or tuple (default 1).
        padding: ``'SAME'`` (default, out = in * stride), ``'VALID'``, an int or ``(lo, hi)`` pairs (ONNX/PyTorch
            cropping). output_padding: extra size on the high side (default 0).
        kernel_dilation (default 1), feature_group_count G (default 1).
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon: Yat options.
        softplus_bias, scalar_bias: nmn 0.3's bias options, as :class:`~nmn.linen.YatNMN` (``scalar_bias``: one bias
            ``(1,)`` for every filter).
        mask: an array of the kernel's shape ``(*kernel_size, C, M/G)`` multiplied into the kernel before every use, as Flax's
            ``nn.Conv(mask=...)`` (checked at call time, when the kernel's shape is known; default None). An
            exported file carries ``kernel * mask`` and the effective bias: a loaded module is a plain one.
        dtype, param_dtype, kernel_init (Xavier normal), bias_init (zeros); alpha_init: nmn 0.3's initializer of
            ``alpha (1,)`` (a Flax initializer; default None: ones).
        weight_normalized: unit-normalise each filter at every call (its group's ``kernel[..., c, m]`` over the
            group's in-channels and every tap), ``|W_m|^2 = 1`` (nmn 0.3.5's Keras meaning; default False).
        use_dropconnect, drop_rate, deterministic: nmn 0.3's DropConnect on the kernel, as :class:`~nmn.linen.YatNMN`.

    Shape:
        input ``(N, *spatial, C)``, ``kernel (*kernel_size, C, M/G)`` (Flax's ConvTranspose layout, spatially
        flipped against ONNX's ``(C, M/G, *k)``), output ``(N, *spatial', M)``.
    """

    _rank: ClassVar[int] = 0

    features: int
    kernel_size: Any
    strides: Any = 1
    padding: Any = "SAME"
    output_padding: Any = 0
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
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    use_dropconnect: bool = False
    drop_rate: float = 0.0
    deterministic: bool | None = None
    weight_normalized: bool = False
    alpha_init: Callable | None = None

    def __post_init__(self):
        self.geometry()
        super().__post_init__()

    def geometry(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, Any, tuple[int, ...], YatSpec]:
        """Validated ``(kernel_size, strides, dilations, groups, padding, output_padding, options)``."""
        name, rank = type(self).__name__, self._rank
        check_positive_int(self.features, "features", name)
        ks, strides, dil, groups = conv_geometry(
            self.kernel_size, self.strides, self.kernel_dilation, self.feature_group_count, rank, name
        )
        if self.features % groups:
            raise ValueError(f"{name}: features ({self.features}) must be divisible by feature_group_count ({groups})")
        padding = transpose_padding(self.padding, rank, name)
        outpad = output_padding_tuple(self.output_padding, rank, name)
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
        return ks, strides, dil, groups, padding, outpad, opts

    def _export_params(self) -> dict:
        """(Bound module) the effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical)
        an exported file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return module_export_params(self, self.geometry()[-1], "conv_transpose", self.features)

    @nn.compact
    def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        """Apply the layer to ``inputs (N, *spatial, C)``."""
        name = type(self).__name__
        ks, strides, dil, groups, padding, outpad, opts = self.geometry()
        rank = self._rank
        c, what = input_channels(name, inputs, rank, groups)
        shape = (*ks, c, self.features // groups)
        check_kernel(self, "params", shape, inputs, what)
        kernel = dropconnect(self, self.param("kernel", self.kernel_init, shape, self.param_dtype), deterministic)
        kernel = masked_kernel(self, kernel, "(*kernel_size, C, M/G), spatially flipped")
        if self.weight_normalized:
            kernel = unit_transpose_filters(kernel, groups)
        bias, alpha, eps = tail_params(self, opts, opts.bias_size(self.features))
        bias = effective_bias(opts, bias, self.features)
        pads, full_outpad = transpose_geometry(padding, ks, strides, dil, outpad)
        return yat_conv_transpose(
            inputs,
            kernel,
            bias,
            alpha,
            eps,
            strides=strides,
            padding=pads,
            output_padding=full_outpad,
            dilations=dil,
            groups=groups,
            dtype=self.dtype,
        )


class YatConvTranspose1D(_YatConvTransposeNd):
    """1-D Yat transposed convolution: input ``(N, L, C)``, ``kernel (k, C, M/G)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> up = YatConvTranspose1D(features=3, kernel_size=3, strides=2, padding="VALID")
        >>> x = jnp.ones((1, 4, 2))
        >>> up.apply(up.init(jax.random.key(0), x), x).shape
        (1, 9, 3)
        >>> masked = YatConvTranspose1D(features=3, kernel_size=3, mask=jnp.ones((3, 2, 3)).at[0].set(0.0))
        >>> v = masked.init(jax.random.key(0), x)
        >>> bool((masked.bind(v)._export_params()["weight"][..., 2] == 0).all())  # tap 0 of the flipped layout
        True
    """

    _rank: ClassVar[int] = 1


class YatConvTranspose2D(_YatConvTransposeNd):
    """2-D Yat transposed convolution: input ``(N, H, W, C)``, ``kernel (kh, kw, C, M/G)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> up = YatConvTranspose2D(features=2, kernel_size=(2, 2), strides=2)
        >>> x = jnp.ones((1, 3, 3, 2))
        >>> up.apply(up.init(jax.random.key(0), x), x).shape
        (1, 6, 6, 2)
    """

    _rank: ClassVar[int] = 2


class YatConvTranspose3D(_YatConvTransposeNd):
    """3-D Yat transposed convolution: input ``(N, D, H, W, C)``, ``kernel (kd, kh, kw, C, M/G)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> up = YatConvTranspose3D(features=2, kernel_size=2, strides=2)
        >>> x = jnp.ones((1, 2, 2, 2, 1))
        >>> up.apply(up.init(jax.random.key(0), x), x).shape
        (1, 4, 4, 4, 2)
    """

    _rank: ClassVar[int] = 3
