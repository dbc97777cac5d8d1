"""The ops namespace ``F`` that binds :mod:`nmn.core.yat` to TensorFlow, plus conv and layer helpers.

The conv helpers pad explicitly (with the layer's padding mode) and run a VALID native convolution, as
``nmn.core.conv`` prescribes; grouped convolutions run one convolution per group (TensorFlow has no grouped
convolution on CPU outside XLA); a transposed convolution is a stride-1 convolution of the zero-upsampled input
with the spatially flipped kernel (ONNX ``ConvTranspose`` semantics: groups, dilation, output padding).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import tensorflow as tf

from nmn._tfkeras import options, padding
from nmn._tfkeras.options import layer_label, set_yat_options  # noqa: F401  (re-exported)
from nmn._tfkeras.padding import take
from nmn.core.spec import resolve_dropconnect

#: What an ``nmn.tf`` layer or op takes: a ``tf.Tensor``, a ``tf.Variable`` or a numpy array (converted with
#: ``tf.convert_to_tensor``); results are ``tf.Tensor`` s.
TensorLike = tf.Tensor | tf.Variable | np.ndarray


class _TFOps:
    """``F`` for :mod:`nmn.core.yat` on TensorFlow."""

    sqrt = staticmethod(tf.sqrt)
    relu = staticmethod(tf.nn.relu)
    softplus = staticmethod(tf.nn.softplus)
    exp = staticmethod(tf.exp)
    cos = staticmethod(tf.cos)
    abs = staticmethod(tf.abs)
    sign = staticmethod(tf.sign)
    matmul = staticmethod(tf.matmul)
    einsum = staticmethod(tf.einsum)
    where = staticmethod(tf.where)
    logical_and = staticmethod(tf.logical_and)

    @staticmethod
    def sum(x, axis, keepdims=False):
        return tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def softmax(x, axis=-1):
        return tf.nn.softmax(x, axis=axis)

    @staticmethod
    def cumsum(x, axis):
        return tf.cumsum(x, axis=axis)

    @staticmethod
    def tril(lq, lk):
        q = tf.range(lq)[:, None]
        k = tf.range(lk)[None, :]
        return k <= q + (lk - lq)

    @staticmethod
    def full_like(x, value):
        return tf.fill(tf.shape(x), tf.cast(value, x.dtype))

    @staticmethod
    def to_f32(x):
        return tf.cast(x, tf.float32)

    @staticmethod
    def cast_like(x, ref):
        return tf.cast(x, ref.dtype)

    @staticmethod
    def reshape(x, shape):
        # unknown (None) entries are taken from x's dynamic shape at the same position
        if any(s is None for s in shape):
            dynamic = tf.shape(x)
            shape = [dynamic[i] if s is None else s for i, s in enumerate(shape)]
        return tf.reshape(x, shape)

    @staticmethod
    def stack(xs, axis):
        return tf.stack(xs, axis=axis)

    @staticmethod
    def concat(xs, axis):
        return tf.concat(xs, axis=axis)


F = _TFOps()


def result_dtype(x, *params):
    """The dtype a Yat result is cast back to: the wider of the input's and the parameters' float dtypes."""
    order = [tf.bfloat16, tf.float16, tf.float32, tf.float64]
    dtypes = [x.dtype] + [p.dtype for p in params if p is not None]
    floats = [d for d in dtypes if d in order]
    return max(floats, key=order.index) if floats else tf.float32


pad_axis = partial(padding.pad_axis, pad=tf.pad, concat=F.concat)
pad_for_conv = partial(padding.pad_for_conv, pad=tf.pad, concat=F.concat)
pad_axis.__doc__ = padding.pad_axis.__doc__


def upsample_axis(x, axis, stride):
    """Insert ``stride - 1`` zeros between neighbours along ``axis`` (length ``(n - 1) * stride + 1``)."""
    if stride == 1:
        return x
    n = x.shape[axis]
    x = tf.expand_dims(x, axis + 1)
    widths = [[0, 0]] * x.shape.rank
    widths[axis + 1] = [0, stride - 1]
    x = tf.pad(x, widths)
    dynamic = tf.shape(x)
    shape = [dynamic[i] if s is None else s for i, s in enumerate(x.shape)]
    shape[axis : axis + 2] = [n * stride]
    return take(tf.reshape(x, shape), axis, 0, (n - 1) * stride + 1)


def conv(x, kernel, strides, dilations, groups, padding="VALID"):
    """Channels-last convolution (``padding`` ``'VALID'`` or ``'SAME'``) with ``kernel (*k, C/G, M)``; groups as
    one convolution per group."""
    if groups == 1:
        return tf.nn.convolution(x, kernel, strides=list(strides), padding=padding, dilations=list(dilations))
    xs = tf.split(x, groups, axis=-1)
    ws = tf.split(kernel, groups, axis=-1)
    return tf.concat(
        [
            tf.nn.convolution(a, b, strides=list(strides), padding=padding, dilations=list(dilations))
            for a, b in zip(xs, ws)
        ],
        axis=-1,
    )


def add_yat_variables(layer, n_out, dtype, with_bias=True):
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` where they are parameters."""
    if with_bias and layer.yat.has_bias:
        layer.bias = tf.Variable(tf.zeros((n_out,), dtype), name="bias")
    if layer.yat.has_alpha:
        layer.alpha = tf.Variable(tf.ones((1,), dtype), name="alpha")
    if layer.yat.has_epsilon_param:
        layer.epsilon_param = tf.Variable(tf.constant([layer.yat.epsilon_init], dtype), name="epsilon_param")


