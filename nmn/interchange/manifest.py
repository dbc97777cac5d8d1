"""The nmn layer manifest: JSON in ``metadata_props``, parsed with bounds and checked before anything uses it.

An nmn file carries, under the key ``nmn.manifest``, a JSON object that lists each layer of the source model
(kind, config, which initializers hold its parameters, which node computes it). The file is untrusted, so
:func:`read_manifest`

1. bounds the text (``Limits.max_manifest_bytes``) and its nesting depth (``Limits.max_manifest_depth``,
   measured by a scan before ``json`` recurses), and refuses what is not valid JSON;
2. validates the object against an explicit schema: required keys, types, value ranges (sizes are positive
   integers, names are non-empty strings, ``params`` map strings to strings ...);
3. checks it against the graph: every parameter names an initializer (or a ``Constant``) of the graph, every
   layer's node exists, the node of a Yat layer is the ``nmn`` op of its kind and reads the layer's
   parameters, and every size in the config equals the real shape of the tensors (a ``YatNMN`` claiming
   200000 x 200000 over a 3 x 2 weight is refused before any loader allocates).

A file without a manifest (a foreign file) reads as ``None``. Every refusal is a :class:`ManifestError`, one
line that names the layer and what disagrees.

>>> import json, onnx
>>> from onnx import helper
>>> m = helper.make_model(helper.make_graph([], "g", [], []))
>>> read_manifest(m) is None
True
>>> m.metadata_props.add(key="nmn.manifest", value='{"format": 1, "layers": 3}')
key: "nmn.manifest"
value: "{\\"format\\": 1, \\"layers\\": 3}"
<BLANKLINE>
>>> read_manifest(m)
Traceback (most recent call last):
...
nmn.interchange.manifest.ManifestError: nmn manifest: 'layers' must be a list, got int
"""

from __future__ import annotations

import json
import math
from typing import Any

import onnx
from onnx import AttributeProto

from nmn.core.options import DEFAULTS, PERFORMER_KINDS
from nmn.interchange.safe_load import Limits, default_limits

__all__ = [
    "MANIFEST_KEY",
    "ManifestError",
    "read_manifest",
    "parse_manifest",
    "check_against_graph",
    "RF_PARAMS",
    "RF_NODES",
    "random_feature_shapes",
    "check_random_features",
]

MANIFEST_KEY = "nmn.manifest"
MANIFEST_FORMAT = 1
_MAX_SIZE = 2**31 - 1  # no dimension of a tensor nmn builds is larger


class ManifestError(ValueError):
    """The manifest is malformed, too big, or disagrees with the graph; the message says where."""


# ----------------------------------------------------------------------------------------------- parsing


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in JSON ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_manifest(text: str | bytes, limits: Limits | None = None) -> dict:
    """Parse manifest ``text`` within the bounds and validate it against the schema (not yet the graph).

    Args:
        text: the JSON text.
        limits: the bounds (:class:`nmn.interchange.safe_load.Limits`); by default the current defaults.

    >>> parse_manifest('{"format": 1, "layers": []}')["layers"]
    []
    >>> parse_manifest('[' * 100 + ']' * 100)
    Traceback (most recent call last):
    ...
    nmn.interchange.manifest.ManifestError: nmn manifest: JSON nesting depth is 100, over the limit max_manifest_depth=32 (raise it with Limits(max_manifest_depth=...) or --max-manifest-depth)
    """
    limits = limits or default_limits()
    if isinstance(text, bytes):
        size = len(text)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ManifestError(f"nmn manifest: not UTF-8 text ({err.reason} at byte {err.start})") from None
    else:
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_manifest_bytes:
        raise ManifestError("nmn manifest: " + limits.over("max_manifest_bytes", "its size", f"{size} bytes"))
    depth = _depth(text)
    if depth > limits.max_manifest_depth:
        raise ManifestError("nmn manifest: " + limits.over("max_manifest_depth", "JSON nesting depth", depth))
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise ManifestError(f"nmn manifest: not valid JSON ({str(err).splitlines()[0]})") from None
    validate_schema(data, limits)
    return data


