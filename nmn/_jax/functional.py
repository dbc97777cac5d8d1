"""Functional Yat ops on JAX arrays in Flax's layouts, shared by ``nmn.nnx`` and ``nmn.linen``.

Layouts (Flax, channels-last): dense ``kernel (I, O)``; conv data ``(N, *S, C)`` and ``kernel (*k, C/G, M)``;
conv-transpose ``kernel (*k, C, M/G)`` stored spatially flipped with respect to ONNX's ``(C, M/G, *k)`` (what
``flax.nnx.ConvTranspose`` does for ``G = 1``); attention heads ``(B, L, H, D)``.

The Yat arithmetic runs in float32 even for float16/bfloat16 inputs, and the result is cast to the promoted
dtype of the inputs and parameters, or to ``dtype`` when given (docs/design.md §D8).

>>> import jax.numpy as jnp
>>> y = yat_dense(jnp.ones((2, 3)), jnp.ones((3, 4)))
>>> y.shape, y.dtype
((2, 4), dtype('float32'))
>>> softer_sigmoid(jnp.array([1.0]), n=2.0).tolist()
[0.5]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike

from nmn._jax import _chunked, _flash
from nmn._jax.ops import F
from nmn.core import yat as core
from nmn.core.conv import transpose_as_conv_pads, yat_conv_tail
from nmn.core.options import DEFAULT_EPSILON, SOFTERMAX_EPSILON, squash_power

_NP_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


# --------------------------------------------------------------------------------------------------------- dtypes
def promoted_dtype(*values, dtype=None):
    """The dtype results are cast to: ``dtype`` if given, else the promoted (floating) dtype of the arrays.

    Promotion follows JAX's standard lattice even when ``jax_numpy_dtype_promotion='strict'`` is active, since
    the arrays are never mixed implicitly here: each is cast to float32 explicitly.
    """
    if dtype is not None:
        return jnp.dtype(dtype)
    dtypes = [v.dtype for v in values if hasattr(v, "dtype")]
    with jax.numpy_dtype_promotion("standard"):
        out = jnp.result_type(*dtypes) if dtypes else jnp.dtype(jnp.float32)
    return out if jnp.issubdtype(out, jnp.inexact) else jnp.dtype(jnp.float32)


def _f32(v):
    if v is None or isinstance(v, (int, float)):
        return v
    return jnp.asarray(v).astype(jnp.float32)


# ------------------------------------------------------------------------------------------------------- dense
def yat_dense(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    alpha: ArrayLike | None = None,
    epsilon: ArrayLike = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    weight_normalized: bool = False,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Yat dense product ``alpha (x.w_o + b_o)^2 / (relu(|x|^2 + |w_o|^2 - 2 x.w_o) + eps)``.

    ``x (..., I)``, ``kernel (I, O)``, ``bias (O,)`` or a number or None, ``alpha (1,)`` or a number or None,
    ``epsilon`` a number or a float32 array.
    """
    out = promoted_dtype(x, kernel, bias, alpha, dtype=dtype)
    y = core.yat_dense(
        F,
        _f32(x),
        _f32(kernel),
        _f32(bias),
        _f32(alpha),
        _f32(epsilon),
        spherical=spherical,
        weight_normalized=weight_normalized,
    )
    return y.astype(out)


# -------------------------------------------------------------------------------------------------------- conv
def _dimension_numbers(rank):
    s = _SPATIAL[rank]
    return ("N" + s + "C", s + "IO", "N" + s + "C")


