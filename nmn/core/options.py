"""Defaults and option validation shared by every framework (docs/design.md §D and §0.2).

Every constant lives here once: the default epsilon, sqrt(2) for ``constant_alpha=True`` and the 1e-8 guard
of the spherical / weight-normalised modes.

>>> resolve_alpha(True, None)
AlphaSpec(learnable=True, value=1.0)
>>> resolve_alpha(True, True).value == SQRT2
True
>>> check_epsilon(0.0, "YatNMN")
Traceback (most recent call last):
...
ValueError: YatNMN: epsilon must be > 0, got 0.0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

DEFAULT_EPSILON = 1e-5
SQRT2 = math.sqrt(2.0)
NORM_GUARD = 1e-8
SOFTERMAX_EPSILON = 1e-12
PERFORMER_DIV_EPSILON = 1e-6
ROPE_THETA = 10000.0
PERFORMER_NUM_FEATURES = 256
#: the Yat-Performer's degree rule: the largest n with N_n(D) <= PERFORMER_DEGREE_SPAN * m (at least 3)
PERFORMER_DEGREE_SPAN = 4
#: the degree of the Yat-Performer files written before the degree was an attribute (ONNX ``degree`` default)
PERFORMER_LEGACY_DEGREE = 3
ROPE_MAX_SEQ_LEN = 2048
NORMALIZATIONS = ("softmax", "l1", "softermax")
PERFORMER_KINDS = ("slay", "maclaurin", "radial")
ROPE_STYLES = ("interleaved", "half")


# The one table of layer defaults that every framework reads (issue 18: a default that differs between frameworks
# is a bug). Keys are the canonical keyword names; frameworks that spell an option differently map to these.
DEFAULTS = {
    "epsilon": DEFAULT_EPSILON,
    "constant_alpha_true": SQRT2,
    "softermax_epsilon": SOFTERMAX_EPSILON,
    "squash_n": 1.0,
    "attention_normalization": "softmax",
    "attention_power": 1.0,
    "performer_num_features": PERFORMER_NUM_FEATURES,
    "performer_nmax": None,  # None: the degree rule of nmn.core.yat.performer_degree; an int: that degree
    "performer_bias": 0.0,  # b of the estimated kernel (t + b)^2 / (2 + eps - 2t)
    # nmn 0.3's bias-aware random-feature attentions (issue 17): "slay" is nmn's Gegenbauer performer,
    # "maclaurin" the MAY random Maclaurin features, "radial" the RAY degree-2 sketch x radial Fourier features
    "performer_kind": "slay",
    "performer_maclaurin_nmax": 40,  # MAY's truncation degree when performer_nmax is None (nmn 0.3's default)
    "performer_sketch_m": 128,  # RAY: the degree-2 sketch width m
    "performer_num_radial": 8,  # RAY: Gauss-Laguerre nodes J of the radial factor
    "performer_radial_dim": 64,  # RAY: random Fourier features R per node
    "random_feature_norm_epsilon": 1e-6,  # MAY/RAY/anchor features: x_hat = x / sqrt(|x|^2 + this)
    "rope_theta": ROPE_THETA,
    "rope_max_seq_len": ROPE_MAX_SEQ_LEN,
    "rope_style": "interleaved",
}


@dataclass(frozen=True)
class AlphaSpec:
    """How a layer scales its output: a learnable parameter (init ``value``) or a fixed ``value``."""

    learnable: bool
    value: float


@dataclass(frozen=True)
class BiasSpec:
    """The numerator bias: ``mode`` is ``"learnable"``, ``"constant"`` (fixed ``value``) or ``"none"``."""

    mode: str
    value: float = 0.0


def resolve_alpha(use_alpha: bool, constant_alpha: Any) -> AlphaSpec:
    """Resolve the three alpha modes; ``constant_alpha`` wins over ``use_alpha``.

    ``constant_alpha=True`` means sqrt(2), a number means that number (0.0 included), ``False``/``None`` means
    "not constant". ``use_alpha=False`` means alpha = 1 with no parameter.
    """
    if constant_alpha is True:
        return AlphaSpec(False, SQRT2)
    if constant_alpha is not None and constant_alpha is not False:
        if isinstance(constant_alpha, bool) or not isinstance(constant_alpha, (int, float)):
            raise TypeError(f"constant_alpha must be None, a bool or a number, got {constant_alpha!r}")
        return AlphaSpec(False, float(constant_alpha))
    if use_alpha:
        return AlphaSpec(True, 1.0)
    return AlphaSpec(False, 1.0)


def resolve_bias(use_bias: bool, constant_bias: Any) -> BiasSpec:
    """Resolve the three bias modes; a ``constant_bias`` number turns the bias on without a parameter."""
    if constant_bias is not None:
        if isinstance(constant_bias, bool) or not isinstance(constant_bias, (int, float)):
            raise TypeError(f"constant_bias must be None or a number, got {constant_bias!r}")
        return BiasSpec("constant", float(constant_bias))
    return BiasSpec("learnable" if use_bias else "none")


def check_epsilon(epsilon: Any, layer: str) -> float:
    """Return ``epsilon`` as a float, or raise ``ValueError`` naming ``layer`` if it is not > 0."""
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: epsilon must be a number > 0, got {epsilon!r}") from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{layer}: epsilon must be > 0, got {epsilon!r}")
    return value


def check_positive_int(value: Any, name: str, layer: str) -> int:
    """Return ``value`` if it is a positive int, else raise ``ValueError`` naming the layer and option."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value


