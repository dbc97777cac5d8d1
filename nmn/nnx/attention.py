"""``MultiHeadYatAttention`` (alias ``MultiHeadAttention``) and ``RotaryYatAttention`` for Flax NNX.

Four plain affine projections (``query``, ``key``, ``value``, ``out``: ``nnx.Linear``, kernel ``(in, out)``)
around the Yat attention of :mod:`nmn.core.yat`; ``use_performer=True`` swaps the quadratic attention for the
linear-time spherical Yat-Performer whose random projection ``proj (num_features, head_dim)`` is drawn once
at construction and kept as a :class:`~nmn.nnx._ops.Buffer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer, Shape
from jax.typing import ArrayLike, DTypeLike

from nmn._jax.functional import (
    apply_rope,
    kv_cache_append,
    kv_cache_step,
    performer_attention,
    performer_projection,
    promote_arrays,
    rope_tables,
)
from nmn._jax.functional import yat_attention as _yat_attention_op
from nmn._jax.random_features import (
    RF_KEYWORDS,
    RF_PARAMS,
    layer_projection,
    precision_context,
    random_feature_attention,
)
from nmn.core.layer_options import refuse_value
from nmn.core.names import refuse_keywords
from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_THETA,
    ROTARY_PERFORMER_V03,
    check_performer,
    check_positive_int,
    mask_needs_head_axis,
    refuse_rotary_performer,
    refuse_rotary_performer_sizes,
)
from nmn.core.spec import AttentionSpec, RopeSpec, check_heads
from nmn.core.yat import performer_degree
from nmn.nnx._ops import Buffer
from nmn.nnx.attention_helpers import yat_attention

default_kernel_init = nnx.initializers.xavier_normal()
default_bias_init = nnx.initializers.zeros_init()


def _mask4(mask, layer):
    """A (B, Lq, Lk) mask is per batch element, broadcast over heads (``nmn.core.options.mask_needs_head_axis``)."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    return mask[:, None] if mask_needs_head_axis(mask.ndim, layer) else mask


def _check_flax_hooks(layer, attention_fn, qkv_dot_general, out_dot_general, qkv_cls, out_cls):
    """Flax's attention and contraction hooks, accepted only at the values the layer's ONNX function computes."""
    from jax import lax

    refuse_value(layer, "attention_fn", attention_fn, (None, yat_attention))
    refuse_value(layer, "qkv_dot_general", qkv_dot_general, (None, lax.dot_general))
    refuse_value(layer, "out_dot_general", out_dot_general, (None, lax.dot_general))
    refuse_value(layer, "qkv_dot_general_cls", qkv_cls, (None,))
    refuse_value(layer, "out_dot_general_cls", out_cls, (None,))