def _group_energy(xx, kernel_size, groups, out_channels, **conv_kw):
    """Patch energy ``sum x^2`` of each group's channels, broadcast to that group's output channels."""
    n, *spatial, c = xx.shape
    per_group = jnp.sum(xx.reshape(n, *spatial, groups, c // groups), axis=-1)  # (N, *S, G)
    ones = jnp.ones((*kernel_size, 1, groups), xx.dtype)
    energy = lax.conv_general_dilated(per_group, ones, feature_group_count=groups, **conv_kw)
    return energy if groups == 1 else jnp.repeat(energy, out_channels // groups, axis=-1)


def yat_conv(
    x: ArrayLike,
    kernel: jax.Array,
    bias: ArrayLike | None = None,
    alpha: ArrayLike | None = None,
    epsilon: ArrayLike = DEFAULT_EPSILON,
    *,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilations: Sequence[int],
    groups: int = 1,
    padding_mode: str = "zeros",
    weight_normalized: bool = False,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Yat convolution of ``x (N, *S, C)`` with ``kernel (*k, C/G, M)`` -> ``(N, *S', M)``.

    ``padding`` is a list of explicit ``(lo, hi)`` pairs (see :func:`nmn.core.conv.conv_pads`), applied with
    ``padding_mode`` (``zeros``, ``reflect``, ``replicate``, ``circular``) before a VALID convolution.
    """
    rank = kernel.ndim - 2
    out = promoted_dtype(x, kernel, bias, alpha, dtype=dtype)
    xf, kf = _f32(x), _f32(kernel)
    pads = [tuple(int(v) for v in p) for p in padding]
    if padding_mode != "zeros":
        xf = jnp.pad(xf, [(0, 0), *pads, (0, 0)], mode=_NP_PAD_MODES[padding_mode])
        pads = [(0, 0)] * rank
    taps = tuple(range(rank + 1))
    if weight_normalized:
        kf = core.unit(F, kf, taps)
    conv_kw = dict(
        window_strides=tuple(strides),
        padding=pads,
        rhs_dilation=tuple(dilations),
        dimension_numbers=_dimension_numbers(rank),
    )
    dot = lax.conv_general_dilated(xf, kf, feature_group_count=groups, **conv_kw)
    energy = _group_energy(xf * xf, kernel.shape[:rank], groups, kernel.shape[-1], **conv_kw)
    ww = 1.0 if weight_normalized else jnp.sum(kf * kf, axis=taps)
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _f32(epsilon))
    return y.astype(out)


def yat_conv_transpose(
    x: ArrayLike,
    kernel: jax.Array,
    bias: ArrayLike | None = None,
    alpha: ArrayLike | None = None,
    epsilon: ArrayLike = DEFAULT_EPSILON,
    *,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
    dilations: Sequence[int],
    groups: int = 1,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Yat transposed convolution of ``x (N, *S, C)`` with ``kernel (*k, C, M/G)`` -> ``(N, *S', M)``.

    The same map as ONNX ``ConvTranspose`` with ``W (C, M/G, *k)`` = this kernel flipped spatially and moved;
    ``padding`` are ONNX's cropping ``(lo, hi)`` pairs, ``output_padding`` extends the high side. Computed as a
    stride-1 convolution of the zero-stuffed input (``lhs_dilation``), so taps on inserted zeros add ``w^2``.
    """
    rank = kernel.ndim - 2
    ks = kernel.shape[:rank]
    c, mg = kernel.shape[rank], kernel.shape[rank + 1]
    out = promoted_dtype(x, kernel, bias, alpha, dtype=dtype)
    xf = _f32(x)
    kf = _f32(kernel).reshape(*ks, groups, c // groups, mg)
    kf = jnp.moveaxis(kf, rank, rank + 1).reshape(*ks, c // groups, groups * mg)  # (*k, C/G, M)
    pads = transpose_as_conv_pads(padding, ks, dilations, output_padding)
    conv_kw = dict(
        window_strides=(1,) * rank,
        padding=pads,
        lhs_dilation=tuple(strides),
        rhs_dilation=tuple(dilations),
        dimension_numbers=_dimension_numbers(rank),
    )
    dot = lax.conv_general_dilated(xf, kf, feature_group_count=groups, **conv_kw)
    energy = _group_energy(xf * xf, ks, groups, groups * mg, **conv_kw)
    ww = jnp.sum(kf * kf, axis=tuple(range(rank + 1)))
    y = yat_conv_tail(F, dot, energy, ww, _f32(bias), _f32(alpha), _f32(epsilon))
    return y.astype(out)


# --------------------------------------------------------------------------------------------------- attention
def yat_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: ArrayLike | None = None,
    alpha: ArrayLike | None = None,
    epsilon: ArrayLike = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    normalization: str = "softmax",
    power: float = 1.0,
    causal: bool = False,
    dropout: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Yat attention of heads ``q (B, Lq, H, D)``, ``k, v (B, Lk, H, D)`` -> ``(B, Lq, H, D)`` in v's dtype.

    ``mask`` is bool (True = attend), broadcastable to ``(B, H, Lq, Lk)``; ``dropout`` an optional callable
    applied to the attention weights.

    The path is :func:`nmn._jax._flash.pick`'s: the fused Pallas kernel on GPU/TPU (``nmn._jax._flash``, O(L)
    memory forward and backward), query tiles on CPU for long sequences (``nmn._jax._chunked``), else the
    reference; ``NMN_ATTENTION_IMPL`` (``auto``, ``flash``, ``chunked``, ``reference``) forces one. Forced
    ``flash`` on CPU runs the kernel in Pallas interpreter mode (slow; for tests). Dropout takes the reference.
    """
    impl = _flash.pick(q, k, dropout=dropout)
    kw = dict(spherical=spherical, normalization=normalization, power=power, causal=causal)
    if impl == "flash":
        return _flash.yat_attention(q, k, v, mask, _f32(alpha), _f32(epsilon), **kw)
    if impl == "chunked":
        return _chunked.yat_attention(q, k, v, mask, _f32(alpha), _f32(epsilon), **kw)
    return core.yat_attention(
        F,
        q,
        k,
        v,
        mask,
        _f32(alpha),
        _f32(epsilon),
        spherical=spherical,
        normalization=normalization,
        power=power,
        causal=causal,
        dropout=dropout,
    )


def performer_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    proj: jax.Array,
    alpha: ArrayLike | None = None,
    epsilon: ArrayLike = DEFAULT_EPSILON,
    *,
    causal: bool = False,
    degree: int | None = None,
    bias: float = 0.0,
) -> jax.Array:
    """Spherical Yat-Performer: linear-time readout of the random features of
    :func:`nmn.core.yat.performer_features` with ``proj (m, D)``.

    ``degree``: the Maclaurin degree K (default :func:`nmn.core.yat.performer_degree` of ``m`` and ``D``);
    ``bias``: b of the estimated score ``(t + b)^2 / (2 + epsilon - 2t)``.
    ``alpha`` (a fixed number: the layers have no alpha parameter here, see :class:`nmn.core.spec.AttentionSpec`)
    scales the query features as the ONNX function does, so it cancels except against the readout's shift.
    """
    kernel = dict(degree=degree, bias=bias)
    qf = core.performer_features(F, _f32(q), _f32(proj), _f32(epsilon), **kernel)
    kf = core.performer_features(F, _f32(k), _f32(proj), _f32(epsilon), **kernel)
    if alpha is not None:
        qf = qf * _f32(alpha)
    out = core.linear_readout(F, qf, kf, _f32(v), causal=causal)
    return out.astype(v.dtype)


def performer_projection(key: jax.Array, num_features: int, head_dim: int, dtype: DTypeLike = jnp.float32) -> jax.Array:
    """Random projection ``(num_features, head_dim)``: stacked orthogonal blocks, every row of norm sqrt(d)."""
    blocks = []
    for sub in jax.random.split(key, -(-num_features // head_dim)):
        q, _ = jnp.linalg.qr(jax.random.normal(sub, (head_dim, head_dim), jnp.float32))
        blocks.append(q.T)
    return (jnp.concatenate(blocks, 0)[:num_features] * math.sqrt(head_dim)).astype(dtype)


@functools.lru_cache(maxsize=32)
def _rope_tables_np(head_dim: int, max_len: int, theta: float):
    cos, sin = core.rope_tables(head_dim, max_len, theta)
    return np.asarray(cos, np.float32), np.asarray(sin, np.float32)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """Float32 ``(cos, sin)`` tables ``(max_len, head_dim / 2)`` (computed in float64 by nmn.core)."""
    cos, sin = _rope_tables_np(head_dim, max_len, float(theta))
    return jnp.asarray(cos), jnp.asarray(sin)


def apply_rope(
    x: jax.Array, cos: jax.Array, sin: jax.Array, start: int | jax.Array = 0, *, interleaved: bool = True
) -> jax.Array:
    """Rotate ``x (B, L, H, D)`` at absolute positions ``start .. start + L - 1`` (``start`` may be traced)."""
    length = x.shape[1]
    c = lax.dynamic_slice_in_dim(cos, start, length, axis=0)
    s = lax.dynamic_slice_in_dim(sin, start, length, axis=0)
    return core.rope(F, _f32(x), c, s, interleaved=interleaved)


# ------------------------------------------------------------------------------------------------ embed, squash
def kv_cache_append(
    layer: str,
    k: jax.Array,
    v: jax.Array,
    cache_k: jax.Array,
    cache_v: jax.Array,
    index: jax.Array,
    *,
    mask: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Write ``k``, ``v`` (``(B, L, H, D)``) into the cache (``(B, T, H, D)``, ``T`` the capacity) at ``index``.

    Returns ``(cache_k, cache_v, mask, index + L)``: ``mask`` (``(B or 1, H or 1, L, T)``) now also hides, for
    the ``L`` queries at positions ``index ..``, the cache slots after each query's own position (Flax's decode
    mask). A concrete ``index`` past the capacity, or keys whose batch/heads/depth do not fit the cache, is a
    ``ValueError`` naming ``layer``.
    """
    length, capacity = k.shape[1], cache_k.shape[1]
    expect = (cache_k.shape[0], length, *cache_k.shape[2:])
    if tuple(k.shape) != expect or tuple(v.shape) != expect:
        raise ValueError(
            f"{layer}: decode: keys/values of shape {tuple(k.shape)}/{tuple(v.shape)} do not fit the cache "
            f"{tuple(cache_k.shape)} (expected {expect}; call init_cache with this batch size)"
        )
    try:
        if int(index) + length > capacity:
            raise ValueError(f"{layer}: cache full: position {int(index)} + {length} tokens > {capacity}")
    except jax.errors.ConcretizationTypeError:
        pass
    cache_k = lax.dynamic_update_slice(cache_k, k.astype(cache_k.dtype), (0, index, 0, 0))
    cache_v = lax.dynamic_update_slice(cache_v, v.astype(cache_v.dtype), (0, index, 0, 0))
    visible = (jnp.arange(capacity)[None, :] <= (index + jnp.arange(length))[:, None])[None, None]  # (1, 1, L, T)
    mask = visible if mask is None else jnp.logical_and(mask, visible)
    return cache_k, cache_v, mask, index + length


def kv_cache_step(
    layer: str,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    cache_k: jax.Array,
    cache_v: jax.Array,
    index: jax.Array,
    cos: jax.Array,
    sin: jax.Array,
    *,
    interleaved: bool,
    mask: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One decoding step of rotary attention with a KV cache (``(B, T, H, D)`` arrays, ``T`` the capacity).

    Rotates ``q`` and ``k`` (``(B, L, H, D)``) at absolute positions ``index ..``, then
    :func:`kv_cache_append`; returns ``(q, cache_k, cache_v, mask, index + L)``.
    """
    length, capacity = q.shape[1], cache_k.shape[1]
    try:
        if int(index) + length > capacity:
            raise ValueError(f"{layer}: cache full: position {int(index)} + {length} tokens > {capacity}")
    except jax.errors.ConcretizationTypeError:
        pass
    q = apply_rope(q, cos, sin, index, interleaved=interleaved)
    k = apply_rope(k, cos, sin, index, interleaved=interleaved)
    cache_k, cache_v, mask, index = kv_cache_append(layer, k, v, cache_k, cache_v, index, mask=mask)
    return q, cache_k, cache_v, mask, index


def yat_embed_attend(
    query: ArrayLike,
    embedding: jax.Array,
    alpha: ArrayLike | None = None,
    epsilon: ArrayLike = DEFAULT_EPSILON,
    *,
    spherical: bool = False,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Yat logits ``alpha (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + eps)``: ``(..., F)`` -> ``(..., V)``."""
    return yat_dense(query, embedding.T, None, alpha, epsilon, spherical=spherical, dtype=dtype)


def _check_n(n, name):
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
        raise ValueError(f"{name}: n must be a number > 0, got {n!r}")
    return float(n)


def _squash(fn, x, *args):
    # the named scope (metadata only, no runtime cost) lets the ONNX exporter write one nmn:: node for the call
    with jax.named_scope("nmnsquash|" + "|".join([fn.__name__, *map(repr, args)])):
        xf = jnp.asarray(x)
        out = promoted_dtype(xf)
        return fn(F, xf.astype(jnp.float32), *args).astype(out)


def softermax(x: ArrayLike, n: float = 1.0, epsilon: float = SOFTERMAX_EPSILON, axis: int = -1) -> jax.Array:
    """``x^n / (epsilon + sum x^n)`` along ``axis`` (intended for ``x >= 0``)."""
    return _squash(core.softermax, x, _check_n(n, "softermax"), float(epsilon), axis)


def softer_sigmoid(x: ArrayLike, n: float = 1.0, *, sharpness: float | None = None) -> jax.Array:
    """``x^n / (1 + x^n)``; ``sharpness`` is an accepted alias of ``n``."""
    return _squash(core.softer_sigmoid, x, _check_n(squash_power(n, sharpness, "softer_sigmoid"), "softer_sigmoid"))


def soft_tanh(x: ArrayLike, n: float = 1.0, *, sharpness: float | None = None) -> jax.Array:
    """``(x^n - 1) / (x^n + 1)``; ``sharpness`` is an accepted alias of ``n``."""
    return _squash(core.soft_tanh, x, _check_n(squash_power(n, sharpness, "soft_tanh"), "soft_tanh"))


def check_input(layer: str, x, rank: int | None, features: int | None, what: str) -> None:
    """``ValueError`` naming the layer, the expected input shape and the shape that came."""
    shape = tuple(getattr(x, "shape", ()))
    if rank is not None and len(shape) != rank:
        raise ValueError(f"{layer}: expected a rank-{rank} input {what}, got shape {shape}")
    if features is not None and (not shape or shape[-1] != features):
        raise ValueError(f"{layer}: expected an input {what} with last axis {features}, got shape {shape}")


def promote_arrays(args, /, *, dtype=None, inexact=True):
    """Flax ``promote_dtype`` replacement: cast ``args`` (None kept) to one dtype by JAX's standard lattice.

    Passed to the Flax projections inside the attention layers so that they also work under
    ``jax.numpy_dtype_promotion('strict')`` with float16/bfloat16 inputs and float32 parameters.
    """
    target = promoted_dtype(*[a for a in args if a is not None], dtype=dtype)
    return type(args)(None if a is None else jnp.asarray(a).astype(target) for a in args)


def promote_arrays_linen(*args, dtype=None, inexact=True):
    """:func:`promote_arrays` with Linen's calling convention (``promote_dtype(*args, dtype=...)``)."""
    return list(promote_arrays(tuple(args), dtype=dtype, inexact=inexact))
