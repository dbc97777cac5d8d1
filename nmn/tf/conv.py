"""TensorFlow Yat convolutions ``YatConv1D/2D/3D`` (``tf.Module`` subclasses of one private N-d base)."""

from __future__ import annotations

import tensorflow as tf

from nmn.core.conv import PADDING_MODES, as_tuple, conv_pads, normalize_padding
from nmn.core.options import DEFAULT_EPSILON, check_choice, check_positive_int
from nmn.tf import functional
from nmn.tf._ops import (add_yat_variables, alpha_value, bias_value, eps_value, glorot_normal, layer_label,
                         set_yat_options)

__all__ = ["YatConv1D", "YatConv2D", "YatConv3D"]

_FORMATS = ("channels_last", "channels_first")


def to_channels_last(x, rank, data_format):
    return tf.transpose(x, (0, *range(2, rank + 2), 1)) if data_format == "channels_first" else x


def from_channels_last(y, rank, data_format):
    return tf.transpose(y, (0, rank + 1, *range(1, rank + 1))) if data_format == "channels_first" else y


def check_input(layer, x, channels):
    """Raise a ``ValueError`` naming the layer and both shapes on a wrong rank or channel count."""
    shape = tuple(x.shape)
    axis = -1 if layer.data_format == "channels_last" else 1
    want = ("N", *("S",) * layer.rank, channels) if axis == -1 else ("N", channels, *("S",) * layer.rank)
    if len(shape) != layer.rank + 2 or (channels is not None and shape[axis] != channels) or shape[axis] is None:
        raise ValueError(f"{layer_label(layer)}: expected a rank-{layer.rank + 2} {layer.data_format} input "
                         f"{want}, got shape {shape}")
    return shape[axis]


class _YatConvNd(tf.Module):
    """N-d Yat convolution; see :class:`YatConv2D` for the arguments."""

    rank = 0

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, groups=1, *, padding_mode="zeros", use_bias=True, constant_bias=None,
                 use_alpha=True, constant_alpha=None, epsilon=DEFAULT_EPSILON, learnable_epsilon=False,
                 weight_normalized=False, dtype=tf.float32, seed=None, name=None):
        super().__init__(name=name)
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
        self.data_format = check_choice(data_format, _FORMATS, "data_format", cls)
        set_yat_options(self, use_bias=use_bias, constant_bias=constant_bias, use_alpha=use_alpha,
                        constant_alpha=constant_alpha, epsilon=epsilon, learnable_epsilon=learnable_epsilon)
        self.weight_normalized = bool(weight_normalized)
        self.dtype = tf.as_dtype(dtype)
        self.seed = seed
        self.kernel = None

    @property
    def built(self):
        return self.kernel is not None

    def build(self, in_channels):
        """Create the variables for ``in_channels`` input channels."""
        if in_channels % self.groups:
            raise ValueError(f"{layer_label(self)}: input channels {in_channels} must be divisible by "
                             f"groups={self.groups}")
        k = 1
        for s in self.kernel_size:
            k *= s
        cg = in_channels // self.groups
        with self.name_scope:
            self.kernel = tf.Variable(glorot_normal((*self.kernel_size, cg, self.filters), k * cg,
                                                    k * self.filters // self.groups, self.dtype, self.seed),
                                      name="kernel")
            add_yat_variables(self, self.filters, self.dtype)

    def __call__(self, x):
        x = tf.convert_to_tensor(x)
        channels = check_input(self, x, self.kernel.shape[-2] * self.groups if self.built else None)
        if not self.built:
            self.build(int(channels))
        x = to_channels_last(x, self.rank, self.data_format)
        spatial = tuple(x.shape[1:-1])
        if any(s is None for s in spatial) and self.padding not in ("valid", "causal") and isinstance(
                self.padding, str):
            raise ValueError(f"{layer_label(self)}: padding={self.padding!r} needs known spatial sizes, got shape "
                             f"{tuple(x.shape)}")
        pads = conv_pads(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
        y = functional.yat_conv(x, self.kernel, bias_value(self), alpha_value(self), eps_value(self),
                                strides=self.strides, pads=pads, dilations=self.dilation_rate, groups=self.groups,
                                padding_mode=self.padding_mode, weight_normalized=self.weight_normalized)
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
        weight_normalized: unit-normalise each filter at call time, default False.
        dtype: default ``tf.float32``. seed: default None. name: module name.

    Shape:
        channels_last ``(N, *S, C) -> (N, *S', M)``; kernel ``(*kernel_size, C/groups, M)``.

    >>> import tensorflow as tf
    >>> layer = YatConv{r}D(4, 3)
    >>> tuple(layer(tf.ones((1, {shape}2))).shape)
    (1, {out}4)
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
