"""Keras Yat transposed convolutions ``YatConvTranspose1D/2D/3D`` (subclasses of one private N-d base)."""

from __future__ import annotations

import keras

from nmn.core.conv import as_tuple, normalize_padding, transpose_geometry, transpose_output_size
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.keras import functional
from nmn.keras._ops import (add_yat_weights, alpha_value, bias_value, eps_value, layer_label, set_yat_options,
                            yat_options_config)
from nmn.keras.conv import check_input, data_format_of, from_channels_last, to_channels_last

__all__ = ["YatConvTranspose1D", "YatConvTranspose2D", "YatConvTranspose3D"]


class _YatConvTransposeNd(keras.layers.Layer):
    """N-d Yat transposed convolution; see :class:`YatConvTranspose2D` for the arguments."""

    rank = 0

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, groups=1, *, use_bias=True, constant_bias=None, use_alpha=True,
                 constant_alpha=None, epsilon=DEFAULT_EPSILON, learnable_epsilon=False,
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
        if self.padding == "causal":
            raise ValueError(f"{cls}: padding='causal' is not defined for transposed convolutions")
        if output_padding is None:
            self.output_padding = None
        else:
            op = (output_padding,) * self.rank if isinstance(output_padding, int) else tuple(output_padding)
            if len(op) != self.rank or any((not isinstance(v, int)) or v < 0 or v >= max(s, d)
                                           for v, s, d in zip(op, self.strides, self.dilation_rate)):
                raise ValueError(f"{cls}: output_padding must be {self.rank} ints >= 0 and smaller than the stride "
                                 f"or dilation, got {output_padding!r} (strides {self.strides})")
            self.output_padding = op
        self.data_format = data_format_of(data_format, cls)
        set_yat_options(self, use_bias=use_bias, constant_bias=constant_bias, use_alpha=use_alpha,
                        constant_alpha=constant_alpha, epsilon=epsilon, learnable_epsilon=learnable_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel = None
        self._geometry = transpose_geometry(self.padding, self.kernel_size, self.strides, self.dilation_rate,
                                            self.output_padding)

    def build(self, input_shape):
        channels = None
        if len(input_shape) == self.rank + 2:
            channels = input_shape[-1] if self.data_format == "channels_last" else input_shape[1]
        if channels is None:
            raise ValueError(f"{layer_label(self)}: expected a rank-{self.rank + 2} {self.data_format} input with "
                             f"known channels, got shape {tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(f"{layer_label(self)}: input channels {channels} must be divisible by "
                             f"groups={self.groups} (input shape {tuple(input_shape)})")
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, self.filters // self.groups, channels),
                                      initializer=self.kernel_initializer)
        add_yat_weights(self, self.filters, self.bias_initializer)

    def call(self, inputs):
        check_input(self, inputs, self.kernel.shape[-1])
        x = to_channels_last(inputs, self.rank, self.data_format)
        pads, outpad = self._geometry
        y = functional.yat_conv_transpose(x, self.kernel, bias_value(self), alpha_value(self), eps_value(self),
                                          strides=self.strides, pads=pads, output_padding=outpad,
                                          dilation_rate=self.dilation_rate, groups=self.groups)
        return from_channels_last(y, self.rank, self.data_format)

    def compute_output_shape(self, input_shape):
        first = self.data_format == "channels_first"
        spatial = tuple(input_shape[2:] if first else input_shape[1:-1])
        pads, outpad = self._geometry
        out = tuple(None if n is None else transpose_output_size(n, k, s, d, lo, hi, o) for n, k, s, d, (lo, hi), o
                    in zip(spatial, self.kernel_size, self.strides, self.dilation_rate, pads, outpad))
        return (input_shape[0], self.filters, *out) if first else (input_shape[0], *out, self.filters)

    def get_config(self):
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": padding,
            "output_padding": self.output_padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            **yat_options_config(self),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


_DOC = """Yat {r}-D transposed convolution (ONNX ``ConvTranspose`` geometry, Keras kernel layout).

    ``y[q, m] = alpha * (d + b_m)^2 / (relu(E + K_m - 2 d) + eps)`` where ``d`` is the transposed-convolution
    value, ``E`` the same sum over ``x^2`` and ``K_m`` the squared norm of everything filter ``m`` touches (taps
    that land on inserted zeros count ``w^2``: the Yat of the zero-stuffed patch).

    Args:
        filters: number of output channels ``M``.
        kernel_size: int or {r} ints.
        strides: default 1. dilation_rate: default 1. groups: default 1.
        padding: ``'valid'`` (default; out = ``(n-1)s + max(k_eff, s)``), ``'same'`` (out = ``n s``), an int,
            {r} ints or ``(lo, hi)`` pairs (ONNX crops).
        output_padding: extra positions at the end of each axis, default None.
        data_format: ``'channels_last'`` or ``'channels_first'``, default ``keras.config.image_data_format()``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon (1e-5), learnable_epsilon: as ``YatNMN``.
        kernel_initializer: default ``"glorot_normal"``; bias_initializer: default ``"zeros"``.

    Shape:
        channels_last ``(N, *S, C) -> (N, *S', M)``; kernel ``(*kernel_size, M/groups, C)``.

    >>> import keras
    >>> layer = YatConvTranspose{r}D(4, 3, strides=2)
    >>> tuple(layer(keras.ops.ones((1, {shape}2))).shape)
    (1, {out}4)
    """


@keras.saving.register_keras_serializable(package="nmn")
class YatConvTranspose1D(_YatConvTransposeNd):
    rank = 1
    __doc__ = _DOC.format(r=1, shape="3, ", out="7, ")


@keras.saving.register_keras_serializable(package="nmn")
class YatConvTranspose2D(_YatConvTransposeNd):
    rank = 2
    __doc__ = _DOC.format(r=2, shape="3, 3, ", out="7, 7, ")


@keras.saving.register_keras_serializable(package="nmn")
class YatConvTranspose3D(_YatConvTransposeNd):
    rank = 3
    __doc__ = _DOC.format(r=3, shape="2, 2, 2, ", out="5, 5, 5, ")
