"""Keras ``YatNMN``: the Yat dense layer."""

from __future__ import annotations

from typing import Any

import keras

from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.keras import functional
from nmn.keras._ops import (
    ConstraintLike,
    InitializerLike,
    RegularizerLike,
    Shape,
    Tensor,
    add_yat_weights,
    alpha_value,
    bias_value,
    dropconnect,
    dropconnect_config,
    eps_value,
    layer_label,
    positive_initializer,
    set_dropconnect,
    set_weight_hooks,
    set_yat_options,
    weight_hooks_config,
    yat_options_config,
)


@keras.saving.register_keras_serializable(package="nmn")
class YatNMN(keras.layers.Layer):
    """Yat dense layer: ``y = alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + eps)`` per unit.

    Args:
        units: number of output units (``features`` is accepted as an alias).
        use_bias: learnable numerator bias, default True.
        constant_bias: a fixed bias value instead of a parameter, default None.
        use_alpha: learnable output scale ``alpha (1,)`` init 1, default True.
        constant_alpha: ``True`` for sqrt(2) or a number: fixed alpha, no parameter, default None.
        epsilon: added to the clamped distance, must be > 0, default 1e-5.
        learnable_epsilon: learn ``epsilon_param`` with ``eps = softplus(epsilon_param)``, default False.
        spherical: unit-normalise x and every w, distance ``2 - 2 cos``, default False.
        weight_normalized: unit-normalise every w at call time, default False.
        lazy: freeze the kernel (not trainable); bias, alpha and epsilon stay trainable, default False.
        kernel_initializer: default ``"glorot_normal"``; bias_initializer: default ``"zeros"``.
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as
            ``keras.layers.Dense`` (names, configs or instances; default None): the regularizers' values join
            ``layer.losses``, the constraints run after each optimizer step.
        positive_init: initialise the kernel with ``abs`` of the ``kernel_initializer``'s draw, every entry >= 0
            (default False; an initialisation choice only, as in nmn 0.3).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default off, 0.0): with ``training=True`` each call
            multiplies the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate); at
            inference and in exported files the kernel is used as is. seed: seed of the masks, default None.

    Shape:
        ``(..., I) -> (..., units)``; kernel ``(I, units)``.

    >>> import keras
    >>> layer = YatNMN(4)
    >>> tuple(layer(keras.ops.ones((2, 3))).shape)
    (2, 4)
    >>> l2 = YatNMN(4, kernel_regularizer=keras.regularizers.L2(0.1))
    >>> _ = l2(keras.ops.ones((2, 3)))
    >>> bool(abs(float(l2.losses[0]) - 0.1 * float(keras.ops.sum(l2.kernel ** 2))) < 1e-5)
    True
    >>> dc = YatNMN(4, use_dropconnect=True, drop_rate=0.5, seed=0)
    >>> x = keras.ops.ones((2, 3))
    >>> bool(keras.ops.all(dc(x) == dc(x, training=False)))  # inference: no mask
    True
    >>> bool(keras.ops.all(dc(x, training=True) == dc(x)))  # training: a fresh mask per call
    False
    """

    def __init__(
        self,
        units: int | None = None,
        *,
        features: int | None = None,
        use_bias: bool = True,
        constant_bias: float | None = None,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        learnable_epsilon: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        kernel_initializer: InitializerLike = "glorot_normal",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        activity_regularizer: RegularizerLike = None,
        kernel_constraint: ConstraintLike = None,
        bias_constraint: ConstraintLike = None,
        positive_init: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ):
        refuse_keywords(type(self).__name__, kwargs, allow_others=True)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if units is None:
            units = features
        elif features is not None and features != units:
            raise ValueError(f"YatNMN: units={units!r} and features={features!r} disagree (features is an alias)")
        self.units = check_positive_int(units, "units", "YatNMN")
        set_yat_options(
            self,
            use_bias=use_bias,
            constant_bias=constant_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            learnable_epsilon=learnable_epsilon,
        )
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.lazy = bool(lazy)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        set_weight_hooks(
            self,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.positive_init = bool(positive_init)
        set_dropconnect(self, use_dropconnect, drop_rate, seed)
        self.kernel = None

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(
                f"{layer_label(self)}: expected input (..., in_features) with a known last dimension, "
                f"got shape {tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.units),
            initializer=positive_initializer(self.kernel_initializer)
            if self.positive_init
            else self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            trainable=not self.lazy,
        )
        add_yat_weights(self, self.units, self.bias_initializer)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        in_features = self.kernel.shape[0]
        if len(inputs.shape) < 1 or inputs.shape[-1] != in_features:
            raise ValueError(
                f"{layer_label(self)}: expected input (..., {in_features}) matching kernel "
                f"{tuple(self.kernel.shape)}, got shape {tuple(inputs.shape)}"
            )
        return functional.yat_dense(
            inputs,
            dropconnect(self, self.kernel, training),
            bias_value(self),
            alpha_value(self),
            eps_value(self),
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
        )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            **yat_options_config(self),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "lazy": self.lazy,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            **weight_hooks_config(self),
            "positive_init": self.positive_init,
            **dropconnect_config(self),
        }
