"""``MultiHeadYatAttention`` and ``RotaryYatAttention`` for MLX (four ``mlx.nn.Linear`` projections around Yat
scores, named like ``mlx.nn.MultiHeadAttention``: ``query_proj``, ``key_proj``, ``value_proj``, ``out_proj``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nmn.core import random_features as _rf
from nmn.core import yat
from nmn.core.names import refuse_keywords
from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_THETA,
    mask_needs_head_axis,
    refuse_rotary_performer,
)
from nmn.core.spec import AttentionSpec, RopeSpec, check_heads
from nmn.mlx._ops import F, PlainConfigMixin, glorot_normal, linear, mx, nn, result_dtype, to_f32
from nmn.mlx.functional import apply_rotary_emb, precompute_freqs_cis, yat_performer_attention

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MultiHeadYatAttention",
    "RotaryYatAttention",
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


#: the frozen projections of the random-feature performers, by ``performer_kind``: the module keys, which are also
#: the neutral spec's param names, in the order of the ONNX node's inputs
RF_PARAMS = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}
#: the random-feature performers' own keywords (beyond performer_nmax / performer_bias)
RF_KEYWORDS = ("performer_kind", "performer_sketch_m", "performer_num_radial", "performer_radial_dim")


def random_feature_arrays(layer: Any, seed: int) -> dict:
    """The frozen MAY / RAY projections of ``layer`` sampled by :mod:`nmn.core.random_features` from ``seed``:
    ``{module key: float32 numpy}`` (``{}`` for the SLAY performer or quadratic attention)."""
    kind = layer.performer_kind if layer.use_performer else None
    common = dict(bias=layer.performer_bias, epsilon=layer.epsilon, seed=seed)
    if kind == "maclaurin":
        p = _rf.maclaurin_projection(layer.head_dim, layer.num_features, nmax=layer.performer_degree, **common)
        return dict(zip(RF_PARAMS[kind], (p["omega"], p["degmask"], p["scale"])))
    if kind == "radial":
        sizes = (layer.performer_sketch_m, layer.performer_num_radial, layer.performer_radial_dim)
        p = _rf.radial_projection(layer.head_dim, *sizes, **common)
        return dict(zip(RF_PARAMS[kind], (p["w1"], p["w2"], p["omega"], p["phase"], p["coef"])))
    return {}


def _linear(n_in: int, n_out: int, bias: bool, dtype: mx.Dtype) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, bias=bias)
    layer.weight = glorot_normal((n_out, n_in), n_in, n_out, dtype)
    if bias:
        layer.bias = mx.zeros((n_out,), dtype=dtype)
    return layer


class MultiHeadYatAttention(PlainConfigMixin, nn.Module):
    """Multi-head attention whose query-key scores are Yat products (docs/design.md §5).

    ``score = alpha * (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + eps) * sqrt(head_dim))``, normalised over the
    keys (``softmax``, ``l1`` or ``softermax``), then ``A V`` and the output projection. With
    ``use_performer=True`` the linear-time spherical Yat-Performer replaces the quadratic scores: random
    features of the unit heads (:func:`nmn.core.yat.performer_features`: their inner products estimate the
    degree-3 truncation ``t^2 / C + 2 t^3 / C^2``, ``C = 2 + eps``, of the spherical Yat score; cost
    O(L m D)) with a fixed random projection
    ``proj (num_features, head_dim)`` drawn once at construction (a frozen parameter: saved, exported and
    transferred, never trained).

    Parameters: ``query_proj``, ``key_proj``, ``value_proj``, ``out_proj`` (``mlx.nn.Linear``, ``weight
    (out, in)``, init Glorot normal, bias zeros), ``alpha (1,)``, ``proj``; absent ones are absent keys.

    Args:
        embed_dim: model width ``E`` (queries, keys and values all have E features).
        num_heads: heads; must divide ``embed_dim``.
        dropout: dropout rate on the attention weights in training mode (default 0.0).
        use_bias: biases on the four projections (default True).
        use_alpha / constant_alpha: learnable score scale init 1 (default) / fixed (True = sqrt 2); a parameter
            only under softmax: under 'l1', 'softermax' and the performer alpha cancels, so those layers have no
            alpha parameter (a ``constant_alpha`` is applied there and cancels too).
        epsilon: > 0 (default 1e-5).
        spherical: unit-normalise q and k (``v / sqrt(|v|^2 + eps)``), distance ``2 - 2 cos`` (default False).
        normalization: ``'softmax'`` (default), ``'l1'`` or ``'softermax'``; power: softermax power (1.0).
        use_out_proj: apply the output projection (default True).
        causal: key ``j`` is visible to query ``i`` only when ``j <= i + (Lk - Lq)`` (default False).
        use_performer: linear-time performer path (default False); num_features: its ``m``
            (default 256, ``nmn.core.options.PERFORMER_NUM_FEATURES``).
        performer_nmax, performer_bias: the SLAY map's Maclaurin degree (None: the degree rule) / MAY's truncation
            degree (None: 40, an int 1..64), and b >= 0 of the score ``(t + b)^2 / (2 + eps - 2t)`` (default 0.0).
        performer_kind: ``'slay'`` (default, the map above), ``'maclaurin'`` (nmn 0.3's MAY: ``num_features``
            random Maclaurin features, :func:`nmn.core.random_features.maclaurin_features`) or ``'radial'``
            (RAY: degree-2 sketch x radial random Fourier features,
            :func:`nmn.core.random_features.radial_features`). The MAY / RAY projections are frozen arrays of the
            module (``may_*`` / ``ray_*``: saved, exported, never trained) sampled at construction from a seed
            drawn from ``mlx.random``; no alpha (it cancels).
        performer_sketch_m, performer_num_radial, performer_radial_dim: RAY's sketch width (128), Gauss-Laguerre
            nodes (8) and Fourier features per node (64). Kind keywords other than their defaults where they have
            no effect raise ``ValueError``.
        dtype: parameter dtype (default ``mx.float32``).

    nmn 0.3 keywords that are not carried over raise a ``TypeError`` saying why and what to use instead
    (:data:`nmn.core.names.REFUSED_KEYWORDS`); any other unknown keyword is a ``TypeError`` naming it.

    Call: ``attn(queries, keys=None, values=None, mask=None)``; ``keys`` default to the queries and ``values``
    to the keys; ``mask`` is bool, True = attend,
    ``(Lq, Lk)``, ``(B, Lq, Lk)`` (per batch element, the same for every head) or ``(B, H, Lq, Lk)`` (not with the performer).

    Shape: ``(B, Lq, E), (B, Lk, E), (B, Lk, E) -> (B, Lq, E)``.

    >>> import mlx.core as mx
    >>> attn = MultiHeadYatAttention(8, 2)
    >>> attn(mx.ones((1, 3, 8))).shape
    (1, 3, 8)
    >>> may = MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=16)
    >>> may(mx.ones((1, 3, 8))).shape, sorted(may.trainable_parameters().keys())
    ((1, 3, 8), ['key_proj', 'out_proj', 'query_proj', 'value_proj'])
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
        dtype: mx.Dtype = mx.float32,
        **refused: Any,
    ):
        super().__init__()
        name = type(self).__name__
        refuse_keywords(name, refused)
        performer = dict(
            performer_nmax=performer_nmax,
            performer_bias=performer_bias,
            performer_kind=performer_kind,
            performer_sketch_m=performer_sketch_m,
            performer_num_radial=performer_num_radial,
            performer_radial_dim=performer_radial_dim,
        )
        self.head_dim = check_heads(embed_dim, num_heads, name)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.attn = a = AttentionSpec.build(
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
            dropout=dropout,
            use_performer=use_performer,
            num_features=num_features,
            **performer,
        )
        a.set_attributes(self)  # with performer_kind and the RAY sizes
        kind, self.performer_bias = a.performer_kind, a.performer_bias
        slay = self.use_performer and kind == "slay"
        if kind == "maclaurin":  # a.performer_nmax: MAY's resolved degree; the attribute keeps what was given
            self.performer_nmax, self.performer_degree = performer_nmax, a.performer_nmax
        else:
            self.performer_nmax = a.performer_nmax
            self.performer_degree = (
                yat.performer_degree(self.num_features, self.head_dim, a.performer_nmax) if slay else None
            )
        self.query_proj = _linear(embed_dim, embed_dim, self.use_bias, dtype)
        self.key_proj = _linear(embed_dim, embed_dim, self.use_bias, dtype)
        self.value_proj = _linear(embed_dim, embed_dim, self.use_bias, dtype)
        if self.use_out_proj:
            self.out_proj = _linear(embed_dim, embed_dim, self.use_bias, dtype)
        if a.has_alpha:
            self.alpha = mx.ones((1,), dtype=dtype)
        if slay:
            self.proj = mx.random.normal((self.num_features, self.head_dim), dtype=dtype)
            self.freeze(keys=["proj"], recurse=False)
        elif self.use_performer:  # MAY / RAY: frozen arrays sampled from a seed drawn from mlx.random
            seed = int(mx.random.randint(0, 2**31 - 1, ()).item())
            for key, array in random_feature_arrays(self, seed).items():
                setattr(self, key, mx.array(array).astype(dtype))
            self.freeze(keys=list(RF_PARAMS[kind]), recurse=False)

    # -- helpers -------------------------------------------------------------------------------------------
    def _alpha_value(self) -> mx.array | float | None:
        return self.attn.alpha_term(to_f32(self["alpha"]) if self.attn.has_alpha else None)

    def _check(self, x: mx.array, what: str) -> None:
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{type(self).__name__}: expected {what} of shape (B, L, {self.embed_dim}), got shape {tuple(x.shape)}"
            )

    def _heads(self, proj: nn.Linear, x: mx.array) -> mx.array:
        y = linear(proj, x)  # proj(x); a plain mlx.nn.Linear through the fast-layout product of nmn.mlx._ops
        return mx.reshape(y, (*y.shape[:2], self.num_heads, self.head_dim))

    def _dropout(self) -> Callable[[mx.array], mx.array] | None:
        if not (self.training and self.dropout > 0.0):
            return None
        keep = 1.0 - self.dropout
        return lambda w: w * mx.random.bernoulli(keep, w.shape) / keep

    def _attend(self, q: mx.array, k: mx.array, v: mx.array, mask: mx.array | None, causal: bool) -> mx.array:
        alpha = self._alpha_value()
        if self.use_performer and self.performer_kind in RF_PARAMS:  # MAY / RAY: no alpha (it cancels)
            q, k, v = to_f32(q), to_f32(k), to_f32(v)  # float16 / bfloat16 heads compute in float32
            qf, kf = self._random_features(q), self._random_features(k)
            return yat.linear_readout(F, qf, kf, v, causal=causal)  # epsilon: PERFORMER_DIV_EPSILON
        if self.use_performer:
            return yat_performer_attention(
                q,
                k,
                v,
                self["proj"],
                alpha,
                self.epsilon,
                causal=causal,
                degree=self.performer_degree,
                bias=self.performer_bias,
            )
        return yat.yat_attention(
            F,
            q,
            k,
            v,
            mask,
            alpha,
            self.epsilon,
            spherical=self.spherical,
            normalization=self.normalization,
            power=self.power,
            causal=causal,
            dropout=self._dropout(),
        )

    def _random_features(self, x: mx.array) -> mx.array:
        """MAY / RAY features of ``(B, L, H, D)`` heads with the frozen projections (the ONNX functions' 1e-6)."""
        arrays = [self[key].astype(x.dtype) for key in RF_PARAMS[self.performer_kind]]
        eps = DEFAULTS["random_feature_norm_epsilon"]
        if self.performer_kind == "maclaurin":
            return _rf.maclaurin_features(F, x, *arrays, epsilon=eps)
        return _rf.radial_features(F, x, *arrays, bias=self.performer_bias, epsilon=eps)

    def _prepare(
        self, queries: mx.array, keys: mx.array | None, values: mx.array | None, mask: mx.array | np.ndarray | None
    ) -> tuple[mx.array, mx.array, mx.array, mx.array | None]:
        keys = queries if keys is None else keys
        values = keys if values is None else values
        self._check(queries, "queries")
        self._check(keys, "keys")
        self._check(values, "values")
        if keys.shape[:2] != values.shape[:2]:
            raise ValueError(
                f"{type(self).__name__}: keys {tuple(keys.shape)} and values {tuple(values.shape)} "
                "must have the same batch and length"
            )
        if mask is not None:
            mask = mask if isinstance(mask, mx.array) else mx.array(mask)
            if self.use_performer:
                raise ValueError(
                    f"{type(self).__name__}: a mask is not supported with use_performer=True "
                    "(a general mask has no linear-time form); use causal=True"
                )
            if mask.dtype != mx.bool_:
                raise ValueError(f"{type(self).__name__}: mask must be bool (True = attend), got {mask.dtype}")
            if mask_needs_head_axis(mask.ndim, type(self).__name__):
                mask = mx.expand_dims(mask, 1)  # (B, Lq, Lk): per batch element, broadcast over heads
        return queries, keys, values, mask

    def _finish(self, out: mx.array, queries: mx.array) -> mx.array:
        out = mx.reshape(out, (*out.shape[:2], self.embed_dim))
        if self.use_out_proj:
            out = linear(self.out_proj, out)
        dtype = result_dtype(queries, self.query_proj.weight)
        return out if out.dtype == dtype else out.astype(dtype)

    def __call__(
        self,
        queries: mx.array,
        keys: mx.array | None = None,
        values: mx.array | None = None,
        mask: mx.array | np.ndarray | None = None,
    ) -> mx.array:
        queries, keys, values, mask = self._prepare(queries, keys, values, mask)
        q = self._heads(self.query_proj, queries)
        k = self._heads(self.key_proj, keys)
        v = self._heads(self.value_proj, values)
        return self._finish(self._attend(q, k, v, mask, self.causal), queries)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON (the neutral spec's config)."""
        config = {"embed_dim": self.embed_dim, "num_heads": self.num_heads, **self.attn.config()}
        config.pop("dropout")  # a training-time option, not part of the neutral spec
        config.update(performer_nmax=self.performer_nmax, performer_bias=self.performer_bias)
        config.update({key: getattr(self, key) for key in RF_KEYWORDS})
        return config

    def _extra_repr(self) -> str:
        cfg = self.get_config()
        defaults = _MHA_DEFAULTS
        parts = [f"embed_dim={self.embed_dim}", f"num_heads={self.num_heads}"]
        parts += [f"{k}={v!r}" for k, v in cfg.items() if k in defaults and defaults[k] != v]
        return ", ".join(parts)


_MHA_DEFAULTS = dict(
    use_bias=True,
    use_alpha=True,
    constant_alpha=None,
    epsilon=DEFAULT_EPSILON,
    spherical=False,
    normalization="softmax",
    power=1.0,
    use_out_proj=True,
    causal=False,
    use_performer=False,
    num_features=PERFORMER_NUM_FEATURES,
    performer_nmax=DEFAULTS["performer_nmax"],
    performer_bias=DEFAULTS["performer_bias"],
    **{key: DEFAULTS[key] for key in RF_KEYWORDS},
    max_seq_len=ROPE_MAX_SEQ_LEN,
    theta=ROPE_THETA,
    rope_style="interleaved",
)


class RotaryYatAttention(MultiHeadYatAttention):
    """Multi-head Yat attention with rotary position embeddings of q and k (docs/design.md §6).

    Same scores and options as :class:`MultiHeadYatAttention`; q and k heads are rotated at their absolute
    positions (interleaved pairs ``(x[2i], x[2i+1])`` by default, ``rope_style='half'`` for half-split pairs),
    with ``theta^(-2i / head_dim)`` frequencies. Without a cache, queries sit at positions ``0..Lq-1`` and keys
    at ``0..Lk-1``. After :meth:`init_cache`, each call appends its tokens' (rotated) keys and values to the
    cache at positions ``index..index+L-1`` and attends causally to everything cached, so decoding token by
    token equals the causal full pass. The cache lives outside the parameters (calls that use it are not pure,
    so do not ``mx.compile`` them).

    Args:
        embed_dim, num_heads: as :class:`MultiHeadYatAttention` (``head_dim`` must be even).
        max_seq_len: largest position + 1 (default 2048). theta: RoPE base (default 10000.0).
        rope_style: ``'interleaved'`` (default) or ``'half'``.
        **kwargs: the options of :class:`MultiHeadYatAttention` (``use_performer`` excluded).

    Shape: ``(B, L, E) -> (B, L, E)``.

    >>> import mlx.core as mx
    >>> attn = RotaryYatAttention(8, 2, max_seq_len=16, causal=True)
    >>> x = mx.random.normal((1, 4, 8))
    >>> full = attn(x)
    >>> attn.init_cache(1)
    >>> steps = mx.concatenate([attn(x[:, i:i + 1]) for i in range(4)], axis=1)
    >>> bool(mx.allclose(full, steps, atol=1e-5))
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
        use_performer: bool = False,
        dtype: mx.Dtype = mx.float32,
        **kwargs: Any,
    ):
        name = type(self).__name__
        refuse_rotary_performer(name, kwargs.pop("performer_nmax", None), kwargs.pop("performer_bias", 0.0))
        for key in RF_KEYWORDS:
            if key in kwargs and kwargs[key] != DEFAULTS[key]:
                raise ValueError(
                    f"{name}: {key}={kwargs[key]!r} has no effect here (no performer with rotary embeddings); "
                    "use MultiHeadYatAttention(use_performer=True, performer_kind=...)"
                )
        rope = RopeSpec.build(
            name,
            check_heads(embed_dim, num_heads, name),
            max_seq_len=max_seq_len,
            theta=theta,
            rope_style=rope_style,
            use_performer=use_performer,
        )
        super().__init__(embed_dim, num_heads, dtype=dtype, **kwargs)
        self.rope = rope
        self.max_seq_len, self.theta, self.rope_style = rope.max_seq_len, rope.theta, rope.rope_style
        self._cos, self._sin = precompute_freqs_cis(self.head_dim, self.max_seq_len, self.theta)
        self.reset_cache()

    def init_cache(self, batch_size: int, max_length: int | None = None) -> None:
        """Start a KV cache for ``batch_size`` sequences of up to ``max_length`` (default ``max_seq_len``) tokens."""
        max_length = self.max_seq_len if max_length is None else int(max_length)
        if not 0 < max_length <= self.max_seq_len:
            raise ValueError(f"{type(self).__name__}: max_length must be in [1, {self.max_seq_len}], got {max_length}")
        self._cache_batch, self._cache_max = int(batch_size), max_length
        self._cache_k = self._cache_v = None
        self._cache_index = 0

    def reset_cache(self) -> None:
        """Drop the KV cache (calls attend within their own tokens again)."""
        self._cache_batch = self._cache_max = None
        self._cache_k = self._cache_v = None
        self._cache_index = 0

    @property
    def cache_index(self) -> int:
        """Number of tokens in the cache (the absolute position of the next token)."""
        return self._cache_index

    def _rotate(self, x: mx.array, start: int) -> mx.array:
        end = start + x.shape[1]
        if end > self.max_seq_len:
            raise ValueError(f"{type(self).__name__}: positions up to {end - 1} exceed max_seq_len={self.max_seq_len}")
        return apply_rotary_emb(x, self._cos[start:end], self._sin[start:end], interleaved=self.rope.interleaved)

    def __call__(
        self,
        queries: mx.array,
        keys: mx.array | None = None,
        values: mx.array | None = None,
        mask: mx.array | np.ndarray | None = None,
    ) -> mx.array:
        queries, keys, values, mask = self._prepare(queries, keys, values, mask)
        q = self._heads(self.query_proj, queries)
        k = self._heads(self.key_proj, keys)
        v = self._heads(self.value_proj, values)
        if self._cache_max is None:
            out = self._attend(self._rotate(q, 0), self._rotate(k, 0), v, mask, self.causal)
            return self._finish(out, queries)
        name = type(self).__name__
        if keys is not queries or values is not queries:
            raise ValueError(f"{name}: a KV cache works for self-attention only (call attn(x))")
        if queries.shape[0] != self._cache_batch:
            raise ValueError(f"{name}: the cache holds batch {self._cache_batch}, got input {tuple(queries.shape)}")
        start = self._cache_index
        if start + queries.shape[1] > self._cache_max:
            raise ValueError(f"{name}: cache full ({start} + {queries.shape[1]} tokens > max_length {self._cache_max})")
        q, k = self._rotate(q, start), self._rotate(k, start)
        if self._cache_k is not None:
            k = mx.concatenate([self._cache_k, k], axis=1)
            v = mx.concatenate([self._cache_v, v], axis=1)
        self._cache_k, self._cache_v = k, v
        self._cache_index = k.shape[1]
        return self._finish(self._attend(q, k, v, mask, True), queries)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON (the neutral spec's config)."""
        config = {**super().get_config(), **self.rope.config()}
        for key in ("performer_nmax", "performer_bias", *RF_KEYWORDS):  # no performer here
            config.pop(key)
        return config


# nmn 0.3 imported its functional attention helpers from here (`from nmn.mlx.attention import yat_attention`,
# `maclaurin_yat_attention`, ...); they live in nmn.mlx.attention_helpers and nmn.mlx.random_features (and at
# the package root) and are re-exported so pasted imports run.
from nmn.mlx.attention_helpers import normalize_qk as normalize_qk  # noqa: E402
from nmn.mlx.attention_helpers import yat_attention as yat_attention  # noqa: E402
from nmn.mlx.attention_helpers import yat_attention_normalized as yat_attention_normalized  # noqa: E402
from nmn.mlx.attention_helpers import yat_attention_weights as yat_attention_weights  # noqa: E402
from nmn.mlx.random_features import create_maclaurin_projection as create_maclaurin_projection  # noqa: E402
from nmn.mlx.random_features import create_radial_projection as create_radial_projection  # noqa: E402
from nmn.mlx.random_features import create_yat_tp_projection as create_yat_tp_projection  # noqa: E402
from nmn.mlx.random_features import linear_attention as linear_attention  # noqa: E402
from nmn.mlx.random_features import linear_attention_readout as linear_attention_readout  # noqa: E402
from nmn.mlx.random_features import maclaurin_coeffs as maclaurin_coeffs  # noqa: E402
from nmn.mlx.random_features import maclaurin_features as maclaurin_features  # noqa: E402
from nmn.mlx.random_features import maclaurin_yat_attention as maclaurin_yat_attention  # noqa: E402
from nmn.mlx.random_features import radial_features as radial_features  # noqa: E402
from nmn.mlx.random_features import radial_yat_attention as radial_yat_attention  # noqa: E402
from nmn.mlx.random_features import spherical_kappa as spherical_kappa  # noqa: E402
from nmn.mlx.random_features import yat_tp_attention as yat_tp_attention  # noqa: E402
from nmn.mlx.random_features import yat_tp_features as yat_tp_features  # noqa: E402