# ------------------------------------------------------------------------------------------------ schema


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "bool", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _want(cond: bool, where: str, what: str, value: Any) -> None:
    if not cond:
        raise ManifestError(f"nmn manifest: {where} must be {what}, got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _type_name(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


#: config keys that are sizes: positive integers (``rank`` 1..3), checked against the tensors' shapes
SIZE_KEYS = (
    "in_features",
    "out_features",
    "features",
    "units",
    "filters",
    "in_channels",
    "out_channels",
    "embed_dim",
    "num_embeddings",
    "num_heads",
    "num_features",
    "max_seq_len",
    "groups",
    "performer_sketch_m",
    "performer_num_radial",
    "performer_radial_dim",
)
_NONNEG_KEYS = ("num_features",)
_LIST_OF_INT_KEYS = ("kernel_size", "strides", "dilations", "output_padding", "input_dilations")
_BOOL_KEYS = (
    "use_bias",
    "use_alpha",
    "learnable_epsilon",
    "spherical",
    "weight_normalized",
    "lazy",
    "causal",
    "use_out_proj",
    "use_performer",
    "channels_last",
)
_CHOICES = {
    "padding_mode": ("zeros", "reflect", "replicate", "circular"),
    "normalization": ("softmax", "l1", "softermax"),
    "rope_style": ("interleaved", "half"),
    "performer_kind": PERFORMER_KINDS,
}
_POSITIVE_NUMBERS = ("epsilon", "theta", "power", "n")


def validate_schema(data: Any, limits: Limits | None = None) -> None:
    """Check a parsed manifest's structure, types and value ranges; raise :class:`ManifestError` if wrong.

    >>> validate_schema({"format": 1, "layers": [{"name": "fc", "kind": "YatNMN", "config": {"in_features": -3},
    ...                  "params": {}, "node": "n"}]})
    Traceback (most recent call last):
    ...
    nmn.interchange.manifest.ManifestError: nmn manifest: layer 'fc': config 'in_features' must be an integer in 1..2147483647, got -3
    """
    limits = limits or default_limits()
    _want(isinstance(data, dict), "the manifest", "a JSON object", data)
    if "format" not in data:
        raise ManifestError("nmn manifest: the required key 'format' is missing")
    _want(
        _is_int(data["format"]) and data["format"] == MANIFEST_FORMAT,
        "'format'",
        f"{MANIFEST_FORMAT} (the format this nmn reads)",
        data["format"],
    )
    for key in ("nmn_version", "source", "domain"):
        if key in data:
            _want(isinstance(data[key], str), repr(key), "a string", data[key])
    if "layout" in data:
        _want(data["layout"] is None or isinstance(data["layout"], str), "'layout'", "a string or null", data["layout"])
    if "domain_version" in data:
        _want(
            _is_int(data["domain_version"]) and data["domain_version"] >= 1,
            "'domain_version'",
            "a positive integer",
            data["domain_version"],
        )
    if "layers" not in data:
        raise ManifestError("nmn manifest: the required key 'layers' is missing")
    layers = data["layers"]
    if not isinstance(layers, list):
        raise ManifestError(f"nmn manifest: 'layers' must be a list, got {_type_name(layers)}")
    if len(layers) > limits.max_manifest_layers:
        raise ManifestError("nmn manifest: " + limits.over("max_manifest_layers", "the number of layers", len(layers)))
    names = set()
    for i, entry in enumerate(layers):
        _want(isinstance(entry, dict), f"layers[{i}]", "an object", entry)
        for key in ("name", "kind", "config", "params", "node"):
            if key not in entry:
                label = f"layer {entry['name']!r}" if isinstance(entry.get("name"), str) else f"layers[{i}]"
                raise ManifestError(f"nmn manifest: {label}: the required key {key!r} is missing")
        _want(
            isinstance(entry["name"], str) and entry["name"] != "",
            f"layers[{i}].name",
            "a non-empty string",
            entry["name"],
        )
        label = f"layer {entry['name']!r}"
        if entry["name"] in names:
            raise ManifestError(f"nmn manifest: {label} is listed twice")
        names.add(entry["name"])
        _want(
            isinstance(entry["kind"], str) and entry["kind"] != "",
            f"{label}: 'kind'",
            "a non-empty string",
            entry["kind"],
        )
        _want(isinstance(entry["node"], str), f"{label}: 'node'", "a string", entry["node"])
        _want(isinstance(entry["config"], dict), f"{label}: 'config'", "an object", entry["config"])
        params = entry["params"]
        _want(isinstance(params, dict), f"{label}: 'params'", "an object", params)
        for k, v in params.items():
            _want(isinstance(v, str) and v != "", f"{label}: params[{k!r}]", "an initializer name", v)
        trainable = entry.get("trainable", {})
        _want(isinstance(trainable, dict), f"{label}: 'trainable'", "an object", trainable)
        for k, v in trainable.items():
            _want(isinstance(v, bool), f"{label}: trainable[{k!r}]", "true or false", v)
        host = entry.get("host", {})
        _want(isinstance(host, dict), f"{label}: 'host'", "an object", host)
        if "nodes" in host:
            _want(
                isinstance(host["nodes"], list) and all(isinstance(n, str) for n in host["nodes"]),
                f"{label}: host 'nodes'",
                "a list of node names",
                host["nodes"],
            )
        _validate_config(label, entry["config"], entry["kind"] in _YAT_KINDS)


def _validate_config(label: str, config: dict, yat: bool) -> None:
    """Types and ranges of a layer's config; a Yat layer's sizes are required integers, a standard layer's may
    be null (unknown)."""
    for key, value in config.items():
        where = f"{label}: config {key!r}"
        if value is None and not yat and key not in _BOOL_KEYS:
            continue
        if key in SIZE_KEYS:
            low = 0 if key in _NONNEG_KEYS else 1
            _want(_is_int(value) and low <= value <= _MAX_SIZE, where, f"an integer in {low}..{_MAX_SIZE}", value)
        elif key == "rank":
            _want(_is_int(value) and 1 <= value <= 3, where, "1, 2 or 3", value)
        elif key in _LIST_OF_INT_KEYS:
            low = 0 if key == "output_padding" else 1
            _want(
                isinstance(value, list)
                and all(_is_int(v) and low <= v <= _MAX_SIZE for v in value)
                and len(value) <= 3,
                where,
                f"a list of at most 3 integers >= {low}",
                value,
            )
        elif key in _BOOL_KEYS:
            _want(isinstance(value, bool), where, "true or false", value)
        elif key == "performer_kind":  # a standard layer never has it: a Yat attention's kind is always checked
            _want(value in _CHOICES[key], where, f"one of {list(_CHOICES[key])}", value)
        elif key in _CHOICES and yat:
            _want(value in _CHOICES[key], where, f"one of {list(_CHOICES[key])}", value)
        elif key in _POSITIVE_NUMBERS:
            ok = _is_number(value) and (value > 0 if yat else value >= 0)
            _want(ok, where, "a positive finite number" if yat else "a finite number >= 0", value)
        elif key == "performer_nmax":
            low = 1 if config.get("performer_kind") == "maclaurin" else 2  # MAY's degree may be 1, SLAY's not
            ok = value is None or (_is_int(value) and low <= value <= 64)
            _want(ok, where, f"null or an integer in {low}..64", value)
        elif key == "performer_bias":
            _want(_is_number(value) and value >= 0, where, "a finite number >= 0", value)
        elif key in ("constant_bias", "constant_alpha"):
            _want(
                value is None or isinstance(value, bool) or _is_number(value),
                where,
                "null, true/false or a finite number",
                value,
            )
        elif key == "padding":
            if yat:
                ok = isinstance(value, str) and value in ("same", "valid", "causal")
            else:
                ok = isinstance(value, str) and len(value) <= 16
            ok = (
                ok
                or (_is_int(value) and 0 <= value <= _MAX_SIZE)
                or (
                    isinstance(value, list)
                    and len(value) <= 3
                    and all(
                        (_is_int(p) and 0 <= p <= _MAX_SIZE)
                        or (isinstance(p, list) and len(p) == 2 and all(_is_int(q) and 0 <= q <= _MAX_SIZE for q in p))
                        for p in value
                    )
                )
            )
            _want(ok, where, "'same', 'valid', 'causal', an integer or a list of (begin, end) pairs", value)


# ------------------------------------------------------------------------------------------ against graph

#: The frozen projections of the random-feature performers (issue 17) by ``performer_kind``: the neutral spec's
#: param names, in the order of their node's inputs (slots 14, 15, ...)
RF_PARAMS = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}
#: the node op of each attention kind: quadratic (no performer) and each ``performer_kind``
RF_NODES = {
    None: "YatMultiHeadAttention",
    "slay": "YatPerformerMultiHeadAttention",
    "maclaurin": "YatMaclaurinMultiHeadAttention",
    "radial": "YatRadialMultiHeadAttention",
}
_RF_SLOTS = {name: 14 + i for names in RF_PARAMS.values() for i, name in enumerate(names)}

