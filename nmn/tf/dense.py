"""TensorFlow ``YatNMN``: the Yat dense layer as a ``tf.Module``."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from nmn.core.conv import check_mask
from nmn.core.layer_options import resolve_freeze_kernel
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import export_params
from nmn.tf import functional
from nmn.tf._ops import (
    TensorLike,
    add_yat_variables,
    alpha_value,
    bias_value,
    dropconnect,
    eps_value,
    glorot_normal,
    layer_label,
    set_dropconnect,
    set_yat_options,
)

__all__ = ["YatNMN"]


# ------------------------------------------------------- nmn 0.3's bias options and the conv mask (dense, conv, convT)
def yat_bias(layer: tf.Module, n_out: int) -> tf.Tensor | float | None:
    """The bias the layer adds: ``softplus_bias`` / ``scalar_bias`` applied to ``bias_value`` (nmn.core.spec)."""
    return layer.yat.effective_bias(bias_value(layer), n_out, tf.nn.softplus, tf.broadcast_to)


def set_mask(layer: tf.Module, mask: Any) -> None:
    """Keep a conv ``mask`` (any array-like; checked against the kernel's shape in ``build``)."""
    if mask is not None:
        try:
            mask = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask, np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{layer_label(layer)}: mask must be an array of numbers, got {mask!r}") from None
    layer.mask = mask


def build_mask(layer: tf.Module, layout: str) -> None:
    """Check the mask against the built kernel (``ValueError`` naming the layer and both shapes)."""
    check_mask(layer.mask, tuple(layer.kernel.shape), layer_label(layer), layout)


def masked(layer: tf.Module, kernel: tf.Tensor) -> tf.Tensor:
    """``kernel * mask`` where the layer has a mask."""
    return kernel if layer.mask is None else kernel * tf.constant(layer.mask, kernel.dtype)


def layer_export_params(layer: tf.Module, layout: str, n_out: int) -> dict[str, np.ndarray]:
    """The effective ``bias`` / ``weight`` (canonical) an exported file carries; ``{}`` when no option is on."""
    mask = getattr(layer, "mask", None)
    return export_params(
        layer.yat,
        "tf",
        layout,
        n_out,
        bias=None if layer.bias is None else layer.bias.numpy(),
        kernel=None if mask is None else layer.kernel.numpy(),
        mask=mask,
        groups=getattr(layer, "groups", 1),
    )


class YatNMN(tf.Module):
    """Yat dense layer: ``y = alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + eps)`` per unit.

    Variables are created on the first call (the input width is inferred).

    Args:
        features: number of output units.
        use_bias: learnable numerator bias, default True. constant_bias: fixed bias value, default None.
        use_alpha: learnable ``alpha (1,)`` init 1, default True. constant_alpha: True (sqrt 2) or a number.
        epsilon: > 0, default 1e-5. learnable_epsilon: ``eps = softplus(epsilon_param)``, default False.
        softplus_bias: nmn 0.3's positive bias: the ``bias`` weight stays raw, the layer adds ``softplus(bias)``
            (default False). scalar_bias: the ``bias`` weight has shape ``(1,)``, broadcast over every unit
            (default False). Both need a learnable bias (an error with ``use_bias=False`` or ``constant_bias``). An
            exported file carries the effective bias (broadcast to ``(features,)``): a loaded layer is a plain one.
        spherical: unit x and w, distance ``2 - 2 cos``, default False.
        weight_normalized: unit w at call time, default False.
        lazy: the kernel is not trainable (bias, alpha, epsilon stay trainable), default False.
        freeze_kernel: nmn 0.3's name of ``lazy`` (default None: as ``lazy``; giving both, they must agree).
            An exported file marks the kernel non-trainable, and a layer loaded from it is frozen again.
        positive_init: initialise the kernel with ``abs`` of its Glorot-normal draw, every entry >= 0
            (default False; an initialisation choice only, as in nmn 0.3).
        use_dropconnect, drop_rate: nmn 0.3's DropConnect (default off, 0.0): with ``training=True`` each call
            multiplies the kernel by a fresh Bernoulli(1 - drop_rate) mask scaled by 1 / (1 - drop_rate) (masks
            drawn from a ``tf.random.Generator`` seeded with ``seed``); at inference (``training=False``, the
            default) and in exported files the kernel is used as is.
        dtype: variable dtype, default ``tf.float32``. seed: kernel init and DropConnect mask seed, default None.
        name: module name.

    Shape:
        ``(..., I) -> (..., features)``; kernel ``(I, features)``.

    >>> import tensorflow as tf
    >>> layer = YatNMN(features=4)
    >>> tuple(layer(tf.ones((2, 3))).shape)
    (2, 4)
    >>> dc = YatNMN(4, use_dropconnect=True, drop_rate=0.5, seed=0)
    >>> x = tf.ones((2, 3))
    >>> bool(tf.reduce_all(dc(x) == dc(x, training=False)))  # inference (the default): no mask
    True
    >>> bool(tf.reduce_all(dc(x, training=True) == dc(x)))  # training: a fresh mask per call
    False
    >>> sp = YatNMN(2, softplus_bias=True, scalar_bias=True)
    >>> _ = sp(x)
    >>> tuple(sp.bias.shape), [round(float(b), 4) for b in sp._export_params()["bias"]]  # softplus(0) per unit
    ((1,), [0.6931, 0.6931])
    """

    def __init__(
        self,
        features: int,
        *,
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
        positive_init: bool = False,
        use_dropconnect: bool = False,
        drop_rate: float = 0.0,
        dtype: tf.DType | str = tf.float32,
        seed: int | None = None,
        name: str | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__(name=name)
        self.features = check_positive_int(features, "features", "YatNMN")
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
        self.dtype = tf.as_dtype(dtype)
        self.positive_init = bool(positive_init)
        self.seed = seed
        set_dropconnect(self, use_dropconnect, drop_rate)
        self.kernel = None

    @property
    def built(self) -> bool:
        return self.kernel is not None

    @property
    def freeze_kernel(self) -> bool:
        """nmn 0.3's name of ``lazy``."""
        return self.lazy

    def _export_params(self) -> dict[str, np.ndarray]:
        """The effective ``bias`` an exported file carries (``{}`` without ``softplus_bias`` / ``scalar_bias``)."""
        return layer_export_params(self, "dense", self.features)

    def build(self, in_features: int) -> None:
        """Create the variables for inputs of width ``in_features``."""
        kernel = glorot_normal((in_features, self.features), in_features, self.features, self.dtype, self.seed)
        with self.name_scope:
            self.kernel = tf.Variable(
                tf.abs(kernel) if self.positive_init else kernel,
                trainable=not self.lazy,
                name="kernel",
            )
            add_yat_variables(self, self.yat.bias_size(self.features), self.dtype)

    def __call__(self, x: TensorLike, training: bool = False) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if x.shape.rank is None or x.shape.rank < 1 or (x.shape[-1] is None and not self.built):
            raise ValueError(
                f"{layer_label(self)}: expected input (..., in_features) with a known last dimension, "
                f"got shape {tuple(x.shape)}"
            )
        if not self.built:
            self.build(int(x.shape[-1]))
        if x.shape[-1] is not None and x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"{layer_label(self)}: expected input (..., {self.kernel.shape[0]}) matching kernel "
                f"{tuple(self.kernel.shape)}, got shape {tuple(x.shape)}"
            )
        return functional.yat_dense(
            x,
            dropconnect(self, self.kernel, training),
            yat_bias(self, self.features),
            alpha_value(self),
            eps_value(self),
            spherical=self.spherical,
            weight_normalized=self.weight_normalized,
        )
