"""The ops namespace ``F`` that binds :mod:`nmn.core.yat` to public ``keras.ops``, plus conv helpers.

Everything here is written with ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends; the
one exception is :func:`_sum`'s fusion fence on the JAX backend (``jax.lax.reduce_precision``, imported there only).
The conv helpers pad explicitly (with the layer's padding mode) and run a VALID native convolution, as
``nmn.core.conv`` prescribes; a transposed convolution is a stride-1 convolution of the zero-upsampled input with
the spatially flipped kernel, which gives ONNX ``ConvTranspose`` semantics (groups, dilation, output padding) on
every backend without relying on each backend's own transposed convolution.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import keras
from keras import ops

from nmn._tfkeras import options, padding
from nmn._tfkeras.options import layer_label, set_yat_options, yat_options_config  # noqa: F401  (re-exported)
from nmn._tfkeras.padding import take
from nmn.core.spec import resolve_dropconnect

#: What a Keras layer or op takes and returns: a tensor of the active backend (``tf.Tensor``, ``jax.Array``,
#: ``torch.Tensor``), a numpy array, or a symbolic ``keras.KerasTensor`` while a functional model is built.
Tensor = keras.KerasTensor | Any
#: An input or output shape as Keras passes it (``None`` for an unknown size).
Shape = tuple[int | None, ...]
#: A Keras initializer: its name (``"glorot_normal"``), its config dict or an instance.
InitializerLike = str | dict | keras.initializers.Initializer
#: A Keras regularizer: its name (``"l2"``), its config dict, an instance or a callable of the weight; or None.
RegularizerLike = str | dict | keras.regularizers.Regularizer | Callable[[Any], Any] | None
#: A Keras constraint: its name (``"non_neg"``), its config dict, an instance or a callable of the weight; or None.
ConstraintLike = str | dict | keras.constraints.Constraint | Callable[[Any], Any] | None


def _sum(x, axis, keepdims=False):
    """``ops.sum``; on the JAX backend its float32 result is fenced off from the consumers' fusion.

    XLA:CPU in jax 0.10 folds a reduction such as ``sum(kernel * kernel, 0)`` into the fusion of the matmul that
    consumes it and materialises ``kernel * kernel`` there on every call (the reason and the fence are
    :func:`nmn._jax.ops._sum`'s, measured there for NNX): ``reduce_precision`` to float32's own bits is the
    identity on float32 values, but XLA keeps it as an op. Keras ``YatNMN`` 512x4096->4096 on the JAX backend,
    forward under ``jax.jit``: 1.65x ``Dense`` + relu unfenced (nmn 0.3.5 1.64x), see the README's Speed section.

    >>> float(_sum(ops.arange(4.0), 0))
    6.0
    """
    out = ops.sum(x, axis=axis, keepdims=keepdims)
    if keras.backend.backend() == "jax" and str(out.dtype) == "float32":
        from jax import lax

        out = lax.reduce_precision(out, exponent_bits=8, mantissa_bits=23)
    return out


class _KerasOps:
    """``F`` for :mod:`nmn.core.yat` on ``keras.ops``."""

    sqrt = staticmethod(ops.sqrt)
    relu = staticmethod(ops.relu)
    softplus = staticmethod(ops.softplus)
    exp = staticmethod(ops.exp)
    cos = staticmethod(ops.cos)
    abs = staticmethod(ops.abs)
    sign = staticmethod(ops.sign)
    matmul = staticmethod(ops.matmul)
    einsum = staticmethod(ops.einsum)
    where = staticmethod(ops.where)

    @staticmethod
    def cumsum(x, axis):
        # Keras' torch backend returns float32 prefix sums of float64 input; keep the input's dtype
        return ops.cast(ops.cumsum(x, axis=axis), x.dtype)

    logical_and = staticmethod(ops.logical_and)

    sum = staticmethod(_sum)

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
pad_for_conv = partial(padding.pad_for_conv, pad=ops.pad, concat=F.concat)
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
    """Create ``bias (n_out,)``, ``alpha (1,)`` and ``epsilon_param (1,)`` where they are parameters (the bias
    with the layer's ``bias_regularizer`` / ``bias_constraint`` where it has them)."""
    if with_bias and layer.yat.has_bias:
        layer.bias = layer.add_weight(
            name="bias",
            shape=(n_out,),
            initializer=bias_initializer,
            regularizer=getattr(layer, "bias_regularizer", None),
            constraint=getattr(layer, "bias_constraint", None),
        )
    if layer.yat.has_alpha:
        layer.alpha = layer.add_weight(name="alpha", shape=(1,), initializer="ones")
    if layer.yat.has_epsilon_param:
        layer.epsilon_param = layer.add_weight(
            name="epsilon_param", shape=(1,), initializer=keras.initializers.Constant(layer.yat.epsilon_init)
        )


# ------------------------------------------------------------------------ Keras host idioms (nmn 0.3 keywords)
#: The weight regularizer / constraint keywords of Keras' own ``Dense`` and ``Conv`` layers (besides
#: ``activity_regularizer``, which the base ``keras.layers.Layer`` takes and serialises).
WEIGHT_HOOKS = ("kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint")


def set_weight_hooks(layer, *, kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint):
    """Resolve the Keras regularizers / constraints of the kernel and the bias (``keras.regularizers.get``,
    ``keras.constraints.get``), stored under their keyword names; ``add_weight`` applies them: the regularizer's
    value joins ``layer.losses``, the constraint runs after each optimizer step."""
    layer.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
    layer.bias_regularizer = keras.regularizers.get(bias_regularizer)
    layer.kernel_constraint = keras.constraints.get(kernel_constraint)
    layer.bias_constraint = keras.constraints.get(bias_constraint)


def weight_hooks_config(layer):
    """The regularizers and constraints as Keras config (``keras.regularizers.serialize`` & co.)."""
    return {
        "kernel_regularizer": keras.regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": keras.regularizers.serialize(layer.bias_regularizer),
        "kernel_constraint": keras.constraints.serialize(layer.kernel_constraint),
        "bias_constraint": keras.constraints.serialize(layer.bias_constraint),
    }


def set_dropconnect(layer, use_dropconnect, drop_rate, seed):
    """Store nmn 0.3's ``use_dropconnect`` / ``drop_rate`` (checked by :func:`nmn.core.spec.resolve_dropconnect`)
    and, when DropConnect is on, the ``keras.random.SeedGenerator`` of its masks (``seed``: reproducible)."""
    rate = resolve_dropconnect(use_dropconnect, drop_rate, type(layer).__name__)
    layer.use_dropconnect, layer.drop_rate, layer.seed = bool(use_dropconnect), float(drop_rate), seed
    layer._dropconnect_rate = rate
    layer._dropconnect_seed = keras.random.SeedGenerator(seed) if rate > 0 else None


def dropconnect_config(layer):
    """``use_dropconnect``, ``drop_rate`` and ``seed`` as plain config (the ONNX spec does not carry them)."""
    return {"use_dropconnect": layer.use_dropconnect, "drop_rate": layer.drop_rate, "seed": layer.seed}


def dropconnect(layer, kernel, training):
    """The kernel a call uses: in training with DropConnect on, ``kernel * Bernoulli(1 - rate) / (1 - rate)``
    (a fresh mask per call, ``keras.random.dropout``); otherwise (inference, export) the kernel itself."""
    if not training or layer._dropconnect_rate == 0.0:
        return kernel
    return keras.random.dropout(ops.convert_to_tensor(kernel), layer._dropconnect_rate, seed=layer._dropconnect_seed)


def positive_initializer(initializer):
    """nmn 0.3's ``positive_init``: an initializer drawing ``abs`` of ``initializer``'s draw (every entry >= 0)."""

    def draw(shape, dtype=None):
        return ops.abs(initializer(shape, dtype=dtype))

    return draw