#: Yat kinds: the ops their node may be, and for each parameter the input slot of that node it must feed
_YAT_NODES = {
    "YatNMN": ({"YatDense"}, {"weight": 1, "bias": 2, "alpha": 3}),
    "YatConv": ({"YatConv"}, {"weight": 1, "bias": 2, "alpha": 3}),
    "YatConvTranspose": ({"YatConvTranspose"}, {"weight": 1, "bias": 2, "alpha": 3}),
    "YatEmbed": ({"YatEmbedAttend", "Gather"}, {}),
    "MultiHeadYatAttention": (
        set(RF_NODES.values()),
        {
            **_RF_SLOTS,
            "q_weight": 4,
            "q_bias": 5,
            "k_weight": 6,
            "k_bias": 7,
            "v_weight": 8,
            "v_bias": 9,
            "out_weight": 10,
            "out_bias": 11,
            "alpha": 12,
            "proj": 14,
        },
    ),
    "RotaryYatAttention": (
        {"RotaryYatMultiHeadAttention"},
        {
            "q_weight": 4,
            "q_bias": 5,
            "k_weight": 6,
            "k_bias": 7,
            "v_weight": 8,
            "v_bias": 9,
            "out_weight": 10,
            "out_bias": 11,
            "alpha": 12,
        },
    ),
    "softermax": ({"Softermax"}, {}),
    "softer_sigmoid": ({"SofterSigmoid"}, {}),
    "soft_tanh": ({"SoftTanh"}, {}),
}


