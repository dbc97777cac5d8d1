"""Keras Yat convolutions ``YatConv1D/2D/3D`` (subclasses of one private N-d base)."""

from __future__ import annotations

import keras
from keras import ops

from nmn.core.conv import PADDING_MODES, as_tuple, conv_output_size, conv_pads, normalize_padding
from nmn.core.options import DEFAULT_EPSILON, check_choice, check_positive_int
from nmn.keras import functional
from nmn.keras._ops import (add_yat_weights, alpha_value, bias_value, eps_value, layer_label, set_yat_options,
                            yat_options_config)

__all__ = ["YatConv1D", "YatConv2D", "YatConv3D"]

_FORMATS = ("channels_last", "channels_first")


def data_format_of(value, cls):
    """``value`` or Keras's ``image_data_format()``, checked."""
    value = keras.config.image_data_format() if value is None else value
    return check_choice(value, _FORMATS, "data_format", cls)


def to_channels_last(x, rank, data_format):
    return ops.transpose(x, (0, *range(2, rank + 2), 1)) if data_format == "channels_first" else x


def from_channels_last(y, rank, data_format):
    return ops.transpose(y, (0, rank + 1, *range(1, rank + 1))) if data_format == "channels_first" else y


def check_input(layer, inputs, channels):
    """Raise a ``ValueError`` naming the layer and both shapes on a wrong rank or channel count."""
    shape = tuple(inputs.shape)
    axis = -1 if layer.data_format == "channels_last" else 1
    want = ("N", *("S",) * layer.rank, channels) if axis == -1 else ("N", channels, *("S",) * layer.rank)
    if len(shape) != layer.rank + 2 or shape[axis] != channels:
        raise ValueError(f"{layer_label(layer)}: expected a rank-{layer.rank + 2} {layer.data_format} input "
                         f"{want}, got shape {shape}")


class _YatConvNd(keras.layers.Layer):
    """N-d Yat convolution; see :class:`YatConv2D` for the arguments."""

    rank = 0

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, *, padding_mode="zeros", use_bias=True, constant_bias=None, use_alpha=True,
                 constant_alpha=None, epsilon=DEFAULT_EPSILON, learnable_epsilon=False, weight_normalized=False,
                 kernel_initializer="glorot_normal", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.filters = check_positive_int(filters, "filters", cls)
        self.kernel_size = as_tuple(kernel_size, self.rank, "kernel_size", cls)
        self.strides = as_tuple(strides, self.rank, "strides", cls)
        self.dilation_rate = as_tuple(dilation_rate, self.rank, "dilation_rate", cls)
        self.groups = check_positive_int(groups, "groups", cls)
        if self.filters % self.groups:
            raise ValueError(f"{cls}: filters={filters} must be divisible by groups={groups}")
        self.padding = normalize_padding(padding, self.rank, cls)
        self.padding_mode = check_choice(padding_mode, tuple(PADDING_MODES), "padding_mode", cls)
        self.data_format = data_format_of(data_format, cls)
        set_yat_options(self, use_bias=use_bias, constant_bias=constant_bias, use_alpha=use_alpha,
                        constant_alpha=constant_alpha, epsilon=epsilon, learnable_epsilon=learnable_epsilon)
        self.weight_normalized = bool(weight_normalized)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel = None

    def _channels(self, input_shape):
        return input_shape[-1] if self.data_format == "channels_last" else input_shape[1]

    def build(self, input_shape):
        channels = self._channels(input_shape) if len(input_shape) == self.rank + 2 else None
        if channels is None:
            raise ValueError(f"{layer_label(self)}: expected a rank-{self.rank + 2} {self.data_format} input with "
                             f"known channels, got shape {tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(f"{layer_label(self)}: input channels {channels} must be divisible by "
                             f"groups={self.groups} (input shape {tuple(input_shape)})")
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, channels // self.groups, self.filters),
                                      initializer=self.kernel_initializer)
        add_yat_weights(self, self.filters, self.bias_initializer)

    def _pads(self, spatial):
        if self.padding == "same" and any(s is None for s in spatial):
            if self.padding_mode == "zeros":
                return "same"
            raise ValueError(f"{layer_label(self)}: padding='same' with padding_mode={self.padding_mode!r} needs "
                             f"known spatial sizes, got {tuple(spatial)}")
        return conv_pads(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)

    def call(self, inputs):
        check_input(self, inputs, self.kernel.shape[-2] * self.groups)
        x = to_channels_last(inputs, self.rank, self.data_format)
        y = functional.yat_conv(x, self.kernel, bias_value(self), alpha_value(self), eps_value(self),
                                strides=self.strides, pads=self._pads(tuple(x.shape[1:-1])),
                                dilation_rate=self.dilation_rate, padding_mode=self.padding_mode,
                                weight_normalized=self.weight_normalized)
        return from_channels_last(y, self.rank, self.data_format)

    def compute_output_shape(self, input_shape):
        first = self.data_format == "channels_first"
        spatial = tuple(input_shape[2:] if first else input_shape[1:-1])
        if any(s is None for s in spatial):
            out = tuple(None for _ in spatial)
            if self.padding == "same":
                out = tuple(None if s is None else -(-s // st) for s, st in zip(spatial, self.strides))
        else:
            pads = conv_pads(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
            out = tuple(conv_output_size(n, k, s, d, lo, hi) for n, k, s, d, (lo, hi)
                        in zip(spatial, self.kernel_size, self.strides, self.dilation_rate, pads))
        return (input_shape[0], self.filters, *out) if first else (input_shape[0], *out, self.filters)

    def get_config(self):
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
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
            "weight_normalized": self.weight_normalized,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
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
        weight_normalized: unit-normalise each filter at call time, default False.
        kernel_initializer: default ``"glorot_normal"``; bias_initializer: default ``"zeros"``.

    Shape:
        channels_last ``(N, *S, C) -> (N, *S', M)``; kernel ``(*kernel_size, C/groups, M)``.

    >>> import keras
    >>> layer = YatConv{r}D(4, 3)
    >>> tuple(layer(keras.ops.ones((1, {shape}2))).shape)
    (1, {out}4)
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
