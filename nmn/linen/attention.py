"""Linen ``MultiHeadYatAttention`` (alias ``MultiHeadAttention``) and ``RotaryYatAttention``.

Four ``nn.Dense`` projections named ``query``, ``key``, ``value``, ``out`` around the Yat attention of
:mod:`nmn.core.yat`; the performer projection lives in the ``'constants'`` collection and the rotary KV cache
in ``'cache'`` (Flax's decode idiom: ``init`` with ``decode=True`` on a full-length input, then ``apply`` one
step at a time with ``mutable=['cache']``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from nmn._jax.functional import (
    apply_rope,
    kv_cache_append,
    kv_cache_step,
    performer_attention,
    performer_projection,
    promote_arrays_linen,
    rope_tables,
)
from nmn._jax.functional import yat_attention as _yat_attention_op
from nmn._jax.random_features import RF_KEYWORDS, RF_PARAMS, layer_projection, random_feature_attention
from nmn.core.names import REFUSED_KEYWORDS
from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_THETA,
    check_performer,
    check_positive_int,
    mask_needs_head_axis,
    refuse_rotary_performer,
)
from nmn.core.spec import AttentionSpec, RopeSpec
from nmn.core.yat import performer_degree
from nmn.linen._ops import CONSTANTS, check_initializer

default_kernel_init = nn.initializers.xavier_normal()
default_bias_init = nn.initializers.zeros_init()


def _mask4(mask, layer):
    """A (B, Lq, Lk) mask is per batch element, broadcast over heads (``nmn.core.options.mask_needs_head_axis``)."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    return mask[:, None] if mask_needs_head_axis(mask.ndim, layer) else mask


