"""``YatConvTranspose1D/2D/3D``: Yat transposed convolutions for MLX (channels-last)."""

from __future__ import annotations

import math

from nmn.core.conv import as_tuple, normalize_padding, transpose_geometry
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.mlx._ops import YatParamsMixin, fan_in_normal, mx, nn
from nmn.mlx.conv import check_conv_input
from nmn.mlx.functional import yat_conv_transpose

__all__ = ["YatConvTranspose1D", "YatConvTranspose2D", "YatConvTranspose3D"]


class _YatConvTransposeND(YatParamsMixin, nn.Module):
    """N-d Yat transposed convolution; use the 1-D / 2-D / 3-D classes."""

    _rank = 0

    def __init__(self, filters, kernel_size, *, in_channels=None, strides=1, padding=0, dilation_rate=1,
                 output_padding=0, groups=1, use_bias=True, constant_bias=None, use_alpha=True, constant_alpha=None,
                 epsilon=DEFAULT_EPSILON, learnable_epsilon=False, dtype=mx.float32):
        super().__init__()
        name, rank = type(self).__name__, self._rank
        self.filters = check_positive_int(filters, "filters", name)
        self.kernel_size = as_tuple(kernel_size, rank, "kernel_size", name)
        self.strides = as_tuple(strides, rank, "strides", name)
        self.dilation_rate = as_tuple(dilation_rate, rank, "dilation_rate", name)
        padding = normalize_padding(padding, rank, name)
        if padding == "causal":
            raise ValueError(f"{name}: padding='causal' is not defined for transposed convolutions")
        self.padding = padding
        if isinstance(output_padding, int) and not isinstance(output_padding, bool):
            output_padding = (output_padding,) * rank
        self.output_padding = tuple(int(v) for v in output_padding)
        if len(self.output_padding) != rank or any(
                not 0 <= op < max(s, d) for op, s, d in zip(self.output_padding, self.strides, self.dilation_rate)):
            raise ValueError(f"{name}: output_padding must be {rank} ints in [0, max(stride, dilation)), "
                             f"got {output_padding!r}")
        self.groups = check_positive_int(groups, "groups", name)
        if self.filters % self.groups:
            raise ValueError(f"{name}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        self._dtype = dtype
        self._init_yat_params(use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon,
                              (self.filters,), dtype)
        self._pads, self._outpad = transpose_geometry(self.padding, self.kernel_size, self.strides,
                                                      self.dilation_rate, self.output_padding)
        self.in_channels = None
        if in_channels is not None:
            self._build(check_positive_int(in_channels, "in_channels", name))

    def _build(self, in_channels):
        if in_channels % self.groups:
            raise ValueError(f"{type(self).__name__}: in_channels ({in_channels}) must be divisible by "
                             f"groups ({self.groups})")
        self.in_channels = int(in_channels)
        fan_in = in_channels * math.prod(self.kernel_size)
        self.kernel = fan_in_normal((self.filters, *self.kernel_size, in_channels // self.groups), fan_in,
                                    self._dtype)

    def __call__(self, x):
        name = type(self).__name__
        if self.in_channels is None:
            check_conv_input(name, x, self._rank, None)
            self._build(x.shape[-1])
        check_conv_input(name, x, self._rank, self.in_channels)
        return yat_conv_transpose(x, self["kernel"], self._bias_value(), self._alpha_value(), self._eps_value(),
                                  strides=self.strides, pads=self._pads, dilations=self.dilation_rate,
                                  output_padding=self._outpad, groups=self.groups)

    def get_config(self):
        """Constructor arguments as plain JSON (the neutral spec's config)."""
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
        return {
            "rank": self._rank,
            "in_channels": self.in_channels,
            "out_channels": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "dilations": list(self.dilation_rate),
            "groups": self.groups,
            "padding": padding,
            "output_padding": list(self.output_padding),
            **self._yat_config(),
            "spherical": False,
            "weight_normalized": False,
        }

    def _extra_repr(self):
        parts = [f"{self.in_channels}, {self.filters}", f"kernel_size={self.kernel_size}",
                 f"strides={self.strides}", f"padding={self.padding!r}"]
        if self.dilation_rate != (1,) * self._rank:
            parts.append(f"dilation_rate={self.dilation_rate}")
        if any(self.output_padding):
            parts.append(f"output_padding={self.output_padding}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        parts.append(self._yat_repr())
        return ", ".join(parts)


_DOC = """Yat {rank}-D transposed convolution (the ONNX / torch ``ConvTranspose`` map, channels-last data).

    ``y = alpha * (d + b_m)^2 / (relu(E + |W_m|^2 - 2 d) + eps)`` where ``d`` is the transposed convolution of
    ``x`` and ``E`` that of ``x^2`` with an all-ones kernel: each output is the Yat product of the (spatially
    flipped) filter with the zero-stuffed, padded patch under it (yat-ops.md 4.1).

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
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon: as :class:`YatNMN`.
        dtype: parameter dtype (default ``mx.float32``).

    Shape: ``(N, {sdims}, C) -> (N, {sdims}', filters)``.

    >>> import mlx.core as mx
    >>> layer = YatConvTranspose{rank}D(4, 2, in_channels=3, strides=2)
    >>> layer(mx.ones((1, {example}, 3))).shape
    (1, {out_example}, 4)
    """


def _doc(rank, sdims):
    return _DOC.format(rank=rank, kdims=", ".join(f"k{i}" for i in range(rank)), sdims=sdims,
                       example=", ".join(["3"] * rank), out_example=", ".join(["6"] * rank))


class YatConvTranspose1D(_YatConvTransposeND):
    __doc__ = _doc(1, "L")
    _rank = 1


class YatConvTranspose2D(_YatConvTransposeND):
    __doc__ = _doc(2, "H, W")
    _rank = 2


class YatConvTranspose3D(_YatConvTransposeND):
    __doc__ = _doc(3, "D, H, W")
    _rank = 3
