"""TensorFlow Yat transposed convolutions ``YatConvTranspose1D/2D/3D`` (``tf.Module``, one private N-d base)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from nmn._tfkeras.conv_transpose import keras_transpose_geometry
from nmn._tfkeras.options import DATA_FORMATS, output_padding_of, set_conv_geometry
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, NORM_GUARD, check_choice
from nmn.tf import functional
from nmn.tf._ops import (
    TensorLike,
    add_yat_variables,
    alpha_value,
    dropconnect,
    eps_value,
    glorot_normal,
    set_dropconnect,
    set_yat_options,
)
from nmn.tf.conv import _YatConvBase, from_channels_last
from nmn.tf.dense import build_mask, layer_export_params, masked, set_mask, yat_bias

__all__ = ["YatConvTranspose1D", "YatConvTranspose2D", "YatConvTranspose3D"]


def unit_filters(kernel, groups: int):
    """``kernel (*k, M/G, C)`` with every filter -- its group's ``kernel[..., m', c]`` over the group's
    in-channels ``c`` and every tap -- divided by its norm + 1e-8 (``weight_normalized``)."""
    *ks, mg, c = kernel.shape
    blocks = tf.reshape(kernel, (*ks, mg, groups, c // groups))
    axes = (*range(len(ks)), len(ks) + 2)
    norms = tf.sqrt(tf.reduce_sum(blocks * blocks, axis=axes, keepdims=True))
    return tf.reshape(blocks / (norms + NORM_GUARD), tf.shape(kernel))


class _YatConvTransposeNd(_YatConvBase):
    """N-d Yat transposed convolution; see :class:`YatConvTranspose2D` for the arguments."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] | Sequence[tuple[int, int]] = "valid",
        output_padding: int | Sequence[int] | None = None,
        data_format: str = "channels_last",
        dilation_rate: int | Sequence[int] = 1,
        groups: int = 1,
        *,
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
        self.output_padding = output_padding_of(self, output_padding)
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
        self.dtype = tf.as_dtype(dtype)
        self.seed = seed
        set_dropconnect(self, use_dropconnect, drop_rate)
        self.weight_normalized = bool(weight_normalized)
        self.kernel = None
        self._geometry = keras_transpose_geometry(
            self.padding, self.kernel_size, self.strides, self.dilation_rate, self.output_padding
        )

    def _kernel_channels(self):
        return self.kernel.shape[-1]

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical) an exported
        file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return layer_export_params(self, "conv_transpose", self.filters)

    def build(self, in_channels: int) -> None:
        """Create the variables for ``in_channels`` input channels."""
        self._check_groups(in_channels)
        k = 1
        for s in self.kernel_size:
            k *= s
        mg = self.filters // self.groups
        with self.name_scope:
            self.kernel = tf.Variable(
                glorot_normal(
                    (*self.kernel_size, mg, in_channels), k * in_channels, k * self.filters, self.dtype, self.seed
                ),
                name="kernel",
            )
            add_yat_variables(self, self.yat.bias_size(self.filters), self.dtype)
        build_mask(self, "(*kernel_size, M/G, C)")

    def __call__(self, x: TensorLike, training: bool = False) -> tf.Tensor:
        x = self._channels_last_input(x)
        pads, outpad = self._geometry
        kernel = masked(self, dropconnect(self, self.kernel, training))
        if self.weight_normalized:
            kernel = unit_filters(kernel, self.groups)
        y = functional.yat_conv_transpose(
            x,
            kernel,
            yat_bias(self, self.filters),
            alpha_value(self),
            eps_value(self),
            strides=self.strides,
            pads=pads,
            output_padding=outpad,
            dilations=self.dilation_rate,
            groups=self.groups,
        )
        return from_channels_last(y, self.rank, self.data_format)


_DOC = """Yat {r}-D transposed convolution (ONNX ``ConvTranspose`` geometry, ``tf.nn.conv_transpose`` kernel layout).

    ``y[q, m] = alpha * (d + b_m)^2 / (relu(E + K_m - 2 d) + eps)``: ``d`` the transposed-convolution value,
    ``E`` the same sum over ``x^2``, ``K_m`` the squared norm of filter ``m`` (the Yat of the zero-stuffed patch).

    Args:
        filters: output channels ``M``. kernel_size: int or {r} ints. strides, dilation_rate, groups: default 1.
        padding: ``'valid'`` (default; out = ``(n-1)s + max(k_eff, s)``), ``'same'`` (out = ``n s``), an int,
            {r} ints or ``(lo, hi)`` pairs (ONNX crops). output_padding: default None; with it set, ``'valid'``
            gives ``(n-1)s + k_eff + output_padding`` and ``'same'`` ``(n-1)s + k_eff % 2 + output_padding``, as
            ``tf.keras.layers.Conv{r}DTranspose``.
        data_format: ``'channels_last'`` (default) or ``'channels_first'``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon (1e-5), learnable_epsilon: as ``YatNMN``.
        softplus_bias, scalar_bias: nmn 0.3's bias options, as ``YatNMN`` (``scalar_bias``: one bias ``(1,)``).
        mask: an array of the kernel's shape ``(*kernel_size, M/groups, C)`` multiplied into the kernel before every use, as Flax's
            ``nn.Conv(mask=...)`` (checked in ``build``; default None). An exported file carries
            ``kernel * mask`` and the effective bias, so a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter at every call -- the ``kernel[..., m, c]`` of its group's
            in-channels ``c`` and every tap -- so ``|W_m|^2 = 1`` (nmn 0.3.5's meaning; default False). A file
            carries the raw kernel and ``weight_normalized=1`` on ``nmn::YatConvTranspose``.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default off, 0.0): with ``training=True`` each call
            multiplies the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate) (masks
            drawn from a ``tf.random.Generator`` seeded with ``seed``); at inference (``training=False``, the
            default) and in exported files the kernel is used as is.
        dtype: default ``tf.float32``. seed: kernel init and DropConnect mask seed, default None.
        name: module name.

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
