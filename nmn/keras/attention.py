"""Keras ``MultiHeadYatAttention`` and ``RotaryYatAttention`` (quadratic Yat attention or the Yat-Performer)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from nmn._tfkeras.attention import (
    ALL_RF_PARAMS,
    RF_KEYWORDS,
    attend_heads,
    cache_shape,
    check_cache_room,
    performer_config,
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
from nmn.keras import functional
from nmn.keras._ops import F, InitializerLike, Shape, Tensor, alpha_value, layer_label

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
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], shape[1], num_heads, x.shape[-1] // num_heads))


def _merge(x):
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], shape[1], x.shape[-2] * x.shape[-1]))


def _keras_seed():
    """An int seed for the random-feature samplers drawn from Keras' RNG (``keras.utils.set_random_seed``
    makes it reproducible)."""
    draw = keras.random.randint((), 0, 2**31 - 1, seed=keras.random.SeedGenerator(), dtype="int32")
    return int(ops.convert_to_numpy(draw))


def _independent(initializer, index, layer_seed=None):
    """A copy of a Keras initializer that draws independently of the other projections (issue 18).

    Keras 3 initializers fix their seed when they are created, so one instance shared by the q, k, v and output
    kernels would give four copies of the same matrix. Each projection gets its own instance: a seeded
    initializer gets ``seed + index`` (reproducible), an unseeded one ``layer_seed + index`` when the layer has
    a ``seed``, else a fresh default seed.
    """
    config = initializer.get_config() if hasattr(initializer, "get_config") else None
    if config is None or "seed" not in config:
        return initializer  # deterministic initializers (zeros, constants, ...) have nothing to decorrelate
    seed = config.get("seed")
    seed = seed if isinstance(seed, int) else layer_seed
    config = dict(config, seed=None if not isinstance(seed, int) else seed + index)
    return type(initializer).from_config(config)


@keras.saving.register_keras_serializable(package="nmn")
class MultiHeadYatAttention(keras.layers.Layer):
    """Multi-head Yat attention: four affine projections around ``softmax(alpha (q.k)^2 / ((|q-k|^2 + eps) sqrt(d)))``.

    The score is ``alpha * (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + eps) * sqrt(head_dim))``, normalised over
    the keys; with ``use_performer=True`` the linear-time spherical Yat-Performer replaces it
    (``phi(q) (phi(k)^T v) / (phi(q) . sum phi(k))`` with a fixed random projection ``proj``; ``phi`` estimates
    the degree-K Maclaurin truncation of the spherical Yat score ``(t + b)^2 / (2 + eps - 2t)``,
    :func:`nmn.core.yat.performer_features`; cost O(L m (D + K))).

    Args:
        embed_dim: model width ``E`` (output width too). num_heads: ``E`` must be divisible by it.
        dropout: dropout rate on the attention weights in training, default 0.
        use_bias: biases on the four projections, default True.
        use_alpha: learnable score scale ``alpha (1,)``, default True; a parameter
            only under softmax: under 'l1', 'softermax' and the performer alpha cancels, so those layers have no
            alpha parameter (a ``constant_alpha`` is applied there and cancels too).
        constant_alpha: True (sqrt 2) or a number.
        epsilon: default 1e-5 (> 0). spherical: unit q and k, default False.
        normalization: ``'softmax'`` (default), ``'l1'`` or ``'softermax'`` (with ``power``, default 1).
        use_out_proj: output projection, default True. causal: lower-triangular mask, default False.
        use_performer: linear-time Yat-Performer, default False; num_features: its random features, default 256;
            seed: numpy seed of the projection, default None.
        performer_nmax: the performer's Maclaurin degree K, an int from 2 to 64 (default None: the degree rule of
            :func:`nmn.core.yat.performer_degree`, growing with ``num_features``).
        performer_bias: b >= 0 of the performer's estimated score (default 0.0).
        performer_kind: ``"slay"`` (default: the Gegenbauer map above), ``"maclaurin"`` (MAY, nmn 0.3's random
            Maclaurin features: ``num_features`` features unbiased for the degree-``performer_nmax`` truncation of
            ``(t + b)^2 / (2 + eps - 2t)``, nmax 1..64, default 40) or ``"radial"`` (RAY: a degree-2 sketch of
            ``(t + b)^2`` of width ``performer_sketch_m`` (128) times radial random Fourier features of
            ``1 / (eps + |q_hat - k_hat|^2)`` on ``performer_num_radial`` (8) Gauss-Laguerre nodes of
            ``performer_radial_dim`` (64) features each); ``b = performer_bias``. The projections are frozen
            (non-trainable) weights sampled once by :mod:`nmn.core.random_features` (from ``seed``, else from a seed
            drawn with Keras' RNG), saved with the model and exported as ``nmn::YatMaclaurinMultiHeadAttention`` /
            ``nmn::YatRadialMultiHeadAttention``. Their keywords with non-default values are refused where they
            have no effect.
        kernel_initializer: default ``"glorot_normal"``; bias_initializer: default ``"zeros"``.

    Call:
        ``layer(query, key=None, value=None, attention_mask=None, training=None)``; key defaults to query and
        value to key; ``attention_mask`` bool (True = attend)
        ``(Lq, Lk)``, ``(B, Lq, Lk)`` (per batch element, the same for every head) or ``(B, H, Lq, Lk)``, as ``keras.layers.MultiHeadAttention``'s ``(B, T, S)``.

    Shape:
        ``(B, Lq, Eq), (B, Lk, Ek), (B, Lk, Ev) -> (B, Lq, E)``; kernels ``(E_in, E)``.

    >>> import keras
    >>> attn = MultiHeadYatAttention(embed_dim=8, num_heads=2)
    >>> tuple(attn(keras.ops.ones((2, 5, 8))).shape)
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
        kernel_initializer: InitializerLike = "glorot_normal",
        bias_initializer: InitializerLike = "zeros",
        **kwargs: Any,
    ):
        refuse_keywords(type(self).__name__, kwargs, allow_others=True)
        super().__init__(**kwargs)
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
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self._proj_init = None
        self._rf_init = {}
        if random_feature_kind(self) is not None:  # drawn once, at construction, from the layer's or Keras' seed
            self._rf_init = random_feature_arrays(self, seed if seed is not None else _keras_seed())
        elif self.use_performer:  # drawn once, at construction (docs/design.md §D5)
            self._proj_init = performer_projection(self.num_features, self.head_dim, seed)
        self.alpha = None
        self.proj = None
        for name in ALL_RF_PARAMS:
            setattr(self, name, None)
        self._dropout_seed = keras.random.SeedGenerator(seed) if self.dropout > 0 else None

    # ---------------------------------------------------------------------------------------------- weights
    def _projection(self, prefix, n_in, n_out):
        init = _independent(self.kernel_initializer, ("q", "k", "v", "out").index(prefix), self.seed)
        kernel = self.add_weight(name=f"{prefix}_kernel", shape=(n_in, n_out), initializer=init)
        bias = None
        if self.use_bias:
            bias = self.add_weight(name=f"{prefix}_bias", shape=(n_out,), initializer=self.bias_initializer)
        return kernel, bias

    def build(self, query_shape: Shape, key_shape: Shape | None = None, value_shape: Shape | None = None) -> None:
        key_shape = query_shape if key_shape is None else key_shape
        value_shape = key_shape if value_shape is None else value_shape
        for what, shape in (("query", query_shape), ("key", key_shape), ("value", value_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(f"{layer_label(self)}: expected {what} (B, L, features), got shape {tuple(shape)}")
        self.q_kernel, self.q_bias = self._projection("q", query_shape[-1], self.embed_dim)
        self.k_kernel, self.k_bias = self._projection("k", key_shape[-1], self.embed_dim)
        self.v_kernel, self.v_bias = self._projection("v", value_shape[-1], self.embed_dim)
        self.out_kernel = self.out_bias = None
        if self.use_out_proj:
            self.out_kernel, self.out_bias = self._projection("out", self.embed_dim, self.embed_dim)
        if self.attn.has_alpha:
            self.alpha = self.add_weight(name="alpha", shape=(1,), initializer="ones")
        if self._proj_init is not None:
            self.proj = self.add_weight(
                name="proj",
                shape=(self.num_features, self.head_dim),
                trainable=False,
                initializer=keras.initializers.Constant(self._proj_init),
            )
        for name, value in self._rf_init.items():  # frozen: not trained, saved with the model
            setattr(
                self,
                name,
                self.add_weight(
                    name=name, shape=value.shape, trainable=False, initializer=keras.initializers.Constant(value)
                ),
            )

    # ------------------------------------------------------------------------------------------------- call
    def _alpha(self):
        return alpha_value(self)

    def _check(self, name, x, kernel):
        if len(x.shape) != 3 or x.shape[-1] != kernel.shape[0]:
            raise ValueError(
                f"{layer_label(self)}: expected {name} (B, L, {kernel.shape[0]}), got shape {tuple(x.shape)}"
            )

    def _project(self, x, kernel, bias):
        y = ops.matmul(x, ops.cast(kernel, x.dtype))
        return y if bias is None else y + ops.cast(bias, x.dtype)

    def _qkv(self, query, key, value):
        key = query if key is None else key
        value = key if value is None else value
        self._check("query", query, self.q_kernel)
        self._check("key", key, self.k_kernel)
        self._check("value", value, self.v_kernel)
        q = _heads(self._project(query, self.q_kernel, self.q_bias), self.num_heads)
        k = _heads(self._project(key, self.k_kernel, self.k_bias), self.num_heads)
        v = _heads(self._project(value, self.v_kernel, self.v_bias), self.num_heads)
        return q, k, v

    def _attend(self, q, k, v, mask, training, causal):
        if mask is not None and mask_needs_head_axis(len(mask.shape), layer_label(self)):
            mask = ops.expand_dims(mask, 1)  # (B, Lq, Lk): per batch element, as keras.layers.MultiHeadAttention
        dropout = None
        if not self.use_performer and training and self.dropout > 0:

            def dropout(w):
                return keras.random.dropout(w, self.dropout, seed=self._dropout_seed)

        o = attend_heads(self, F, functional, q, k, v, mask, causal, dropout, self._alpha())
        o = _merge(o)
        if self.use_out_proj:
            o = self._project(o, self.out_kernel, self.out_bias)
        return o

    def call(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        attention_mask: Tensor | None = None,
        training: bool | None = None,
    ) -> Tensor:
        q, k, v = self._qkv(query, key, value)
        return self._attend(q, k, v, attention_mask, training, self.causal)

    def compute_output_shape(
        self, query_shape: Shape, key_shape: Shape | None = None, value_shape: Shape | None = None
    ) -> Shape:
        return (*query_shape[:-1], self.embed_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            **self.attn.config(),
            **performer_config(self),
            "seed": self.seed,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="nmn")
class RotaryYatAttention(MultiHeadYatAttention):
    """Self-attention ``MultiHeadYatAttention`` with rotary position embeddings of q and k (RoPE).

    ``q, k`` are rotated at their absolute positions with angles ``t * theta^(-2i/d)``: interleaved channel pairs
    ``(x[2i], x[2i+1])`` by default, ``rope_style='half'`` for half-split; then the Yat score as
    :class:`MultiHeadYatAttention`. :meth:`init_cache` / :meth:`decode` run step-by-step decoding with a KV cache
    that equals the causal full pass.

    Args:
        embed_dim, num_heads: as :class:`MultiHeadYatAttention` (``head_dim`` must be even).
        max_seq_len: the longest position, default 2048. theta: RoPE base, default 10000.
        rope_style: ``'interleaved'`` (default) or ``'half'``.
        Other keywords: as :class:`MultiHeadYatAttention` (``use_performer`` is not offered).

    Shape:
        ``(B, L, E) -> (B, L, E)``, ``L <= max_seq_len``.

    >>> import keras
    >>> attn = RotaryYatAttention(embed_dim=8, num_heads=2, max_seq_len=16, causal=True)
    >>> x = keras.random.normal((1, 4, 8), seed=0)
    >>> cache = attn.init_cache(1)
    >>> steps = []
    >>> for t in range(4):
    ...     y, cache = attn.decode(x[:, t:t + 1], cache)
    ...     steps.append(y)
    >>> bool(keras.ops.all(keras.ops.abs(keras.ops.concatenate(steps, 1) - attn(x)) < 1e-5))
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
        cos = ops.cast(ops.convert_to_tensor(cos), x.dtype)
        sin = ops.cast(ops.convert_to_tensor(sin), x.dtype)
        return functional.rope(x, cos, sin, interleaved=self.rope.interleaved)

    def build(self, inputs_shape: Shape) -> None:
        super().build(inputs_shape)

    def call(self, inputs: Tensor, attention_mask: Tensor | None = None, training: bool | None = None) -> Tensor:
        q, k, v = self._qkv(inputs, None, None)
        return self._attend(self._rotate(q, 0), self._rotate(k, 0), v, attention_mask, training, self.causal)

    def init_cache(self, batch_size: int, max_length: int | None = None) -> dict[str, Any]:
        """An empty KV cache ``{"key", "value": (B, T, H, D), "index": 0}`` for :meth:`decode`."""
        shape = cache_shape(self, batch_size, max_length)
        return {"key": ops.zeros(shape, self.compute_dtype), "value": ops.zeros(shape, self.compute_dtype), "index": 0}

    def decode(
        self, inputs: Tensor, cache: dict[str, Any], training: bool | None = None
    ) -> tuple[Tensor, dict[str, Any]]:
        """Attend ``inputs (B, L, E)`` at positions ``index..index+L-1`` to the cache; returns ``(y, new_cache)``.

        Keys are cached rotated at their absolute positions; each query sees the cached keys up to its own
        position, so decoding token by token equals the causal full pass.
        """
        if not self.built:
            self.build(tuple(inputs.shape))
        start = int(cache["index"])
        q, k, v = self._qkv(inputs, None, None)
        length, capacity = q.shape[1], cache["key"].shape[1]
        check_cache_room(self, start, length, capacity)
        q, k = self._rotate(q, start), self._rotate(k, start)
        keys = ops.slice_update(cache["key"], (0, start, 0, 0), ops.cast(k, cache["key"].dtype))
        values = ops.slice_update(cache["value"], (0, start, 0, 0), ops.cast(v, cache["value"].dtype))
        mask = (ops.arange(capacity)[None, :] <= start + ops.arange(length)[:, None])[None, None]
        y = self._attend(q, keys, values, mask, training, False)
        return y, {"key": keys, "value": values, "index": start + length}

    def compute_output_shape(self, inputs_shape: Shape) -> Shape:
        return (*inputs_shape[:-1], self.embed_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("use_performer", "num_features", "performer_nmax", "performer_bias", *RF_KEYWORDS):
            config.pop(key, None)
        return {**config, **self.rope.config()}


# nmn 0.3 imported its functional attention helpers from here (`from nmn.keras.attention import yat_attention`);
# they live in nmn.keras.attention_helpers (and at the package root) and are re-exported so pasted imports run.
from nmn.keras.attention_helpers import normalize_qk as normalize_qk  # noqa: E402
from nmn.keras.attention_helpers import yat_attention as yat_attention  # noqa: E402
from nmn.keras.attention_helpers import yat_attention_normalized as yat_attention_normalized  # noqa: E402
from nmn.keras.attention_helpers import yat_attention_weights as yat_attention_weights  # noqa: E402
from nmn.keras.random_features import create_maclaurin_projection as create_maclaurin_projection  # noqa: E402
from nmn.keras.random_features import create_radial_projection as create_radial_projection  # noqa: E402
from nmn.keras.random_features import create_yat_tp_projection as create_yat_tp_projection  # noqa: E402
from nmn.keras.random_features import linear_attention as linear_attention  # noqa: E402
from nmn.keras.random_features import linear_attention_readout as linear_attention_readout  # noqa: E402

# nmn 0.3's random-feature attentions (MAY, RAY, tensor-product) live in nmn.keras.random_features
from nmn.keras.random_features import maclaurin_coeffs as maclaurin_coeffs  # noqa: E402
from nmn.keras.random_features import maclaurin_features as maclaurin_features  # noqa: E402
from nmn.keras.random_features import maclaurin_yat_attention as maclaurin_yat_attention  # noqa: E402
from nmn.keras.random_features import radial_features as radial_features  # noqa: E402
from nmn.keras.random_features import radial_yat_attention as radial_yat_attention  # noqa: E402
from nmn.keras.random_features import spherical_kappa as spherical_kappa  # noqa: E402
from nmn.keras.random_features import yat_tp_attention as yat_tp_attention  # noqa: E402
from nmn.keras.random_features import yat_tp_features as yat_tp_features  # noqa: E402