class MultiHeadYatAttention(nn.Module):
    """Multi-head Yat attention: scores ``alpha (q.k)^2 / ((relu(|q-k|^2) + eps) sqrt(d))``, normalised.

    Attributes:
        num_heads: heads H. qkv_features: projected size (default: the query's features).
        out_features: output size (default: the query's features).
        use_bias (default True), use_alpha (default True; a parameter only under softmax: under 'l1', 'softermax'
        and the performer alpha cancels, so those layers have no alpha parameter (a ``constant_alpha`` is applied
        there and cancels too)),
        constant_alpha (``True`` -> sqrt(2), default None),
        epsilon (> 0, default 1e-5), spherical (default False), normalization (``'softmax'``, ``'l1'``,
        ``'softermax'``; default softmax), power (softermax, default 1.0), use_out_proj (default True),
        causal (default False), dropout_rate (attention weights, default 0.0; needs a ``'dropout'`` rng),
        deterministic (default None: must be given at call time when dropout is on),
        use_performer (linear-time spherical Yat-Performer, default False), num_features (default 256),
        performer_nmax (the performer's Maclaurin degree K, 2..64; default None: the degree rule of
        :func:`nmn.core.yat.performer_degree`), performer_bias (b >= 0 of the estimated score
        ``(t + b)^2 / (2 + eps - 2t)``, default 0.0),
        performer_kind (``'slay'`` default, the map above; ``'maclaurin'``: nmn 0.3's MAY, ``num_features`` random
        Maclaurin features of the degree-``performer_nmax`` truncation (None: 40); ``'radial'``: RAY, a degree-2
        sketch of ``(t + b)^2`` times radial random Fourier features; their frozen projections ``may_*`` /
        ``ray_*`` live in ``'constants'``, drawn from the ``'params'`` rng at ``init``; no alpha, no mask),
        performer_sketch_m, performer_num_radial, performer_radial_dim (RAY's sizes m = 128, J = 8, R = 64; only
        with ``performer_kind='radial'``),
        decode (default False: with True, as ``flax.linen.MultiHeadDotProductAttention``, ``init`` on a
        full-length input allocates ``cached_key``/``cached_value`` ``(B, L, H, D)`` and ``cache_index`` in the
        ``'cache'`` collection, and each ``apply(..., mutable=['cache'])`` appends its tokens and attends to every
        cached position up to each query's own),
        dtype, param_dtype, kernel_init (Xavier normal), bias_init (zeros),
        alpha_init (nmn 0.3's initializer ``(key, shape, dtype)`` of the ``alpha (1,)`` parameter; default None:
        ones; another one is an error where the layer has no alpha parameter, it cancels),
        normalize_qk (nmn 0.3's field, only False: True is a ``TypeError`` saying to use ``spherical=True``).

    Shape:
        ``inputs_q (B, Lq, E)``, ``inputs_k``/``inputs_v`` ``(B, Lk, E_k)``, ``mask`` bool
        ``(Lq, Lk)``, ``(B, Lq, Lk)`` (per batch element, the same for every head) or ``(B, H, Lq, Lk)``; output ``(B, Lq, out_features)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> attn = MultiHeadYatAttention(num_heads=2)
        >>> x = jnp.ones((1, 5, 8))
        >>> attn.apply(attn.init(jax.random.key(0), x), x).shape
        (1, 5, 8)
    """

    num_heads: int
    qkv_features: int | None = None
    out_features: int | None = None
    use_bias: bool = True
    use_alpha: bool = True
    constant_alpha: Any = None
    epsilon: float = DEFAULT_EPSILON
    spherical: bool = False
    normalization: str = "softmax"
    power: float = 1.0
    use_out_proj: bool = True
    causal: bool = False
    dropout_rate: float = 0.0
    deterministic: bool | None = None
    use_performer: bool = False
    num_features: int = PERFORMER_NUM_FEATURES
    performer_nmax: int | None = DEFAULTS["performer_nmax"]
    performer_bias: float = DEFAULTS["performer_bias"]
    performer_kind: str = DEFAULTS["performer_kind"]
    performer_sketch_m: int = DEFAULTS["performer_sketch_m"]
    performer_num_radial: int = DEFAULTS["performer_num_radial"]
    performer_radial_dim: int = DEFAULTS["performer_radial_dim"]
    decode: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    alpha_init: Callable | None = None
    normalize_qk: bool = False

    def __post_init__(self):
        self.yat_options()
        super().__post_init__()

    def yat_options(self) -> AttentionSpec:
        """Validate the options; return the resolved :class:`~nmn.core.spec.AttentionSpec`."""
        name = type(self).__name__
        if self.normalize_qk is not False:
            why = REFUSED_KEYWORDS["MultiHeadYatAttention"]["normalize_qk"]
            raise TypeError(f"{name}: normalize_qk={self.normalize_qk!r} (nmn 0.3) is not supported: {why}")
        check_initializer(self.alpha_init, "alpha_init", name)
        check_positive_int(self.num_heads, "num_heads", name)
        for key in ("qkv_features", "out_features"):
            if getattr(self, key) is not None:
                check_positive_int(getattr(self, key), key, name)
        if self.qkv_features is not None and self.qkv_features % self.num_heads:
            raise ValueError(
                f"{name}: qkv_features ({self.qkv_features}) must be divisible by num_heads ({self.num_heads})"
            )
        spec = AttentionSpec.build(
            name,
            use_bias=self.use_bias,
            use_alpha=self.use_alpha,
            constant_alpha=self.constant_alpha,
            epsilon=self.epsilon,
            spherical=self.spherical,
            normalization=self.normalization,
            power=self.power,
            use_out_proj=self.use_out_proj,
            causal=self.causal,
            dropout=self.dropout_rate,
            use_performer=self.use_performer,
            num_features=self.num_features,
            dropout_name="dropout_rate",
            performer_kind=self.performer_kind,
            performer_sketch_m=self.performer_sketch_m,
            performer_num_radial=self.performer_num_radial,
            performer_radial_dim=self.performer_radial_dim,
            performer_nmax=self.performer_nmax,
            performer_bias=self.performer_bias,
        )
        spec.refuse_alpha_init(self.alpha_init is not None)
        return spec

    def _dense(self, features, name):
        return nn.Dense(
            features,
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            promote_dtype=promote_arrays_linen,
            name=name,
        )

    def _check(self, x, what, features=None):
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 3 or (features is not None and shape[-1] != features):
            expect = f"(B, L, {features})" if features is not None else "(B, L, E)"
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expect}, got {shape}")

    def _project(self, inputs_q, inputs_k, inputs_v):
        qkv = self.qkv_features or inputs_q.shape[-1]
        if qkv % self.num_heads:
            raise ValueError(
                f"{type(self).__name__}: qkv_features ({qkv}) must be divisible by num_heads ({self.num_heads})"
            )
        head_dim = qkv // self.num_heads

        def heads(x, name):
            y = self._dense(qkv, name)(x)
            return y.reshape(*y.shape[:-1], self.num_heads, head_dim)

        return heads(inputs_q, "query"), heads(inputs_k, "key"), heads(inputs_v, "value"), qkv, head_dim

    def _alpha(self, opts):
        if opts.has_alpha:
            init = nn.initializers.ones if self.alpha_init is None else self.alpha_init
            return self.param("alpha", init, (1,), self.param_dtype)
        return opts.alpha_term()

    def _dropout_fn(self, deterministic):
        """The dropout of the attention weights (or of the performer's output, as the torch layer), or None."""
        if self.dropout_rate <= 0.0 or nn.merge_param("deterministic", self.deterministic, deterministic):
            return None
        drop = nn.Dropout(self.dropout_rate)
        return lambda x: drop(x, deterministic=False)

    def _attend(self, q, k, v, mask, deterministic, causal, opts, head_dim):
        alpha = self._alpha(opts)
        dropout = self._dropout_fn(deterministic)
        if self.use_performer:
            if mask is not None:
                raise ValueError(f"{type(self).__name__}: use_performer=True takes no mask (use causal=True)")
            if opts.performer_kind in RF_PARAMS:
                out = self._random_feature_attention(q, k, v, causal, opts, head_dim)
            else:
                out = self._slay_attention(q, k, v, alpha, causal, opts, head_dim)
            return out if dropout is None else dropout(out)
        return _yat_attention_op(
            q,
            k,
            v,
            mask,
            alpha,
            opts.epsilon,
            spherical=self.spherical,
            normalization=self.normalization,
            power=self.power,
            causal=causal,
            dropout=dropout,
        )

    def _slay_attention(self, q, k, v, alpha, causal, opts, head_dim):
        """The SLAY performer: its projection in ``'constants'`` (sampled once, at ``init``)."""
        proj = self.variable(
            CONSTANTS,
            "proj",
            lambda: performer_projection(self.make_rng("params"), self.num_features, head_dim, self.param_dtype),
        ).value
        nmax, bias = check_performer(self.performer_nmax, self.performer_bias, type(self).__name__)
        degree = performer_degree(self.num_features, head_dim, nmax)
        return performer_attention(q, k, v, proj, alpha, opts.epsilon, causal=causal, degree=degree, bias=bias)

    def _random_feature_attention(self, q, k, v, causal, opts, head_dim):
        """MAY / RAY: the frozen projections in ``'constants'`` (sampled once, at ``init``), core features and the
        linear readout."""
        kind, names = opts.performer_kind, RF_PARAMS[opts.performer_kind]
        if causal and q.shape[1] != k.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: a causal performer needs Lq == Lk, got {q.shape[1]} and {k.shape[1]}"
            )
        sampled = {}
        if not all(self.has_variable(CONSTANTS, n) for n in names):
            sizes = {key[len("performer_") :]: getattr(opts, key) for key in RF_KEYWORDS[1:]}
            nmax = opts.performer_nmax if kind == "maclaurin" else DEFAULTS["performer_maclaurin_nmax"]
            sampled = layer_projection(
                self.make_rng("params"), kind, head_dim, num_features=opts.num_features, nmax=nmax,
                bias=opts.performer_bias, epsilon=opts.epsilon, dtype=self.param_dtype, **sizes,
            )  # fmt: skip
        arrays = [self.variable(CONSTANTS, n, lambda n=n: sampled[n]).value for n in names]
        return random_feature_attention(kind, q, k, v, arrays, bias=opts.performer_bias, causal=causal)

    def _finish(self, out, qkv, features):
        out = out.reshape(*out.shape[:-2], qkv)
        if not self.use_out_proj:
            return out
        return self._dense(self.out_features or features, "out")(out)

    @nn.compact
    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_k: jax.Array | None = None,
        inputs_v: jax.Array | None = None,
        *,
        mask: ArrayLike | None = None,
        deterministic: bool | None = None,
    ) -> jax.Array:
        """Attend from ``inputs_q`` to ``inputs_k``/``inputs_v`` (default: self-attention)."""
        opts = self.yat_options()
        mask = _mask4(mask, type(self).__name__)
        inputs_k = inputs_q if inputs_k is None else inputs_k
        inputs_v = inputs_k if inputs_v is None else inputs_v
        self._check(inputs_q, "inputs_q")
        self._check(inputs_k, "inputs_k")
        self._check(inputs_v, "inputs_v", inputs_k.shape[-1])
        q, k, v, qkv, head_dim = self._project(inputs_q, inputs_k, inputs_v)
        causal = self.causal
        if self.decode:
            k, v, mask, causal = self._decode_step(q, k, v, mask)
        out = self._attend(q, k, v, mask, deterministic, causal, opts, head_dim)
        return self._finish(out, qkv, inputs_q.shape[-1])

    def _decode_step(self, q, k, v, mask):
        """Flax's decode idiom: at ``init`` create the cache from the full-length keys (attend as usual), then
        append each call's keys/values and return the whole cache with the decode mask (causal is then off)."""
        name = type(self).__name__
        if self.use_performer:
            raise ValueError(f"{name}: decode=True is not available with use_performer=True")
        initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        if not initialized:
            return k, v, mask, self.causal
        if q.shape[1] != k.shape[1]:
            raise ValueError(
                f"{name}: decode=True takes as many query as key tokens, got {q.shape[1]} and {k.shape[1]}"
            )
        cache_k, cache_v, mask, cache_index.value = kv_cache_append(
            name, k, v, cached_key.value, cached_value.value, cache_index.value, mask=mask
        )
        cached_key.value, cached_value.value = cache_k, cache_v
        return cache_k.astype(k.dtype), cache_v.astype(v.dtype), mask, False