def check_performer(performer_nmax: Any, performer_bias: Any, layer: str) -> tuple[int | None, float]:
    """Validate the Yat-Performer's ``performer_nmax`` (None or an int in 2..64) and ``performer_bias`` (>= 0).

    >>> check_performer(None, 1, "MultiHeadYatAttention")
    (None, 1.0)
    >>> check_performer(1, 0.0, "MultiHeadYatAttention")
    Traceback (most recent call last):
    ...
    ValueError: MultiHeadYatAttention: performer_nmax must be None (the degree rule) or an int from 2 to 64, got 1
    """
    nmax, bias = performer_nmax, performer_bias
    if nmax is not None and (isinstance(nmax, bool) or not isinstance(nmax, int) or not 2 <= nmax <= 64):
        raise ValueError(f"{layer}: performer_nmax must be None (the degree rule) or an int from 2 to 64, got {nmax!r}")
    try:
        b = float(bias)
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: performer_bias must be a number >= 0, got {bias!r}") from None
    if isinstance(bias, bool) or not (b >= 0.0) or math.isinf(b):
        raise ValueError(
            f"{layer}: performer_bias must be a finite number >= 0 (the kernel's series needs b >= 0), got {bias!r}"
        )
    return nmax, b


def refuse_rotary_performer(layer: str, performer_nmax: Any = None, performer_bias: Any = 0.0) -> None:
    """``RotaryYatAttention`` has no performer, so its performer options may only be their defaults.

    >>> refuse_rotary_performer("RotaryYatAttention", performer_bias=1.0)
    Traceback (most recent call last):
    ...
    ValueError: RotaryYatAttention: performer_nmax/performer_bias have no effect here (no performer with rotary embeddings); use MultiHeadYatAttention(use_performer=True, performer_nmax=..., performer_bias=...)
    """
    if performer_nmax is not None or performer_bias != DEFAULTS["performer_bias"]:
        raise ValueError(
            f"{layer}: performer_nmax/performer_bias have no effect here (no performer with rotary embeddings); "
            "use MultiHeadYatAttention(use_performer=True, performer_nmax=..., performer_bias=...)"
        )


#: nmn 0.3.5's NNX ``RotaryYatAttention`` performer sizes and switches, with their 0.3.5 defaults. nmn has no
#: rotary performer (no ONNX function computes one), so the layer takes them only at these values.
ROTARY_PERFORMER_V03 = {
    "num_anchor_features": 16,
    "num_prf_features": 8,
    "num_quad_nodes": 1,
    "performer_num_features": 256,
    "performer_normalize": True,
}


def refuse_rotary_performer_sizes(layer: str, **given: Any) -> None:
    """``ValueError`` unless every nmn 0.3.5 rotary-performer keyword in ``given`` is its 0.3.5 default.

    >>> refuse_rotary_performer_sizes("RotaryYatAttention", num_prf_features=8, performer_normalize=True)
    >>> refuse_rotary_performer_sizes("RotaryYatAttention", num_quad_nodes=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: RotaryYatAttention: num_quad_nodes=2 has no effect here (nmn 0.3.5's rotary performer is not ...
    """
    for key, value in given.items():
        default = ROTARY_PERFORMER_V03[key]
        if value is not default and (isinstance(value, bool) != isinstance(default, bool) or value != default):
            raise ValueError(
                f"{layer}: {key}={value!r} has no effect here (nmn 0.3.5's rotary performer is not carried over: "
                f"nmn::RotaryYatMultiHeadAttention has no performer; accepted: {default!r}); use "
                "MultiHeadYatAttention(use_performer=True, num_features=...) with apply_rotary_emb on the queries "
                "and keys"
            )


