"""``YatConv1D/2D/3D``: Yat convolutions for MLX (channels-last, kernel ``(M, *k, C/G)`` like ``mlx.nn.Conv``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from nmn.core.conv import PADDING_MODES, as_tuple, check_mask, conv_pads, normalize_padding
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_choice, check_positive_int
from nmn.mlx._ops import fan_in_normal, mx, nn
from nmn.mlx.dense import BiasMaskMixin
from nmn.mlx.functional import yat_conv

__all__ = ["YatConv1D", "YatConv2D", "YatConv3D"]

#: A conv ``padding``: an int, one int or ``(lo, hi)`` pair per spatial axis, or a mode name.
Padding = int | str | Sequence[int | tuple[int, int]]


def check_conv_input(layer: str, x: mx.array, rank: int, channels: int | None) -> None:
    """``ValueError`` naming the layer and both shapes unless ``x`` is ``(N, *S, channels)`` with ``rank`` axes S."""
    if x.ndim != rank + 2 or (channels is not None and x.shape[-1] != channels):
        dims = ", ".join(["N", *("LHW"[-rank:] if rank < 3 else "DHW"), str(channels if channels else "C")])
        raise ValueError(
            f"{layer}: expected a channels-last input of shape ({dims}) (rank {rank + 2}), got shape {tuple(x.shape)}"
        )


class _ConvBase(BiasMaskMixin, nn.Module):
    """What the N-d Yat convolution and transposed convolution share: geometry, a lazy kernel
    ``(filters, *k, in_channels / groups)`` built from ``in_channels`` or the first input, and the config keys."""

    _rank = 0
    _layout = "conv"

    def _init_geometry(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int],
        dilation_rate: int | Sequence[int],
        padding: Padding,
    ) -> str | tuple[tuple[int, int], ...]:
        name, rank = type(self).__name__, self._rank
        self.filters = check_positive_int(filters, "filters", name)
        self.kernel_size = as_tuple(kernel_size, rank, "kernel_size", name)
        self.strides = as_tuple(strides, rank, "strides", name)
        self.dilation_rate = as_tuple(dilation_rate, rank, "dilation_rate", name)
        return normalize_padding(padding, rank, name)

    def _init_groups_and_params(
        self,
        groups: int,
        yat_args: tuple,
        dtype: mx.Dtype,
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        mask: Any = None,
    ) -> None:
        """Set ``groups``, the Yat parameters (``yat_args``: use_bias, constant_bias, use_alpha,
        constant_alpha, epsilon, learnable_epsilon), nmn 0.3's bias options and the kernel ``mask`` (checked
        against the kernel when it is built)."""
        name = type(self).__name__
        self.groups = check_positive_int(groups, "groups", name)
        if self.filters % self.groups:
            raise ValueError(f"{name}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        self._dtype = dtype
        self._init_yat_params(*yat_args, (self.filters,), dtype)
        self._init_bias_options(softplus_bias, scalar_bias, self.filters)
        if mask is not None:
            try:
                mask = np.asarray(mask, np.float32)
            except (TypeError, ValueError):
                raise TypeError(f"{name}: mask must be an array of numbers, got {mask!r}") from None
        object.__setattr__(self, "mask", mask)

    def _init_kernel(self, in_channels: int | None) -> None:
        self.in_channels = None
        if in_channels is not None:
            self._build(check_positive_int(in_channels, "in_channels", type(self).__name__))

    def _fan_in(self, in_channels: int) -> int:
        raise NotImplementedError

    def _build(self, in_channels: int) -> None:
        if in_channels % self.groups:
            raise ValueError(
                f"{type(self).__name__}: in_channels ({in_channels}) must be divisible by groups ({self.groups})"
            )
        self.in_channels = int(in_channels)
        shape = (self.filters, *self.kernel_size, in_channels // self.groups)
        check_mask(self.mask, shape, type(self).__name__, "(filters, *kernel_size, in_channels/groups)")
        self.kernel = fan_in_normal(shape, self._fan_in(in_channels), self._dtype)

    def _checked_input(self, x: mx.array) -> mx.array:
        """Build the kernel from the first input when needed; check ``x`` is ``(N, *S, in_channels)``."""
        name = type(self).__name__
        if self.in_channels is None:
            check_conv_input(name, x, self._rank, None)
            self._build(x.shape[-1])
        check_conv_input(name, x, self._rank, self.in_channels)
        return x

    def _constructor_geometry(self) -> dict[str, Any]:
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "in_channels": self.in_channels,
            "strides": list(self.strides),
            "padding": padding,
            "dilation_rate": list(self.dilation_rate),
            "groups": self.groups,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _ConvBase:
        """A new layer from :meth:`get_config`'s dict (fresh parameters)."""
        return cls(**config)

    def _geometry_config(self) -> dict[str, Any]:
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
        }