MultiHeadAttention = MultiHeadYatAttention


class RotaryYatAttention(MultiHeadYatAttention):
    """Multi-head Yat self-attention with rotary embeddings of q and k at absolute positions.

    Attributes:
        As :class:`MultiHeadYatAttention` (no performer), plus max_seq_len (default 2048), theta (default
        10000.0), rope_style (``'interleaved'`` default, or ``'half'``) and decode (default False: with True,
        ``init`` allocates a KV cache the size of its input and each ``apply(..., mutable=['cache'])`` appends
        tokens, rotated at their absolute positions, so decoding equals the causal full pass).

    Shape:
        ``inputs (B, L, E)`` -> ``(B, L, out_features)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> attn = RotaryYatAttention(num_heads=2)
        >>> x = jnp.ones((1, 4, 8))
        >>> attn.apply(attn.init(jax.random.key(0), x), x).shape
        (1, 4, 8)
    """

    max_seq_len: int = ROPE_MAX_SEQ_LEN
    theta: float = ROPE_THETA
    rope_style: str = "interleaved"

    def rope_options(self, head_dim: int = 2) -> RopeSpec:
        """Validate the rotary options (``head_dim`` is known once the input is)."""
        return RopeSpec.build(
            type(self).__name__,
            head_dim,
            max_seq_len=self.max_seq_len,
            theta=self.theta,
            rope_style=self.rope_style,
            use_performer=self.use_performer,
        )

    def yat_options(self) -> AttentionSpec:
        self.rope_options()
        name = type(self).__name__
        refuse_rotary_performer(name, self.performer_nmax, self.performer_bias)
        for key in RF_KEYWORDS:
            if getattr(self, key) != DEFAULTS[key]:
                raise ValueError(
                    f"{name}: {key}={getattr(self, key)!r} has no effect here (no performer with rotary embeddings: "
                    "nmn::RotaryYatMultiHeadAttention has none); use MultiHeadYatAttention(use_performer=True, "
                    "performer_kind=...) with apply_rotary_emb on the queries and keys"
                )
        return super().yat_options()

    @nn.compact
    def __call__(
        self, inputs: jax.Array, *, mask: ArrayLike | None = None, deterministic: bool | None = None
    ) -> jax.Array:
        """Self-attention over ``inputs (B, L, E)`` (with ``decode=True``: append to the KV cache)."""
        name = type(self).__name__
        opts = self.yat_options()
        mask = _mask4(mask, name)
        self._check(inputs, "inputs")
        q, k, v, qkv, head_dim = self._project(inputs, inputs, inputs)
        interleaved = self.rope_options(head_dim).interleaved
        length = inputs.shape[1]
        cos, sin = rope_tables(head_dim, self.max_seq_len, self.theta)
        if length > self.max_seq_len:
            raise ValueError(f"{name}: sequence length {length} > max_seq_len {self.max_seq_len}")
        if not self.decode:
            q = apply_rope(q, cos, sin, 0, interleaved=interleaved)
            k = apply_rope(k, cos, sin, 0, interleaved=interleaved)
            return self._finish(
                self._attend(q, k, v, mask, deterministic, self.causal, opts, head_dim), qkv, inputs.shape[-1]
            )
        initialized = self.has_variable("cache", "cached_key")
        shape = (inputs.shape[0], length, self.num_heads, head_dim)
        cached_key = self.variable("cache", "cached_key", jnp.zeros, shape, jnp.float32)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, shape, v.dtype)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        if not initialized:  # init: allocate the cache from the full-length input, attend causally
            q = apply_rope(q, cos, sin, 0, interleaved=interleaved)
            k = apply_rope(k, cos, sin, 0, interleaved=interleaved)
            return self._finish(self._attend(q, k, v, mask, deterministic, True, opts, head_dim), qkv, inputs.shape[-1])
        q, cache_k, cache_v, mask, cache_index.value = kv_cache_step(
            name,
            q,
            k,
            v,
            cached_key.value,
            cached_value.value,
            cache_index.value,
            cos,
            sin,
            interleaved=interleaved,
            mask=mask,
        )
        cached_key.value, cached_value.value = cache_k, cache_v
        out = self._attend(q, cache_k, cache_v.astype(v.dtype), mask, deterministic, False, opts, head_dim)
        return self._finish(out, qkv, inputs.shape[-1])


