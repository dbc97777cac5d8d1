"""Keras Yat convolutions ``YatConv1D/2D/3D`` (subclasses of one private N-d base)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops
from numpy.typing import ArrayLike

from nmn._tfkeras.options import (
    DATA_FORMATS,
    channels_first_perm,
    channels_last_perm,
    check_conv_input,
    padding_config,
    set_conv_geometry,
)
from nmn.core.conv import PADDING_MODES, conv_output_size, conv_pads
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_choice
from nmn.keras import functional
from nmn.keras._ops import (
    ConstraintLike,
    InitializerLike,
    RegularizerLike,
    Shape,
    Tensor,
    add_yat_weights,
    alpha_value,
    dropconnect,
    dropconnect_config,
    eps_value,
    layer_label,
    set_dropconnect,
    set_weight_hooks,
    set_yat_options,
    weight_hooks_config,
    yat_options_config,
)
from nmn.keras.dense import build_mask, layer_export_params, mask_config, masked, set_mask, yat_bias

__all__ = ["YatConv1D", "YatConv2D", "YatConv3D"]


def data_format_of(value, cls):
    """``value`` or Keras's ``image_data_format()``, checked."""
    value = keras.config.image_data_format() if value is None else value
    return check_choice(value, DATA_FORMATS, "data_format", cls)


def to_channels_last(x, rank, data_format):
    return ops.transpose(x, channels_last_perm(rank)) if data_format == "channels_first" else x


def from_channels_last(y, rank, data_format):
    return ops.transpose(y, channels_first_perm(rank)) if data_format == "channels_first" else y


class _YatConvBase(keras.layers.Layer):
    """What the N-d Yat convolution and transposed convolution share: input checks, layouts, output shapes."""

    rank = 0

    def _input_channels(self, input_shape):
        """The channels of a build-time ``input_shape``, checked (rank, known, divisible by ``groups``)."""
        channels = None
        if len(input_shape) == self.rank + 2:
            channels = input_shape[-1] if self.data_format == "channels_last" else input_shape[1]
        if channels is None:
            raise ValueError(
                f"{layer_label(self)}: expected a rank-{self.rank + 2} {self.data_format} input with "
                f"known channels, got shape {tuple(input_shape)}"
            )
        if channels % self.groups:
            raise ValueError(
                f"{layer_label(self)}: input channels {channels} must be divisible by "
                f"groups={self.groups} (input shape {tuple(input_shape)})"
            )
        return channels

    def _channels_last_input(self, inputs, channels):
        """``inputs`` checked against ``channels`` (rank, channel count) and moved channels-last."""
        check_conv_input(self, inputs.shape, channels)
        return to_channels_last(inputs, self.rank, self.data_format)

    def _output_shape(self, input_shape, out_spatial):
        """``input_shape`` with the spatial sizes ``out_spatial(spatial)`` and ``filters`` channels."""
        first = self.data_format == "channels_first"
        out = out_spatial(tuple(input_shape[2:] if first else input_shape[1:-1]))
        return (input_shape[0], self.filters, *out) if first else (input_shape[0], *out, self.filters)


