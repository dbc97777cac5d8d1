"""``MultiHeadYatAttention`` / ``RotaryYatAttention`` logic shared by ``nmn.keras`` and ``nmn.tf``.

Option checks, the performer projection, the RoPE tables, the KV-cache geometry and the choice between the
Yat-Performer and quadratic Yat attention are written once; the caller passes its ops namespace ``F`` and its
``functional`` module (``nmn.keras.functional`` or ``nmn.tf.functional``).

>>> performer_projection(3, 2, seed=0).shape
(3, 2)
"""

from __future__ import annotations

import math

import numpy as np

from nmn._tfkeras.options import layer_label
from nmn.core import random_features as rf
from nmn.core import yat
from nmn.core.options import DEFAULTS, check_positive_int, refuse_rotary_performer
from nmn.core.spec import AttentionSpec, RopeSpec, check_heads

#: The frozen projections of the random-feature performers, by ``performer_kind``: the layer attributes and the
#: neutral spec's param names (one name for both), in the order of the ONNX node's inputs.
RF_PARAMS = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}
ALL_RF_PARAMS = RF_PARAMS["maclaurin"] + RF_PARAMS["radial"]
#: The random-feature performers' own keywords (beyond ``performer_nmax`` / ``performer_bias``).
RF_KEYWORDS = ("performer_kind", "performer_sketch_m", "performer_num_radial", "performer_radial_dim")


def set_attention_options(
    layer,
    *,
    embed_dim,
    num_heads,
    seed,
    performer_nmax=DEFAULTS["performer_nmax"],
    performer_bias=DEFAULTS["performer_bias"],
    **options,
):
    """Build the layer's :class:`~nmn.core.spec.AttentionSpec` (``layer.attn``) and expose its options as
    attributes (``embed_dim``, ``num_heads``, ``head_dim``, ``seed``, ``performer_nmax``, ``performer_bias``,
    ``performer_kind`` and the RAY sizes, and the resolved ``performer_degree`` besides: the SLAY map's degree, or
    MAY's truncation degree ``nmax``)."""
    cls = type(layer).__name__
    layer.head_dim = check_heads(embed_dim, num_heads, cls)
    layer.embed_dim, layer.num_heads, layer.seed = embed_dim, num_heads, seed
    a = layer.attn = AttentionSpec.build(cls, performer_nmax=performer_nmax, performer_bias=performer_bias, **options)
    a.set_attributes(layer, alpha=True)  # also performer_kind and the RAY sizes
    layer.performer_bias = a.performer_bias
    # the config keeps performer_nmax as given (None: the degree rule, or MAY's 40); performer_degree is resolved
    layer.performer_nmax = performer_nmax if a.performer_kind == "maclaurin" else a.performer_nmax
    layer.performer_degree = None
    if a.use_performer and a.performer_kind == "slay":
        layer.performer_degree = yat.performer_degree(layer.num_features, layer.head_dim, layer.performer_nmax)
    elif a.use_performer and a.performer_kind == "maclaurin":
        layer.performer_degree = a.performer_nmax


def performer_config(layer):
    """The performer keys of ``get_config`` / the neutral spec of a ``MultiHeadYatAttention``."""
    return {
        "performer_nmax": layer.performer_nmax,
        "performer_bias": layer.performer_bias,
        **{k: getattr(layer, k) for k in RF_KEYWORDS},
    }


def random_feature_kind(layer):
    """``"maclaurin"`` / ``"radial"`` for a layer with a random-feature performer, else ``None`` (the SLAY
    performer or quadratic attention)."""
    kind = getattr(layer, "performer_kind", "slay")
    return kind if getattr(layer, "use_performer", False) and kind in RF_PARAMS else None


def random_feature_arrays(layer, seed):
    """The layer's frozen projections sampled by :mod:`nmn.core.random_features` from ``seed`` (an int drawn
    from the framework's RNG when the layer has none): ``{param name: float32 numpy}``, or ``{}``."""
    kind = random_feature_kind(layer)
    if kind == "maclaurin":
        p = rf.maclaurin_projection(
            layer.head_dim,
            layer.num_features,
            bias=layer.performer_bias,
            epsilon=layer.epsilon,
            nmax=layer.performer_degree,
            seed=seed,
        )
        return dict(zip(RF_PARAMS[kind], (p["omega"], p["degmask"], p["scale"])))
    if kind == "radial":
        p = rf.radial_projection(
            layer.head_dim,
            layer.performer_sketch_m,
            layer.performer_num_radial,
            layer.performer_radial_dim,
            bias=layer.performer_bias,
            epsilon=layer.epsilon,
            seed=seed,
        )
        return dict(zip(RF_PARAMS[kind], (p["w1"], p["w2"], p["omega"], p["phase"], p["coef"])))
    return {}


