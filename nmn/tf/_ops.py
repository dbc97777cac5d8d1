"""The ops namespace ``F`` that binds :mod:`nmn.core.yat` to TensorFlow, plus conv and layer helpers.

The conv helpers pad explicitly (with the layer's padding mode) and run a VALID native convolution, as
``nmn.core.conv`` prescribes; grouped convolutions run one convolution per group (TensorFlow has no grouped
convolution on CPU outside XLA); a transposed convolution is a stride-1 convolution of the zero-upsampled input
with the spatially flipped kernel (ONNX ``ConvTranspose`` semantics: groups, dilation, output padding).
"""

from __future__ import annotations

import tensorflow as tf

from nmn.core.conv import PADDING_MODES
from nmn.core.options import check_epsilon, inverse_softplus, resolve_alpha, resolve_bias


class _TFOps:
    """``F`` for :mod:`nmn.core.yat` on TensorFlow."""

    sqrt = staticmethod(tf.sqrt)
    relu = staticmethod(tf.nn.relu)
    softplus = staticmethod(tf.nn.softplus)
    exp = staticmethod(tf.exp)
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


def _take(x, axis, start, stop):
    index = [slice(None)] * x.shape.rank
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def pad_axis(x, axis, lo, hi, mode="zeros"):
    """Pad (or, for negative amounts, crop) ``x`` along ``axis`` with one of the torch padding modes."""
    if lo < 0:
        x = _take(x, axis, -lo, None)
        lo = 0
    if hi < 0:
        x = _take(x, axis, None, x.shape[axis] + hi)
        hi = 0
    if lo == 0 and hi == 0:
        return x
    if mode == "zeros":
        widths = [[0, 0]] * x.shape.rank
        widths[axis] = [lo, hi]
        return tf.pad(x, widths)
    n = x.shape[axis]
    if mode == "reflect":
        left = [_take(x, axis, i, i + 1) for i in range(lo, 0, -1)]
        right = [_take(x, axis, n - 1 - i, n - i) for i in range(1, hi + 1)]
    elif mode == "replicate":
        left = [_take(x, axis, 0, 1)] * lo
        right = [_take(x, axis, n - 1, n)] * hi
    elif mode == "circular":
        left = [_take(x, axis, n - lo, n)] if lo else []
        right = [_take(x, axis, 0, hi)] if hi else []
    else:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, got {mode!r}")
    return tf.concat([*left, x, *right], axis=axis)


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
    return _take(tf.reshape(x, shape), axis, 0, (n - 1) * stride + 1)


def conv(x, kernel, strides, dilations, groups):
    """VALID channels-last convolution with ``kernel (*k, C/G, M)``; groups as one convolution per group."""
    if groups == 1:
        return tf.nn.convolution(x, kernel, strides=list(strides), padding="VALID", dilations=list(dilations))
    xs = tf.split(x, groups, axis=-1)
    ws = tf.split(kernel, groups, axis=-1)
    return tf.concat([tf.nn.convolution(a, b, strides=list(strides), padding="VALID", dilations=list(dilations))
                      for a, b in zip(xs, ws)], axis=-1)


def layer_label(layer):
    """``YatNMN 'name'`` for error messages."""
    return f"{type(layer).__name__} {layer.name!r}"


def set_yat_options(layer, *, use_bias, constant_bias, use_alpha, constant_alpha, epsilon, learnable_epsilon):
    """Validate and store the Yat keyword arguments shared by every layer (yat-ops.md 0.2)."""
    cls = type(layer).__name__
    layer.epsilon = check_epsilon(epsilon, cls)
    layer.use_bias = bool(use_bias)
    layer.constant_bias = constant_bias
    layer.use_alpha = bool(use_alpha)
    layer.constant_alpha = constant_alpha
    layer.learnable_epsilon = bool(learnable_epsilon)
    layer._bias_spec = resolve_bias(use_bias, constant_bias)
    layer._alpha_spec = resolve_alpha(use_alpha, constant_alpha)
    layer.bias = None
    layer.alpha = None
    layer.epsilon_param = None


def add_yat_variables(layer, n_out, dtype, with_bias=True):
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` where they are parameters."""
    if with_bias and layer._bias_spec.mode == "learnable":
        layer.bias = tf.Variable(tf.zeros((n_out,), dtype), name="bias")
    if layer._alpha_spec.learnable:
        layer.alpha = tf.Variable(tf.ones((1,), dtype), name="alpha")
    if layer.learnable_epsilon:
        layer.epsilon_param = tf.Variable(tf.constant([inverse_softplus(layer.epsilon)], dtype), name="epsilon_param")


def eps_value(layer):
    """The effective epsilon: ``softplus(epsilon_param)`` when learnable, else the constant."""
    if layer.epsilon_param is not None:
        return tf.nn.softplus(tf.cast(layer.epsilon_param, tf.float32))
    return layer.epsilon


def alpha_value(layer):
    """The alpha multiplier (a float32 tensor, a float, or ``None`` for 1)."""
    if layer.alpha is not None:
        return tf.cast(layer.alpha, tf.float32)
    return None if layer._alpha_spec.value == 1.0 else layer._alpha_spec.value


def bias_value(layer):
    """The numerator bias (a float32 tensor, a float, or ``None``)."""
    if layer.bias is not None:
        return tf.cast(layer.bias, tf.float32)
    return layer._bias_spec.value if layer._bias_spec.mode == "constant" else None


def glorot_normal(shape, fan_in, fan_out, dtype, seed=None):
    """Plain normal with variance ``2 / (fan_in + fan_out)`` (yat-ops.md 2.5, tf)."""
    return tf.random.normal(shape, stddev=(2.0 / (fan_in + fan_out)) ** 0.5, dtype=dtype, seed=seed)