# nmn 0.3 imported its functional attention helpers from here (`from nmn.linen.attention import yat_attention`);
# they live in nmn.linen.attention_helpers and nmn.linen.random_features (and at the package root) and are
# re-exported so pasted imports run.
from nmn.linen.attention_helpers import normalize_qk as normalize_qk  # noqa: E402
from nmn.linen.attention_helpers import yat_attention as yat_attention  # noqa: E402
from nmn.linen.attention_helpers import yat_attention_normalized as yat_attention_normalized  # noqa: E402
from nmn.linen.attention_helpers import yat_attention_weights as yat_attention_weights  # noqa: E402
from nmn.linen.random_features import create_maclaurin_projection as create_maclaurin_projection  # noqa: E402
from nmn.linen.random_features import create_radial_projection as create_radial_projection  # noqa: E402
from nmn.linen.random_features import create_yat_tp_projection as create_yat_tp_projection  # noqa: E402
from nmn.linen.random_features import linear_attention as linear_attention  # noqa: E402
from nmn.linen.random_features import linear_attention_readout as linear_attention_readout  # noqa: E402
from nmn.linen.random_features import maclaurin_coeffs as maclaurin_coeffs  # noqa: E402
from nmn.linen.random_features import maclaurin_features as maclaurin_features  # noqa: E402
from nmn.linen.random_features import maclaurin_yat_attention as maclaurin_yat_attention  # noqa: E402
from nmn.linen.random_features import radial_features as radial_features  # noqa: E402
from nmn.linen.random_features import radial_yat_attention as radial_yat_attention  # noqa: E402
from nmn.linen.random_features import spherical_kappa as spherical_kappa  # noqa: E402
from nmn.linen.random_features import yat_tp_attention as yat_tp_attention  # noqa: E402
from nmn.linen.random_features import yat_tp_features as yat_tp_features  # noqa: E402
