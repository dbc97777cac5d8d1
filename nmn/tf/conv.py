"""TensorFlow Yat convolutions ``YatConv1D/2D/3D`` (``tf.Module`` subclasses of one private N-d base)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from nmn._tfkeras.options import (
    DATA_FORMATS,
    channels_first_perm,
    channels_last_perm,
    check_conv_input,
    set_conv_geometry,
)
from nmn.core.conv import PADDING_MODES, conv_pads
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_choice
from nmn.tf import functional
from nmn.tf._ops import (
    TensorLike,
    add_yat_variables,
    alpha_value,
    dropconnect,
    eps_value,
    glorot_normal,
    layer_label,
    set_dropconnect,
    set_yat_options,
)
from nmn.tf.dense import build_mask, layer_export_params, masked, set_mask, yat_bias

__all__ = ["YatConv1D", "YatConv2D", "YatConv3D"]


def to_channels_last(x, rank, data_format):
    return tf.transpose(x, channels_last_perm(rank)) if data_format == "channels_first" else x


def from_channels_last(y, rank, data_format):
    return tf.transpose(y, channels_first_perm(rank)) if data_format == "channels_first" else y


class _YatConvBase(tf.Module):
    """What the N-d Yat convolution and transposed convolution share: build on the first call, input checks."""

    rank = 0

    @property
    def built(self) -> bool:
        return self.kernel is not None

    def _check_groups(self, in_channels):
        if in_channels % self.groups:
            raise ValueError(
                f"{layer_label(self)}: input channels {in_channels} must be divisible by groups={self.groups}"
            )

    def _channels_last_input(self, x):
        """``x`` as a tensor, checked (rank, channels), the variables built on the first call, moved channels-last."""
        x = tf.convert_to_tensor(x)
        channels = check_conv_input(self, x.shape, self._kernel_channels() if self.built else None)
        if not self.built:
            self.build(int(channels))
        return to_channels_last(x, self.rank, self.data_format)


class _YatConvNd(_YatConvBase):
    """N-d Yat convolution; see :class:`YatConv2D` for the arguments."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] | Sequence[tuple[int, int]] = "valid",
        data_format: str = "channels_last",
        dilation_rate: int | Sequence[int] = 1,
        groups: int = 1,
        *,
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
        dtype: tf.DType | str = tf.float32,
        seed: int | None = None,
        name: str | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__(name=name)
        cls = type(self).__name__
        set_conv_geometry(self, filters, kernel_size, strides, padding, dilation_rate, groups)
        self.padding_mode = check_choice(padding_mode, tuple(PADDING_MODES), "padding_mode", cls)
        self.data_format = check_choice(data_format, DATA_FORMATS, "data_format", cls)
        set_yat_options(
            self,
            use_bias=use_bias,
            constant_bias=constant_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
            softplus_bias=softplus_bias,
            scalar_bias=scalar_bias,
        )
        set_mask(self, mask)
        self.weight_normalized = bool(weight_normalized)
        self.dtype = tf.as_dtype(dtype)
        self.seed = seed
        set_dropconnect(self, use_dropconnect, drop_rate)
        self.kernel = None

    def _kernel_channels(self):
        return self.kernel.shape[-2] * self.groups

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical) an exported
        file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return layer_export_params(self, "conv", self.filters)

    def build(self, in_channels: int) -> None:
        """Create the variables for ``in_channels`` input channels."""
        self._check_groups(in_channels)
        k = 1
        for s in self.kernel_size:
            k *= s
        cg = in_channels // self.groups
        with self.name_scope:
            self.kernel = tf.Variable(
                glorot_normal(
                    (*self.kernel_size, cg, self.filters),
                    k * cg,
                    k * self.filters // self.groups,
                    self.dtype,
                    self.seed,
                ),
                name="kernel",
            )
            add_yat_variables(self, self.yat.bias_size(self.filters), self.dtype)
        build_mask(self, "(*kernel_size, C/G, M)")

    def __call__(self, x: TensorLike, training: bool = False) -> tf.Tensor:
        x = self._channels_last_input(x)
        spatial = tuple(x.shape[1:-1])
        if (
            any(s is None for s in spatial)
            and self.padding not in ("valid", "causal")
            and isinstance(self.padding, str)
        ):
            raise ValueError(
                f"{layer_label(self)}: padding={self.padding!r} needs known spatial sizes, got shape {tuple(x.shape)}"
            )
        pads = conv_pads(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
        y = functional.yat_conv(
            x,
            masked(self, dropconnect(self, self.kernel, training)),
            yat_bias(self, self.filters),
            alpha_value(self),
            eps_value(self),
            strides=self.strides,
            pads=pads,
            dilations=self.dilation_rate,
            groups=self.groups,
            padding_mode=self.padding_mode,
            weight_normalized=self.weight_normalized,
        )
        return from_channels_last(y, self.rank, self.data_format)


_DOC = """Yat {r}-D convolution: ``y[p, m] = alpha * (<P, W_m> + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 <P, W_m>) + eps)``.

    ``P`` is the receptive-field patch of the padded input at output position ``p`` (restricted to the input
    channels of filter ``m``'s group). Variables are created on the first call.

    Args:
        filters: number of output channels ``M``. kernel_size: int or {r} ints.
        strides: default 1. dilation_rate: default 1. groups: default 1.
        padding: ``'valid'`` (default), ``'same'`` (SAME_UPPER){causal}, an int, {r} ints or ``(lo, hi)`` pairs.
        data_format: ``'channels_last'`` (default) or ``'channels_first'``.
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon (1e-5), learnable_epsilon: as ``YatNMN``.
        softplus_bias, scalar_bias: nmn 0.3's bias options, as ``YatNMN`` (``scalar_bias``: one bias ``(1,)``).
        mask: an array of the kernel's shape ``(*kernel_size, C/groups, M)`` multiplied into the kernel before every use, as Flax's
            ``nn.Conv(mask=...)`` (checked in ``build``; default None). An exported file carries
            ``kernel * mask`` and the effective bias, so a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter at call time, default False.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default off, 0.0): with ``training=True`` each call
            multiplies the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate) (masks
            drawn from a ``tf.random.Generator`` seeded with ``seed``); at inference (``training=False``, the
            default) and in exported files the kernel is used as is.
        dtype: default ``tf.float32``. seed: kernel init and DropConnect mask seed, default None.
        name: module name.

    Shape:
        channels_last ``(N, *S, C) -> (N, *S', M)``; kernel ``(*kernel_size, C/groups, M)``.

    >>> import tensorflow as tf
    >>> layer = YatConv{r}D(4, 3)
    >>> tuple(layer(tf.ones((1, {shape}2))).shape)
    (1, {out}4)
    >>> import numpy as np
    >>> mask = np.ones((3,) * {r} + (2, 4)); mask[0] = 0  # never look at the first row of taps
    >>> masked = YatConv{r}D(4, 3, mask=mask)
    >>> _ = masked(tf.ones((1, {shape}2)))
    >>> bool((masked._export_params()["weight"][(..., 0) + (slice(None),) * ({r} - 1)] == 0).all())
    True
    """


class YatConv1D(_YatConvNd):
    rank = 1
    __doc__ = _DOC.format(r=1, causal=", ``'causal'``", shape="5, ", out="3, ")


class YatConv2D(_YatConvNd):
    rank = 2
    __doc__ = _DOC.format(r=2, causal="", shape="5, 5, ", out="3, 3, ")


class YatConv3D(_YatConvNd):
    rank = 3
    __doc__ = _DOC.format(r=3, causal="", shape="5, 5, 5, ", out="3, 3, 3, ")