eps_value = partial(options.eps_value, F)
alpha_value = partial(options.alpha_value, F)
bias_value = partial(options.bias_value, F)


def glorot_normal(shape, fan_in, fan_out, dtype, seed=None):
    """Plain normal with variance ``2 / (fan_in + fan_out)`` (docs/design.md §2.5, tf)."""
    return tf.random.normal(shape, stddev=(2.0 / (fan_in + fan_out)) ** 0.5, dtype=dtype, seed=seed)


def set_dropconnect(layer, use_dropconnect, drop_rate):
    """Store nmn 0.3's ``use_dropconnect`` / ``drop_rate`` (checked by :func:`nmn.core.spec.resolve_dropconnect`)
    and, when DropConnect is on, the ``tf.random.Generator`` of its masks (from ``layer.seed``: reproducible;
    without a seed, from a non-deterministic state)."""
    rate = resolve_dropconnect(use_dropconnect, drop_rate, type(layer).__name__)
    layer.use_dropconnect, layer.drop_rate = bool(use_dropconnect), float(drop_rate)
    layer._dropconnect_rate = rate
    layer._dropconnect_generator = None
    if rate > 0:
        seed = layer.seed
        layer._dropconnect_generator = (
            tf.random.Generator.from_non_deterministic_state() if seed is None else tf.random.Generator.from_seed(seed)
        )


def dropconnect_mask(generator, kernel, rate):
    """``kernel * Bernoulli(1 - rate) / (1 - rate)``: an entry is kept where the generator's uniform draw is
    ``>= rate``."""
    kernel = tf.convert_to_tensor(kernel)
    keep = generator.uniform(tf.shape(kernel), dtype=tf.float32) >= rate
    return tf.where(keep, kernel / tf.cast(1.0 - rate, kernel.dtype), tf.zeros_like(kernel))


def dropconnect(layer, kernel, training):
    """The kernel a call uses: with ``training=True`` and DropConnect on, a fresh :func:`dropconnect_mask` of it;
    otherwise (inference, export) the kernel itself."""
    if not training or layer._dropconnect_rate == 0.0:
        return kernel
    return dropconnect_mask(layer._dropconnect_generator, kernel, layer._dropconnect_rate)