def performer_spec_options(config: dict) -> dict[str, Any]:
    """The ``performer_nmax`` / ``performer_bias`` of a neutral attention config, for ``from_spec``.

    A config without them was written before they were options: its performer is the degree-3, bias-0 map (the
    ONNX ``degree``/``bias`` defaults), not today's degree rule.

    >>> performer_spec_options({}), performer_spec_options({"performer_nmax": None, "performer_bias": 1.0})
    ({'performer_nmax': 3, 'performer_bias': 0.0}, {'performer_nmax': None, 'performer_bias': 1.0})
    """
    return {
        "performer_nmax": config.get("performer_nmax", PERFORMER_LEGACY_DEGREE),
        "performer_bias": float(config.get("performer_bias", 0.0)),
    }


def check_choice(value: Any, choices: tuple, name: str, layer: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{layer}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def env_choice(var: str, choices: tuple[str, ...], aliases: dict[str, str] | None = None) -> str:
    """The kernel path an environment variable asks for (``NMN_ATTENTION_IMPL``, ``NMN_DENSE_IMPL``): its value,
    lower-cased, ``choices[0]`` when unset or empty, an ``aliases`` name mapped to its choice; else a ``ValueError``.

    >>> env_choice("NMN_DOCTEST_UNSET_IMPL", ("auto", "torch"))
    'auto'
    """
    value = os.environ.get(var, "").strip().lower() or choices[0]
    value = (aliases or {}).get(value, value)
    if value not in choices:
        also = f" (or {', '.join(aliases)})" if aliases else ""
        raise ValueError(f"{var}: expected one of {', '.join(choices)}{also}, got {value!r}")
    return value


def mask_needs_head_axis(ndim: int, layer: str) -> bool:
    """The one attention-mask convention of every framework (issue 18); True when a head axis must be inserted.

    A bool mask (True = attend) is ``(Lq, Lk)`` (shared), ``(B, Lq, Lk)`` (per batch element, the same for every
    head -- as Keras ``MultiHeadAttention`` and Flax take it) or ``(B | 1, H | 1, Lq, Lk)`` (per head). The ONNX
    functions take the 4-D form; a 3-D mask gets its head axis at position 1 before it meets the scores, so
    batch == num_heads can never be read as per-head.

    >>> mask_needs_head_axis(3, "MultiHeadYatAttention"), mask_needs_head_axis(4, "MultiHeadYatAttention")
    (True, False)
    >>> mask_needs_head_axis(5, "MultiHeadYatAttention")
    Traceback (most recent call last):
    ...
    ValueError: MultiHeadYatAttention: mask must be (Lq, Lk), (B, Lq, Lk) or (B, H, Lq, Lk), got rank 5
    """
    if ndim == 3:
        return True
    if ndim in (2, 4):
        return False
    raise ValueError(f"{layer}: mask must be (Lq, Lk), (B, Lq, Lk) or (B, H, Lq, Lk), got rank {ndim}")


def squash_power(n: Any, sharpness: Any, fn: str) -> Any:
    """The power of ``softer_sigmoid`` / ``soft_tanh``: ``n``, or its alias ``sharpness`` (the seed README's name).

    Every framework's functional and module forms take both keywords with the same default (1.0); giving both
    with different values is a ``ValueError`` naming the function.

    >>> squash_power(1.0, 2, "softer_sigmoid"), squash_power(3.0, None, "softer_sigmoid")
    (2, 3.0)
    >>> squash_power(3.0, 2, "soft_tanh")
    Traceback (most recent call last):
    ...
    ValueError: soft_tanh: n and sharpness name the same power; got n=3.0 and sharpness=2
    """
    if sharpness is None:
        return n
    if n != 1.0 and n != sharpness:
        raise ValueError(f"{fn}: n and sharpness name the same power; got n={n!r} and sharpness={sharpness!r}")
    return sharpness


def inverse_softplus(value: float) -> float:
    """``log(exp(v) - 1)`` computed stably in float64: the raw init of a learnable epsilon.

    >>> round(inverse_softplus(1e-5), 4)
    -11.5129
    """
    return value + math.log(-math.expm1(-value))
