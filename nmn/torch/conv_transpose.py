"""Yat transposed convolutions for PyTorch: ``YatConvTranspose1D/2D/3D`` on a private N-d base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from numpy.typing import ArrayLike

from nmn.core.conv import check_mask, output_padding_tuple, transpose_geometry
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, NORM_GUARD
from nmn.torch import functional
from nmn.torch._ops import resolve_param_dtype, to_compute
from nmn.torch.conv import check_groups, check_input, geometry_repr, set_geometry
from nmn.torch.dense import YatParams, pick


def unit_filters(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """``weight (C, M/G, *k)`` with every filter -- its group's ``weight[c, m', :]`` -- divided by its norm + 1e-8.

    >>> w = unit_filters(torch.full((2, 1, 3), 2.0), 1)
    >>> round(float((w * w).sum()), 6)
    1.0
    """
    c, mg = weight.shape[:2]
    blocks = weight.reshape(groups, c // groups, mg, -1)
    norms = blocks.square().sum(dim=(1, 3), keepdim=True).sqrt()
    return (blocks / (norms + NORM_GUARD)).reshape(weight.shape)


class _YatConvTransposeNd(YatParams, nn.Module):
    """N-d Yat transposed convolution; the rank classes fix ``_rank``."""

    _rank = 0
    _layout = "conv_transpose"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence[int | Sequence[int]] = 0,
        output_padding: int | Sequence[int] = 0,
        groups: int = 1,
        bias: bool | None = None,
        dilation: int | Sequence[int] = 1,
        padding_mode: str = "zeros",
        *,
        use_bias: bool | None = None,
        constant_bias: float | None = None,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        mask: torch.Tensor | ArrayLike | None = None,
        weight_normalized: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        device: torch.device | str | int | None = None,
        dtype: torch.dtype | None = None,
        param_dtype: torch.dtype | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__()
        name, rank = type(self).__name__, self._rank
        set_geometry(self, in_channels, out_channels, kernel_size, stride, dilation, padding)
        if self.padding == "causal":
            raise ValueError(f"{name}: padding='causal' is not defined for transposed convolutions")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode must be 'zeros' for transposed convolutions, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.output_padding = output_padding_tuple(output_padding, rank, name)
        self.groups = check_groups(name, in_channels, out_channels, groups)
        storage, self.compute_dtype = resolve_param_dtype(dtype, param_dtype, name)
        self.param_dtype = storage
        factory = {"device": device, "dtype": storage}
        self._init_yat(
            out_channels,
            factory,
            use_bias=pick(bias, use_bias, True, "bias", "use_bias", name),
            constant_bias=constant_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
            softplus_bias=softplus_bias,
            scalar_bias=scalar_bias,
        )
        self._init_dropconnect(use_dropconnect, drop_rate)
        self.weight_normalized = bool(weight_normalized)
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // groups, *self.kernel_size, **factory))
        checked = check_mask(mask, self.weight.shape, name, "(in_channels, out_channels/groups, *kernel_size)")
        self.register_buffer("mask", None if checked is None else torch.as_tensor(checked, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight ~ Xavier normal, bias zeros, alpha 1, epsilon_param inverse-softplus(epsilon)."""
        with torch.no_grad():
            nn.init.xavier_normal_(self.weight)
        self._reset_yat()

    def geometry(self) -> tuple[list[tuple[int, int]], list[int]]:
        """ONNX ``(pads as (lo, hi) pairs, output_padding)`` of this layer."""
        return transpose_geometry(self.padding, self.kernel_size, self.stride, self.dilation, self.output_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, unbatched = check_input(type(self).__name__, x, self._rank, self.in_channels)
        bias, alpha, eps = self._yat_terms()
        x, kernel, bias, alpha = to_compute(self.compute_dtype, x, self._kernel(), bias, alpha)
        if self.weight_normalized:
            kernel = unit_filters(kernel, self.groups)
        y = functional.yat_conv_transpose(
            x,
            kernel,
            bias,
            alpha,
            eps,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            groups=self.groups,
            dilation=self.dilation,
        )
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        s = geometry_repr(self)
        if any(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.mask is not None:
            s += f", mask={tuple(self.mask.shape)}"
        if self.weight_normalized:
            s += ", weight_normalized=True"
        return s + ", " + self._yat_repr() + self._dropconnect_repr()


_DOC = """Yat {r}-D transposed convolution (torch/ONNX ``ConvTranspose`` geometry).

    ``dot = conv_transpose(x, W)``, ``E = conv_transpose(x * x, ones)``, ``K_m = |W_m|^2`` over all taps;
    ``y = alpha * (dot + b)^2 / (relu(E + K - 2 dot) + epsilon)``.

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size: int or {r} ints.
        stride, dilation: int or {r} ints (default 1).
        padding: int, {r} ints or ``(lo, hi)`` pairs cropped from the output (torch meaning), ``'valid'``
            (``out = (in - 1) s + d (k - 1) + 1``) or ``'same'`` (``out = in * s``); default 0.
        output_padding: extra size on the high side of each axis (default 0).
        groups: grouped transposed convolution (default 1).
        bias: learnable bias ``(out_channels,)`` (default True); ``use_bias=`` is the same switch.
        padding_mode: only ``'zeros'``.
        constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, softplus_bias, scalar_bias: as
            :class:`nmn.torch.YatNMN` (``scalar_bias``: one bias ``(1,)`` for every output channel).
        weight_normalized: unit-normalise each filter at every forward -- the ``weight[c, m, :]`` of its group's
            in-channels ``c`` and every tap -- so ``|W_m|^2 = 1`` (nmn 0.3.5's Keras meaning; default False).
            A file carries the raw weight and ``weight_normalized=1`` on ``nmn::YatConvTranspose``.
        mask: an array of the weight's shape ``(in_channels, out_channels/groups, *kernel_size)`` multiplied into the weight before every
            use, as Flax's ``nn.Conv(mask=...)`` (e.g. zeros for the taps a causal/masked conv must not see);
            a persistent buffer ``mask`` (in the state_dict, moved by ``.to()``), not trained. Default None.
            An exported file carries ``weight * mask`` (and the effective bias), so a loaded layer is a plain
            one holding those values.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect: in training (``module.train()``) each forward multiplies
            the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate); in ``eval()`` and in
            every exported file it is the identity. ``drop_rate`` in [0, 1) (defaults False, 0.0).
        device, dtype: factory arguments.
        param_dtype: nmn 0.3's storage dtype of the parameters (default None: ``dtype``); given, ``dtype`` becomes
            the compute dtype (the input and the stored parameters are cast to it for each call), as ``YatNMN``.

    Shape: ``(N, C, {s}) -> (N, M, {s_out})``, each ``(in - 1) s - lo - hi + d (k - 1) + 1 + output_padding``.

    Example:
        >>> layer = {name}(2, 3, 3, stride=2)
        >>> layer(torch.randn(1, 2, {ex})).shape
        torch.Size([1, 3, {out}])
    """


class YatConvTranspose1D(_YatConvTransposeNd):
    __doc__ = _DOC.format(r=1, s="L", s_out="L_out", name="YatConvTranspose1D", ex="4", out="9")
    _rank = 1


class YatConvTranspose2D(_YatConvTransposeNd):
    __doc__ = _DOC.format(r=2, s="H, W", s_out="H_out, W_out", name="YatConvTranspose2D", ex="4, 4", out="9, 9")
    _rank = 2


class YatConvTranspose3D(_YatConvTransposeNd):
    __doc__ = _DOC.format(
        r=3, s="D, H, W", s_out="D_out, H_out, W_out", name="YatConvTranspose3D", ex="2, 2, 2", out="5, 5, 5"
    )
    _rank = 3