class MultiHeadYatAttention(nnx.Module):
    """Multi-head Yat attention: Yat scores ``alpha (q.k)^2 / ((relu(|q-k|^2) + eps) sqrt(d))``, normalised.

    Args:
        num_heads: number of heads H (must divide ``qkv_features``).
        in_features: query input features E.
        qkv_features: projected size (default ``in_features``); head_dim = qkv_features / H.
        out_features: output size of the out projection (default ``in_features``).
        use_bias: biases on the four projections (default True).
        use_alpha: learnable score scale ``alpha (1,)`` (default True), a parameter
            only under softmax: under 'l1', 'softermax' and the performer alpha cancels, so those layers have no
            alpha parameter (a ``constant_alpha`` is applied there and cancels too);
            constant_alpha: ``True`` -> sqrt(2),
            or a number (default None).
        epsilon: > 0 (default 1e-5). spherical: unit q and k, distance ``2 - 2 cos`` (default False).
        normalization: ``'softmax'`` (default), ``'l1'`` or ``'softermax'`` (with ``power``, default 1.0).
        use_out_proj: apply the output projection (default True); without it the output has qkv_features.
        causal: causal mask (default False). dropout_rate: dropout on the attention weights (default 0.0).
        use_performer: linear-time spherical Yat-Performer instead of the quadratic attention (default False).
        num_features: random features of the performer (default 256).
        performer_nmax: the performer's Maclaurin degree K, an int from 2 to 64 (default None: the degree rule
            of :func:`nmn.core.yat.performer_degree`, which grows with ``num_features``).
        performer_bias: b >= 0 of the performer's estimated score ``(t + b)^2 / (2 + eps - 2t)`` (default 0.0).
        performer_kind: the performer's random features: ``'slay'`` (default, the map above), ``'maclaurin'``
            (nmn 0.3's MAY: ``num_features`` random Maclaurin features of the degree-``performer_nmax`` truncation
            (None: 40), :func:`nmn.core.random_features.maclaurin_features`) or ``'radial'`` (RAY: a degree-2
            sketch of ``(t + b)^2`` times radial random Fourier features,
            :func:`nmn.core.random_features.radial_features`). The MAY / RAY projections are frozen
            :class:`~nmn.nnx._ops.Buffer` variables (``may_*`` / ``ray_*``: in ``nnx.state``, not ``nnx.Param``), drawn
            from the ``params`` stream at construction; no alpha (it cancels), no mask.
        performer_sketch_m, performer_num_radial, performer_radial_dim: RAY's sketch width m (128), Gauss-Laguerre
            nodes J (8) and Fourier features per node R (64); only with ``performer_kind='radial'``.
        decode: default of the call's ``decode`` (default None: False); decoding needs :meth:`init_cache`.
        deterministic: Flax's default of the call's ``deterministic`` (default None: the dropout's own flag, which
            ``model.eval()`` / ``model.train()`` set).
        alpha_init: a Flax initializer ``(key, shape, dtype)`` of the ``alpha (1,)`` parameter (default ones, as
            nmn 0.3.5, drawing no key); another one is an error where the layer has no alpha parameter (it cancels).
        precision: Flax's ``precision`` of the four projections' contractions and of the attention's
            (``jax.default_matmul_precision``; default None).
        broadcast_dropout: as Flax's ``MultiHeadAttention`` (default True): one dropout mask of the attention
            weights ``(Lq, Lk)`` shared by the batch and the heads (the performer's output dropout shares its mask
            over the batch); False draws every weight's own.
        out_kernel_init, out_bias_init: initializers of the out projection (default None: ``kernel_init`` /
            ``bias_init``), as Flax.
        attention_fn: Flax's attention hook, accepted only as nmn's own ``yat_attention`` (the default, as in
            nmn 0.3.5) or None: another function would not be what the exported ``nmn::YatMultiHeadAttention`` computes, so
            it is a ``ValueError`` saying so (:data:`nmn.core.names.REFUSED_VALUES`).
        qkv_dot_general, out_dot_general: accepted as None or ``jax.lax.dot_general``; qkv_dot_general_cls,
            out_dot_general_cls: only None (deprecated in Flax and nmn 0.3.5; a custom contraction is refused).
        dtype, param_dtype, kernel_init (Xavier normal), bias_init (zeros), rngs: as in Flax.

    Shape:
        ``inputs_q (B, Lq, E)``, ``inputs_k``/``inputs_v`` ``(B, Lk, E_k)`` (default: the query),
        ``mask`` bool (True = attend) ``(Lq, Lk)``, ``(B, Lq, Lk)`` (per batch element, the same for every head) or ``(B, H, Lq, Lk)``;
        output ``(B, Lq, out_features)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> attn = MultiHeadYatAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
        >>> attn(jnp.ones((1, 5, 8))).shape
        (1, 5, 8)
        >>> attn.init_cache((1, 5, 8))  # Flax's decode idiom: then one token per call
        >>> attn(jnp.ones((1, 1, 8)), decode=True).shape, int(attn.cache_index[...])
        ((1, 1, 8), 1)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        qkv_features: int | None = None,
        out_features: int | None = None,
        *,
        in_kv_features: int | None = None,
        use_bias: bool = True,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        spherical: bool = False,
        normalization: str = "softmax",
        power: float = 1.0,
        use_out_proj: bool = True,
        causal: bool = False,
        dropout_rate: float = 0.0,
        use_performer: bool = False,
        num_features: int = PERFORMER_NUM_FEATURES,
        performer_nmax: int | None = DEFAULTS["performer_nmax"],
        performer_bias: float = DEFAULTS["performer_bias"],
        performer_kind: str = DEFAULTS["performer_kind"],
        performer_sketch_m: int = DEFAULTS["performer_sketch_m"],
        performer_num_radial: int = DEFAULTS["performer_num_radial"],
        performer_radial_dim: int = DEFAULTS["performer_radial_dim"],
        decode: bool | None = None,
        deterministic: bool | None = None,
        alpha_init: Initializer = nnx.initializers.ones,
        precision: Any = None,
        broadcast_dropout: bool = True,
        attention_fn: Callable[..., jax.Array] | None = yat_attention,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        out_kernel_init: Initializer | None = None,
        out_bias_init: Initializer | None = None,
        qkv_dot_general: Any = None,
        out_dot_general: Any = None,
        qkv_dot_general_cls: Any = None,
        out_dot_general_cls: Any = None,
        rngs: nnx.Rngs,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        name = type(self).__name__
        _check_flax_hooks(
            name, attention_fn, qkv_dot_general, out_dot_general, qkv_dot_general_cls, out_dot_general_cls
        )
        if not isinstance(broadcast_dropout, bool):
            raise TypeError(f"{name}: broadcast_dropout must be True or False, got {broadcast_dropout!r}")
        self.broadcast_dropout = broadcast_dropout
        self.num_heads = check_positive_int(num_heads, "num_heads", name)
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.qkv_features = check_positive_int(qkv_features or in_features, "qkv_features", name)
        self.out_features = check_positive_int(out_features or in_features, "out_features", name)
        self.in_kv_features = check_positive_int(in_kv_features or in_features, "in_kv_features", name)
        self.head_dim = check_heads(self.qkv_features, self.num_heads, name, "qkv_features")
        precision_context(name, precision)  # None, a jax.lax.Precision or its name (else a ValueError naming the layer)
        self.opts = a = AttentionSpec.build(
            name,
            use_bias=use_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            spherical=spherical,
            normalization=normalization,
            power=power,
            use_out_proj=use_out_proj,
            causal=causal,
            dropout=dropout_rate,
            use_performer=use_performer,
            num_features=num_features,
            dropout_name="dropout_rate",
            performer_kind=performer_kind,
            performer_sketch_m=performer_sketch_m,
            performer_num_radial=performer_num_radial,
            performer_radial_dim=performer_radial_dim,
            performer_nmax=performer_nmax,
            performer_bias=performer_bias,
        )
        a.set_attributes(self, dropout_name="dropout_rate")  # also performer_kind and the RAY sizes
        self.performer_bias = a.performer_bias
        slay = self.use_performer and a.performer_kind == "slay"
        if a.performer_kind == "maclaurin":  # a.performer_nmax: MAY's resolved degree; the attribute keeps the given
            self.performer_nmax, self.performer_degree = performer_nmax, a.performer_nmax
        else:
            self.performer_nmax = check_performer(performer_nmax, performer_bias, name)[0]
            self.performer_degree = (
                performer_degree(self.num_features, self.head_dim, self.performer_nmax) if slay else None
            )
        self.dtype, self.param_dtype = dtype, param_dtype

        def linear(n_in, n_out, kernel_init=kernel_init, bias_init=bias_init):
            return nnx.Linear(
                n_in,
                n_out,
                use_bias=self.use_bias,
                dtype=dtype,
                param_dtype=param_dtype,
                kernel_init=kernel_init,
                bias_init=bias_init,
                precision=precision,
                promote_dtype=promote_arrays,
                rngs=rngs,
            )

        self.query = linear(self.in_features, self.qkv_features)
        self.key = linear(self.in_kv_features, self.qkv_features)
        self.value = linear(self.in_kv_features, self.qkv_features)
        if self.use_out_proj:
            self.out = linear(
                self.qkv_features,
                self.out_features,
                kernel_init=kernel_init if out_kernel_init is None else out_kernel_init,
                bias_init=bias_init if out_bias_init is None else out_bias_init,
            )
        else:
            self.out = nnx.data(None)
        ones = alpha_init is nnx.initializers.ones  # the default: no key drawn, the other parameters unchanged
        self.opts.refuse_alpha_init(not ones)
        if not self.opts.has_alpha:
            self.alpha = nnx.data(None)
        elif ones:
            self.alpha = nnx.Param(jnp.ones((1,), param_dtype))
        else:
            self.alpha = nnx.Param(jnp.asarray(alpha_init(rngs.params(), (1,), param_dtype), param_dtype))
        self.precision, self.deterministic = precision, deterministic
        if slay:
            self.proj = Buffer(performer_projection(rngs.params(), self.num_features, self.head_dim, param_dtype))
        else:
            self.proj = nnx.data(None)
        if self.use_performer and self.performer_kind in RF_PARAMS:  # MAY / RAY: frozen, from the params stream
            sizes = {k[len("performer_") :]: getattr(self, k) for k in RF_KEYWORDS[1:]}
            arrays = layer_projection(
                rngs.params(),
                self.performer_kind,
                self.head_dim,
                num_features=self.num_features,
                nmax=self.performer_degree or DEFAULTS["performer_maclaurin_nmax"],
                bias=self.performer_bias,
                epsilon=self.epsilon,
                dtype=param_dtype,
                **sizes,
            )
            for key, array in arrays.items():
                setattr(self, key, Buffer(array))
        if self.dropout_rate > 0:
            # Flax's broadcast_dropout: the weights (B, H, Lq, Lk) share one mask over B and H; the performer's
            # output (B, Lq, H, D) over B
            shared = ((0,) if self.use_performer else (0, 1)) if broadcast_dropout else ()
            self.dropout = nnx.Dropout(self.dropout_rate, broadcast_dims=shared, rngs=rngs)
        else:
            self.dropout = nnx.data(None)
        self.decode = decode
        self.cached_key = nnx.data(None)
        self.cached_value = nnx.data(None)
        self.cache_index = nnx.data(None)

    def init_cache(self, input_shape: Shape, dtype: DTypeLike = jnp.float32) -> None:
        """Allocate an empty KV cache for decoding inputs of shape ``(B, max_length, in_features)``.

        As :meth:`flax.nnx.MultiHeadAttention.init_cache`: ``cached_key``/``cached_value``
        ``(B, max_length, num_heads, head_dim)`` and ``cache_index`` (int32 0) become ``nnx.Cache`` variables;
        then every call with ``decode=True`` (or the constructor's ``decode=True``) appends its tokens.
        """
        name = type(self).__name__
        if self.use_performer:
            raise ValueError(f"{name}: decode/init_cache is not available with use_performer=True")
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3:
            raise ValueError(f"{name}: init_cache expects input_shape (B, max_length, features), got {shape}")
        self._check_cache_length(shape[1])
        cache_shape = (shape[0], shape[1], self.num_heads, self.head_dim)
        self.cached_key = nnx.Cache(jnp.zeros(cache_shape, dtype))
        self.cached_value = nnx.Cache(jnp.zeros(cache_shape, dtype))
        self.cache_index = nnx.Cache(jnp.array(0, jnp.int32))

    def _check_cache_length(self, length: int) -> None:
        pass

    def _decoding(self, decode: bool | None) -> bool:
        decode = self.decode if decode is None else decode
        if decode and self.cache_index is None:
            raise ValueError(f"{type(self).__name__}: decode=True needs init_cache(input_shape) first")
        return bool(decode)

    # -- pieces shared with RotaryYatAttention
    def _heads(self, x, proj):
        y = proj(x)
        return y.reshape(*y.shape[:-1], self.num_heads, self.head_dim)

    def _alpha(self):
        return self.opts.alpha_term(None if self.alpha is None else self.alpha[...])

    def _check(self, x, features, what):
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 3 or shape[-1] != features:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape (B, L, {features}), got {shape}")

    def _dropout_fn(self, deterministic):
        # None when dropout is off (rate 0, or deterministic here or by model.eval()): the tiled paths then apply
        off = deterministic if deterministic is not None else getattr(self.dropout, "deterministic", False)
        if self.dropout_rate == 0.0 or off:
            return None
        return lambda w: self.dropout(w, deterministic=deterministic)

    def _finish(self, out):
        out = out.reshape(*out.shape[:-2], self.qkv_features)
        return self.out(out) if self.use_out_proj else out

    def _attend(self, q, k, v, mask, deterministic, causal):
        deterministic = self.deterministic if deterministic is None else deterministic
        if self.precision is None:
            return self._attend_at(q, k, v, mask, deterministic, causal)
        with precision_context(type(self).__name__, self.precision):
            return self._attend_at(q, k, v, mask, deterministic, causal)

    def _attend_at(self, q, k, v, mask, deterministic, causal):
        if self.use_performer:
            out = self._performer(q, k, v, mask, causal)
            drop = self._dropout_fn(deterministic)  # on the output, as the torch layer does
            return out if drop is None else drop(out)
        return _yat_attention_op(
            q,
            k,
            v,
            mask,
            self._alpha(),
            self.opts.epsilon,
            spherical=self.spherical,
            normalization=self.normalization,
            power=self.power,
            causal=causal,
            dropout=self._dropout_fn(deterministic),
        )

    def _performer(self, q, k, v, mask, causal):
        """The linear-time attention: MAY / RAY with their frozen projections, or the SLAY performer."""
        if mask is not None:
            raise ValueError(f"{type(self).__name__}: use_performer=True takes no mask (use causal=True)")
        if self.performer_kind in RF_PARAMS:
            if causal and q.shape[1] != k.shape[1]:
                raise ValueError(
                    f"{type(self).__name__}: a causal performer needs Lq == Lk, got {q.shape[1]} and {k.shape[1]}"
                )
            arrays = [getattr(self, n)[...] for n in RF_PARAMS[self.performer_kind]]
            return random_feature_attention(
                self.performer_kind, q, k, v, arrays, bias=self.performer_bias, causal=causal
            )
        return performer_attention(
            q,
            k,
            v,
            self.proj[...],
            self._alpha(),
            self.opts.epsilon,
            causal=causal,
            degree=self.performer_degree,
            bias=self.performer_bias,
        )

    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_k: jax.Array | None = None,
        inputs_v: jax.Array | None = None,
        *,
        mask: ArrayLike | None = None,
        deterministic: bool | None = None,
        decode: bool | None = None,
    ) -> jax.Array:
        """Attend from ``inputs_q`` to ``inputs_k``/``inputs_v`` (default: self-attention).

        ``decode`` (default: the constructor's): append this call's keys and values to the cache of
        :meth:`init_cache` and attend to every cached position up to each query's own, as Flax's
        ``MultiHeadAttention`` does (one or more tokens per call); token by token this equals the causal pass.
        """
        inputs_k = inputs_q if inputs_k is None else inputs_k
        inputs_v = inputs_k if inputs_v is None else inputs_v
        self._check(inputs_q, self.in_features, "inputs_q")
        self._check(inputs_k, self.in_kv_features, "inputs_k")
        self._check(inputs_v, self.in_kv_features, "inputs_v")
        q = self._heads(inputs_q, self.query)
        k = self._heads(inputs_k, self.key)
        v = self._heads(inputs_v, self.value)
        mask = _mask4(mask, type(self).__name__)
        if not self._decoding(decode):
            return self._finish(self._attend(q, k, v, mask, deterministic, self.causal))
        if q.shape[1] != k.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: decode=True takes as many query as key tokens, got {q.shape[1]} and {k.shape[1]}"
            )
        cache_k, cache_v, mask, self.cache_index[...] = kv_cache_append(
            type(self).__name__,
            k,
            v,
            self.cached_key[...],
            self.cached_value[...],
            self.cache_index[...],
            mask=mask,
        )
        self.cached_key[...] = cache_k
        self.cached_value[...] = cache_v
        out = self._attend(q, cache_k.astype(k.dtype), cache_v.astype(v.dtype), mask, deterministic, False)
        return self._finish(out)


MultiHeadAttention = MultiHeadYatAttention


def _rotary_in_features(layer, num_heads, in_features, embed_dim):
    """``in_features`` from it or nmn 0.3.5's ``embed_dim``; nmn 0.3.5's positional order is a loud error."""
    if in_features is None and embed_dim is None:
        raise TypeError(f"{layer}: missing in_features (nmn 0.3.5 called it embed_dim): give one of them")
    if in_features is not None and embed_dim is not None and in_features != embed_dim:
        raise ValueError(
            f"{layer}: in_features={in_features!r} and embed_dim={embed_dim!r} disagree (embed_dim is nmn 0.3.5's "
            "name of in_features); give one"
        )
    in_features = embed_dim if in_features is None else in_features
    if isinstance(num_heads, int) and isinstance(in_features, int) and 0 < in_features < num_heads:
        raise ValueError(
            f"{layer}: num_heads={num_heads} > in_features={in_features}: nmn 0.3.5's RotaryYatAttention took "
            "(embed_dim, num_heads) positionally, nmn takes Flax's (num_heads, in_features); write "
            f"RotaryYatAttention(num_heads={in_features}, in_features={num_heads}, ...) or "
            f"RotaryYatAttention(embed_dim={num_heads}, num_heads={in_features}, ...)"
        )
    return in_features


class RotaryYatAttention(MultiHeadYatAttention):
    """Multi-head Yat self-attention with rotary position embeddings of q and k at absolute positions.

    Args:
        num_heads, in_features, qkv_features, out_features: as :class:`MultiHeadYatAttention`
            (head_dim must be even). nmn 0.3.5 took ``(embed_dim, num_heads)`` positionally; nmn takes Flax's
            order ``(num_heads, in_features)``, and a pasted ``RotaryYatAttention(512, 8)`` (512 heads of 8
            features) is a ``ValueError`` that says so.
        embed_dim: nmn 0.3.5's name of ``in_features`` (give one of them, or both equal).
        max_seq_len: longest position (default 2048). theta: RoPE base (default 10000.0).
        rope_style: ``'interleaved'`` pairs ``(x[2i], x[2i+1])`` (default) or ``'half'`` (``x[i], x[i + d/2]``).
        Other keyword arguments as :class:`MultiHeadYatAttention` (``alpha_init``, ``precision``,
        ``broadcast_dropout``, ``deterministic``, ``out_kernel_init``, ``out_bias_init`` included);
        ``use_performer``, ``performer_nmax``, ``performer_bias``, ``performer_kind``, the RAY sizes and nmn
        0.3.5's rotary-performer sizes ``num_anchor_features`` (16), ``num_prf_features`` (8), ``num_quad_nodes``
        (1), ``performer_num_features`` (256), ``performer_normalize`` (True) are taken as nmn 0.3.5 took them but
        only at their defaults: there is no performer with rotary embeddings (other values raise ``ValueError``
        saying so, :func:`nmn.core.options.refuse_rotary_performer_sizes`).

    Decoding: ``init_cache((B, max_length, in_features))`` then call with ``decode=True`` one or more tokens
    at a time; token ``t`` is rotated at its absolute position, so decoding equals the causal full pass.

    Shape:
        ``inputs (B, L, in_features)`` -> ``(B, L, out_features)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> attn = RotaryYatAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
        >>> attn(jnp.ones((1, 4, 8))).shape
        (1, 4, 8)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int | None = None,
        qkv_features: int | None = None,
        out_features: int | None = None,
        *,
        embed_dim: int | None = None,
        max_seq_len: int = ROPE_MAX_SEQ_LEN,
        theta: float = ROPE_THETA,
        rope_style: str = "interleaved",
        in_kv_features: int | None = None,
        use_bias: bool = True,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        spherical: bool = False,
        normalization: str = "softmax",
        power: float = 1.0,
        use_out_proj: bool = True,
        causal: bool = False,
        dropout_rate: float = 0.0,
        use_performer: bool = False,
        num_features: int = PERFORMER_NUM_FEATURES,
        performer_nmax: int | None = None,
        performer_bias: float = DEFAULTS["performer_bias"],
        performer_kind: str = DEFAULTS["performer_kind"],
        performer_sketch_m: int = DEFAULTS["performer_sketch_m"],
        performer_num_radial: int = DEFAULTS["performer_num_radial"],
        performer_radial_dim: int = DEFAULTS["performer_radial_dim"],
        num_anchor_features: int = ROTARY_PERFORMER_V03["num_anchor_features"],
        num_prf_features: int = ROTARY_PERFORMER_V03["num_prf_features"],
        num_quad_nodes: int = ROTARY_PERFORMER_V03["num_quad_nodes"],
        performer_num_features: int = ROTARY_PERFORMER_V03["performer_num_features"],
        performer_normalize: bool = ROTARY_PERFORMER_V03["performer_normalize"],
        decode: bool | None = None,
        deterministic: bool | None = None,
        alpha_init: Initializer = nnx.initializers.ones,
        precision: Any = None,
        broadcast_dropout: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        out_kernel_init: Initializer | None = None,
        out_bias_init: Initializer | None = None,
        rngs: nnx.Rngs,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        name = type(self).__name__
        in_features = _rotary_in_features(name, num_heads, in_features, embed_dim)
        refuse_rotary_performer(name, performer_nmax, performer_bias)
        refuse_rotary_performer_sizes(
            name,
            num_anchor_features=num_anchor_features,
            num_prf_features=num_prf_features,
            num_quad_nodes=num_quad_nodes,
            performer_num_features=performer_num_features,
            performer_normalize=performer_normalize,
        )
        kinds = (performer_kind, performer_sketch_m, performer_num_radial, performer_radial_dim)
        for key, value in zip(RF_KEYWORDS, kinds):
            if value != DEFAULTS[key]:
                raise ValueError(
                    f"{name}: {key}={value!r} has no effect here (no performer with rotary embeddings: "
                    "nmn::RotaryYatMultiHeadAttention has none); use MultiHeadYatAttention(use_performer=True, "
                    "performer_kind=...) with apply_rotary_emb on the queries and keys"
                )
        head_dim = check_heads(qkv_features or in_features, num_heads, name, "qkv_features")
        self.rope = rope = RopeSpec.build(
            name,
            head_dim,
            max_seq_len=max_seq_len,
            theta=theta,
            rope_style=rope_style,
            use_performer=use_performer,
        )
        super().__init__(
            num_heads,
            in_features,
            qkv_features,
            out_features,
            in_kv_features=in_kv_features,
            use_bias=use_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            spherical=spherical,
            normalization=normalization,
            power=power,
            use_out_proj=use_out_proj,
            causal=causal,
            dropout_rate=dropout_rate,
            use_performer=use_performer,
            num_features=num_features,
            decode=decode,
            deterministic=deterministic,
            alpha_init=alpha_init,
            precision=precision,
            broadcast_dropout=broadcast_dropout,
            dtype=dtype,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            bias_init=bias_init,
            out_kernel_init=out_kernel_init,
            out_bias_init=out_bias_init,
            rngs=rngs,
        )
        self.max_seq_len, self.theta, self.rope_style = rope.max_seq_len, rope.theta, rope.rope_style

    def _check_cache_length(self, length: int) -> None:
        if length > self.max_seq_len:
            raise ValueError(f"{type(self).__name__}: cache length {length} > max_seq_len {self.max_seq_len}")

    def __call__(
        self,
        inputs: jax.Array,
        *,
        mask: ArrayLike | None = None,
        deterministic: bool | None = None,
        decode: bool | None = None,
    ) -> jax.Array:
        """Self-attention over ``inputs (B, L, in_features)``; ``decode=True`` appends to the KV cache."""
        name = type(self).__name__
        mask = _mask4(mask, name)
        self._check(inputs, self.in_features, "inputs")
        length = inputs.shape[1]
        cos, sin = rope_tables(self.head_dim, self.max_seq_len, self.theta)
        interleaved = self.rope.interleaved
        q = self._heads(inputs, self.query)
        k = self._heads(inputs, self.key)
        v = self._heads(inputs, self.value)
        if not self._decoding(decode):
            if length > self.max_seq_len:
                raise ValueError(f"{name}: sequence length {length} > max_seq_len {self.max_seq_len}")
            q = apply_rope(q, cos, sin, 0, interleaved=interleaved)
            k = apply_rope(k, cos, sin, 0, interleaved=interleaved)
            return self._finish(self._attend(q, k, v, mask, deterministic, self.causal))
        q, cache_k, cache_v, mask, self.cache_index[...] = kv_cache_step(
            name,
            q,
            k,
            v,
            self.cached_key[...],
            self.cached_value[...],
            self.cache_index[...],
            cos,
            sin,
            interleaved=interleaved,
            mask=mask,
        )
        self.cached_key[...] = cache_k
        self.cached_value[...] = cache_v
        out = self._attend(q, cache_k, cache_v.astype(v.dtype), mask, deterministic, False)
        return self._finish(out)


# nmn 0.3 imported its functional attention helpers from here (`from nmn.nnx.attention import yat_attention`);
# they live in nmn.nnx.attention_helpers and nmn.nnx.random_features (and at the package root) and are
# re-exported so pasted imports run.
from nmn.nnx.attention_helpers import normalize_qk as normalize_qk  # noqa: E402
from nmn.nnx.attention_helpers import yat_attention_normalized as yat_attention_normalized  # noqa: E402
from nmn.nnx.attention_helpers import yat_attention_weights as yat_attention_weights  # noqa: E402
from nmn.nnx.random_features import create_maclaurin_projection as create_maclaurin_projection  # noqa: E402
from nmn.nnx.random_features import create_radial_projection as create_radial_projection  # noqa: E402
from nmn.nnx.random_features import create_yat_tp_projection as create_yat_tp_projection  # noqa: E402
from nmn.nnx.random_features import linear_attention as linear_attention  # noqa: E402
from nmn.nnx.random_features import linear_attention_readout as linear_attention_readout  # noqa: E402
from nmn.nnx.random_features import maclaurin_coeffs as maclaurin_coeffs  # noqa: E402
from nmn.nnx.random_features import maclaurin_features as maclaurin_features  # noqa: E402
from nmn.nnx.random_features import maclaurin_yat_attention as maclaurin_yat_attention  # noqa: E402
from nmn.nnx.random_features import radial_features as radial_features  # noqa: E402
from nmn.nnx.random_features import radial_yat_attention as radial_yat_attention  # noqa: E402
from nmn.nnx.random_features import spherical_kappa as spherical_kappa  # noqa: E402
from nmn.nnx.random_features import yat_tp_attention as yat_tp_attention  # noqa: E402
from nmn.nnx.random_features import yat_tp_features as yat_tp_features  # noqa: E402
