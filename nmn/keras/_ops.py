"""The ops namespace ``F`` that binds :mod:`nmn.core.yat` to public ``keras.ops``, plus conv helpers.

Everything here is written with ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends.
The conv helpers pad explicitly (with the layer's padding mode) and run a VALID native convolution, as
``nmn.core.conv`` prescribes; a transposed convolution is a stride-1 convolution of the zero-upsampled input with
the spatially flipped kernel, which gives ONNX ``ConvTranspose`` semantics (groups, dilation, output padding) on
every backend without relying on each backend's own transposed convolution.
"""

from __future__ import annotations

import keras
from keras import ops

from nmn.core.conv import PADDING_MODES
from nmn.core.options import check_epsilon, inverse_softplus, resolve_alpha, resolve_bias


class _KerasOps:
    """``F`` for :mod:`nmn.core.yat` on ``keras.ops``."""

    sqrt = staticmethod(ops.sqrt)
    relu = staticmethod(ops.relu)
    softplus = staticmethod(ops.softplus)
    exp = staticmethod(ops.exp)
    abs = staticmethod(ops.abs)
    sign = staticmethod(ops.sign)
    matmul = staticmethod(ops.matmul)
    einsum = staticmethod(ops.einsum)
    where = staticmethod(ops.where)
    cumsum = staticmethod(ops.cumsum)
    logical_and = staticmethod(ops.logical_and)

    @staticmethod
    def sum(x, axis, keepdims=False):
        return ops.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def reshape(x, shape):
        # unknown (None) entries are taken from x's dynamic shape at the same position
        if any(s is None for s in shape):
            dynamic = ops.shape(x)
            shape = tuple(dynamic[i] if s is None else s for i, s in enumerate(shape))
        return ops.reshape(x, shape)

    @staticmethod
    def softmax(x, axis=-1):
        return ops.softmax(x, axis=axis)

    @staticmethod
    def tril(lq, lk):
        q = ops.arange(lq)[:, None]
        k = ops.arange(lk)[None, :]
        return k <= q + (lk - lq)

    @staticmethod
    def full_like(x, value):
        return ops.full_like(x, value)

    @staticmethod
    def to_f32(x):
        return ops.cast(x, "float32")

    @staticmethod
    def cast_like(x, ref):
        return ops.cast(x, ref.dtype)

    @staticmethod
    def stack(xs, axis):
        return ops.stack(xs, axis=axis)

    @staticmethod
    def concat(xs, axis):
        return ops.concatenate(xs, axis=axis)


F = _KerasOps()


def compute_dtype(x, *params):
    """The promoted dtype of the input and the parameters (the dtype a Yat result is cast back to)."""
    dtypes = [keras.backend.standardize_dtype(x.dtype)]
    dtypes += [keras.backend.standardize_dtype(p.dtype) for p in params if p is not None]
    return keras.backend.result_type(*dtypes)


def eps_value(layer):
    """The effective epsilon: ``softplus(epsilon_param)`` when learnable, else the constant."""
    if layer.epsilon_param is not None:
        return ops.softplus(ops.cast(layer.epsilon_param, "float32"))
    return layer.epsilon


def alpha_value(layer):
    """The alpha multiplier (a float32 tensor, a float, or ``None`` for 1)."""
    if layer.alpha is not None:
        return ops.cast(layer.alpha, "float32")
    spec = layer._alpha_spec
    return None if spec.value == 1.0 else spec.value


def bias_value(layer):
    """The numerator bias (a float32 tensor, a float, or ``None``)."""
    if layer.bias is not None:
        return ops.cast(layer.bias, "float32")
    spec = layer._bias_spec
    return spec.value if spec.mode == "constant" else None


def _take(x, axis, start, stop):
    index = [slice(None)] * len(x.shape)
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
        widths = [(0, 0)] * len(x.shape)
        widths[axis] = (lo, hi)
        return ops.pad(x, widths)
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
    return ops.concatenate([*left, x, *right], axis=axis)


def upsample_axis(x, axis, stride):
    """Insert ``stride - 1`` zeros between neighbours along ``axis`` (length ``(n - 1) * stride + 1``)."""
    if stride == 1:
        return x
    n = x.shape[axis]
    x = ops.expand_dims(x, axis + 1)
    widths = [(0, 0)] * len(x.shape)
    widths[axis + 1] = (0, stride - 1)
    x = ops.pad(x, widths)
    shape = list(x.shape)
    shape[axis : axis + 2] = [n * stride]
    shape = [-1 if s is None else s for s in shape]
    return _take(ops.reshape(x, shape), axis, 0, (n - 1) * stride + 1)


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


def yat_options_config(layer):
    """The Yat keyword arguments as plain config."""
    return {
        "use_bias": layer.use_bias,
        "constant_bias": layer.constant_bias,
        "use_alpha": layer.use_alpha,
        "constant_alpha": layer.constant_alpha,
        "epsilon": layer.epsilon,
        "learnable_epsilon": layer.learnable_epsilon,
    }


def add_yat_weights(layer, n_out, bias_initializer="zeros", with_bias=True):
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` where they are parameters."""
    if with_bias and layer._bias_spec.mode == "learnable":
        layer.bias = layer.add_weight(name="bias", shape=(n_out,), initializer=bias_initializer)
    if layer._alpha_spec.learnable:
        layer.alpha = layer.add_weight(name="alpha", shape=(1,), initializer="ones")
    if layer.learnable_epsilon:
        layer.epsilon_param = layer.add_weight(
            name="epsilon_param", shape=(1,), initializer=keras.initializers.Constant(inverse_softplus(layer.epsilon)))