class _YatConvND(_ConvBase):
    """N-d Yat convolution; use :class:`YatConv1D`, :class:`YatConv2D` or :class:`YatConv3D`."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        *,
        in_channels: int | None = None,
        strides: int | Sequence[int] = 1,
        padding: Padding = 0,
        dilation_rate: int | Sequence[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
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
        self.padding = self._init_geometry(filters, kernel_size, strides, dilation_rate, padding)
        self.padding_mode = check_choice(padding_mode, tuple(PADDING_MODES), "padding_mode", type(self).__name__)
        self._init_groups_and_params(
            groups,
            (use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon),
            dtype,
            softplus_bias,
            scalar_bias,
            mask,
        )
        self.weight_normalized = bool(weight_normalized)
        self._init_dropconnect(use_dropconnect, drop_rate)
        self._init_kernel(in_channels)

    def _fan_in(self, in_channels: int) -> int:
        return in_channels // self.groups * math.prod(self.kernel_size)

    def _pads(self, x: mx.array) -> list[tuple[int, int]]:
        return conv_pads(self.padding, x.shape[1:-1], self.kernel_size, self.strides, self.dilation_rate)

    def __call__(self, x: mx.array) -> mx.array:
        x = self._checked_input(x)
        return yat_conv(
            x,
            self._masked(self._dropconnect(self["kernel"])),
            *self._effective_terms(),
            strides=self.strides,
            pads=self._pads(x),
            dilations=self.dilation_rate,
            groups=self.groups,
            padding_mode=self.padding_mode,
            weight_normalized=self.weight_normalized,
        )

    def get_config(self) -> dict[str, Any]:
        """Constructor keywords as plain JSON; ``type(layer).from_config(layer.get_config())`` rebuilds it."""
        return {
            **self._constructor_geometry(),
            "padding_mode": self.padding_mode,
            **self._yat_config(),
            **self._bias_mask_config(),
            "weight_normalized": self.weight_normalized,
            **self._dropconnect_config(),
        }

    def spec_config(self) -> dict[str, Any]:
        """The neutral spec's config (canonical geometry keys, every Yat key; not the training-only DropConnect)."""
        return {
            **self._geometry_config(),
            "padding_mode": self.padding_mode,
            **self._yat_config(),
            "spherical": False,
            "weight_normalized": self.weight_normalized,
        }

    def _extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.filters}", f"kernel_size={self.kernel_size}"]
        if self.strides != (1,) * self._rank:
            parts.append(f"strides={self.strides}")
        if self.padding != ((0, 0),) * self._rank:
            parts.append(f"padding={self.padding!r}")
        if self.dilation_rate != (1,) * self._rank:
            parts.append(f"dilation_rate={self.dilation_rate}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        parts.append(self._yat_repr())
        if self.weight_normalized:
            parts.append("weight_normalized=True")
        return ", ".join(parts + self._dropconnect_repr())


_CONV_DOC = """Yat {rank}-D convolution: every patch ``P`` of the (padded) input is compared with every filter ``W_m``.

    ``y = alpha * (P.W_m + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 P.W_m) + eps)`` (patch energy by a box filter
    over the group's channels, so grouped convolutions compare each filter with its own group's patch).

    Parameters: ``kernel (filters, {kdims}, in_channels / groups)`` (the ``mlx.nn.Conv{rank}d`` layout, init
    ``N(0, 1 / fan_in)``), ``bias (filters,)``, ``alpha (1,)``, ``epsilon_param (1,)``; absent ones are absent
    keys. Without ``in_channels`` the parameters are created on the first call.

    Args:
        filters: output channels ``M``.
        kernel_size: int or {rank} ints.
        in_channels: input channels ``C`` (default None: taken from the first call).
        strides: int or {rank} ints (default 1).
        padding: ``0`` (default, as ``mlx.nn``), an int, {rank} ints or ``(lo, hi)`` pairs, ``'valid'``,
            ``'same'`` (out = ceil(in / stride)){causal}.
        dilation_rate: int or {rank} ints (default 1).
        groups: feature groups; ``C`` and ``M`` must be divisible by it (default 1).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon, softplus_bias,
            scalar_bias: as :class:`YatNMN` (``scalar_bias``: one bias ``(1,)`` for every filter).
        mask: an array of the kernel's shape ``(filters, *kernel_size, in_channels / groups)`` multiplied into
            the kernel before every use, as Flax's ``nn.Conv(mask=...)`` (checked when the kernel is built; a
            plain attribute, never trained; ``get_config`` keeps it as a nested list). Default None. An exported
            file carries ``kernel * mask`` and the effective bias: a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter at every call, ``|W_m|^2 := 1`` (default False).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect on the kernel in training mode (default False, 0.0), as
            :class:`YatNMN`; the identity after ``layer.eval()`` and in exported files.
        dtype: parameter dtype (default ``mx.float32``).

    Shape: ``(N, {sdims}, C) -> (N, {sdims_out}, filters)`` (channels last).

    >>> import mlx.core as mx
    >>> layer = YatConv{rank}D(4, 3, in_channels=2, padding="same")
    >>> layer(mx.ones((1, {example}, 2))).shape
    ({out_example}, 4)
    >>> import numpy as np
    >>> mask = np.ones((4,) + (3,) * {rank} + (2,)); mask[:, 0] = 0  # never look at the first row of taps
    >>> masked = YatConv{rank}D(4, 3, in_channels=2, mask=mask)
    >>> bool((masked._export_params()["weight"][(..., 0) + (slice(None),) * ({rank} - 1)] == 0).all())
    True
    """


def _doc(rank: int, sdims: str) -> str:
    example = ", ".join(["5"] * rank)
    return _CONV_DOC.format(
        rank=rank,
        kdims=", ".join(f"k{i}" for i in range(rank)),
        sdims=sdims,
        sdims_out=sdims + "'",
        causal=", ``'causal'`` (left pad ``d (k - 1)``)" if rank == 1 else "",
        example=example,
        out_example="1, " + example,
    )


class YatConv1D(_YatConvND):
    __doc__ = _doc(1, "L")
    _rank = 1


class YatConv2D(_YatConvND):
    __doc__ = _doc(2, "H, W")
    _rank = 2


class YatConv3D(_YatConvND):
    __doc__ = _doc(3, "D, H, W")
    _rank = 3
