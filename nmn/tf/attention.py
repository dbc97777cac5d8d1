"""TensorFlow ``MultiHeadYatAttention`` and ``RotaryYatAttention`` (``tf.Module``)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from nmn._tfkeras.attention import (
    ALL_RF_PARAMS,
    attend_heads,
    cache_shape,
    check_cache_room,
    performer_projection,
    random_feature_arrays,
    random_feature_kind,
    refuse_performer,
    rope_slices,
    set_attention_options,
    set_rope_options,
)
from nmn.core.names import refuse_keywords
from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_THETA,
    mask_needs_head_axis,
)
from nmn.tf import functional
from nmn.tf._ops import F, TensorLike, alpha_value, glorot_normal, layer_label

__all__ = [
    "MultiHeadYatAttention",
    "RotaryYatAttention",
    "performer_projection",
    "maclaurin_coeffs",
    "create_maclaurin_projection",
    "maclaurin_features",
    "maclaurin_yat_attention",
    "create_radial_projection",
    "radial_features",
    "radial_yat_attention",
    "create_yat_tp_projection",
    "yat_tp_features",
    "yat_tp_attention",
    "spherical_kappa",
    "linear_attention",
    "linear_attention_readout",
]


def _heads(x, num_heads):
    shape = tf.shape(x)
    return tf.reshape(x, (shape[0], shape[1], num_heads, x.shape[-1] // num_heads))


def _merge(x):
    shape = tf.shape(x)
    return tf.reshape(x, (shape[0], shape[1], x.shape[-2] * x.shape[-1]))


def _tf_seed():
    """An int seed for the random-feature samplers drawn with ``tf.random`` (``tf.random.set_seed`` makes it
    reproducible)."""
    return int(tf.random.uniform((), 0, 2**31 - 1, dtype=tf.int64).numpy())


class MultiHeadYatAttention(tf.Module):
    """Multi-head Yat attention: four affine projections around ``softmax(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d)))``.

    The score is ``alpha * (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + eps) * sqrt(head_dim))``, normalised over
    the keys; with ``use_performer=True`` the linear-time spherical Yat-Performer replaces it. Variables are
    created on the first call.

    Args:
        embed_dim: model width ``E``. num_heads: ``E`` must be divisible by it.
        dropout: rate on the attention weights when ``training=True``, default 0.
        use_bias: default True. use_alpha: default True; a parameter
            only under softmax: under 'l1', 'softermax' and the performer alpha cancels, so those layers have no
            alpha parameter (a ``constant_alpha`` is applied there and cancels too).
        constant_alpha: True (sqrt 2) or a number.
        epsilon: default 1e-5. spherical: default False. normalization: ``'softmax'`` (default), ``'l1'``,
            ``'softermax'`` (``power``, default 1). use_out_proj: default True. causal: default False.
        use_performer: default False; num_features: default 256; seed: default None.
        performer_nmax: the performer's Maclaurin degree K, 2..64 (default None: the degree rule of
            :func:`nmn.core.yat.performer_degree`); performer_bias: b >= 0 of the estimated score
            ``(t + b)^2 / (2 + eps - 2t)`` (default 0.0).
        performer_kind: ``"slay"`` (default, the map above), ``"maclaurin"`` (MAY: ``num_features`` random
            Maclaurin features, unbiased for the degree-``performer_nmax`` truncation of the score, nmax 1..64,
            default 40) or ``"radial"`` (RAY: a degree-2 sketch of width ``performer_sketch_m`` (128) times radial
            random Fourier features, ``performer_num_radial`` (8) nodes x ``performer_radial_dim`` (64)); the
            projections are frozen ``tf.Variable`` s (``trainable=False``) sampled once by
            :mod:`nmn.core.random_features` from ``seed`` (else from a seed drawn with ``tf.random``), saved in
            checkpoints and exported as ``nmn::YatMaclaurinMultiHeadAttention`` / ``nmn::YatRadialMultiHeadAttention``.
        dtype: default ``tf.float32``. name: module name.

    Call:
        ``layer(query, key=None, value=None, mask=None, training=False)``; ``mask`` bool (True = attend)
        ``(Lq, Lk)``, ``(B, Lq, Lk)`` (per batch element, the same for every head) or ``(B, H, Lq, Lk)``.

    Shape:
        ``(B, Lq, Eq), (B, Lk, Ek), (B, Lk, Ev) -> (B, Lq, E)``; kernels ``(E_in, E)``.

    >>> import tensorflow as tf
    >>> attn = MultiHeadYatAttention(embed_dim=8, num_heads=2)
    >>> tuple(attn(tf.ones((2, 5, 8))).shape)
    (2, 5, 8)
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        use_bias: bool = True,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        spherical: bool = False,
        normalization: str = "softmax",
        power: float = 1.0,
        use_out_proj: bool = True,
        causal: bool = False,
        use_performer: bool = False,
        num_features: int = PERFORMER_NUM_FEATURES,
        performer_nmax: int | None = DEFAULTS["performer_nmax"],
        performer_bias: float = DEFAULTS["performer_bias"],
        performer_kind: str = DEFAULTS["performer_kind"],
        performer_sketch_m: int = DEFAULTS["performer_sketch_m"],
        performer_num_radial: int = DEFAULTS["performer_num_radial"],
        performer_radial_dim: int = DEFAULTS["performer_radial_dim"],
        seed: int | None = None,
        dtype: tf.DType | str = tf.float32,
        name: str | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__(name=name)
        set_attention_options(
            self,
            embed_dim=embed_dim,
            num_heads=num_heads,
            dropout=dropout,
            use_bias=use_bias,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            spherical=spherical,
            normalization=normalization,
            power=power,
            use_out_proj=use_out_proj,
            causal=causal,
            use_performer=use_performer,
            num_features=num_features,
            performer_nmax=performer_nmax,
            performer_bias=performer_bias,
            performer_kind=performer_kind,
            performer_sketch_m=performer_sketch_m,
            performer_num_radial=performer_num_radial,
            performer_radial_dim=performer_radial_dim,
            seed=seed,
        )
        self.dtype = tf.as_dtype(dtype)
        self.q_kernel = None
        self.alpha = None
        self.proj = None
        for name in ALL_RF_PARAMS:
            setattr(self, name, None)
        if random_feature_kind(self) is not None:  # drawn once, at construction; frozen, saved in checkpoints
            arrays = random_feature_arrays(self, seed if seed is not None else _tf_seed())
            with self.name_scope:
                for name, value in arrays.items():
                    setattr(self, name, tf.Variable(value, trainable=False, name=name))
        elif self.use_performer:  # drawn once, at construction (docs/design.md §D5)
            with self.name_scope:
                self.proj = tf.Variable(
                    performer_projection(self.num_features, self.head_dim, seed), trainable=False, name="proj"
                )

    @property
    def built(self) -> bool:
        return self.q_kernel is not None

    def _projection(self, prefix, n_in, n_out):
        seed = None if self.seed is None else self.seed + ("q", "k", "v", "out").index(prefix)
        kernel = tf.Variable(glorot_normal((n_in, n_out), n_in, n_out, self.dtype, seed), name=f"{prefix}_kernel")
        bias = tf.Variable(tf.zeros((n_out,), self.dtype), name=f"{prefix}_bias") if self.use_bias else None
        return kernel, bias

    def build(self, query_features: int, key_features: int | None = None, value_features: int | None = None) -> None:
        """Create the projections for inputs of these widths (key defaults to query, value to key)."""
        key_features = query_features if key_features is None else key_features
        value_features = key_features if value_features is None else value_features
        with self.name_scope:
            self.q_kernel, self.q_bias = self._projection("q", query_features, self.embed_dim)
            self.k_kernel, self.k_bias = self._projection("k", key_features, self.embed_dim)
            self.v_kernel, self.v_bias = self._projection("v", value_features, self.embed_dim)
            self.out_kernel = self.out_bias = None
            if self.use_out_proj:
                self.out_kernel, self.out_bias = self._projection("out", self.embed_dim, self.embed_dim)
            if self.attn.has_alpha:
                self.alpha = tf.Variable(tf.ones((1,), self.dtype), name="alpha")

    def _alpha(self):
        return alpha_value(self)

    def _check(self, name, x, width):
        if x.shape.rank != 3 or x.shape[-1] is None or (width is not None and x.shape[-1] != width):
            want = "features" if width is None else width
            raise ValueError(f"{layer_label(self)}: expected {name} (B, L, {want}), got shape {tuple(x.shape)}")

    def _project(self, x, kernel, bias):
        y = tf.matmul(x, tf.cast(kernel, x.dtype))
        return y if bias is None else y + tf.cast(bias, x.dtype)

    def _qkv(self, query, key, value):
        query = tf.convert_to_tensor(query)
        key = query if key is None else tf.convert_to_tensor(key)
        value = key if value is None else tf.convert_to_tensor(value)
        built = self.built
        self._check("query", query, self.q_kernel.shape[0] if built else None)
        self._check("key", key, self.k_kernel.shape[0] if built else None)
        self._check("value", value, self.v_kernel.shape[0] if built else None)
        if not built:
            self.build(int(query.shape[-1]), int(key.shape[-1]), int(value.shape[-1]))
        q = _heads(self._project(query, self.q_kernel, self.q_bias), self.num_heads)
        k = _heads(self._project(key, self.k_kernel, self.k_bias), self.num_heads)
        v = _heads(self._project(value, self.v_kernel, self.v_bias), self.num_heads)
        return q, k, v

    def _attend(self, q, k, v, mask, training, causal):
        if mask is not None and mask_needs_head_axis(len(mask.shape), layer_label(self)):
            mask = tf.expand_dims(mask, 1)  # (B, Lq, Lk): per batch element, broadcast over heads
        dropout = None
        if not self.use_performer and training and self.dropout > 0:

            def dropout(w):
                return tf.nn.dropout(w, rate=self.dropout)

        o = attend_heads(self, F, functional, q, k, v, mask, causal, dropout, self._alpha())
        o = _merge(o)
        if self.use_out_proj:
            o = self._project(o, self.out_kernel, self.out_bias)
        return o

    def __call__(
        self,
        query: TensorLike,
        key: TensorLike | None = None,
        value: TensorLike | None = None,
        mask: TensorLike | None = None,
        training: bool = False,
    ) -> tf.Tensor:
        q, k, v = self._qkv(query, key, value)
        return self._attend(q, k, v, mask, training, self.causal)


