"""Keras Yat transposed convolutions ``YatConvTranspose1D/2D/3D`` (subclasses of one private N-d base)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from nmn._tfkeras.conv_transpose import keras_transpose_geometry
from nmn._tfkeras.options import output_padding_of, padding_config, set_conv_geometry
from nmn.core.conv import transpose_output_size
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, NORM_GUARD
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
    set_dropconnect,
    set_weight_hooks,
    set_yat_options,
    weight_hooks_config,
    yat_options_config,
)
from nmn.keras.conv import _YatConvBase, data_format_of, from_channels_last
from nmn.keras.dense import build_mask, layer_export_params, mask_config, masked, set_mask, yat_bias

__all__ = ["YatConvTranspose1D", "YatConvTranspose2D", "YatConvTranspose3D"]


def unit_filters(kernel, groups: int):
    """``kernel (*k, M/G, C)`` with every filter -- its group's ``kernel[..., m', c]`` over the group's
    in-channels ``c`` and every tap -- divided by its norm + 1e-8 (``weight_normalized``)."""
    *ks, mg, c = kernel.shape
    blocks = keras.ops.reshape(kernel, (*ks, mg, groups, c // groups))
    axes = (*range(len(ks)), len(ks) + 2)
    norms = keras.ops.sqrt(keras.ops.sum(blocks * blocks, axis=axes, keepdims=True))
    return keras.ops.reshape(blocks / (norms + NORM_GUARD), tuple(kernel.shape))


class _YatConvTransposeNd(_YatConvBase):
    """N-d Yat transposed convolution; see :class:`YatConvTranspose2D` for the arguments."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] | Sequence[tuple[int, int]] = "valid",
        output_padding: int | Sequence[int] | None = None,
        data_format: str | None = None,
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
        self.output_padding = output_padding_of(self, output_padding)
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
        self.weight_normalized = bool(weight_normalized)
        self.kernel = None
        self._geometry = keras_transpose_geometry(
            self.padding, self.kernel_size, self.strides, self.dilation_rate, self.output_padding
        )

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` (softplus, broadcast) and ``weight`` (``kernel * mask``, canonical) an exported
        file carries; ``{}`` when none of ``softplus_bias`` / ``scalar_bias`` / ``mask`` is set."""
        return layer_export_params(self, "conv_transpose", self.filters)

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, self.filters // self.groups, channels),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        add_yat_weights(self, self.yat.bias_size(self.filters), self.bias_initializer)
        build_mask(self, "(*kernel_size, M/G, C)")

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = self._channels_last_input(inputs, self.kernel.shape[-1])
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
            dilation_rate=self.dilation_rate,
            groups=self.groups,
        )
        return from_channels_last(y, self.rank, self.data_format)

    def _out_spatial(self, spatial):
        pads, outpad = self._geometry
        return tuple(
            None if n is None else transpose_output_size(n, k, s, d, lo, hi, o)
            for n, k, s, d, (lo, hi), o in zip(
                spatial, self.kernel_size, self.strides, self.dilation_rate, pads, outpad
            )
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
            "output_padding": self.output_padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            **yat_options_config(self),
            **mask_config(self),
            "weight_normalized": self.weight_normalized,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            **weight_hooks_config(self),
            **dropconnect_config(self),
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
        output_padding: default None; with it set, ``'valid'`` gives ``(n-1)s + k_eff + output_padding`` and
            ``'same'`` gives ``(n-1)s + k_eff % 2 + output_padding``, as ``keras.layers.Conv{r}DTranspose``.
        data_format: ``'channels_last'`` or ``'channels_first'``, default ``keras.config.image_data_format()``.
        use_bias, constant_bias, use_alpha, constant_alpha, epsilon (1e-5), learnable_epsilon: as ``YatNMN``.
        softplus_bias, scalar_bias: nmn 0.3's bias options, as ``YatNMN`` (``scalar_bias``: one bias ``(1,)``).
        mask: an array of the kernel's shape ``(*kernel_size, M/groups, C)`` multiplied into the kernel before every use, as Flax's
            ``nn.Conv(mask=...)`` (checked in ``build``; default None). ``get_config`` holds it as a nested list, so ``from_config`` and ``.keras`` files keep it. An exported file carries
            ``kernel * mask`` and the effective bias, so a loaded layer is a plain one.
        weight_normalized: unit-normalise each filter at every call -- the ``kernel[..., m, c]`` of its group's
            in-channels ``c`` and every tap -- so ``|W_m|^2 = 1`` (nmn 0.3.5's meaning; default False). A file
            carries the raw kernel and ``weight_normalized=1`` on ``nmn::YatConvTranspose``.
        kernel_initializer: default ``"glorot_normal"``; bias_initializer: default ``"zeros"``.
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as
            ``keras.layers.Conv{r}DTranspose`` (names, configs or instances; default None): the regularizers' values join
            ``layer.losses``, the constraints run after each optimizer step.
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default off, 0.0): with ``training=True`` each call
            multiplies the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate); at
            inference and in exported files the kernel is used as is. seed: seed of the masks, default None.

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