class _YatConvNd(_YatConvBase):
    """N-d Yat convolution; see :class:`YatConv2D` for the arguments."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] | Sequence[tuple[int, int]] = "valid",
        data_format: str | None = None,
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
        kernel_initializer: InitializerLike = "glorot_normal",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        activity_regularizer: RegularizerLike = None,
        kernel_constraint: ConstraintLike = None,
        bias_constraint: ConstraintLike = None,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ):
        refuse_keywords(type(self).__name__, kwargs, allow_others=True)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        cls = type(self).__name__
        set_conv_geometry(self, filters, kernel_size, strides, padding, dilation_rate, groups)
        self.padding_mode = check_choice(padding_mode, tuple(PADDING_MODES), "padding_mode", cls)
        self.data_format = data_format_of(data_format, cls)
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
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        set_weight_hooks(
            self,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        set_dropconnect(self, use_dropconnect, drop_rate, seed)
        self.kernel = None

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical) an exported
        file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return layer_export_params(self, "conv", self.filters)

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        add_yat_weights(self, self.yat.bias_size(self.filters), self.bias_initializer)
        build_mask(self, "(*kernel_size, C/G, M)")

    def _pads(self, spatial):
        if self.padding == "same" and any(s is None for s in spatial):
            if self.padding_mode == "zeros":
                return "same"
            raise ValueError(
                f"{layer_label(self)}: padding='same' with padding_mode={self.padding_mode!r} needs "
                f"known spatial sizes, got {tuple(spatial)}"
            )
        return conv_pads(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = self._channels_last_input(inputs, self.kernel.shape[-2] * self.groups)
        y = functional.yat_conv(
            x,
            masked(self, dropconnect(self, self.kernel, training)),
            yat_bias(self, self.filters),
            alpha_value(self),
            eps_value(self),
            strides=self.strides,
            pads=self._pads(tuple(x.shape[1:-1])),
            dilation_rate=self.dilation_rate,
            padding_mode=self.padding_mode,
            weight_normalized=self.weight_normalized,
        )
        return from_channels_last(y, self.rank, self.data_format)

    def _out_spatial(self, spatial):
        if any(s is None for s in spatial):
            out = tuple(None for _ in spatial)
            if self.padding == "same":
                out = tuple(None if s is None else -(-s // st) for s, st in zip(spatial, self.strides))
            return out
        pads = conv_pads(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
        return tuple(
            conv_output_size(n, k, s, d, lo, hi)
            for n, k, s, d, (lo, hi) in zip(spatial, self.kernel_size, self.strides, self.dilation_rate, pads)
        )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self._output_shape(input_shape, self._out_spatial)

    def get_config(self) -> dict[str, Any]:
        padding = padding_config(self.padding)
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "padding_mode": self.padding_mode,
            **yat_options_config(self),
            **mask_config(self),
            "weight_normalized": self.weight_normalized,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            **weight_hooks_config(self),
            **dropconnect_config(self),
        }


_DOC = """Yat {r}-D convolution: ``y[p, m] = alpha * (<P, W_m> + b_m)^2 / (relu(|P|^2 + |W_m|^2 - 2 <P, W_m>) + eps)``.

    ``P`` is the receptive-field patch of the padded input at output position ``p`` (restricted to the input
    channels of filter ``m``'s group).

    Args:
        filters: number of output channels ``M``.
        kernel_size: int or {r} ints.
        strides: default 1. dilation_rate: default 1. groups: default 1 (``C`` and ``M`` divisible by it).
        padding: ``'valid'`` (default), ``'same'`` (SAME_UPPER){causal}, an int, {r} ints or ``(lo, hi)`` pairs.
        data_format: ``'channels_last'`` or ``'channels_first'``, default ``keras.config.image_data_format()``.
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon (1e-5), learnable_epsilon: as ``YatNMN``.
        softplus_bias, scalar_bias: nmn 0.3's bias options, as ``YatNMN`` (``scalar_bias``: one bias ``(1,)``).
        mask: an array of the kernel's shape ``(*kernel_size, C/groups, M)`` multiplied into the kernel before every use, as Flax's
            ``nn.Conv(mask=...)`` (checked in ``build``; default None). ``get_config`` holds it as a nested list, so ``from_config`` and ``.keras`` files keep it. An exported file carries
            ``kernel * mask`` and the effective bias, so a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter at call time, default False.
        kernel_initializer: default ``"glorot_normal"``; bias_initializer: default ``"zeros"``.
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as
            ``keras.layers.Conv{r}D`` (names, configs or instances; default None): the regularizers' values join
            ``layer.losses``, the constraints run after each optimizer step.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default off, 0.0): with ``training=True`` each call
            multiplies the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate); at
            inference and in exported files the kernel is used as is. seed: seed of the masks, default None.

    Shape:
        channels_last ``(N, *S, C) -> (N, *S', M)``; kernel ``(*kernel_size, C/groups, M)``.

    >>> import keras
    >>> layer = YatConv{r}D(4, 3)
    >>> tuple(layer(keras.ops.ones((1, {shape}2))).shape)
    (1, {out}4)
    >>> import numpy as np
    >>> mask = np.ones((3,) * {r} + (2, 4)); mask[0] = 0  # never look at the first row of taps
    >>> masked = YatConv{r}D(4, 3, mask=mask)
    >>> _ = masked(keras.ops.ones((1, {shape}2)))
    >>> bool((masked._export_params()["weight"][(..., 0) + (slice(None),) * ({r} - 1)] == 0).all())
    True
    """


@keras.saving.register_keras_serializable(package="nmn")
class YatConv1D(_YatConvNd):
    rank = 1
    __doc__ = _DOC.format(r=1, causal=", ``'causal'``", shape="5, ", out="3, ")


@keras.saving.register_keras_serializable(package="nmn")
class YatConv2D(_YatConvNd):
    rank = 2
    __doc__ = _DOC.format(r=2, causal="", shape="5, 5, ", out="3, 3, ")


@keras.saving.register_keras_serializable(package="nmn")
class YatConv3D(_YatConvNd):
    rank = 3
    __doc__ = _DOC.format(r=3, causal="", shape="5, 5, 5, ", out="3, 3, 3, ")