_YAT_KINDS = frozenset(_YAT_NODES)


_DENSE_CONV_KEYS = {
    "constant_alpha",
    "constant_bias",
    "epsilon",
    "learnable_epsilon",
    "spherical",
    "use_alpha",
    "use_bias",
    "weight_normalized",
}
_CONV_KEYS = _DENSE_CONV_KEYS | {
    "dilations",
    "groups",
    "in_channels",
    "kernel_size",
    "out_channels",
    "padding",
    "rank",
    "strides",
}
_ATTN_KEYS = {
    "causal",
    "constant_alpha",
    "embed_dim",
    "epsilon",
    "normalization",
    "num_features",
    "num_heads",
    "power",
    "spherical",
    "use_alpha",
    "use_bias",
    "use_out_proj",
    "use_performer",
    "performer_nmax",
    "performer_bias",
    "performer_kind",
    "performer_sketch_m",
    "performer_num_radial",
    "performer_radial_dim",
}
#: config keys every conv and transposed-conv exporter writes (the conv adds weight_normalized)
_CONV_REQUIRED = {
    "rank",
    "in_channels",
    "out_channels",
    "kernel_size",
    "strides",
    "dilations",
    "groups",
    "padding",
    "epsilon",
    "spherical",
    "use_alpha",
    "use_bias",
    "constant_alpha",
}
#: Yat kinds: config keys every exporter writes and the loaders read (required), and every key they may carry
_YAT_CONFIG = {
    "YatNMN": (
        {
            "in_features",
            "out_features",
            "epsilon",
            "spherical",
            "use_alpha",
            "use_bias",
            "constant_alpha",
            "weight_normalized",
        },
        _DENSE_CONV_KEYS | {"in_features", "out_features", "lazy"},
    ),
    "YatConv": (_CONV_REQUIRED | {"weight_normalized"}, _CONV_KEYS | {"padding_mode", "input_dilations"}),
    "YatConvTranspose": (_CONV_REQUIRED, _CONV_KEYS | {"output_padding"}),
    "YatEmbed": (
        {"num_embeddings", "features", "epsilon", "spherical", "use_alpha", "constant_alpha"},
        {"num_embeddings", "features", "epsilon", "spherical", "use_alpha", "constant_alpha", "learnable_epsilon"},
    ),
    "MultiHeadYatAttention": (
        {
            "embed_dim",
            "num_heads",
            "causal",
            "epsilon",
            "normalization",
            "power",
            "spherical",
            "use_alpha",
            "use_bias",
            "use_out_proj",
            "constant_alpha",
        },
        _ATTN_KEYS,
    ),
    "RotaryYatAttention": (
        {
            "embed_dim",
            "num_heads",
            "causal",
            "epsilon",
            "normalization",
            "power",
            "spherical",
            "use_alpha",
            "use_bias",
            "use_out_proj",
            "constant_alpha",
            "max_seq_len",
            "rope_style",
            "theta",
        },
        _ATTN_KEYS | {"max_seq_len", "rope_style", "theta"},
    ),
    "softermax": (set(), {"n", "epsilon", "axis"}),
    "softer_sigmoid": (set(), {"n"}),
    "soft_tanh": (set(), {"n"}),
}
_PROJ = ("q_weight", "q_bias", "k_weight", "k_bias", "v_weight", "v_bias", "out_weight", "out_bias")
_YAT_PARAMS = {
    "YatNMN": {"weight", "bias", "alpha", "epsilon_param"},
    "YatConv": {"weight", "bias", "alpha", "epsilon_param"},
    "YatConvTranspose": {"weight", "bias", "alpha", "epsilon_param"},
    "YatEmbed": {"embedding", "alpha", "epsilon_param"},
    "MultiHeadYatAttention": {*_PROJ, "alpha", "proj", "epsilon_param", *_RF_SLOTS},
    "RotaryYatAttention": {*_PROJ, "alpha", "epsilon_param"},
    "softermax": set(),
    "softer_sigmoid": set(),
    "soft_tanh": set(),
}