def random_features(layer, F, x):
    """The layer's MAY / RAY features of ``x (B, L, H, D)`` (float32, the ONNX functions' epsilon 1e-6)."""
    kind = random_feature_kind(layer)
    arrays = [F.to_f32(getattr(layer, name)) for name in RF_PARAMS[kind]]
    eps = DEFAULTS["random_feature_norm_epsilon"]
    if kind == "maclaurin":
        return rf.maclaurin_features(F, x, *arrays, epsilon=eps)
    return rf.radial_features(F, x, *arrays, bias=layer.performer_bias, epsilon=eps)


def performer_projection(num_features, head_dim, seed=None):
    """Orthogonal random features ``(num_features, head_dim)``: QR blocks scaled so every row has norm sqrt(d)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(-(-num_features // head_dim)):
        q, _ = np.linalg.qr(rng.normal(size=(head_dim, head_dim)))
        blocks.append(q.T)
    return (np.concatenate(blocks, 0)[:num_features] * math.sqrt(head_dim)).astype(np.float32)


def refuse_performer(layer, kwargs):
    """``RotaryYatAttention`` does not offer the Yat-Performer (checked before the base constructor runs)."""
    if kwargs.get("use_performer"):
        RopeSpec.build(type(layer).__name__, 2, use_performer=True)  # raises the one message
    refuse_rotary_performer(type(layer).__name__, kwargs.get("performer_nmax"), kwargs.get("performer_bias", 0.0))
    for key in RF_KEYWORDS:
        if key in kwargs and kwargs[key] != DEFAULTS[key]:
            raise ValueError(
                f"{type(layer).__name__}: {key}={kwargs[key]!r} has no effect here (no performer with rotary "
                f"embeddings); use MultiHeadYatAttention(use_performer=True, {key}=...)"
            )


def set_rope_options(layer, *, max_seq_len, theta, rope_style):
    """Validate and store the ``RotaryYatAttention`` keyword arguments (after the attention ones)."""
    rope = layer.rope = RopeSpec.build(
        type(layer).__name__, layer.head_dim, max_seq_len=max_seq_len, theta=theta, rope_style=rope_style
    )
    layer.max_seq_len, layer.theta, layer.rope_style = rope.max_seq_len, rope.theta, rope.rope_style
    layer._tables = None


def rope_slices(layer, shape, start):
    """The float32 numpy ``(cos, sin)`` rows for positions ``start..start+L-1`` of an input of ``shape (B, L, ...)``,
    checked against ``layer.max_seq_len``; the tables are computed once per layer."""
    length = shape[1]
    if length is None:
        raise ValueError(f"{layer_label(layer)}: RoPE needs a known sequence length, got shape {tuple(shape)}")
    if start + length > layer.max_seq_len:
        raise ValueError(
            f"{layer_label(layer)}: positions {start}..{start + length - 1} exceed max_seq_len={layer.max_seq_len}"
        )
    if layer._tables is None:
        cos, sin = yat.rope_tables(layer.head_dim, layer.max_seq_len, layer.theta)
        layer._tables = (np.asarray(cos, np.float32), np.asarray(sin, np.float32))
    cos, sin = layer._tables
    return cos[start : start + length], sin[start : start + length]


def cache_shape(layer, batch_size, max_length=None):
    """The ``(B, T, H, D)`` shape of an empty KV cache (``T``: ``max_length``, at most ``max_seq_len``)."""
    length = (
        layer.max_seq_len if max_length is None else check_positive_int(max_length, "max_length", type(layer).__name__)
    )
    return (batch_size, min(length, layer.max_seq_len), layer.num_heads, layer.head_dim)


def check_cache_room(layer, start, length, capacity):
    """Raise if ``length`` positions from ``start`` do not fit a cache of ``capacity`` positions."""
    if start + length > capacity:
        raise ValueError(f"{layer_label(layer)}: the cache holds {capacity} positions, cannot add {length} at {start}")


def attend_heads(layer, F, functional, q, k, v, mask, causal, dropout, alpha):
    """The attention output of ``q, k, v (B, L, H, D)``, still per head: the Yat-Performer when
    ``layer.use_performer`` (features in float32, result in ``v``'s dtype), else quadratic Yat attention with the
    optional ``dropout`` of the weights."""
    if random_feature_kind(layer) is not None:
        qf, kf = random_features(layer, F, F.to_f32(q)), random_features(layer, F, F.to_f32(k))
        return F.cast_like(yat.linear_readout(F, qf, kf, F.to_f32(v), causal=causal), v)
    if layer.use_performer:
        proj = F.to_f32(layer.proj)
        kernel = dict(degree=layer.performer_degree, bias=layer.performer_bias)
        qf = functional.performer_features(F.to_f32(q), proj, layer.epsilon, **kernel)
        kf = functional.performer_features(F.to_f32(k), proj, layer.epsilon, **kernel)
        if alpha is not None:
            qf = qf * alpha
        return F.cast_like(functional.linear_readout(qf, kf, F.to_f32(v), causal=causal), v)
    return functional.yat_attention(
        q,
        k,
        v,
        mask,
        alpha,
        layer.epsilon,
        spherical=layer.spherical,
        normalization=layer.normalization,
        power=layer.power,
        causal=causal,
        dropout=dropout,
    )