class RotaryYatAttention(MultiHeadYatAttention):
    """Self-attention ``MultiHeadYatAttention`` with rotary position embeddings of q and k (RoPE).

    ``q, k`` are rotated at their absolute positions (angles ``t * theta^(-2i/d)``; interleaved pairs by default,
    ``rope_style='half'`` for half-split), then scored as :class:`MultiHeadYatAttention`. :meth:`init_cache` /
    :meth:`decode` run step-by-step decoding with a KV cache that equals the causal full pass.

    Args:
        embed_dim, num_heads: as :class:`MultiHeadYatAttention` (``head_dim`` even).
        max_seq_len: default 2048. theta: default 10000. rope_style: ``'interleaved'`` (default) or ``'half'``.
        Other keywords: as :class:`MultiHeadYatAttention` (no ``use_performer``).

    Shape:
        ``(B, L, E) -> (B, L, E)``, ``L <= max_seq_len``.

    >>> import tensorflow as tf
    >>> attn = RotaryYatAttention(embed_dim=8, num_heads=2, max_seq_len=16, causal=True)
    >>> x = tf.random.normal((1, 4, 8), seed=0)
    >>> cache = attn.init_cache(1)
    >>> steps = []
    >>> for t in range(4):
    ...     y, cache = attn.decode(x[:, t:t + 1], cache)
    ...     steps.append(y)
    >>> bool(tf.reduce_all(tf.abs(tf.concat(steps, 1) - attn(x)) < 1e-5))
    True
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        max_seq_len: int = ROPE_MAX_SEQ_LEN,
        *,
        theta: float = ROPE_THETA,
        rope_style: str = "interleaved",
        **kwargs: Any,
    ):
        refuse_performer(self, kwargs)
        super().__init__(embed_dim, num_heads, **kwargs)
        set_rope_options(self, max_seq_len=max_seq_len, theta=theta, rope_style=rope_style)

    def _rotate(self, x, start):
        cos, sin = rope_slices(self, x.shape, start)
        cos = tf.cast(tf.constant(cos), x.dtype)
        sin = tf.cast(tf.constant(sin), x.dtype)
        return functional.rope(x, cos, sin, interleaved=self.rope.interleaved)

    def __call__(self, x: TensorLike, mask: TensorLike | None = None, training: bool = False) -> tf.Tensor:
        q, k, v = self._qkv(x, None, None)
        return self._attend(self._rotate(q, 0), self._rotate(k, 0), v, mask, training, self.causal)

    def init_cache(self, batch_size: int, max_length: int | None = None) -> dict[str, Any]:
        """An empty KV cache ``{"key", "value": (B, T, H, D), "index": 0}`` for :meth:`decode`."""
        shape = cache_shape(self, batch_size, max_length)
        return {"key": tf.zeros(shape, self.dtype), "value": tf.zeros(shape, self.dtype), "index": 0}

    def decode(self, x: TensorLike, cache: dict[str, Any], training: bool = False) -> tuple[tf.Tensor, dict[str, Any]]:
        """Attend ``x (B, L, E)`` at positions ``index..index+L-1`` to the cache; returns ``(y, new_cache)``."""
        start = int(cache["index"])
        q, k, v = self._qkv(x, None, None)
        length, capacity = q.shape[1], cache["key"].shape[1]
        check_cache_room(self, start, length, capacity)
        q, k = self._rotate(q, start), self._rotate(k, start)
        pad = [[0, 0], [start, capacity - start - length], [0, 0], [0, 0]]
        keep = tf.pad(tf.zeros_like(k), pad, constant_values=1.0)
        keys = cache["key"] * tf.cast(keep, cache["key"].dtype) + tf.cast(tf.pad(k, pad), cache["key"].dtype)
        values = cache["value"] * tf.cast(keep, cache["value"].dtype) + tf.cast(tf.pad(v, pad), cache["value"].dtype)
        mask = (tf.range(capacity)[None, :] <= start + tf.range(length)[:, None])[None, None]
        y = self._attend(q, keys, values, mask, training, False)
        return y, {"key": keys, "value": values, "index": start + length}


# nmn 0.3 imported its functional attention helpers from here (`from nmn.tf.attention import yat_attention`);
# they live in nmn.tf.attention_helpers (and at the package root) and are re-exported so pasted imports run.
from nmn.tf.attention_helpers import normalize_qk as normalize_qk  # noqa: E402
from nmn.tf.attention_helpers import yat_attention as yat_attention  # noqa: E402
from nmn.tf.attention_helpers import yat_attention_normalized as yat_attention_normalized  # noqa: E402
from nmn.tf.attention_helpers import yat_attention_weights as yat_attention_weights  # noqa: E402
from nmn.tf.random_features import create_maclaurin_projection as create_maclaurin_projection  # noqa: E402
from nmn.tf.random_features import create_radial_projection as create_radial_projection  # noqa: E402
from nmn.tf.random_features import create_yat_tp_projection as create_yat_tp_projection  # noqa: E402
from nmn.tf.random_features import linear_attention as linear_attention  # noqa: E402
from nmn.tf.random_features import linear_attention_readout as linear_attention_readout  # noqa: E402

# nmn 0.3's random-feature attentions (MAY, RAY, tensor-product) live in nmn.tf.random_features
from nmn.tf.random_features import maclaurin_coeffs as maclaurin_coeffs  # noqa: E402
from nmn.tf.random_features import maclaurin_features as maclaurin_features  # noqa: E402
from nmn.tf.random_features import maclaurin_yat_attention as maclaurin_yat_attention  # noqa: E402
from nmn.tf.random_features import radial_features as radial_features  # noqa: E402
from nmn.tf.random_features import radial_yat_attention as radial_yat_attention  # noqa: E402
from nmn.tf.random_features import spherical_kappa as spherical_kappa  # noqa: E402
from nmn.tf.random_features import yat_tp_attention as yat_tp_attention  # noqa: E402
from nmn.tf.random_features import yat_tp_features as yat_tp_features  # noqa: E402