def _required_params(kind: str, c: dict) -> set[str]:
    """The parameters a Yat layer with config ``c`` must list (the loaders build it from exactly these)."""
    need = set()
    learnable_alpha = c.get("use_alpha", True) and c.get("constant_alpha") is None
    if kind in ("YatNMN", "YatConv", "YatConvTranspose"):
        need.add("weight")
        if c.get("use_bias", True) and c.get("constant_bias") is None:
            need.add("bias")
    elif kind == "YatEmbed":
        need.add("embedding")
    elif kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        need |= {"q_weight", "k_weight", "v_weight"} | ({"out_weight"} if c.get("use_out_proj", True) else set())
        if c.get("use_bias", True):
            need |= {"q_bias", "k_bias", "v_bias"} | ({"out_bias"} if c.get("use_out_proj", True) else set())
        if c.get("use_performer"):
            kind_ = c.get("performer_kind", "slay")  # a config without performer_kind (an older file) is "slay"
            need |= set(RF_PARAMS.get(kind_, ("proj",)))
    else:
        return need
    if learnable_alpha:
        need.add("alpha")
    if c.get("learnable_epsilon"):
        need.add("epsilon_param")
    return need


def _check_yat_entry(label: str, kind: str, config: dict, params: dict) -> None:
    required, allowed = _YAT_CONFIG[kind]
    missing = sorted(required - set(config))
    if missing:
        raise ManifestError(f"{label}: config lacks {missing} (a {kind} needs {sorted(required)})")
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ManifestError(
            f"{label}: config has unknown keys {[k[:40] for k in unknown]} (a {kind} has {sorted(allowed)})"
        )
    unknown = sorted(set(params) - _YAT_PARAMS[kind])
    if unknown:
        raise ManifestError(
            f"{label}: unknown parameters {[k[:40] for k in unknown]} (a {kind} has {sorted(_YAT_PARAMS[kind])})"
        )
    missing = sorted(_required_params(kind, config) - set(params))
    if missing:
        raise ManifestError(f"{label}: its config needs parameters {missing}, which it does not list")
    if kind == "MultiHeadYatAttention":
        performer = _performer_kind(config)
        own = {"slay": {"proj"}, None: set()}.get(performer, set(RF_PARAMS.get(performer, ())))
        alien = sorted((set(params) & ({"proj"} | set(_RF_SLOTS))) - own)
        if alien:
            what = f"performer_kind={performer!r}" if performer else "use_performer=false"
            raise ManifestError(f"{label}: parameters {alien} do not belong to a layer with {what}")


