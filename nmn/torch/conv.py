"""Yat convolutions for PyTorch: ``YatConv1D``, ``YatConv2D``, ``YatConv3D`` on a private N-d base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from numpy.typing import ArrayLike

from nmn.core.conv import PADDING_MODES, as_tuple, check_mask, normalize_padding
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_choice, check_positive_int
from nmn.torch import functional
from nmn.torch._ops import resolve_param_dtype, to_compute
from nmn.torch.dense import YatParams, pick

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def check_groups(layer, in_channels, out_channels, groups):
    check_positive_int(groups, "groups", layer)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: in_channels={in_channels} and out_channels={out_channels} must both be "
            f"divisible by groups={groups}"
        )
    return groups


def check_input(layer, x, rank, in_channels):
    """Accept ``(N, C, *S)`` or unbatched ``(C, *S)``; return ``(batched x, was_unbatched)``."""
    if x.dim() not in (rank + 1, rank + 2):
        raise ValueError(
            f"{layer}: expected a {rank + 2}-D input (N, C, {_SPATIAL[rank]}) or an unbatched "
            f"{rank + 1}-D one, got shape {tuple(x.shape)}"
        )
    unbatched = x.dim() == rank + 1
    if x.shape[0 if unbatched else 1] != in_channels:
        where = "axis 0 of an unbatched input" if unbatched else "axis 1"
        raise ValueError(
            f"{layer}: expected {in_channels} input channels (in_channels={in_channels}) at {where}, "
            f"got shape {tuple(x.shape)}"
        )
    return (x.unsqueeze(0) if unbatched else x), unbatched


def set_geometry(layer, in_channels, out_channels, kernel_size, stride, dilation, padding) -> None:
    """Validate and set the geometry attributes a (transposed) conv layer of rank ``layer._rank`` shares."""
    name, rank = type(layer).__name__, layer._rank
    layer.in_channels = check_positive_int(in_channels, "in_channels", name)
    layer.out_channels = check_positive_int(out_channels, "out_channels", name)
    layer.kernel_size = as_tuple(kernel_size, rank, "kernel_size", name)
    layer.stride = as_tuple(stride, rank, "stride", name)
    layer.dilation = as_tuple(dilation, rank, "dilation", name)
    layer.padding = normalize_padding(padding, rank, name)


def geometry_repr(layer) -> str:
    """The leading part of a (transposed) conv layer's ``extra_repr``."""
    pad = layer.padding if isinstance(layer.padding, str) else [list(p) for p in layer.padding]
    return (
        f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}, "
        f"padding={pad!r}"
    )


class _YatConvNd(YatParams, nn.Module):
    """N-d Yat convolution; the rank classes fix ``_rank``."""

    _rank = 0
    _layout = "conv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence[int | Sequence[int]] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool | None = None,
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
        name = type(self).__name__
        set_geometry(self, in_channels, out_channels, kernel_size, stride, dilation, padding)
        self.padding_mode = check_choice(padding_mode, tuple(PADDING_MODES), "padding_mode", name)
        self.groups = check_groups(name, in_channels, out_channels, groups)
        self.weight_normalized = bool(weight_normalized)
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
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size, **factory))
        checked = check_mask(mask, self.weight.shape, name, "(out_channels, in_channels/groups, *kernel_size)")
        self.register_buffer("mask", None if checked is None else torch.as_tensor(checked, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight ~ Xavier normal (fan_in = C/groups * prod(k), fan_out = M * prod(k)), bias zeros, alpha 1."""
        with torch.no_grad():
            nn.init.xavier_normal_(self.weight)
        self._reset_yat()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, unbatched = check_input(type(self).__name__, x, self._rank, self.in_channels)
        bias, alpha, eps = self._yat_terms()
        x, kernel, bias, alpha = to_compute(self.compute_dtype, x, self._kernel(), bias, alpha)
        y = functional.yat_conv(
            x,
            kernel,
            bias,
            alpha,
            eps,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            weight_normalized=self.weight_normalized,
        )
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        s = geometry_repr(self)
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.weight_normalized:
            s += ", weight_normalized=True"
        if self.mask is not None:
            s += f", mask={tuple(self.mask.shape)}"
        return s + ", " + self._yat_repr() + self._dropconnect_repr()


_DOC = """Yat {r}-D convolution: ``y = alpha * (<P, W_m> + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 <P, W_m>) + epsilon)``.

    ``P`` is each (padded) receptive-field patch of the input, restricted to the filter's group.

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size: int or {r} ints.
        stride, dilation: int or {r} ints (default 1).
        padding: int, {r} ints, ``(lo, hi)`` pairs, ``'valid'`` or ``'same'`` (any stride; the odd pixel
            goes high, as ONNX ``SAME_UPPER``){causal} (default 0).
        groups: grouped convolution (default 1).
        bias: learnable bias ``(out_channels,)`` (default True); ``use_bias=`` is the same switch.
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.
        constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, softplus_bias, scalar_bias: as
            :class:`nmn.torch.YatNMN` (``scalar_bias``: one bias ``(1,)`` for every output channel).
        mask: an array of the weight's shape ``(out_channels, in_channels/groups, *kernel_size)`` multiplied into the weight before every
            use, as Flax's ``nn.Conv(mask=...)`` (e.g. zeros for the taps a causal/masked conv must not see);
            a persistent buffer ``mask`` (in the state_dict, moved by ``.to()``), not trained. Default None.
            An exported file carries ``weight * mask`` (and the effective bias), so a loaded layer is a plain
            one holding those values.
        weight_normalized: unit-normalise each filter at every forward (default False).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect: in training (``module.train()``) each forward multiplies
            the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate); in ``eval()`` and in
            every exported file it is the identity. ``drop_rate`` in [0, 1) (defaults False, 0.0).
        device, dtype: factory arguments.
        param_dtype: nmn 0.3's storage dtype of the parameters (default None: ``dtype``); given, ``dtype`` becomes
            the compute dtype (the input and the stored parameters are cast to it for each call), as ``YatNMN``.

    Shape: ``(N, C, {s}) -> (N, M, {s_out})`` (or unbatched without ``N``).

    Example:
        >>> layer = {name}(2, 3, 3, padding="same")
        >>> layer(torch.randn(1, 2, {ex})).shape
        torch.Size([1, 3, {ex}])
        >>> mask = torch.ones(3, 2, {k3}); mask[..., 0] = 0  # never look at the first tap
        >>> masked = {name}(2, 3, 3, mask=mask, softplus_bias=True)
        >>> bool((masked._export_params()["weight"][..., 0] == 0).all()), masked.bias.shape
        (True, torch.Size([3]))
    """


class YatConv1D(_YatConvNd):
    __doc__ = _DOC.format(
        r=1, s="L", s_out="L_out", name="YatConv1D", ex="5", k3="3", causal=", ``'causal'`` (left pad ``d (k - 1)``)"
    )
    _rank = 1


class YatConv2D(_YatConvNd):
    __doc__ = _DOC.format(r=2, s="H, W", s_out="H_out, W_out", name="YatConv2D", ex="5, 5", k3="3, 3", causal="")
    _rank = 2


class YatConv3D(_YatConvNd):
    __doc__ = _DOC.format(
        r=3, s="D, H, W", s_out="D_out, H_out, W_out", name="YatConv3D", ex="4, 4, 4", k3="3, 3, 3", causal=""
    )
    _rank = 3
