"""Yat attention for PyTorch: ``MultiHeadYatAttention`` (quadratic or Yat-Performer) and ``RotaryYatAttention``."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as _nnf

from nmn.core import random_features as _rf
from nmn.core import yat as _yat
from nmn.core.names import refuse_keywords
from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_THETA,
    check_positive_int,
    mask_needs_head_axis,
    refuse_rotary_performer,
)
from nmn.core.spec import AttentionSpec, RopeSpec, check_heads, pick_alias
from nmn.core.yat import performer_degree
from nmn.torch import functional
from nmn.torch._ops import ops_for


def performer_projection(
    num_features: int,
    head_dim: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Random projection ``(num_features, head_dim)``: stacked orthogonal blocks, every row of norm sqrt(head_dim).

    >>> p = performer_projection(6, 4, generator=torch.Generator().manual_seed(0))
    >>> p.shape, round(float(p[0].norm()), 4)
    (torch.Size([6, 4]), 2.0)
    """
    blocks = []
    for _ in range(-(-num_features // head_dim)):
        g = torch.randn(head_dim, head_dim, generator=generator, dtype=torch.float64)
        q, _ = torch.linalg.qr(g)
        blocks.append(q.T)
    proj = torch.cat(blocks)[:num_features] * math.sqrt(head_dim)
    return proj.to(device=device, dtype=dtype or torch.get_default_dtype())


def _as_mask(mask, name, batch):
    """A bool mask as (B, H, Lq, Lk) or broadcastable: a 3-D (B, Lq, Lk) mask is per batch element (head axis added)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            f"{name}: mask must be a bool tensor (True = attend), got {getattr(mask, 'dtype', type(mask).__name__)}"
        )
    return mask.unsqueeze(1) if mask_needs_head_axis(mask.dim(), name) else mask


#: the frozen projections of the random-feature performers, by ``performer_kind``: buffer names, which are also the
#: neutral spec's param names, in the order of the ONNX node's inputs
RF_BUFFERS = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}
#: the random-feature performers' own keywords (beyond performer_nmax / performer_bias) and their defaults
RF_KEYWORDS = ("performer_kind", "performer_sketch_m", "performer_num_radial", "performer_radial_dim")


def random_feature_arrays(layer, seed) -> dict:
    """The frozen MAY / RAY projections of ``layer`` sampled by :mod:`nmn.core.random_features` from ``seed``:
    ``{buffer name: float32 numpy}`` (``{}`` for the SLAY performer or quadratic attention)."""
    kind = layer.performer_kind if layer.use_performer else None
    common = dict(bias=layer.performer_bias, epsilon=layer.epsilon, seed=seed)
    if kind == "maclaurin":
        p = _rf.maclaurin_projection(layer.head_dim, layer.num_features, nmax=layer.performer_degree, **common)
        return dict(zip(RF_BUFFERS[kind], (p["omega"], p["degmask"], p["scale"])))
    if kind == "radial":
        sizes = (layer.performer_sketch_m, layer.performer_num_radial, layer.performer_radial_dim)
        p = _rf.radial_projection(layer.head_dim, *sizes, **common)
        return dict(zip(RF_BUFFERS[kind], (p["w1"], p["w2"], p["omega"], p["phase"], p["coef"])))
    return {}


class _YatAttentionBase(nn.Module):
    """Four affine projections (q, k, v, out) around Yat attention of ``(B, L, H, D)`` heads."""

    def __init__(self, embed_dim, num_heads, bias, factory, **options):
        super().__init__()
        name = type(self).__name__
        self.head_dim = check_heads(embed_dim, num_heads, name)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        options["use_bias"] = pick_alias(bias, options.get("use_bias"), True, "bias", "use_bias", name)
        self.attn = AttentionSpec.build(name, **options)
        a = self.attn
        a.set_attributes(self)
        e = embed_dim
        self.q_proj = nn.Linear(e, e, bias=self.use_bias, **factory)
        self.k_proj = nn.Linear(e, e, bias=self.use_bias, **factory)
        self.v_proj = nn.Linear(e, e, bias=self.use_bias, **factory)
        self.out_proj = nn.Linear(e, e, bias=self.use_bias, **factory) if self.use_out_proj else None
        self.alpha = nn.Parameter(torch.empty(1, **factory)) if a.has_alpha else None
        self.performer_nmax, self.performer_bias, self.performer_degree = None, 0.0, None

    @property
    def use_alpha(self) -> bool:
        return self.attn.use_alpha

    @property
    def constant_alpha(self) -> float | None:
        return self.attn.constant_alpha

    def reset_parameters(self) -> None:
        """Projection weights ~ Xavier normal, biases zeros, alpha 1."""
        with torch.no_grad():
            for lin in self._projections():
                nn.init.xavier_normal_(lin.weight)
                if lin.bias is not None:
                    lin.bias.zero_()
            if self.alpha is not None:
                self.alpha.fill_(1.0)

    def _projections(self):
        return [p for p in (self.q_proj, self.k_proj, self.v_proj, self.out_proj) if p is not None]

    def _alpha_term(self):
        return self.attn.alpha_term(self.alpha)

    def _check(self, x, what):
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{type(self).__name__}: expected {what} of shape (B, L, {self.embed_dim}) "
                f"(embed_dim={self.embed_dim}), got shape {tuple(x.shape)}"
            )
        compute = getattr(self, "compute_dtype", None)
        return x.to(compute if compute is not None else torch.promote_types(x.dtype, self.q_proj.weight.dtype))

    def _linear(self, x, proj):
        """``proj(x)``; with a ``compute_dtype`` (nmn 0.3's ``dtype`` beside ``param_dtype``) the stored weights are
        cast to it for the call."""
        compute = getattr(self, "compute_dtype", None)
        if compute is None or proj.weight.dtype == compute:
            return proj(x)
        bias = None if proj.bias is None else proj.bias.to(compute)
        return _nnf.linear(x, proj.weight.to(compute), bias)

    def _heads(self, x, proj):
        b, l, _ = x.shape
        return self._linear(x, proj).reshape(b, l, self.num_heads, self.head_dim)

    def _attend(self, q, k, v, mask, causal):
        """Per-head attention output: the Yat-Performer (no mask, ``Lq == Lk`` when causal) or quadratic."""
        name = type(self).__name__
        if not self.use_performer:
            return functional.yat_attention(
                q,
                k,
                v,
                mask,
                self._alpha_term(),
                self.epsilon,
                spherical=self.spherical,
                normalization=self.normalization,
                power=self.power,
                causal=causal,
                dropout_p=self.dropout,
                training=self.training,
            )
        if mask is not None:
            raise ValueError(
                f"{name}: use_performer=True takes no mask (use causal=True), got a mask of shape {tuple(mask.shape)}"
            )
        if causal and q.shape[1] != k.shape[1]:
            raise ValueError(f"{name}: a causal performer needs Lq == Lk, got {q.shape[1]} and {k.shape[1]}")
        if self.performer_kind in RF_BUFFERS:  # MAY / RAY: no alpha (it cancels), the ONNX functions' epsilons
            F, dtype = ops_for(q), q.dtype
            q, k, v = F.to_f32(q), F.to_f32(k), F.to_f32(v)  # float16 / bfloat16 heads compute in float32
            qf, kf = self._random_features(F, q), self._random_features(F, k)
            out = _yat.linear_readout(F, qf, kf, v, causal=causal).to(dtype)  # epsilon: PERFORMER_DIV_EPSILON
            return _nnf.dropout(out, self.dropout, self.training) if self.dropout else out
        kernel = dict(degree=self.performer_degree, bias=self.performer_bias)
        qf = functional.performer_features(q, self.proj, self.epsilon, **kernel)
        kf = functional.performer_features(k, self.proj, self.epsilon, **kernel)
        alpha = self._alpha_term()  # a fixed alpha only: it cancels except against the readout's 1e-6 shift
        qf = qf if alpha is None else qf * alpha
        out = functional.linear_attention(qf, kf, v, causal=causal)
        return _nnf.dropout(out, self.dropout, self.training) if self.dropout else out

    def _random_features(self, F, x):
        """MAY / RAY features of ``(B, L, H, D)`` heads with the frozen projection buffers (x's dtype)."""
        arrays = [getattr(self, name).to(x.dtype) for name in RF_BUFFERS[self.performer_kind]]
        eps = DEFAULTS["random_feature_norm_epsilon"]
        if self.performer_kind == "maclaurin":
            return _rf.maclaurin_features(F, x, *arrays, epsilon=eps)
        return _rf.radial_features(F, x, *arrays, bias=self.performer_bias, epsilon=eps)

    def _output(self, out):
        b, l = out.shape[:2]
        out = out.reshape(b, l, self.embed_dim)
        return self._linear(out, self.out_proj) if self.out_proj is not None else out

    def _attn_repr(self) -> str:
        extra = ""
        if self.use_performer and self.performer_kind != "slay":
            extra = f", performer_kind={self.performer_kind!r}"
            if self.performer_kind == "maclaurin":
                extra += f", performer_nmax={self.performer_degree}"
            else:
                extra += f", performer_sketch_m={self.performer_sketch_m}, performer_num_radial="
                extra += f"{self.performer_num_radial}, performer_radial_dim={self.performer_radial_dim}"
            extra += f", performer_bias={self.performer_bias:g}" if self.performer_bias else ""
        elif self.use_performer:
            extra = f", performer_degree={self.performer_degree}"
            extra += f", performer_bias={self.performer_bias:g}" if self.performer_bias else ""
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, {self.attn.repr()}{extra}"


class MultiHeadYatAttention(_YatAttentionBase):
    """Multi-head Yat attention, batch first.

    ``score = alpha (q.k)^2 / ((relu(|q|^2 + |k|^2 - 2 q.k) + epsilon) sqrt(head_dim))``, masked, normalised
    over the keys, ``out = out_proj(A . V)`` with plain affine q/k/v/out projections.
    With ``use_performer=True``: the O(L m D) spherical Yat-Performer, random features ``phi``
    (:func:`nmn.core.yat.performer_features`) of the heads with a random ``proj (num_features, head_dim)``
    buffer drawn once at construction, read out as ``phi(q) (phi(K)^T V) / (phi(q) . sum phi(K))``; it
    estimates that readout with the degree-K Maclaurin truncation of the spherical Yat score
    ``(t + b)^2 / (2 + eps - 2t)`` (``t = q_hat . k_hat``, ``b = performer_bias``; no alpha: it cancels in the
    ratio), ``K`` from :func:`nmn.core.yat.performer_degree` (growing with ``num_features``, so the output
    converges to the exact spherical Yat attention) unless ``performer_nmax`` fixes it.

    Args:
        embed_dim: model width ``E`` (divisible by ``num_heads``).
        num_heads: number of heads.
        dropout: dropout on the attention weights in training (default 0.0).
        bias: biases of the four projections (default True); ``use_bias=`` is the same switch.
        use_alpha: learnable score scale ``alpha (1,)``, init 1 (default True), a parameter
            only under softmax: under 'l1', 'softermax' and the performer alpha cancels, so those layers have no
            alpha parameter (a ``constant_alpha`` is applied there and cancels too).
        constant_alpha: ``True`` (sqrt 2) or a number, no parameter (default None).
        epsilon: > 0 (default 1e-5).
        spherical: ``q / sqrt(|q|^2 + eps)``, likewise ``k``; distance ``2 - 2 s`` (default False).
        normalization: ``'softmax'`` (default), ``'l1'`` or ``'softermax'``; power: softermax exponent (1.0).
        use_out_proj: apply the output projection (default True).
        causal: causal self-attention (default False).
        use_performer: linear-time spherical Yat-Performer (default False); num_features: its ``m`` (256).
        performer_nmax: the performer's Maclaurin degree K, an int from 2 to 64 (default None: the degree rule
            of :func:`nmn.core.yat.performer_degree`, 3 at m = 256 and D = 16).
        performer_bias: b >= 0 of the estimated score ``(t + b)^2 / (2 + eps - 2t)`` (default 0.0).
        performer_kind: the performer's random features: ``'slay'`` (default, the Gegenbauer map above),
            ``'maclaurin'`` (nmn 0.3's MAY: ``num_features`` random Maclaurin features of the degree-``nmax``
            truncation of that score, ``nmax = performer_nmax`` or 40, an int 1..64;
            :func:`nmn.core.random_features.maclaurin_features`) or ``'radial'`` (RAY: a degree-2 sketch of
            ``(t + b)^2`` times radial random Fourier features; :func:`nmn.core.random_features.radial_features`).
            The MAY / RAY projections are frozen buffers (``may_*`` / ``ray_*``, in ``state_dict``, not
            parameters) drawn at construction from torch's global generator; the forward has no alpha (it
            cancels) and the features normalise with 1e-6 as the ONNX functions do.
        performer_sketch_m, performer_num_radial, performer_radial_dim: RAY's sketch width ``m`` (128), Gauss-
            Laguerre nodes ``J`` (8) and Fourier features per node ``R`` (64): ``m J R`` features per head.
            Kind keywords other than their defaults where they have no effect raise ``ValueError``.
        device, dtype: factory arguments.
        param_dtype: nmn 0.3's storage dtype of the parameters (default None: ``dtype``); given, ``dtype`` becomes
            the compute dtype (inputs and the cast weights run in it), as in nmn 0.3.

    Shape: ``forward(query (B, Lq, E), key (B, Lk, E) = query, value (B, Lk, E) = key, mask=None) -> (B, Lq, E)``;
    ``mask`` is bool (True = attend),
    ``(Lq, Lk)``, ``(B, Lq, Lk)`` (per batch element, the same for every head) or ``(B, H, Lq, Lk)``.

    Example:
        >>> attn = MultiHeadYatAttention(embed_dim=8, num_heads=2)
        >>> x = torch.randn(2, 5, 8)
        >>> attn(x, x, x).shape
        torch.Size([2, 5, 8])
        >>> may = MultiHeadYatAttention(8, 2, use_performer=True, performer_kind="maclaurin", num_features=16)
        >>> may(x).shape, sorted(name for name, _ in may.named_buffers())
        (torch.Size([2, 5, 8]), ['may_degmask', 'may_omega', 'may_scale'])
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool | None = None,
        *,
        use_bias: bool | None = None,
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
        device: torch.device | str | int | None = None,
        dtype: torch.dtype | None = None,
        param_dtype: torch.dtype | None = None,
        **refused: Any,
    ):
        name = type(self).__name__
        refuse_keywords(name, refused)
        for key, value in (("dtype", dtype), ("param_dtype", param_dtype)):
            if value is not None and not isinstance(value, torch.dtype):
                raise TypeError(f"{name}: {key} must be a torch.dtype or None, got {value!r}")
        # nmn 0.3: parameters stored in param_dtype (default: dtype), computed in dtype when both are given
        factory = {"device": device, "dtype": param_dtype if param_dtype is not None else dtype}
        self_compute = dtype if param_dtype is not None else None
        performer = dict(
            performer_nmax=performer_nmax,
            performer_bias=performer_bias,
            performer_kind=performer_kind,
            performer_sketch_m=performer_sketch_m,
            performer_num_radial=performer_num_radial,
            performer_radial_dim=performer_radial_dim,
        )
        super().__init__(
            embed_dim,
            num_heads,
            bias,
            factory,
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
            **performer,
        )
        a = self.attn  # validated the performer keywords and mirrored performer_kind and the RAY sizes
        kind, self.performer_bias = a.performer_kind, a.performer_bias
        slay = self.use_performer and kind == "slay"
        if kind == "maclaurin":  # a.performer_nmax: MAY's resolved degree; the attribute keeps what was given
            self.performer_nmax, self.performer_degree = performer_nmax, a.performer_nmax
        else:
            self.performer_nmax = a.performer_nmax
            self.performer_degree = (
                performer_degree(self.num_features, self.head_dim, a.performer_nmax) if slay else None
            )
        proj = performer_projection(self.num_features, self.head_dim, **factory) if slay else None
        self.register_buffer("proj", proj)
        self._register_random_features(factory)
        self.compute_dtype, self.param_dtype = self_compute, factory["dtype"]
        self.reset_parameters()

    def _register_random_features(self, factory):
        """The frozen MAY / RAY projection buffers, sampled from a seed drawn from torch's global generator (so
        ``torch.manual_seed`` fixes them), saved in ``state_dict`` like ``proj``."""
        if not (self.use_performer and self.performer_kind in RF_BUFFERS):
            return
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        dtype = factory["dtype"] or torch.get_default_dtype()
        for key, array in random_feature_arrays(self, seed).items():
            self.register_buffer(key, torch.as_tensor(array).to(device=factory["device"], dtype=dtype))

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        key = query if key is None else key
        value = key if value is None else value
        query, key, value = self._check(query, "query"), self._check(key, "key"), self._check(value, "value")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: key {tuple(key.shape)} and value {tuple(value.shape)} must "
                f"share (B, Lk) with query batch {query.shape[0]}"
            )
        q, k, v = self._heads(query, self.q_proj), self._heads(key, self.k_proj), self._heads(value, self.v_proj)
        mask = _as_mask(mask, type(self).__name__, query.shape[0])
        return self._output(self._attend(q, k, v, mask, self.causal))

    def extra_repr(self) -> str:
        return self._attn_repr()


class RotaryYatAttention(_YatAttentionBase):
    """Multi-head Yat self-attention with rotary position embeddings (RoPE) on q and k, and a KV cache.

    Each token is rotated at its absolute position: ``x'[2i] = x[2i] cos(t f_i) - x[2i+1] sin(t f_i)``,
    ``x'[2i+1] = x[2i] sin(t f_i) + x[2i+1] cos(t f_i)``, ``f_i = theta^(-2i/d)`` (``rope_style='half'`` pairs
    ``x[i]`` with ``x[i + d/2]``), then the score of :class:`MultiHeadYatAttention`.

    Args:
        embed_dim, num_heads: as :class:`MultiHeadYatAttention` (``head_dim`` must be even).
        max_seq_len: largest position + 1 (default 2048).
        theta: RoPE base (default 10000.0).
        rope_style: ``'interleaved'`` (default) or ``'half'``.
        dropout, bias / use_bias, use_alpha, constant_alpha, epsilon, spherical, normalization, power,
        use_out_proj, causal, device, dtype: as :class:`MultiHeadYatAttention`.
        use_performer, num_features, performer_nmax, performer_bias, performer_kind, performer_sketch_m,
            performer_num_radial, performer_radial_dim: taken as in the other five frameworks' rotary attentions,
            but there is no performer with rotary embeddings: ``use_performer=True`` and non-default performer
            keywords raise ``ValueError`` saying so.

    Shape: ``forward(x (B, L, E), mask=None, decode=False) -> (B, L, E)``. With ``decode=True`` (after
    :meth:`init_cache`) ``x`` holds the next tokens; their keys/values are appended to the cache and they attend
    causally to everything cached, so step-by-step decoding equals the causal full pass.

    Example:
        >>> attn = RotaryYatAttention(8, 2, max_seq_len=16, causal=True)
        >>> x = torch.randn(1, 4, 8)
        >>> full = attn(x)
        >>> attn.init_cache(1, 16)
        >>> steps = torch.cat([attn(x[:, i:i + 1], decode=True) for i in range(4)], 1)
        >>> bool(torch.allclose(full, steps, atol=1e-5))
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
        dropout: float = 0.0,
        bias: bool | None = None,
        use_bias: bool | None = None,
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
        performer_nmax: int | None = None,
        performer_bias: float = DEFAULTS["performer_bias"],
        performer_kind: str = DEFAULTS["performer_kind"],
        performer_sketch_m: int = DEFAULTS["performer_sketch_m"],
        performer_num_radial: int = DEFAULTS["performer_num_radial"],
        performer_radial_dim: int = DEFAULTS["performer_radial_dim"],
        device: torch.device | str | int | None = None,
        dtype: torch.dtype | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        factory = {"device": device, "dtype": dtype}
        name = type(self).__name__
        check_positive_int(num_features, "num_features", name)
        refuse_rotary_performer(name, performer_nmax, performer_bias)
        kinds = (performer_kind, performer_sketch_m, performer_num_radial, performer_radial_dim)
        for key, value in zip(RF_KEYWORDS, kinds):
            if value != DEFAULTS[key]:
                raise ValueError(
                    f"{name}: {key}={value!r} has no effect here (no performer with rotary embeddings); "
                    "use MultiHeadYatAttention(use_performer=True, performer_kind=...)"
                )
        self_dim = check_heads(embed_dim, num_heads, name)
        rope = RopeSpec.build(
            name, self_dim, max_seq_len=max_seq_len, theta=theta, rope_style=rope_style, use_performer=use_performer
        )
        super().__init__(
            embed_dim,
            num_heads,
            bias,
            factory,
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
        )
        self.rope = rope
        self.max_seq_len, self.theta, self.rope_style = rope.max_seq_len, rope.theta, rope.rope_style
        cos, sin = functional.rope_tables(self.head_dim, self.max_seq_len, self.theta, device=device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.cache_k = self.cache_v = None
        self.cache_index = 0
        self.reset_parameters()

    def init_cache(self, batch_size: int, max_length: int | None = None) -> None:
        """Allocate an empty KV cache for ``batch_size`` sequences of up to ``max_length`` (<= max_seq_len) tokens."""
        name = type(self).__name__
        max_length = self.max_seq_len if max_length is None else check_positive_int(max_length, "max_length", name)
        if max_length > self.max_seq_len:
            raise ValueError(f"{name}: max_length={max_length} exceeds max_seq_len={self.max_seq_len}")
        w = self.q_proj.weight
        shape = (check_positive_int(batch_size, "batch_size", name), max_length, self.num_heads, self.head_dim)
        self.cache_k = torch.zeros(shape, device=w.device, dtype=w.dtype)
        self.cache_v = torch.zeros(shape, device=w.device, dtype=w.dtype)
        self.cache_index = 0

    def reset_cache(self) -> None:
        """Forget the cached keys and values (the cache stays allocated)."""
        self.cache_index = 0

    def _rotate(self, x, start):
        l = x.shape[1]
        return functional.rope(
            x, self.cos[start : start + l], self.sin[start : start + l], interleaved=self.rope.interleaved
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, decode: bool = False) -> torch.Tensor:
        name = type(self).__name__
        x = self._check(x, "x")
        b, l, _ = x.shape
        mask = _as_mask(mask, name, b)
        q, k, v = self._heads(x, self.q_proj), self._heads(x, self.k_proj), self._heads(x, self.v_proj)
        if not decode:
            if l > self.max_seq_len:
                raise ValueError(f"{name}: sequence length {l} exceeds max_seq_len={self.max_seq_len}")
            return self._output(self._attend(self._rotate(q, 0), self._rotate(k, 0), v, mask, self.causal))
        if self.cache_k is None:
            raise ValueError(f"{name}: decode=True needs init_cache(batch_size, max_length) first")
        start, end = self.cache_index, self.cache_index + l
        if b != self.cache_k.shape[0] or end > self.cache_k.shape[1]:
            raise ValueError(
                f"{name}: cannot append input of shape {tuple(x.shape)} at position {start} to a "
                f"cache of shape {tuple(self.cache_k.shape)}"
            )
        self.cache_k[:, start:end] = self._rotate(k, start).detach().to(self.cache_k.dtype)
        self.cache_v[:, start:end] = v.detach().to(self.cache_v.dtype)
        self.cache_index = end
        out = self._attend(self._rotate(q, start), self.cache_k[:, :end], self.cache_v[:, :end], mask, True)
        return self._output(out)

    def extra_repr(self) -> str:
        return f"{self._attn_repr()}, {self.rope.repr()}"


# nmn 0.3 imported its functional attention helpers from here (`from nmn.torch.attention import yat_attention`,
# `maclaurin_yat_attention`, ...); they live in nmn.torch.attention_helpers and nmn.torch.random_features (and at
# the package root) and are re-exported so pasted imports run.
from nmn.torch.attention_helpers import normalize_qk as normalize_qk  # noqa: E402
from nmn.torch.attention_helpers import yat_attention as yat_attention  # noqa: E402
from nmn.torch.attention_helpers import yat_attention_normalized as yat_attention_normalized  # noqa: E402
from nmn.torch.attention_helpers import yat_attention_weights as yat_attention_weights  # noqa: E402
from nmn.torch.random_features import create_maclaurin_projection as create_maclaurin_projection  # noqa: E402
from nmn.torch.random_features import create_radial_projection as create_radial_projection  # noqa: E402
from nmn.torch.random_features import create_yat_tp_projection as create_yat_tp_projection  # noqa: E402
from nmn.torch.random_features import linear_attention as linear_attention  # noqa: E402
from nmn.torch.random_features import linear_attention_readout as linear_attention_readout  # noqa: E402
from nmn.torch.random_features import maclaurin_coeffs as maclaurin_coeffs  # noqa: E402
from nmn.torch.random_features import maclaurin_features as maclaurin_features  # noqa: E402
from nmn.torch.random_features import maclaurin_yat_attention as maclaurin_yat_attention  # noqa: E402
from nmn.torch.random_features import radial_features as radial_features  # noqa: E402
from nmn.torch.random_features import radial_yat_attention as radial_yat_attention  # noqa: E402
from nmn.torch.random_features import spherical_kappa as spherical_kappa  # noqa: E402
from nmn.torch.random_features import yat_tp_attention as yat_tp_attention  # noqa: E402
from nmn.torch.random_features import yat_tp_features as yat_tp_features  # noqa: E402