def _performer_kind(config: dict) -> str | None:
    """The performer of an attention config: ``None`` (quadratic attention) or its ``performer_kind``."""
    if not config.get("use_performer"):
        return None
    return config.get("performer_kind", DEFAULTS["performer_kind"])


def random_feature_shapes(config: dict, head_dim: int) -> dict[str, tuple[int, ...]]:
    """The shapes of a MAY / RAY attention's projections that its config and head size ``D`` imply.

    maclaurin: ``may_omega (M, N, D)``, ``may_degmask (M, N)``, ``may_scale (1,)`` with ``M = num_features`` and
    ``N = performer_nmax`` (null: 40); radial: ``ray_w1``/``ray_w2 (m, D+1)``, ``ray_omega (J, R, D+1)``,
    ``ray_phase (J, R)``, ``ray_coef (J,)`` with ``m, J, R`` the ``performer_sketch_m``/``_num_radial``/
    ``_radial_dim`` (DEFAULTS where absent). ``{}`` for any other attention.

    >>> random_feature_shapes({"use_performer": True, "performer_kind": "maclaurin", "num_features": 8}, 4)
    {'may_omega': (8, 40, 4), 'may_degmask': (8, 40), 'may_scale': (1,)}
    >>> random_feature_shapes({"use_performer": True, "performer_kind": "radial", "performer_sketch_m": 4,
    ...                        "performer_num_radial": 2, "performer_radial_dim": 3}, 4)["ray_omega"]
    (2, 3, 5)
    """
    kind, d = _performer_kind(config), int(head_dim)
    if kind == "maclaurin":
        m = config.get("num_features", DEFAULTS["performer_num_features"])
        n = config.get("performer_nmax")
        n = DEFAULTS["performer_maclaurin_nmax"] if n is None else n
        return {"may_omega": (m, n, d), "may_degmask": (m, n), "may_scale": (1,)}
    if kind == "radial":
        m, j, r = (
            config.get(k, DEFAULTS[k]) for k in ("performer_sketch_m", "performer_num_radial", "performer_radial_dim")
        )
        return {
            "ray_w1": (m, d + 1),
            "ray_w2": (m, d + 1),
            "ray_omega": (j, r, d + 1),
            "ray_phase": (j, r),
            "ray_coef": (j,),
        }
    return {}


