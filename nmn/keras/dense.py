"""Keras ``YatNMN``: the Yat dense layer."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from nmn.core.conv import check_mask
from nmn.core.layer_options import resolve_freeze_kernel
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import export_params
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


# ------------------------------------------------------- nmn 0.3's bias options and the conv mask (dense, conv, convT)
def yat_bias(layer: keras.layers.Layer, n_out: int) -> Tensor | float | None:
    """The bias the layer adds: ``softplus_bias`` / ``scalar_bias`` applied to ``bias_value`` (nmn.core.spec)."""
    return layer.yat.effective_bias(bias_value(layer), n_out, keras.ops.softplus, keras.ops.broadcast_to)


def set_mask(layer: keras.layers.Layer, mask: Any) -> None:
    """Keep a conv ``mask`` (any array-like or nested list; checked against the kernel's shape in ``build``)."""
    if mask is not None:
        try:
            mask = np.asarray(keras.ops.convert_to_numpy(mask) if not isinstance(mask, list) else mask, np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{layer_label(layer)}: mask must be an array of numbers, got {mask!r}") from None
    layer.mask = mask


def build_mask(layer: keras.layers.Layer, layout: str) -> None:
    """Check the mask against the built kernel (``ValueError`` naming the layer and both shapes)."""
    check_mask(layer.mask, tuple(layer.kernel.shape), layer_label(layer), layout)


def masked(layer: keras.layers.Layer, kernel: Tensor) -> Tensor:
    """``kernel * mask`` where the layer has a mask."""
    if layer.mask is None:
        return kernel
    return kernel * keras.ops.cast(keras.ops.convert_to_tensor(layer.mask), kernel.dtype)


def mask_config(layer: keras.layers.Layer) -> dict[str, Any]:
    """``softplus_bias``, ``scalar_bias`` and ``mask`` (a nested list, so ``.keras`` files and JSON keep it)."""
    config = layer.yat.bias_options()
    if hasattr(layer, "mask"):
        config["mask"] = None if layer.mask is None else layer.mask.tolist()
    return config


def layer_export_params(layer: keras.layers.Layer, layout: str, n_out: int) -> dict[str, np.ndarray]:
    """The effective ``bias`` / ``weight`` (canonical) an exported file carries; ``{}`` when no option is on."""
    mask = getattr(layer, "mask", None)
    return export_params(
        layer.yat,
        "keras",
        layout,
        n_out,
        bias=None if layer.bias is None else keras.ops.convert_to_numpy(layer.bias),
        kernel=None if mask is None else keras.ops.convert_to_numpy(layer.kernel),
        mask=mask,
        groups=getattr(layer, "groups", 1),
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
        softplus_bias: nmn 0.3's positive bias: the ``bias`` weight stays raw, the layer adds ``softplus(bias)``
            (default False). scalar_bias: the ``bias`` weight has shape ``(1,)``, broadcast over every unit
            (default False). Both need a learnable bias (an error with ``use_bias=False`` or ``constant_bias``). An
            exported file carries the effective bias (broadcast to ``(units,)``): a loaded layer is a plain one.
        spherical: unit-normalise x and every w, distance ``2 - 2 cos``, default False.
        weight_normalized: unit-normalise every w at call time, default False.
        lazy: freeze the kernel (not trainable); bias, alpha and epsilon stay trainable, default False.
        freeze_kernel: nmn 0.3's name of ``lazy`` (default None: as ``lazy``; giving both, they must agree).
            An exported file marks the kernel non-trainable, and a layer loaded from it is frozen again.
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
    >>> sp = YatNMN(2, softplus_bias=True, scalar_bias=True)
    >>> _ = sp(x)
    >>> tuple(sp.bias.shape), [round(float(b), 4) for b in sp._export_params()["bias"]]  # softplus(0) per unit
    ((1,), [0.6931, 0.6931])
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
        softplus_bias: bool = False,
        scalar_bias: bool = False,
        spherical: bool = False,
        weight_normalized: bool = False,
        lazy: bool = False,
        freeze_kernel: bool | None = None,
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
            softplus_bias=softplus_bias,
            scalar_bias=scalar_bias,
        )
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.lazy = resolve_freeze_kernel(lazy, freeze_kernel, type(self).__name__)
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

    @property
    def freeze_kernel(self) -> bool:
        """nmn 0.3's name of ``lazy``."""
        return self.lazy

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` an exported file carries (``{}`` without ``softplus_bias`` / ``scalar_bias``)."""
        return layer_export_params(self, "dense", self.units)

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
        add_yat_weights(self, self.yat.bias_size(self.units), self.bias_initializer)

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
            yat_bias(self, self.units),
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
            **mask_config(self),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "lazy": self.lazy,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            **weight_hooks_config(self),
            "positive_init": self.positive_init,
            **dropconnect_config(self),
        }
