"""TensorFlow Yat transposed convolutions ``YatConvTranspose1D/2D/3D`` (``tf.Module``, one private N-d base)."""

from __future__ import annotations

import tensorflow as tf

from nmn.core.conv import as_tuple, normalize_padding, transpose_geometry
from nmn.core.options import DEFAULT_EPSILON, check_choice, check_positive_int
from nmn.tf import functional
from nmn.tf._ops import (add_yat_variables, alpha_value, bias_value, eps_value, glorot_normal, layer_label,
                         set_yat_options)
from nmn.tf.conv import _FORMATS, check_input, from_channels_last, to_channels_last

__all__ = ["YatConvTranspose1D", "YatConvTranspose2D", "YatConvTranspose3D"]


class _YatConvTransposeNd(tf.Module):
    """N-d Yat transposed convolution; see :class:`YatConvTranspose2D` for the arguments."""

    rank = 0

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format="channels_last", dilation_rate=1, groups=1, *, use_bias=True, constant_bias=None,
                 use_alpha=True, constant_alpha=None, epsilon=DEFAULT_EPSILON, learnable_epsilon=False,
                 dtype=tf.float32, seed=None, name=None):
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
        self.data_format = check_choice(data_format, _FORMATS, "data_format", cls)
        set_yat_options(self, use_bias=use_bias, constant_bias=constant_bias, use_alpha=use_alpha,
                        constant_alpha=constant_alpha, epsilon=epsilon, learnable_epsilon=learnable_epsilon)
        self.dtype = tf.as_dtype(dtype)
        self.seed = seed
        self.kernel = None
        self._geometry = transpose_geometry(self.padding, self.kernel_size, self.strides, self.dilation_rate,
                                            self.output_padding)

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
        mg = self.filters // self.groups
        with self.name_scope:
            self.kernel = tf.Variable(glorot_normal((*self.kernel_size, mg, in_channels), k * in_channels,
                                                    k * self.filters, self.dtype, self.seed), name="kernel")
            add_yat_variables(self, self.filters, self.dtype)

    def __call__(self, x):
        x = tf.convert_to_tensor(x)
        channels = check_input(self, x, self.kernel.shape[-1] if self.built else None)
        if not self.built:
            self.build(int(channels))
        x = to_channels_last(x, self.rank, self.data_format)
        pads, outpad = self._geometry
        y = functional.yat_conv_transpose(x, self.kernel, bias_value(self), alpha_value(self), eps_value(self),
                                          strides=self.strides, pads=pads, output_padding=outpad,
                                          dilations=self.dilation_rate, groups=self.groups)
        return from_channels_last(y, self.rank, self.data_format)


_DOC = """Yat {r}-D transposed convolution (ONNX ``ConvTranspose`` geometry, ``tf.nn.conv_transpose`` kernel layout).

    ``y[q, m] = alpha * (d + b_m)^2 / (relu(E + K_m - 2 d) + eps)``: ``d`` the transposed-convolution value,
    ``E`` the same sum over ``x^2``, ``K_m`` the squared norm of filter ``m`` (the Yat of the zero-stuffed patch).

    Args:
        filters: output channels ``M``. kernel_size: int or {r} ints. strides, dilation_rate, groups: default 1.
        padding: ``'valid'`` (default; out = ``(n-1)s + max(k_eff, s)``), ``'same'`` (out = ``n s``), an int,
            {r} ints or ``(lo, hi)`` pairs (ONNX crops). output_padding: default None.
        data_format: ``'channels_last'`` (default) or ``'channels_first'``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon (1e-5), learnable_epsilon: as ``YatNMN``.
        dtype: default ``tf.float32``. seed: default None. name: module name.

    Shape:
        channels_last ``(N, *S, C) -> (N, *S', M)``; kernel ``(*kernel_size, M/groups, C)``.

    >>> import tensorflow as tf
    >>> layer = YatConvTranspose{r}D(4, 3, strides=2)
    >>> tuple(layer(tf.ones((1, {shape}2))).shape)
    (1, {out}4)
    """


class YatConvTranspose1D(_YatConvTransposeNd):
    rank = 1
    __doc__ = _DOC.format(r=1, shape="3, ", out="7, ")


class YatConvTranspose2D(_YatConvTransposeNd):
    rank = 2
    __doc__ = _DOC.format(r=2, shape="3, 3, ", out="7, 7, ")


class YatConvTranspose3D(_YatConvTransposeNd):
    rank = 3
    __doc__ = _DOC.format(r=3, shape="2, 2, 2, ", out="5, 5, 5, ")