def check_random_features(label: str, config: dict, params: dict) -> None:
    """Refuse a MAY / RAY attention whose projections (numpy arrays, by neutral name) could not have come from
    nmn's samplers: a shape that disagrees with the config (``embed_dim / num_heads`` is the head size ``D``),
    a value that is not finite, a ``may_degmask`` that is not 0/1 with each row's ones a prefix (the ONNX function
    multiplies the first ``n_r`` factors), a ``may_scale`` that is not > 0. ``label`` names the file's node or layer.

    >>> import numpy as np
    >>> cfg = {"embed_dim": 4, "num_heads": 2, "use_performer": True, "performer_kind": "maclaurin",
    ...        "num_features": 2, "performer_nmax": 3}
    >>> good = {"may_omega": np.ones((2, 3, 2), np.float32), "may_degmask": np.array([[1, 1, 0], [1, 0, 0]], np.float32),
    ...         "may_scale": np.ones(1, np.float32)}
    >>> check_random_features("node 'attn'", cfg, good)
    >>> check_random_features("node 'attn'", cfg, dict(good, may_degmask=np.array([[1, 0, 1], [1, 0, 0]], np.float32)))
    Traceback (most recent call last):
    ...
    nmn.interchange.manifest.ManifestError: node 'attn': may_degmask row 0 is [1.0, 0.0, 1.0]; each row must be ones then zeros (a prefix of the degree's factors)
    """
    import numpy as np

    e, h = config.get("embed_dim"), config.get("num_heads")
    if not (_is_int(e) and _is_int(h) and h > 0 and e % h == 0):
        raise ManifestError(f"{label}: embed_dim={e!r} must be a multiple of num_heads={h!r}")
    want = random_feature_shapes(config, e // h)
    for name, shape in want.items():
        if name not in params:
            raise ManifestError(f"{label}: performer_kind={config.get('performer_kind')!r} needs {name}, absent")
        got = tuple(np.shape(params[name]))
        if got != tuple(shape):
            raise ManifestError(
                f"{label}: {name} must be {list(shape)} (from embed_dim={e}, num_heads={h} and the performer "
                f"sizes), got {list(got)}"
            )
        array = np.asarray(params[name])
        if array.dtype.kind != "f":
            raise ManifestError(f"{label}: {name} must hold floats, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ManifestError(f"{label}: {name} holds values that are not finite (nan or inf)")
    if "may_degmask" in want:
        mask = np.asarray(params["may_degmask"])
        if not np.all((mask == 0) | (mask == 1)):
            raise ManifestError(
                f"{label}: may_degmask must hold only 0 and 1, got {sorted(set(mask.ravel().tolist()))[:6]}"
            )
        bad = np.nonzero(np.any(mask[:, 1:] > mask[:, :-1], axis=1))[0]
        if bad.size:
            r = int(bad[0])
            raise ManifestError(
                f"{label}: may_degmask row {r} is {mask[r].tolist()[:12]}; each row must be ones then zeros "
                "(a prefix of the degree's factors)"
            )
        if not float(np.asarray(params["may_scale"]).reshape(-1)[0]) > 0:
            raise ManifestError(f"{label}: may_scale must be > 0, got {np.asarray(params['may_scale']).tolist()}")


def _constant_shapes(graph: onnx.GraphProto) -> dict[str, tuple[int, ...]]:
    shapes = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            for a in node.attribute:
                if a.name == "value" and a.type == AttributeProto.TENSOR:
                    shapes[node.output[0]] = tuple(int(d) for d in a.t.dims)
    return shapes


def check_against_graph(data: dict, model: onnx.ModelProto) -> None:
    """Refuse a (schema-valid) manifest that disagrees with ``model``'s graph: names, nodes, shapes."""
    shapes = _constant_shapes(model.graph)
    nodes = {n.name: n for n in model.graph.node if n.name}
    for entry in data["layers"]:
        label = f"nmn manifest: layer {entry['name']!r} ({entry['kind']})"
        for key, init in entry["params"].items():
            if init not in shapes:
                raise ManifestError(
                    f"{label}: parameter {key!r} names tensor {init!r}, which is not an initializer of the graph"
                )
        listed = entry.get("host", {}).get("nodes") or [entry["node"]]
        kind = entry["kind"]
        if kind in _YAT_NODES:
            _check_yat_entry(label, kind, entry["config"], entry["params"])
            # the loaders build a Yat layer from its node; a standard layer's entry is only a hint (its node
            # names may be those of the file it was replayed from), so only its tensors are checked
            for name in sorted({entry["node"], *listed} - {""}):
                if name not in nodes:
                    raise ManifestError(f"{label}: node {name!r} is not in the graph")
            ops, slots = _YAT_NODES[kind]
            mine = [nodes[n] for n in dict.fromkeys([entry["node"], *listed]) if n in nodes]
            main = [n for n in mine if n.op_type in ops and n.domain in ("nmn", "", "ai.onnx")]
            if not main:
                raise ManifestError(
                    f"{label}: none of its nodes {[n.name for n in mine]} is an "
                    f"{' or '.join(sorted(ops))} node (found {[n.op_type for n in mine]})"
                )
            if kind == "MultiHeadYatAttention":
                op = RF_NODES.get(_performer_kind(entry["config"]))
                if not any(n.op_type == op for n in main):
                    raise ManifestError(
                        f"{label}: its config (use_performer={entry['config'].get('use_performer', False)}, "
                        f"performer_kind={entry['config'].get('performer_kind', 'slay')!r}) is computed by an {op} "
                        f"node, but its node {main[0].name!r} is {main[0].op_type}"
                    )
            for key, slot in slots.items():
                init = entry["params"].get(key)
                if init is None:
                    continue
                if not any(slot < len(n.input) and n.input[slot] == init for n in main if n.domain == "nmn"):
                    raise ManifestError(
                        f"{label}: parameter {key!r} ({init!r}) does not feed input {slot} of its node {main[0].name!r}"
                    )
        _check_sizes(label, kind, entry["config"], {k: shapes[v] for k, v in entry["params"].items()})


def _check_sizes(label: str, kind: str, config: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    def expect(param: str, want: tuple, what: str) -> None:
        got = shapes.get(param)
        if got is not None and tuple(got) != tuple(want):
            raise ManifestError(f"{label}: {what} say {param} is {list(want)}, but the tensor is {list(got)}")

    c = config

    def size(key, default=None):
        v = c.get(key, default)
        return v if _is_int(v) else None

    if kind == "YatNMN":
        i, o = size("in_features"), size("out_features")
        if i is not None and o is not None:
            expect("weight", (o, i), f"out_features={o}, in_features={i}")
        if o is not None:
            expect("bias", (o,), f"out_features={o}")
    elif kind in ("YatConv", "YatConvTranspose"):
        ci, co, g = size("in_channels"), size("out_channels"), size("groups", 1)
        k = c.get("kernel_size")
        rank = size("rank")
        if isinstance(k, list) and rank is not None and len(k) != rank:
            raise ManifestError(f"{label}: kernel_size {k} has {len(k)} entries but rank is {rank}")
        for key in ("strides", "dilations", "output_padding", "input_dilations"):
            v = c.get(key)
            if isinstance(v, list) and rank is not None and len(v) != rank:
                raise ManifestError(f"{label}: {key} {v} has {len(v)} entries but rank is {rank}")
        if None not in (ci, co, g) and isinstance(k, list):
            for n, name in ((ci, "in_channels"), (co, "out_channels")):
                if n % g:
                    raise ManifestError(f"{label}: {name}={n} is not divisible by groups={g}")
            want = (co, ci // g, *k) if kind == "YatConv" else (ci, co // g, *k)
            expect("weight", want, f"in_channels={ci}, out_channels={co}, groups={g}, kernel_size={k}")
        if co is not None:
            expect("bias", (co,), f"out_channels={co}")
    elif kind == "YatEmbed":
        v, f = size("num_embeddings"), size("features")
        if v is not None and f is not None:
            expect("embedding", (v, f), f"num_embeddings={v}, features={f}")
    elif kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        e, h = size("embed_dim"), size("num_heads")
        if e is not None and h is not None:
            if e % h:
                raise ManifestError(f"{label}: embed_dim={e} is not divisible by num_heads={h}")
            for p in ("q_weight", "k_weight", "v_weight", "out_weight"):
                expect(p, (e, e), f"embed_dim={e}")
            for p in ("q_bias", "k_bias", "v_bias", "out_bias"):
                expect(p, (e,), f"embed_dim={e}")
            m = size("num_features")
            if c.get("use_performer") and m:
                expect("proj", (m, e // h), f"num_features={m}, embed_dim/num_heads={e // h}")
            if kind == "MultiHeadYatAttention":
                what = f"embed_dim/num_heads={e // h} and the performer sizes"
                for p, want in random_feature_shapes(c, e // h).items():
                    expect(p, want, what)
    else:
        # A standard layer (Linear, LayerNorm, Conv, ...): its layout is the host's, so no exact shape is
        # known; every size it claims must still be a dimension of one of its tensors.
        dims = {d for s in shapes.values() for d in s} | {math.prod(s) for s in shapes.values()}
        for key in (
            "in_features",
            "out_features",
            "features",
            "units",
            "filters",
            "in_channels",
            "out_channels",
            "num_embeddings",
            "embed_dim",
        ):
            n = size(key)
            if n is not None and shapes and n not in dims:
                raise ManifestError(
                    f"{label}: config {key}={n} matches no dimension of its tensors "
                    f"{ {k: list(s) for k, s in shapes.items()} }"
                )


# -------------------------------------------------------------------------------------------------- entry


def read_manifest(model: onnx.ModelProto, limits: Limits | None = None, *, check_graph: bool = True) -> dict | None:
    """The validated manifest of ``model``, or ``None`` when it has none (a foreign file).

    Args:
        model: the model whose ``metadata_props`` may hold ``nmn.manifest``.
        limits: the bounds; by default the current defaults.
        check_graph: also check the manifest against the graph (names, nodes, shapes).
    """
    entries = [e for e in model.metadata_props if e.key == MANIFEST_KEY]
    if not entries:
        return None
    if len(entries) > 1:
        raise ManifestError(f"nmn manifest: metadata_props holds {MANIFEST_KEY!r} {len(entries)} times")
    data = parse_manifest(entries[0].value, limits)
    if check_graph:
        check_against_graph(data, model)
    return data
