"""``YatConvTranspose1D/2D/3D``: Yat transposed convolutions for MLX (channels-last)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from numpy.typing import ArrayLike

from nmn.core.conv import output_padding_tuple, transpose_geometry
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, NORM_GUARD
from nmn.mlx._ops import mx
from nmn.mlx.conv import Padding, _ConvBase
from nmn.mlx.functional import yat_conv_transpose

__all__ = ["YatConvTranspose1D", "YatConvTranspose2D", "YatConvTranspose3D"]


class _YatConvTransposeND(_ConvBase):
    """N-d Yat transposed convolution; use the 1-D / 2-D / 3-D classes."""

    _layout = "conv_transpose"

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        *,
        in_channels: int | None = None,
        strides: int | Sequence[int] = 1,
        padding: Padding = 0,
        dilation_rate: int | Sequence[int] = 1,
        output_padding: int | Sequence[int] = 0,
        groups: int = 1,
        use_bias: bool = True,
        constant_bias: float | None = None,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        mask: ArrayLike | None = None,
        weight_normalized: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        dtype: mx.Dtype = mx.float32,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__()
        name, rank = type(self).__name__, self._rank
        padding = self._init_geometry(filters, kernel_size, strides, dilation_rate, padding)
        if padding == "causal":
            raise ValueError(f"{name}: padding='causal' is not defined for transposed convolutions")
        self.padding = padding
        self.output_padding = output_padding_tuple(
            output_padding, rank, name, strides=self.strides, dilations=self.dilation_rate
        )
        self._init_groups_and_params(
            groups,
            (use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon),
            dtype,
            softplus_bias,
            scalar_bias,
            mask,
        )
        self._pads, self._outpad = transpose_geometry(
            self.padding, self.kernel_size, self.strides, self.dilation_rate, self.output_padding
        )
        self._init_dropconnect(use_dropconnect, drop_rate)
        self.weight_normalized = bool(weight_normalized)
        self._init_kernel(in_channels)

    def _fan_in(self, in_channels: int) -> int:
        return in_channels * math.prod(self.kernel_size)

    def __call__(self, x: mx.array) -> mx.array:
        x = self._checked_input(x)
        kernel = self._masked(self._dropconnect(self["kernel"]))
        if self.weight_normalized:  # kernel (M, *k, C/G): filter m is kernel[m]
            axes = tuple(range(1, kernel.ndim))
            kernel = kernel / (mx.sqrt(mx.sum(kernel * kernel, axis=axes, keepdims=True)) + NORM_GUARD)
        return yat_conv_transpose(
            x,
            kernel,
            *self._effective_terms(),
            strides=self.strides,
            pads=self._pads,
            dilations=self.dilation_rate,
            output_padding=self._outpad,
            groups=self.groups,
        )

    def get_config(self) -> dict[str, Any]:
        """Constructor keywords as plain JSON; ``type(layer).from_config(layer.get_config())`` rebuilds it."""
        return {
            **self._constructor_geometry(),
            "output_padding": list(self.output_padding),
            **self._yat_config(),
            **self._bias_mask_config(),
            "weight_normalized": self.weight_normalized,
            **self._dropconnect_config(),
        }

    def spec_config(self) -> dict[str, Any]:
        """The neutral spec's config (canonical geometry keys, every Yat key; not the training-only DropConnect)."""
        return {
            **self._geometry_config(),
            "output_padding": list(self.output_padding),
            **self._yat_config(),
            "spherical": False,
            "weight_normalized": self.weight_normalized,
        }

    def _extra_repr(self) -> str:
        parts = [
            f"{self.in_channels}, {self.filters}",
            f"kernel_size={self.kernel_size}",
            f"strides={self.strides}",
            f"padding={self.padding!r}",
        ]
        if self.dilation_rate != (1,) * self._rank:
            parts.append(f"dilation_rate={self.dilation_rate}")
        if any(self.output_padding):
            parts.append(f"output_padding={self.output_padding}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        parts.append(self._yat_repr())
        return ", ".join(parts + self._dropconnect_repr())


_DOC = """Yat {rank}-D transposed convolution (the ONNX / torch ``ConvTranspose`` map, channels-last data).

    ``y = alpha * (d + b_m)^2 / (relu(E + |W_m|^2 - 2 d) + eps)`` where ``d`` is the transposed convolution of
    ``x`` and ``E`` that of ``x^2`` with an all-ones kernel: each output is the Yat product of the (spatially
    flipped) filter with the zero-stuffed, padded patch under it (docs/design.md §4.1).

    Parameters: ``kernel (filters, {kdims}, in_channels / groups)`` (for ``groups=1`` this is the
    ``mlx.nn.ConvTranspose{rank}d`` layout ``(out, *k, in)``; canonical ONNX ``W[c, m', t]`` of group ``g`` is
    ``kernel[g M/G + m', t, c - g C/G]``), init ``N(0, 1 / (C prod k))``; ``bias (filters,)``, ``alpha (1,)``,
    ``epsilon_param (1,)``; absent ones are absent keys.

    Args:
        filters: output channels ``M``.
        kernel_size: int or {rank} ints.
        in_channels: input channels ``C`` (default None: taken from the first call).
        strides: int or {rank} ints (default 1).
        padding: ``0`` (default, as ``mlx.nn``), an int, {rank} ints or ``(lo, hi)`` pairs cropped from the
            output (ONNX ``pads``), ``'valid'`` (out = (in - 1) s + d (k - 1) + 1, at least in * s) or ``'same'``
            (out = in * s).
        dilation_rate: int or {rank} ints (default 1).
        output_padding: extra rows on the high side of each axis, < max(stride, dilation) (default 0).
        groups: feature groups (default 1).
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, softplus_bias,
            scalar_bias: as :class:`YatNMN` (``scalar_bias``: one bias ``(1,)`` for every filter).
        mask: an array of the kernel's shape ``(filters, *kernel_size, in_channels / groups)`` multiplied into
            the kernel before every use, as Flax's ``nn.ConvTranspose(mask=...)`` (checked when the kernel is
            built; a plain attribute, never trained; ``get_config`` keeps it as a nested list). Default None. An
            exported file carries ``kernel * mask`` and the effective bias: a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter ``kernel[m]`` at every call, ``|W_m|^2 = 1`` (nmn 0.3.5's
            meaning; default False); a file carries the raw kernel and ``weight_normalized=1``.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect on the kernel in training mode (default False, 0.0), as
            :class:`YatNMN`; the identity after ``layer.eval()`` and in exported files.
        dtype: parameter dtype (default ``mx.float32``).

    Shape: ``(N, {sdims}, C) -> (N, {sdims}', filters)``.

    >>> import mlx.core as mx
    >>> layer = YatConvTranspose{rank}D(4, 2, in_channels=3, strides=2)
    >>> layer(mx.ones((1, {example}, 3))).shape
    (1, {out_example}, 4)
    """


def _doc(rank: int, sdims: str) -> str:
    return _DOC.format(
        rank=rank,
        kdims=", ".join(f"k{i}" for i in range(rank)),
        sdims=sdims,
        example=", ".join(["3"] * rank),
        out_example=", ".join(["6"] * rank),
    )


class YatConvTranspose1D(_YatConvTransposeND):
    __doc__ = _doc(1, "L")
    _rank = 1


class YatConvTranspose2D(_YatConvTransposeND):
    __doc__ = _doc(2, "H, W")
    _rank = 2


class YatConvTranspose3D(_YatConvTransposeND):
    __doc__ = _doc(3, "D, H, W")
    _rank = 3
