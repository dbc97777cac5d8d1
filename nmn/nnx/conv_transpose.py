"""``YatConvTranspose`` (rank from ``kernel_size``) and the rank-checked ``YatConvTranspose1D/2D/3D``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer
from jax.typing import DTypeLike
from numpy.typing import ArrayLike

from nmn._jax.functional import check_input, yat_conv_transpose
from nmn._jax.geometry import conv_geometry, precision_name, precision_scope, transpose_padding
from nmn._jax.layout import unit_transpose_filters
from nmn.core.conv import output_padding_tuple, transpose_geometry
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.nnx._ops import check_initializer, init_dropconnect, init_tail_params
from nmn.nnx.dense import effective_kernel, effective_tail, init_mask, layer_export_params

default_kernel_init = nnx.initializers.xavier_normal()
default_bias_init = nnx.initializers.zeros_init()


def _untransposed(kernel: jax.Array) -> jax.Array:
    """Flax's ``transpose_kernel`` layout ``(*k, M, C)`` as this layer's ``(*k, C, M)``: spatial axes flipped,
    channel axes swapped (what ``lax.conv_transpose(transpose_kernel=True)`` does)."""
    rank = kernel.ndim - 2
    return jnp.flip(jnp.swapaxes(kernel, -1, -2), axis=tuple(range(rank)))


class YatConvTranspose(nnx.Module):
    """Yat transposed convolution: the Yat product of each filter with every zero-stuffed input patch.

    .. math:: y_{q,m} = \\alpha \\frac{(d_{q,m} + b_m)^2}{\\mathrm{relu}(E_{q,m} + \\|W_m\\|^2 - 2 d_{q,m}) + \\epsilon}

    with ``d`` the ONNX ``ConvTranspose`` of the input and ``E`` that of its square with an all-ones kernel.
    The kernel is Flax's ``ConvTranspose`` kernel: ``(*k, C, M/G)``, spatially flipped with respect to
    ONNX/PyTorch's ``(C, M/G, *k)``.

    Args:
        in_features: input channels C; out_features: output channels M.
        kernel_size: int or tuple; strides: int or tuple (default 1).
        padding: ``'SAME'`` (default: out = in * stride), ``'VALID'`` (out = (in - 1) * stride + k_eff, or
            in * stride if larger), an int or ``(lo, hi)`` pairs: ONNX/PyTorch cropping of the full output.
        output_padding: extra size on the high side of each axis (default 0).
        kernel_dilation: int or tuple (default 1). feature_group_count: groups G (default 1).
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, softplus_bias,
            scalar_bias: Yat options, as in :class:`YatNMN` (``scalar_bias``: one bias ``(1,)`` for every filter).
        mask: an array of the kernel's shape ``(*kernel_size, C, M/G)`` (Flax's layout) multiplied into the kernel
            before every use, as Flax's ``nnx.ConvTranspose(mask=...)`` (a non-trained ``Buffer``; default None).
            An exported file carries ``kernel * mask`` and the effective bias: a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter at every call -- the ``kernel[..., c, m]`` of its group's
            in-channels and every tap -- so ``|W_m|^2 = 1`` (nmn 0.3.5's Keras meaning; default False). A file
            carries the raw kernel and ``weight_normalized=1`` on ``nmn::YatConvTranspose``.
        alpha_init: nmn 0.3's initializer of ``alpha (1,)`` (default ones; None: ones).
        positive_init: draw the kernel as ``abs(kernel_init(...))`` (nmn 0.3; default False).
        precision: Flax's ``precision`` of the convolutions (``jax.lax.Precision`` or its name, applied through
            ``jax.default_matmul_precision``; default None). Numerics only: an exported file computes in float32.
        promote_dtype: Flax's dtype-promotion hook, called as ``promote_dtype((inputs, kernel, bias, alpha),
            dtype=dtype)`` before the Yat map (default None: nmn's own promotion).
        transpose_kernel: Flax's ``transpose_kernel`` (default False): the kernel is stored ``(*k, M, C)`` (a
            forward convolution's, ``feature_group_count=1`` only) and used spatially flipped with its channel
            axes swapped, so the layer is the transpose (gradient) of that convolution. An exported file carries
            the canonical weight: a loaded layer is a plain one.
        dtype, param_dtype, kernel_init (Xavier normal), bias_init (zeros), rngs: as in Flax.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect on the kernel (default False, 0.0), as :class:`YatNMN`;
            deterministic: default of the call's ``deterministic`` (default False; ``model.eval()`` sets True).

    Shape:
        input ``(N, *spatial, C)``, ``kernel (*kernel_size, C, M/G)``, output ``(N, *spatial', M)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> up = YatConvTranspose(2, 3, (2, 2), strides=2, rngs=nnx.Rngs(0))
        >>> up(jnp.ones((1, 4, 4, 2))).shape
        (1, 8, 8, 3)
        >>> half = YatConvTranspose(2, 3, 2, mask=jnp.ones((2, 2, 3)).at[1].set(0.0), scalar_bias=True, rngs=nnx.Rngs(0))
        >>> half.bias.shape, half(jnp.ones((1, 4, 2))).shape
        ((1,), (1, 4, 3))
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
        output_padding: int | Sequence[int] = 0,
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
        weight_normalized: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        deterministic: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        alpha_init: Initializer | None = nnx.initializers.ones,
        positive_init: bool = False,
        precision: Any = None,
        promote_dtype: Any = None,
        transpose_kernel: bool = False,
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
        self.transpose_kernel = bool(transpose_kernel)
        if self.transpose_kernel and groups != 1:
            raise ValueError(
                f"{name}: transpose_kernel=True takes feature_group_count=1 (Flax's ConvTranspose has no groups), "
                f"got {groups}"
            )
        self.padding = transpose_padding(padding, rank, name)
        self.output_padding = output_padding_tuple(output_padding, rank, name)
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
        self.dtype, self.param_dtype = dtype, param_dtype
        self.weight_normalized = bool(weight_normalized)
        shape = (*self.kernel_size, in_features, out_features // groups)
        if self.transpose_kernel:  # Flax's transpose_kernel layout: a forward conv's (*k, M, C)
            shape = (*self.kernel_size, out_features, in_features)
        kernel = kernel_init(rngs.params(), shape, param_dtype)
        self.kernel = nnx.Param(jnp.abs(kernel) if positive_init else kernel)
        init_mask(self, mask, shape, "(*kernel_size, C, M/G), spatially flipped")
        init_tail_params(self, self.opts, self.opts.bias_size(out_features), param_dtype, bias_init, rngs, alpha_init)
        init_dropconnect(self, use_dropconnect, drop_rate, deterministic, rngs)

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.kernel_size)

    def _export_params(self) -> dict:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical layout) an
        exported file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        out = layer_export_params(self, "conv_transpose", self.out_features)
        if self.transpose_kernel:
            import numpy as np

            from nmn.core import layouts

            kernel = self.kernel[...] if self.mask is None else self.kernel[...] * self.mask[...]
            out["weight"] = np.asarray(layouts.to_canonical("nnx", "conv_transpose", _untransposed(kernel)), np.float32)
        return out

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
        pads, outpad = transpose_geometry(
            self.padding, self.kernel_size, self.strides, self.kernel_dilation, self.output_padding
        )
        bias, alpha, eps = effective_tail(self, self.out_features)
        kernel = effective_kernel(self, deterministic, rngs)
        if self.transpose_kernel:
            kernel = _untransposed(kernel)
        if self.promote_dtype is not None:
            inputs, kernel, bias, alpha = self.promote_dtype((inputs, kernel, bias, alpha), dtype=self.dtype)
        if self.weight_normalized:
            kernel = unit_transpose_filters(kernel, self.feature_group_count)
        with precision_scope(self._precision):
            return yat_conv_transpose(
                inputs,
                kernel,
                bias,
                alpha,
                eps,
                strides=self.strides,
                padding=pads,
                output_padding=outpad,
                dilations=self.kernel_dilation,
                groups=self.feature_group_count,
                dtype=self.dtype,
            )


class YatConvTranspose1D(YatConvTranspose):
    """1-D :class:`YatConvTranspose`: input ``(N, L, C)``, ``kernel (k, C, M/G)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> YatConvTranspose1D(2, 3, 3, strides=2, padding="VALID", rngs=nnx.Rngs(0))(jnp.ones((1, 4, 2))).shape
        (1, 9, 3)
    """

    _rank = 1


class YatConvTranspose2D(YatConvTranspose):
    """2-D :class:`YatConvTranspose`: input ``(N, H, W, C)``, ``kernel (kh, kw, C, M/G)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> YatConvTranspose2D(2, 2, 3, strides=2, rngs=nnx.Rngs(0))(jnp.ones((1, 3, 3, 2))).shape
        (1, 6, 6, 2)
    """

    _rank = 2


class YatConvTranspose3D(YatConvTranspose):
    """3-D :class:`YatConvTranspose`: input ``(N, D, H, W, C)``, ``kernel (kd, kh, kw, C, M/G)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> YatConvTranspose3D(1, 2, 2, strides=2, rngs=nnx.Rngs(0))(jnp.ones((1, 2, 2, 2, 1))).shape
        (1, 4, 4, 4, 2)
    """

    _rank = 3
