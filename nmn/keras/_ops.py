"""The ops namespace ``F`` that binds :mod:`nmn.core.yat` to public ``keras.ops``, plus conv helpers.

Everything here is written with ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends.
The conv helpers pad explicitly (with the layer's padding mode) and run a VALID native convolution, as
``nmn.core.conv`` prescribes; a transposed convolution is a stride-1 convolution of the zero-upsampled input with
the spatially flipped kernel, which gives ONNX ``ConvTranspose`` semantics (groups, dilation, output padding) on
every backend without relying on each backend's own transposed convolution.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import keras
from keras import ops

from nmn._tfkeras import options, padding
from nmn._tfkeras.options import layer_label, set_yat_options, yat_options_config  # noqa: F401  (re-exported)
from nmn._tfkeras.padding import take

#: What a Keras layer or op takes and returns: a tensor of the active backend (``tf.Tensor``, ``jax.Array``,
#: ``torch.Tensor``), a numpy array, or a symbolic ``keras.KerasTensor`` while a functional model is built.
Tensor = keras.KerasTensor | Any
#: An input or output shape as Keras passes it (``None`` for an unknown size).
Shape = tuple[int | None, ...]
#: A Keras initializer: its name (``"glorot_normal"``), its config dict or an instance.
InitializerLike = str | dict | keras.initializers.Initializer


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


eps_value = partial(options.eps_value, F)
alpha_value = partial(options.alpha_value, F)
bias_value = partial(options.bias_value, F)
pad_axis = partial(padding.pad_axis, pad=ops.pad, concat=F.concat)
pad_axis.__doc__ = padding.pad_axis.__doc__


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
    return take(ops.reshape(x, shape), axis, 0, (n - 1) * stride + 1)


def add_yat_weights(layer, n_out, bias_initializer="zeros", with_bias=True):
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` where they are parameters."""
    if with_bias and layer.yat.has_bias:
        layer.bias = layer.add_weight(name="bias", shape=(n_out,), initializer=bias_initializer)
    if layer.yat.has_alpha:
        layer.alpha = layer.add_weight(name="alpha", shape=(1,), initializer="ones")
    if layer.yat.has_epsilon_param:
        layer.epsilon_param = layer.add_weight(
            name="epsilon_param", shape=(1,), initializer=keras.initializers.Constant(layer.yat.epsilon_init)
        )
