"""The one options object of every Yat layer and every Yat attention, in every framework (issue 15 item 1).

A layer builds its spec once, from the user's keywords, at construction: :meth:`YatSpec.build` /
:meth:`AttentionSpec.build` / :meth:`RopeSpec.build` validate every option (one place for every check and
error message, each naming the layer class) and resolve it. The frozen result then answers everything the
framework glue needs: which parameters exist (``has_bias``, ``has_alpha``, ``has_epsilon_param``), the tail terms
for :mod:`nmn.core.yat` (:meth:`YatSpec.terms`), the config keys of ``get_config`` / the neutral spec
(:meth:`YatSpec.config`) and the ``repr`` fragment (:meth:`YatSpec.repr`). The frameworks only create their
native parameters from it.

>>> spec = YatSpec.build("YatNMN", constant_alpha=True, epsilon=1e-3)
>>> spec.has_alpha, round(spec.alpha.value, 4), spec.repr()
(False, 1.4142, 'constant_alpha=1.41421, epsilon=0.001')
>>> spec.config() == YatSpec.build("YatNMN", **spec.config()).config()
True
>>> YatSpec.build("YatConv", epsilon=-1.0)
Traceback (most recent call last):
...
ValueError: YatConv: epsilon must be > 0, got -1.0

The attention ``alpha`` is a scalar on the scores. Under ``normalization='l1'`` and ``'softermax'`` and in the
Yat-Performer it cancels between numerator and denominator (up to the tiny floor), so it could never train: the
spec gives those layers no alpha parameter, whatever ``use_alpha`` says (issue 18 item 2). An explicit
``constant_alpha`` is accepted there and applied as the ONNX function applies it (harmless: it cancels too), which
is also how a file written with an alpha tensor on such a layer loads.

>>> AttentionSpec.build("MultiHeadYatAttention", normalization="l1").has_alpha
False
>>> AttentionSpec.build("MultiHeadYatAttention").has_alpha
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nmn.core.options import (
    DEFAULT_EPSILON,
    DEFAULTS,
    NORMALIZATIONS,
    PERFORMER_KINDS,
    PERFORMER_NUM_FEATURES,
    ROPE_MAX_SEQ_LEN,
    ROPE_STYLES,
    ROPE_THETA,
    AlphaSpec,
    BiasSpec,
    check_choice,
    check_epsilon,
    check_performer,
    check_positive_int,
    inverse_softplus,
    resolve_alpha,
    resolve_bias,
)

__all__ = [
    "YatSpec",
    "AttentionSpec",
    "RopeSpec",
    "ATTENTION_KINDS",
    "alpha_cancels",
    "fold_cancelled_alpha",
    "check_heads",
    "check_dropout",
    "pick_alias",
    "export_params",
    "PERFORMER_KIND_KEYWORDS",
]

ATTENTION_KINDS = ("MultiHeadYatAttention", "RotaryYatAttention")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _alpha(layer: str, use_alpha: Any, constant_alpha: Any) -> AlphaSpec:
    try:
        return resolve_alpha(bool(use_alpha), constant_alpha)
    except TypeError as err:
        raise TypeError(f"{layer}: {err}") from None


def _alpha_config(alpha: AlphaSpec) -> dict:
    """``use_alpha`` / ``constant_alpha`` of a resolved alpha: the one canonical spelling of each mode."""
    if alpha.learnable:
        return {"use_alpha": True, "constant_alpha": None}
    if alpha.value == 1.0:
        return {"use_alpha": False, "constant_alpha": None}
    return {"use_alpha": True, "constant_alpha": alpha.value}


def _alpha_repr(alpha: AlphaSpec) -> list[str]:
    if alpha.learnable:
        return []
    if alpha.value == 1.0:
        return ["use_alpha=False"]
    return [f"constant_alpha={_fmt(alpha.value)}"]


def _alpha_term(alpha: AlphaSpec, param: Any) -> Any:
    if alpha.learnable:
        return param
    return None if alpha.value == 1.0 else alpha.value


def pick_alias(primary: Any, alias: Any, default: bool, name: str, alias_name: str, layer: str) -> bool:
    """Resolve an alias pair of switches (torch ``bias=`` / ``use_bias=``): both given and different is an error.

    >>> pick_alias(None, False, True, "bias", "use_bias", "YatNMN")
    False
    >>> pick_alias(True, False, True, "bias", "use_bias", "YatNMN")
    Traceback (most recent call last):
    ...
    ValueError: YatNMN: bias=True and use_bias=False disagree; pass only one
    """
    if primary is not None and alias is not None and bool(primary) != bool(alias):
        raise ValueError(f"{layer}: {name}={primary!r} and {alias_name}={alias!r} disagree; pass only one")
    if primary is not None:
        return bool(primary)
    return default if alias is None else bool(alias)


@dataclass(frozen=True)
class YatSpec:
    """The resolved Yat options of one layer: bias mode, alpha mode, epsilon and whether it is learnable.

    ``YatEmbed`` has no bias and no learnable epsilon: build it with :meth:`build_embed`, whose config and repr
    leave those keys out.
    """

    layer: str
    bias: BiasSpec
    alpha: AlphaSpec
    epsilon: float
    learnable_epsilon: bool
    full: bool = True  # False: an embedding's spec (alpha and epsilon only)
    softplus_bias: bool = False  # nmn 0.3: the learnable bias enters as softplus(bias)
    scalar_bias: bool = False  # nmn 0.3: one learnable bias of shape (1,), broadcast over the outputs

    @classmethod
    def build(
        cls,
        layer: str,
        *,
        use_bias: Any = True,
        constant_bias: Any = None,
        use_alpha: Any = True,
        constant_alpha: Any = None,
        epsilon: Any = DEFAULT_EPSILON,
        learnable_epsilon: Any = False,
        softplus_bias: Any = False,
        scalar_bias: Any = False,
    ) -> YatSpec:
        """Validate and resolve the shared Yat keywords (``ValueError`` / ``TypeError`` naming ``layer``).

        ``softplus_bias`` / ``scalar_bias`` (nmn 0.3) shape the learnable bias: see :meth:`with_bias_options`.
        """
        eps = check_epsilon(epsilon, layer)
        try:
            bias = resolve_bias(bool(use_bias), constant_bias)
        except TypeError as err:
            raise TypeError(f"{layer}: {err}") from None
        spec = cls(layer, bias, _alpha(layer, use_alpha, constant_alpha), eps, bool(learnable_epsilon))
        return spec.with_bias_options(softplus_bias, scalar_bias)

    def with_bias_options(self, softplus_bias: Any = False, scalar_bias: Any = False) -> YatSpec:
        """This spec with nmn 0.3's bias options, validated (errors name the layer and the option).

        ``softplus_bias=True``: the learnable bias parameter stays raw and enters the Yat product as
        ``softplus(bias)`` (always > 0). ``scalar_bias=True``: the bias parameter has shape ``(1,)`` and is
        broadcast over every output. Both need a learnable bias: with ``use_bias=False`` or a ``constant_bias``
        they are an error (nmn 0.3 ignored them silently).

        >>> YatSpec.build("YatNMN", softplus_bias=True).bias_size(4), YatSpec.build("YatNMN", scalar_bias=True).bias_size(4)
        (4, 1)
        >>> YatSpec.build("YatConv2D", use_bias=False, scalar_bias=True)
        Traceback (most recent call last):
        ...
        ValueError: YatConv2D: scalar_bias=True needs a learnable bias, but use_bias=False; drop scalar_bias or set use_bias=True
        >>> YatSpec.build("YatNMN", constant_bias=0.5, softplus_bias=True)
        Traceback (most recent call last):
        ...
        ValueError: YatNMN: softplus_bias=True needs a learnable bias, but constant_bias=0.5 is fixed; pass the fixed value you want (softplus of it) as constant_bias, or drop constant_bias
        """
        from dataclasses import replace

        for name, value in (("softplus_bias", softplus_bias), ("scalar_bias", scalar_bias)):
            if not isinstance(value, (bool, int)) or isinstance(value, float) or value not in (0, 1):
                raise TypeError(f"{self.layer}: {name} must be True or False, got {value!r}")
            if not value:
                continue
            if self.bias.mode == "none":
                raise ValueError(
                    f"{self.layer}: {name}=True needs a learnable bias, but use_bias=False; "
                    f"drop {name} or set use_bias=True"
                )
            if self.bias.mode == "constant":
                fix = "you want (softplus of it)" if name == "softplus_bias" else "you want"
                raise ValueError(
                    f"{self.layer}: {name}=True needs a learnable bias, but constant_bias={_fmt(self.bias.value)} "
                    f"is fixed; pass the fixed value {fix} as constant_bias, or drop constant_bias"
                )
        return replace(self, softplus_bias=bool(softplus_bias), scalar_bias=bool(scalar_bias))

    @classmethod
    def build_embed(
        cls, layer: str, *, use_alpha: Any = True, constant_alpha: Any = None, epsilon: Any = DEFAULT_EPSILON
    ) -> YatSpec:
        """The spec of ``YatEmbed.attend``: no bias, a fixed epsilon.

        >>> YatSpec.build_embed("YatEmbed", use_alpha=False).config()
        {'use_alpha': False, 'constant_alpha': None, 'epsilon': 1e-05}
        """
        eps = check_epsilon(epsilon, layer)
        return cls(layer, BiasSpec("none"), _alpha(layer, use_alpha, constant_alpha), eps, False, full=False)

    # -- which parameters exist
    @property
    def has_bias(self) -> bool:
        return self.bias.mode == "learnable"

    @property
    def has_alpha(self) -> bool:
        return self.alpha.learnable

    def bias_size(self, n_out: int) -> int:
        """Length of the bias parameter: ``1`` with ``scalar_bias``, else ``n_out``."""
        return 1 if self.scalar_bias else int(n_out)

    @property
    def reshapes_bias(self) -> bool:
        """True when the bias the layer adds differs from its parameter (``softplus_bias`` or ``scalar_bias``)."""
        return self.has_bias and (self.softplus_bias or self.scalar_bias)

    def effective_bias(self, bias: Any, n_out: int, softplus: Callable, broadcast_to: Callable) -> Any:
        """The bias the Yat product adds, from the value :meth:`terms` gives (a parameter, a number or ``None``).

        With ``softplus_bias`` a learnable bias becomes ``softplus(bias)``; with ``scalar_bias`` it is broadcast to
        ``(n_out,)`` (``broadcast_to(value, shape)``, the host's op), so every framework's Yat kernels see the usual
        per-output bias. Anything else passes unchanged.

        >>> import numpy as np
        >>> spec = YatSpec.build("YatNMN", softplus_bias=True, scalar_bias=True)
        >>> spec.effective_bias(np.zeros(1), 3, lambda b: np.logaddexp(0.0, b), np.broadcast_to).round(4).tolist()
        [0.6931, 0.6931, 0.6931]
        """
        if not self.reshapes_bias or bias is None or isinstance(bias, (int, float)):
            return bias
        if self.softplus_bias:
            bias = softplus(bias)
        if self.scalar_bias:
            bias = broadcast_to(bias, (int(n_out),))
        return bias

    def bias_options(self) -> dict:
        """``softplus_bias`` / ``scalar_bias`` as constructor keys (for ``get_config``; not in the neutral spec,
        where the file carries the effective bias)."""
        return {"softplus_bias": self.softplus_bias, "scalar_bias": self.scalar_bias}

    @property
    def has_epsilon_param(self) -> bool:
        return self.learnable_epsilon

    @property
    def epsilon_init(self) -> float:
        """The raw init of ``epsilon_param``: ``softplus(epsilon_init) == epsilon``."""
        return inverse_softplus(self.epsilon)

    # -- the user-facing switches, resolved
    @property
    def use_bias(self) -> bool:
        return self.bias.mode != "none"

    @property
    def constant_bias(self) -> float | None:
        return self.bias.value if self.bias.mode == "constant" else None

    @property
    def use_alpha(self) -> bool:
        return _alpha_config(self.alpha)["use_alpha"]

    @property
    def constant_alpha(self) -> float | None:
        return _alpha_config(self.alpha)["constant_alpha"]

    def terms(
        self, bias: Any = None, alpha: Any = None, epsilon_param: Any = None, softplus: Callable | None = None
    ) -> tuple[Any, Any, Any]:
        """``(bias, alpha, eps)`` for :mod:`nmn.core.yat` from the layer's parameter values (``None`` = absent).

        ``softplus`` maps ``epsilon_param`` to the epsilon when it is learnable.

        >>> YatSpec.build("YatNMN", use_alpha=False, constant_bias=0.5).terms()
        (0.5, None, 1e-05)
        """
        b = bias if self.has_bias else self.constant_bias
        e = softplus(epsilon_param) if self.learnable_epsilon else self.epsilon
        return b, _alpha_term(self.alpha, alpha), e

    def alpha_term(self, param: Any = None) -> Any:
        """The alpha for :mod:`nmn.core.yat`: the parameter's value, a fixed number, or ``None`` (1)."""
        return _alpha_term(self.alpha, param)

    def config(self) -> dict:
        """The Yat keys of ``get_config`` and of the neutral spec; :meth:`build` of them gives this spec back."""
        if not self.full:
            return {**_alpha_config(self.alpha), "epsilon": self.epsilon}
        return {
            "use_bias": self.use_bias,
            "constant_bias": self.constant_bias,
            **_alpha_config(self.alpha),
            "epsilon": self.epsilon,
            "learnable_epsilon": self.learnable_epsilon,
        }

    def repr(self) -> str:
        """The options that differ from the defaults, as ``key=value`` for a layer's ``repr``."""
        parts = []
        if self.bias.mode == "none" and self.full:
            parts.append("use_bias=False")
        elif self.bias.mode == "constant":
            parts.append(f"constant_bias={_fmt(self.bias.value)}")
        parts += [f"{k}=True" for k, v in self.bias_options().items() if v]
        parts += _alpha_repr(self.alpha)
        parts.append(f"epsilon={self.epsilon:g}")
        if self.learnable_epsilon:
            parts.append("learnable_epsilon=True")
        return ", ".join(parts)

    def param_names(self) -> list[str]:
        """Canonical names of the tail parameters that exist (``bias``, ``alpha``, ``epsilon_param``)."""
        flags = (("bias", self.has_bias), ("alpha", self.has_alpha), ("epsilon_param", self.has_epsilon_param))
        return [name for name, on in flags if on]


def _np_softplus(x: Any) -> Any:
    import numpy as np

    return np.logaddexp(0.0, np.asarray(x, np.float64)).astype(np.float32)


def export_params(
    spec: YatSpec,
    framework: str,
    layout: str,
    n_out: int,
    *,
    bias: Any = None,
    kernel: Any = None,
    mask: Any = None,
    groups: int = 1,
) -> dict:
    """The ``_export_params`` of a Yat layer: the EFFECTIVE parameters its exported file carries.

    A file has no ``softplus_bias`` / ``scalar_bias`` / ``mask``: it carries ``bias = softplus(b)`` broadcast to
    ``(n_out,)`` and ``weight = kernel * mask`` (canonical layout, :mod:`nmn.core.layouts`), so onnxruntime and
    every loader compute what the layer computes, and a loaded layer is a plain one holding those values.
    ``bias`` / ``kernel`` / ``mask`` are host arrays (numpy-convertible, host layout: ``layout`` is ``'dense'``,
    ``'conv'`` or ``'conv_transpose'``); returns ``{}`` when no option is on.

    >>> import numpy as np
    >>> spec = YatSpec.build("YatConv1D", scalar_bias=True)
    >>> out = export_params(spec, "torch", "conv", 3, bias=np.array([0.5]), kernel=np.ones((3, 2, 2)),
    ...                     mask=np.array([[[1.0, 0.0]] * 2] * 3))
    >>> out["bias"].tolist(), out["weight"][0].tolist()
    ([0.5, 0.5, 0.5], [[1.0, 0.0], [1.0, 0.0]])
    >>> export_params(YatSpec.build("YatNMN"), "torch", "dense", 3, bias=np.zeros(3))
    {}
    """
    import numpy as np

    from nmn.core import layouts

    out = {}
    if spec.reshapes_bias and bias is not None:
        value = np.asarray(bias, np.float32)
        if spec.softplus_bias:
            value = _np_softplus(value)
        out["bias"] = np.ascontiguousarray(np.broadcast_to(value.reshape(-1), (int(n_out),)), np.float32)
    if mask is not None:
        weight = np.asarray(kernel, np.float32) * np.asarray(mask, np.float32)
        out["weight"] = np.ascontiguousarray(layouts.to_canonical(framework, layout, weight, groups=groups), np.float32)
    return out


def alpha_cancels(normalization: str, use_performer: bool) -> bool:
    """True where a scalar alpha on the attention scores cancels (l1, softermax, the performer's readout)."""
    return bool(use_performer) or normalization in ("l1", "softermax")


def fold_cancelled_alpha(kind: str, config: dict, params: dict | None) -> tuple[dict, dict | None]:
    """A neutral attention spec with an ``alpha`` tensor where alpha cancels: the tensor becomes ``constant_alpha``.

    Files written before issue 18 item 2 carry a trainable alpha on l1 / softermax / performer attention; this is
    how every ``from_spec`` and the file reader load them (the output is exactly the file's, since the ONNX function
    applies the same alpha). Other specs pass through unchanged.

    >>> import numpy as np
    >>> cfg, params = fold_cancelled_alpha("MultiHeadYatAttention", {"normalization": "l1"}, {"alpha": np.ones(1) * 2})
    >>> cfg, params
    ({'normalization': 'l1', 'use_alpha': True, 'constant_alpha': 2.0}, {})
    """
    if kind not in ATTENTION_KINDS or not params or "alpha" not in params:
        return config, params
    if not alpha_cancels(config.get("normalization", "softmax"), config.get("use_performer", False)):
        return config, params
    value = float(params["alpha"].reshape(-1)[0])
    config = dict(config, **_alpha_config(AlphaSpec(False, value)))
    return config, {k: v for k, v in params.items() if k != "alpha"}


def check_heads(width: Any, num_heads: Any, layer: str, what: str = "embed_dim") -> int:
    """``width // num_heads`` after checking both are positive ints and ``num_heads`` divides ``width``.

    >>> check_heads(8, 3, "MultiHeadYatAttention")
    Traceback (most recent call last):
    ...
    ValueError: MultiHeadYatAttention: embed_dim (8) must be divisible by num_heads (3)
    """
    check_positive_int(width, what, layer)
    check_positive_int(num_heads, "num_heads", layer)
    if width % num_heads:
        raise ValueError(f"{layer}: {what} ({width}) must be divisible by num_heads ({num_heads})")
    return width // num_heads


def check_dropout(rate: Any, layer: str, name: str = "dropout") -> float:
    """``rate`` as a float in ``[0, 1)`` or a ``ValueError`` naming the layer and option."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: {name} must be a number in [0, 1), got {rate!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{layer}: {name} must be in [0, 1), got {rate!r}")
    return value


def resolve_dropconnect(use_dropconnect: Any, drop_rate: Any, layer: str) -> float:
    """The DropConnect rate a layer applies to its kernel in training (nmn 0.3's ``use_dropconnect``/``drop_rate``).

    Returns ``0.0`` (off) unless ``use_dropconnect`` is true; then ``drop_rate`` must lie in ``[0, 1)``. In training
    the kernel is multiplied by a Bernoulli(``1 - rate``) mask scaled by ``1 / (1 - rate)`` (so its expectation is
    the kernel); at inference and in every exported file DropConnect is the identity.

    >>> resolve_dropconnect(False, 0.5, "YatNMN"), resolve_dropconnect(True, 0.25, "YatNMN")
    (0.0, 0.25)
    >>> resolve_dropconnect(True, 1.0, "YatNMN")
    Traceback (most recent call last):
    ...
    ValueError: YatNMN: drop_rate must be in [0, 1), got 1.0
    """
    if not isinstance(use_dropconnect, (bool, int)) or isinstance(use_dropconnect, float):
        raise TypeError(f"{layer}: use_dropconnect must be True or False, got {use_dropconnect!r}")
    rate = check_dropout(drop_rate, layer, "drop_rate")
    return rate if use_dropconnect else 0.0


# the AttentionSpec fields every host layer mirrors as attributes (set_attributes)
_MIRRORED = (
    "use_bias",
    "epsilon",
    "spherical",
    "normalization",
    "power",
    "use_out_proj",
    "causal",
    "use_performer",
    "num_features",
    "performer_kind",
    "performer_sketch_m",
    "performer_num_radial",
    "performer_radial_dim",
)

#: the random-feature performers' own keywords (issue 17), in the order of the config; their defaults are DEFAULTS'
PERFORMER_KIND_KEYWORDS = ("performer_kind", "performer_sketch_m", "performer_num_radial", "performer_radial_dim")
#: the RAY sizes: they act only with ``performer_kind='radial'``
_RADIAL_SIZES = PERFORMER_KIND_KEYWORDS[1:]


def _check_maclaurin_nmax(nmax: Any, layer: str) -> int:
    """MAY's truncation degree: ``None`` -> ``DEFAULTS['performer_maclaurin_nmax']`` (40), else an int 1..64."""
    if nmax is None:
        return DEFAULTS["performer_maclaurin_nmax"]
    if isinstance(nmax, bool) or not isinstance(nmax, int) or not 1 <= nmax <= 64:
        raise ValueError(
            f"{layer}: performer_nmax must be None (the default degree "
            f"{DEFAULTS['performer_maclaurin_nmax']}) or an int from 1 to 64 with performer_kind='maclaurin', "
            f"got {nmax!r}"
        )
    return nmax


def _resolve_performer_kind(
    layer: str, performer: bool, kind: Any, nmax: Any, bias: Any, num_features: Any, sizes: dict
) -> tuple[str, int | None, float]:
    """``(kind, performer_nmax, performer_bias)`` after every check of the performer keywords (see
    :meth:`AttentionSpec.build`); ``performer_nmax`` is MAY's resolved degree for ``'maclaurin'``, else as given."""
    kind = check_choice(kind, PERFORMER_KINDS, "performer_kind", layer)
    for key, value in sizes.items():
        check_positive_int(value, key, layer)
    if not performer and kind != DEFAULTS["performer_kind"]:
        raise ValueError(
            f"{layer}: performer_kind={kind!r} has no effect with use_performer=False; "
            f"pass use_performer=True or drop performer_kind"
        )
    for key, value in sizes.items():
        if value != DEFAULTS[key] and (not performer or kind != "radial"):
            where = "use_performer=False" if not performer else f"performer_kind={kind!r}"
            raise ValueError(
                f"{layer}: {key}={value!r} has no effect with {where} (it sizes performer_kind='radial'); drop it"
            )
    if performer and kind == "radial":
        if nmax is not None:
            raise ValueError(
                f"{layer}: performer_nmax={nmax!r} has no effect with performer_kind='radial' (its sizes are "
                "performer_sketch_m, performer_num_radial, performer_radial_dim); drop it"
            )
        if num_features != PERFORMER_NUM_FEATURES:
            raise ValueError(
                f"{layer}: num_features={num_features!r} has no effect with performer_kind='radial' (its feature "
                "count is performer_sketch_m * performer_num_radial * performer_radial_dim); drop it"
            )
    if performer and kind == "maclaurin":
        _, b = check_performer(None, bias, layer)
        return kind, _check_maclaurin_nmax(nmax, layer), b
    n, b = check_performer(nmax, bias, layer)
    return kind, n, b


@dataclass(frozen=True)
class AttentionSpec:
    """The resolved options of a Yat attention layer (the projections' sizes stay with the framework).

    ``performer_nmax`` is the degree as given for the SLAY performer (``None``: the degree rule, which needs the
    head size and so stays with the framework) and MAY's resolved truncation degree (``None`` given -> 40) for
    ``performer_kind='maclaurin'``; ``performer_bias`` is the validated ``b``. Neither is mirrored by
    :meth:`set_attributes` nor written by :meth:`config` (the frameworks write their own, as before issue 17).
    """

    layer: str
    use_bias: bool
    alpha: AlphaSpec
    epsilon: float
    spherical: bool
    normalization: str
    power: float
    use_out_proj: bool
    causal: bool
    dropout: float
    use_performer: bool
    num_features: int
    performer_kind: str = DEFAULTS["performer_kind"]
    performer_sketch_m: int = DEFAULTS["performer_sketch_m"]
    performer_num_radial: int = DEFAULTS["performer_num_radial"]
    performer_radial_dim: int = DEFAULTS["performer_radial_dim"]
    performer_nmax: int | None = DEFAULTS["performer_nmax"]
    performer_bias: float = DEFAULTS["performer_bias"]

    @classmethod
    def build(
        cls,
        layer: str,
        *,
        use_bias: Any = True,
        use_alpha: Any = True,
        constant_alpha: Any = None,
        epsilon: Any = DEFAULT_EPSILON,
        spherical: Any = False,
        normalization: Any = "softmax",
        power: Any = 1.0,
        use_out_proj: Any = True,
        causal: Any = False,
        dropout: Any = 0.0,
        use_performer: Any = False,
        num_features: Any = PERFORMER_NUM_FEATURES,
        dropout_name: str = "dropout",
        performer_kind: Any = DEFAULTS["performer_kind"],
        performer_sketch_m: Any = DEFAULTS["performer_sketch_m"],
        performer_num_radial: Any = DEFAULTS["performer_num_radial"],
        performer_radial_dim: Any = DEFAULTS["performer_radial_dim"],
        performer_nmax: Any = DEFAULTS["performer_nmax"],
        performer_bias: Any = DEFAULTS["performer_bias"],
    ) -> AttentionSpec:
        """Validate and resolve the attention keywords (``ValueError`` / ``TypeError`` naming ``layer``).

        Where alpha cancels (:func:`alpha_cancels`) ``use_alpha=True`` gives no parameter; a ``constant_alpha``
        is kept as a fixed scale.

        >>> AttentionSpec.build("RotaryYatAttention", power=0)
        Traceback (most recent call last):
        ...
        ValueError: RotaryYatAttention: power must be a number > 0, got 0

        The performer (``use_performer=True``) has three kinds (issue 17), ``performer_kind``: ``'slay'`` (the
        default, nmn's Gegenbauer map: ``performer_nmax`` None = the degree rule, or an int 2..64),
        ``'maclaurin'`` (nmn 0.3's MAY random Maclaurin features: ``num_features`` of them, truncation degree
        ``performer_nmax``, None = 40, or an int 1..64) and ``'radial'`` (nmn 0.3's RAY: a degree-2 sketch of
        width ``performer_sketch_m`` times ``performer_num_radial`` Gauss-Laguerre nodes of
        ``performer_radial_dim`` random Fourier features). ``performer_bias`` (>= 0) is the kernel's ``b`` in every
        kind. A kind keyword given a non-default value where it does nothing is an error, never ignored:

        >>> spec = AttentionSpec.build("MultiHeadYatAttention", use_performer=True, performer_kind="maclaurin")
        >>> spec.performer_kind, spec.performer_nmax, spec.has_alpha
        ('maclaurin', 40, False)
        >>> spec = AttentionSpec.build("MultiHeadYatAttention", use_performer=True, performer_kind="radial",
        ...                            performer_sketch_m=4, performer_num_radial=2, performer_radial_dim=4)
        >>> {k: v for k, v in spec.config().items() if k.startswith("performer_")}
        {'performer_kind': 'radial', 'performer_sketch_m': 4, 'performer_num_radial': 2, 'performer_radial_dim': 4}
        >>> AttentionSpec.build("MultiHeadYatAttention", use_performer=True, performer_sketch_m=4)
        Traceback (most recent call last):
        ...
        ValueError: MultiHeadYatAttention: performer_sketch_m=4 has no effect with performer_kind='slay' (it sizes performer_kind='radial'); drop it
        >>> AttentionSpec.build("MultiHeadYatAttention", performer_kind="radial")
        Traceback (most recent call last):
        ...
        ValueError: MultiHeadYatAttention: performer_kind='radial' has no effect with use_performer=False; pass use_performer=True or drop performer_kind
        >>> AttentionSpec.build("MultiHeadYatAttention", use_performer=True, performer_kind="maclaurin",
        ...                     performer_nmax=0)
        Traceback (most recent call last):
        ...
        ValueError: MultiHeadYatAttention: performer_nmax must be None (the default degree 40) or an int from 1 to 64 with performer_kind='maclaurin', got 0
        """
        eps = check_epsilon(epsilon, layer)
        norm = check_choice(normalization, NORMALIZATIONS, "normalization", layer)
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not power > 0 or math.isinf(power):
            raise ValueError(f"{layer}: power must be a number > 0, got {power!r}")
        performer = bool(use_performer)
        sizes = dict(zip(_RADIAL_SIZES, (performer_sketch_m, performer_num_radial, performer_radial_dim)))
        kind, nmax, bias = _resolve_performer_kind(
            layer, performer, performer_kind, performer_nmax, performer_bias, num_features, sizes
        )
        alpha = _alpha(layer, use_alpha, constant_alpha)
        if alpha.learnable and alpha_cancels(norm, performer):
            alpha = AlphaSpec(False, 1.0)
        return cls(
            layer,
            bool(use_bias),
            alpha,
            eps,
            bool(spherical),
            norm,
            float(power),
            bool(use_out_proj),
            bool(causal),
            check_dropout(dropout, layer, dropout_name),
            performer,
            check_positive_int(num_features, "num_features", layer) if performer else int(num_features or 0),
            kind,
            *sizes.values(),
            nmax,
            bias,
        )

    @property
    def has_alpha(self) -> bool:
        return self.alpha.learnable

    @property
    def use_alpha(self) -> bool:
        return _alpha_config(self.alpha)["use_alpha"]

    @property
    def constant_alpha(self) -> float | None:
        return _alpha_config(self.alpha)["constant_alpha"]

    def alpha_term(self, param: Any = None) -> Any:
        """The alpha for :mod:`nmn.core.yat`: the parameter's value, a fixed number, or ``None`` (1)."""
        return _alpha_term(self.alpha, param)

    def refuse_alpha_init(self, given: bool) -> None:
        """``ValueError`` when an ``alpha_init`` was ``given`` to a layer that has no alpha parameter.

        >>> AttentionSpec.build("MultiHeadYatAttention", normalization="l1").refuse_alpha_init(True)
        Traceback (most recent call last):
        ...
        ValueError: MultiHeadYatAttention: alpha_init has no effect: this layer has no alpha parameter (under \
normalization='l1' alpha cancels, or use_alpha=False / constant_alpha fix it); drop alpha_init
        """
        if given and not self.has_alpha:
            raise ValueError(
                f"{self.layer}: alpha_init has no effect: this layer has no alpha parameter (under "
                f"normalization={self.normalization!r}{', the performer' if self.use_performer else ''} alpha "
                "cancels, or use_alpha=False / constant_alpha fix it); drop alpha_init"
            )

    def set_attributes(self, obj: Any, dropout_name: str = "dropout", alpha: bool = False) -> None:
        """Mirror the resolved options onto a host layer ``obj`` as its plain option attributes
        (``obj.use_bias``, ``obj.epsilon``, ...; the dropout rate under ``dropout_name``; with ``alpha``, also
        ``use_alpha``/``constant_alpha``), so every framework exposes the same names."""
        for name in _MIRRORED:
            setattr(obj, name, getattr(self, name))
        setattr(obj, dropout_name, self.dropout)
        if alpha:
            obj.use_alpha, obj.constant_alpha = self.use_alpha, self.constant_alpha

    def config(self, dropout_name: str = "dropout") -> dict:
        """The option keys of ``get_config`` / the neutral spec (the framework adds its sizes).

        The random-feature keys (``performer_kind`` and the RAY sizes) are always written; a config without
        ``performer_kind`` (an older file) builds the ``'slay'`` performer, as :meth:`build`'s default says.

        >>> config = AttentionSpec.build("MultiHeadYatAttention", use_performer=True, performer_kind="maclaurin").config()
        >>> AttentionSpec.build("MultiHeadYatAttention", **config).config() == config
        True
        """
        return {
            "use_bias": self.use_bias,
            **_alpha_config(self.alpha),
            "epsilon": self.epsilon,
            "spherical": self.spherical,
            "normalization": self.normalization,
            "power": self.power,
            "use_out_proj": self.use_out_proj,
            "causal": self.causal,
            dropout_name: self.dropout,
            "use_performer": self.use_performer,
            "num_features": self.num_features,
            **{key: getattr(self, key) for key in PERFORMER_KIND_KEYWORDS},
        }

    def repr(self) -> str:
        """The options that differ from the defaults, as ``key=value`` for a layer's ``repr``."""
        parts = []
        if self.dropout:
            parts.append(f"dropout={self.dropout:g}")
        if not self.use_bias:
            parts.append("use_bias=False")
        if self.has_alpha or self.alpha.value != 1.0 or not alpha_cancels(self.normalization, self.use_performer):
            parts += _alpha_repr(self.alpha)  # where alpha cancels, "no alpha" is the layer's nature, not an option
        parts.append(f"epsilon={self.epsilon:g}")
        for flag in ("spherical", "causal"):
            if getattr(self, flag):
                parts.append(f"{flag}=True")
        if self.normalization != "softmax":
            parts.append(f"normalization={self.normalization!r}, power={self.power:g}")
        if not self.use_out_proj:
            parts.append("use_out_proj=False")
        if self.use_performer:
            parts.append(f"use_performer=True, num_features={self.num_features}")
        return ", ".join(parts)


@dataclass(frozen=True)
class RopeSpec:
    """The resolved rotary options of ``RotaryYatAttention``."""

    max_seq_len: int
    theta: float
    rope_style: str

    @classmethod
    def build(
        cls,
        layer: str,
        head_dim: int,
        *,
        max_seq_len: Any = ROPE_MAX_SEQ_LEN,
        theta: Any = ROPE_THETA,
        rope_style: Any = "interleaved",
        use_performer: Any = False,
    ) -> RopeSpec:
        """Validate the rotary keywords; refuses ``use_performer=True`` and an odd ``head_dim``.

        >>> RopeSpec.build("RotaryYatAttention", 3)
        Traceback (most recent call last):
        ...
        ValueError: RotaryYatAttention: head_dim = 3 must be even for RoPE
        """
        if use_performer:
            raise ValueError(
                f"{layer}: use_performer=True is not available with rotary embeddings; "
                f"use MultiHeadYatAttention(use_performer=True)"
            )
        if head_dim % 2:
            raise ValueError(f"{layer}: head_dim = {head_dim} must be even for RoPE")
        length = check_positive_int(max_seq_len, "max_seq_len", layer)
        try:
            base = float(theta)
        except (TypeError, ValueError):
            raise ValueError(f"{layer}: theta must be a number > 0, got {theta!r}") from None
        if not base > 0:
            raise ValueError(f"{layer}: theta must be a number > 0, got {theta!r}")
        return cls(length, base, check_choice(rope_style, ROPE_STYLES, "rope_style", layer))

    @property
    def interleaved(self) -> bool:
        return self.rope_style == "interleaved"

    def config(self) -> dict:
        return {"max_seq_len": self.max_seq_len, "theta": self.theta, "rope_style": self.rope_style}

    def repr(self) -> str:
        s = f"max_seq_len={self.max_seq_len}, theta={self.theta:g}"
        return s + (f", rope_style={self.rope_style!r}" if not self.interleaved else "")
