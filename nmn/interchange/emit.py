"""Layer emitters: one function per layer kind, writing that layer into a :class:`GraphBuilder`.

Yat layers come in the neutral spec form of docs/design.md §S (``kind``, ``config``, canonical ``params``) and
become exactly one ``nmn::`` node each (plus a ``Softplus`` for a learnable epsilon, docs/design.md §D7).
Standard layers come as canonical (ONNX-layout) numpy weights. Every framework's exporter calls these, so the
ONNX written for a model does not depend on the framework it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nmn.core import yat as core_yat
from nmn.core.conv import PADDING_MODES, conv_pads, onnx_pads, transpose_geometry
from nmn.core.options import (
    DEFAULT_EPSILON,
    SOFTERMAX_EPSILON,
    check_performer,
    performer_spec_options,
    resolve_alpha,
    resolve_bias,
)
from nmn.core.schemas import DOMAIN
from nmn.interchange.graph import ExportError, GraphBuilder, LayerRecord
from nmn.interchange.manifest import RF_NODES, RF_PARAMS

F32 = np.float32


def _to_first(rank: int) -> list[int]:
    return [0, rank + 1, *range(1, rank + 1)]


def _to_last(rank: int) -> list[int]:
    return [0, *range(2, rank + 2), 1]


class _LayerWriter:
    """Names a layer's parameters ``<layer>.<name>`` once, so a layer called twice shares its tensors."""

    def __init__(
        self,
        b: GraphBuilder,
        name: str,
        kind: str,
        config: dict,
        param_names: dict | None,
        trainable: dict | None,
        host: dict | None,
    ):
        self.b, self.name = b, name
        self.param_names = param_names or {}
        cache = b.__dict__.setdefault("_layer_cache", {})
        if name in cache:
            self.record = cache[name]
        else:
            self.record = LayerRecord(
                name=name,
                kind=kind,
                config=dict(config),
                params={},
                node="",
                trainable=dict(trainable or {}),
                host=dict(host or {}),
            )
            cache[name] = self.record
            b.record(self.record)

    def param(self, key: str, array: Any) -> str:
        if key not in self.record.params:
            host = self.param_names.get(key, key)
            self.record.params[key] = self.b.initializer(f"{self.name}.{host}", np.asarray(array))
            self.record.trainable.setdefault(key, True)
        return self.record.params[key]

    def const(self, key: str, array: Any) -> str:
        cache = self.b.__dict__.setdefault("_const_cache", {})
        if (self.name, key) not in cache:
            cache[(self.name, key)] = self.b.constant(f"{self.name}.{key}", np.asarray(array))
        return cache[(self.name, key)]

    def node(self, op: str, inputs: Sequence[str], attrs: dict, domain: str = "") -> str:
        out = self.b.node(op, inputs, attrs, domain=domain, name=self.name)
        node_name = self.b.nodes[-1].name
        self.record.node = self.record.node or node_name
        self.record.host.setdefault("nodes", []).append(node_name)
        return out


def _tail(w: _LayerWriter, config: dict, params: dict, n_out: int) -> list[str]:
    """The B, ALPHA, EPS inputs of a Yat node."""
    bias = resolve_bias(config.get("use_bias", False), config.get("constant_bias"))
    if bias.mode == "learnable":
        b = w.param("bias", params["bias"])
    else:
        b = w.const("bias_const", np.full((n_out,), bias.value, F32))
    alpha = resolve_alpha(config.get("use_alpha", True), config.get("constant_alpha"))
    a = w.param("alpha", params["alpha"]) if alpha.learnable else w.const("alpha_const", np.array([alpha.value], F32))
    if config.get("learnable_epsilon"):
        raw = w.param("epsilon_param", params["epsilon_param"])
        e = w.b.__dict__.setdefault("_softplus_cache", {}).get(raw)
        if e is None:
            e = w.b.node("Softplus", [raw], name=f"{w.name}.epsilon")
            w.b._softplus_cache[raw] = e
    else:
        e = w.const("epsilon", np.array([config.get("epsilon", DEFAULT_EPSILON)], F32))
    return [b, a, e]


def yat_layer(
    b: GraphBuilder,
    name: str,
    kind: str,
    config: dict,
    params: dict,
    inputs: Sequence[str],
    *,
    in_shape: Sequence[Any] | None = None,
    channels_last: bool = False,
    call: dict | None = None,
    param_names: dict | None = None,
    trainable: dict | None = None,
    host: dict | None = None,
    pads: Sequence[int] | None = None,
) -> str:
    """Emit one Yat layer; returns the output value name.

    Args:
        name: the layer's path in the host model (initializers are named ``<name>.<param>``).
        kind, config, params: the neutral spec (params in the canonical ONNX layout).
        inputs: graph value names (query/key/value for attention, ids or query for YatEmbed).
        in_shape: the first input's shape in the host layout (needed for conv ``'same'``/``'causal'``).
        channels_last: the host feeds conv data channels-last; Transpose nodes wrap the ``nmn`` node.
        call: call options: ``{"method": "attend"}`` for YatEmbed, ``{"mask": value name, "mask_rank": its
            rank}`` for attention (a rank-3 mask is the hosts' per-batch ``(B, Lq, Lk)``: a head axis is added).
        param_names: canonical -> host parameter names (``{"weight": "kernel"}``).
        pads: explicit ONNX ``pads`` for a conv (used when re-writing a loaded file, where the input's spatial
            size may be unknown); by default they are computed from ``config["padding"]`` and ``in_shape``.
    """
    call = call or {}
    w = _LayerWriter(b, name, kind, config, param_names, trainable, host)
    if kind == "YatNMN":
        ins = [inputs[0], w.param("weight", params["weight"]), *_tail(w, config, params, config["out_features"])]
        return w.node(
            "YatDense",
            ins,
            dict(spherical=int(config["spherical"]), weight_normalized=int(config["weight_normalized"])),
            DOMAIN,
        )
    if kind in ("YatConv", "YatConvTranspose"):
        rank = config["rank"]
        x = inputs[0]
        needs_shape = kind == "YatConv" and pads is None and config["padding"] in ("same", "causal")
        if in_shape is None and needs_shape:
            raise ExportError(
                f"{name}: the input shape is needed to export a {kind} with padding {config['padding']!r}"
            )
        shape = list(in_shape) if in_shape is not None else [None] * (rank + 2)
        if channels_last:
            x = b.node("Transpose", [x], {"perm": _to_first(rank)}, name=f"{name}.to_channels_first")
            shape = [shape[0], shape[-1], *shape[1:-1]]
        weight = w.param("weight", params["weight"])
        common = dict(
            auto_pad="NOTSET",
            strides=list(config["strides"]),
            dilations=list(config["dilations"]),
            group=int(config["groups"]),
        )
        if kind == "YatConv":
            pairs = (
                []
                if pads is not None
                else conv_pads(
                    config["padding"], shape[2:], config["kernel_size"], config["strides"], config["dilations"]
                )
            )
            attrs = dict(
                common,
                pads=list(pads) if pads is not None else onnx_pads(pairs),
                pad_mode=PADDING_MODES[config.get("padding_mode", "zeros")],
                weight_normalized=int(config.get("weight_normalized", False)),
                input_dilations=[int(v) for v in config.get("input_dilations") or [1] * len(config["kernel_size"])],
            )
            y = w.node("YatConv", [x, weight, *_tail(w, config, params, config["out_channels"])], attrs, DOMAIN)
        else:
            pairs, outpad = transpose_geometry(
                config["padding"],
                config["kernel_size"],
                config["strides"],
                config["dilations"],
                config.get("output_padding"),
            )
            attrs = dict(
                common,
                pads=list(pads) if pads is not None else onnx_pads(pairs),
                output_padding=list(outpad),
                weight_normalized=int(config.get("weight_normalized", False)),
            )
            y = w.node(
                "YatConvTranspose", [x, weight, *_tail(w, config, params, config["out_channels"])], attrs, DOMAIN
            )
        if channels_last:
            y = b.node("Transpose", [y], {"perm": _to_last(rank)}, name=f"{name}.to_channels_last")
        return y
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        return _attention(w, config, params, inputs, call)
    if kind == "YatEmbed":
        table = w.param("embedding", params["embedding"])
        alpha = resolve_alpha(config.get("use_alpha", True), config.get("constant_alpha"))
        # a learnable alpha belongs to the layer even when only the lookup is used: it stays in the file
        a = w.param("alpha", params["alpha"]) if alpha.learnable else None
        if call.get("method") == "attend":
            a = a or w.const("alpha_const", np.array([alpha.value], F32))
            e = w.const("epsilon", np.array([config.get("epsilon", DEFAULT_EPSILON)], F32))
            return w.node("YatEmbedAttend", [inputs[0], table, a, e], dict(spherical=int(config["spherical"])), DOMAIN)
        return w.node("Gather", [table, inputs[0]], {"axis": 0})
    if kind in ("softermax", "softer_sigmoid", "soft_tanh"):
        op = {"softermax": "Softermax", "softer_sigmoid": "SofterSigmoid", "soft_tanh": "SoftTanh"}[kind]
        attrs = {"n": float(config.get("n", 1.0))}
        if kind == "softermax":
            attrs.update(epsilon=float(config.get("epsilon", SOFTERMAX_EPSILON)), axis=int(config.get("axis", -1)))
        return w.node(op, [inputs[0]], attrs, DOMAIN)
    raise ExportError(f"{name}: no ONNX emitter for layer kind {kind!r}")


def _attention(w: _LayerWriter, config: dict, params: dict, inputs: Sequence[str], call: dict) -> str:
    e = config["embed_dim"]
    xq = inputs[0]
    xk = inputs[1] if len(inputs) > 1 and inputs[1] else xq
    xv = inputs[2] if len(inputs) > 2 and inputs[2] else xk
    mask = call.get("mask") or w.const("mask_all", np.ones((1, 1, 1, 1), bool))
    if call.get("mask") and call.get("mask_rank") == 3:
        # every host's (B, Lq, Lk) mask is per batch element (Keras MHA, Flax): the function's MASK broadcasts
        # against (B, H, Lq, Lk), so the head axis is written out (nmn.core.options.mask_needs_head_axis)
        axes = w.const("mask_head_axis", np.array([1], np.int64))
        mask = w.b.node("Unsqueeze", [mask, axes], {}, name=f"{w.name}.mask_heads")
    zeros = np.zeros((e,), F32)
    ins = [xq, xk, xv, mask]
    for p in ("q", "k", "v", "out"):
        if p == "out" and not config.get("use_out_proj", True):
            ins += [w.const("out_identity", np.eye(e, dtype=F32)), w.const("out_zero_bias", zeros)]
            continue
        ins.append(w.param(f"{p}_weight", params[f"{p}_weight"]))
        ins.append(
            w.param(f"{p}_bias", params[f"{p}_bias"]) if f"{p}_bias" in params else w.const(f"{p}_zero_bias", zeros)
        )
    alpha = resolve_alpha(config.get("use_alpha", True), config.get("constant_alpha"))
    ins.append(
        w.param("alpha", params["alpha"]) if alpha.learnable else w.const("alpha_const", np.array([alpha.value], F32))
    )
    ins.append(w.const("epsilon", np.array([config.get("epsilon", DEFAULT_EPSILON)], F32)))
    attrs = dict(num_heads=int(config["num_heads"]), causal=int(bool(config.get("causal", False))))
    kind = config.get("performer_kind", "slay") if config.get("use_performer") else None
    if kind in RF_PARAMS:
        # MAY / RAY: the frozen sampled projections follow the 14 inputs (ALPHA and EPS are unused by the function:
        # alpha cancels, the kernel's eps lives in the samples); RAY's bias is the sqrt(b) coordinate of z
        missing = [key for key in RF_PARAMS[kind] if key not in params]
        if missing:
            raise ExportError(f"{w.name}: a performer_kind={kind!r} attention needs params {missing}")
        for key in RF_PARAMS[kind]:
            w.record.trainable[key] = False
            ins.append(w.param(key, np.asarray(params[key], F32)))
        if kind == "radial":
            attrs.update(bias=float(config.get("performer_bias", 0.0)))
        return w.node(RF_NODES[kind], ins, attrs, DOMAIN)
    if kind is not None and kind != "slay":
        raise ExportError(f"{w.name}: performer_kind {kind!r} has no ONNX emitter")
    if config.get("use_performer"):
        w.record.trainable["proj"] = False
        ins.append(w.param("proj", params["proj"]))
        w.record.trainable["proj"] = False
        nmax, bias = check_performer(**performer_spec_options(config), layer=w.record.kind)
        # the resolved degree and the bias, always written: a file never depends on the degree rule's version
        attrs.update(degree=core_yat.performer_degree(int(params["proj"].shape[0]), e // config["num_heads"], nmax))
        attrs.update(bias=bias)
        return w.node("YatPerformerMultiHeadAttention", ins, attrs, DOMAIN)
    attrs.update(
        spherical=int(bool(config.get("spherical", False))),
        normalization=str(config.get("normalization", "softmax")),
        power=float(config.get("power", 1.0)),
    )
    if w.record.kind == "RotaryYatAttention":
        cos, sin = core_yat.rope_tables(e // config["num_heads"], config["max_seq_len"], config["theta"])
        ins += [w.const("rope_cos", np.array(cos, F32)), w.const("rope_sin", np.array(sin, F32))]
        attrs["interleaved"] = int(config.get("rope_style", "interleaved") == "interleaved")
        return w.node("RotaryYatMultiHeadAttention", ins, attrs, DOMAIN)
    return w.node("YatMultiHeadAttention", ins, attrs, DOMAIN)


# ------------------------------------------------------------------------------------------- standard layers
def _standard(b: GraphBuilder, name: str, kind: str, config: dict, param_names: dict | None = None):
    return _LayerWriter(b, name, kind, config, param_names, None, None)


def linear(
    b: GraphBuilder,
    name: str,
    x: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    rank: int = 2,
    param_names: dict | None = None,
) -> str:
    """A Linear / Dense layer, ``weight (out, in)``: ``Gemm`` for 2-D inputs, else ``MatMul`` + ``Add``."""
    w = _standard(
        b,
        name,
        "Linear",
        {"in_features": int(weight.shape[1]), "out_features": int(weight.shape[0]), "use_bias": bias is not None},
        param_names,
    )
    wt = w.param("weight", weight)
    if rank == 2:
        ins = [x, wt] + ([w.param("bias", bias)] if bias is not None else [])
        return w.node("Gemm", ins, {"transB": 1})
    y = w.node("MatMul", [x, b.node("Transpose", [wt], {"perm": [1, 0]}, name=f"{name}.weight_t")], {})
    return b.node("Add", [y, w.param("bias", bias)], name=f"{name}.bias_add") if bias is not None else y


def conv(
    b: GraphBuilder,
    name: str,
    x: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    in_shape,
    strides,
    dilations,
    groups: int = 1,
    padding: Any = "valid",
    channels_last: bool = False,
    transpose: bool = False,
    output_padding=None,
    param_names: dict | None = None,
) -> str:
    """A standard Conv / ConvTranspose (canonical weights ``(M, C/G, *k)`` / ``(C, M/G, *k)``)."""
    rank = weight.ndim - 2
    kernel = tuple(weight.shape[2:])
    shape = list(in_shape)
    if channels_last:
        x = b.node("Transpose", [x], {"perm": _to_first(rank)}, name=f"{name}.to_channels_first")
        shape = [shape[0], shape[-1], *shape[1:-1]]
    w = _standard(
        b,
        name,
        "ConvTranspose" if transpose else "Conv",
        {
            "rank": rank,
            "kernel_size": list(kernel),
            "strides": list(strides),
            "dilations": list(dilations),
            "groups": groups,
            "padding": padding,
            "channels_last": channels_last,
        },
        param_names,
    )
    ins = [x, w.param("weight", weight)] + ([w.param("bias", bias)] if bias is not None else [])
    attrs = dict(strides=list(strides), dilations=list(dilations), group=int(groups))
    if transpose:
        pairs, outpad = transpose_geometry(padding, kernel, strides, dilations, output_padding)
        y = w.node("ConvTranspose", ins, dict(attrs, pads=onnx_pads(pairs), output_padding=list(outpad)))
    else:
        pairs = conv_pads(padding, shape[2:], kernel, strides, dilations)
        y = w.node("Conv", ins, dict(attrs, pads=onnx_pads(pairs)))
    if channels_last:
        y = b.node("Transpose", [y], {"perm": _to_last(rank)}, name=f"{name}.to_channels_last")
    return y


def layer_norm(
    b: GraphBuilder,
    name: str,
    x: str,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    epsilon: float,
    *,
    param_names: dict | None = None,
) -> str:
    """LayerNormalization over the last axis."""
    n = int((scale if scale is not None else bias).shape[0]) if (scale is not None or bias is not None) else None
    w = _standard(b, name, "LayerNorm", {"features": n, "epsilon": float(epsilon)}, param_names)
    s = w.param("weight", scale) if scale is not None else w.const("ones", np.ones((n,), F32))
    ins = [x, s] + ([w.param("bias", bias)] if bias is not None else [])
    return w.node("LayerNormalization", ins, {"axis": -1, "epsilon": float(epsilon)})


def batch_norm(
    b: GraphBuilder,
    name: str,
    x: str,
    scale,
    bias,
    mean,
    var,
    epsilon: float,
    *,
    rank: int,
    channels_last: bool = False,
    param_names: dict | None = None,
) -> str:
    """BatchNormalization in inference mode (running statistics)."""
    if channels_last and rank > 0:
        x = b.node("Transpose", [x], {"perm": _to_first(rank)}, name=f"{name}.to_channels_first")
    w = _standard(b, name, "BatchNorm", {"features": int(mean.shape[0]), "epsilon": float(epsilon)}, param_names)
    ins = [
        x,
        w.param("weight", scale),
        w.param("bias", bias),
        w.param("running_mean", mean),
        w.param("running_var", var),
    ]
    w.record.trainable.update(running_mean=False, running_var=False)
    y = w.node("BatchNormalization", ins, {"epsilon": float(epsilon)})
    if channels_last and rank > 0:
        y = b.node("Transpose", [y], {"perm": _to_last(rank)}, name=f"{name}.to_channels_last")
    return y


def embedding(b: GraphBuilder, name: str, ids: str, table: np.ndarray, *, param_names: dict | None = None) -> str:
    """A plain embedding lookup (``Gather`` on axis 0)."""
    w = _standard(
        b, name, "Embedding", {"num_embeddings": int(table.shape[0]), "features": int(table.shape[1])}, param_names
    )
    return w.node("Gather", [w.param("weight", table), ids], {"axis": 0})


ACTIVATIONS = (
    "relu",
    "sigmoid",
    "tanh",
    "softplus",
    "softmax",
    "log_softmax",
    "identity",
    "silu",
    "gelu",
    "gelu_tanh",
    "leaky_relu",
    "elu",
    "selu",
    "hard_sigmoid",
    "hard_swish",
    "relu6",
    "clip",
    "mish",
    "softsign",
)
"""The activation kinds :func:`activation` writes: the one table every exporter maps its host's activations to."""


def activation(
    b: GraphBuilder,
    kind: str,
    x: str,
    *,
    axis: int = -1,
    name: str | None = None,
    alpha: float | None = None,
    min: float | None = None,
    max: float | None = None,
) -> str:
    """One activation of :data:`ACTIVATIONS` as ONNX nodes.

    Args:
        kind: relu, sigmoid, tanh, softplus, softsign, softmax / log_softmax (along ``axis``), identity, silu,
            gelu (exact, erf form), gelu_tanh, leaky_relu / elu (``alpha``; defaults 0.01 / 1.0), selu,
            hard_sigmoid (``alpha`` slope, default 1/6 as torch and Keras 3 use, offset 0.5), hard_swish
            (``x * hard_sigmoid(x)``), relu6, clip (``min``/``max``), mish (``x * tanh(softplus(x))``).
        name: the node name (default ``kind``).

    Example:
        >>> from nmn.interchange.graph import GraphBuilder
        >>> b = GraphBuilder("torch")
        >>> y = activation(b, "hard_swish", b.input("x", (None, 3)))
        >>> [n.op_type for n in b.nodes]
        ['HardSwish']
    """
    name = name or kind
    if kind in ("relu", "sigmoid", "tanh", "softplus", "softsign", "selu"):
        op = {
            "relu": "Relu",
            "sigmoid": "Sigmoid",
            "tanh": "Tanh",
            "softplus": "Softplus",
            "softsign": "Softsign",
            "selu": "Selu",
        }[kind]
        return b.node(op, [x], name=name)
    if kind in ("leaky_relu", "elu"):
        default = 0.01 if kind == "leaky_relu" else 1.0
        return b.node(
            "LeakyRelu" if kind == "leaky_relu" else "Elu",
            [x],
            {"alpha": float(default if alpha is None else alpha)},
            name=name,
        )
    if kind == "hard_sigmoid":
        return b.node(
            "HardSigmoid", [x], {"alpha": float(1.0 / 6.0 if alpha is None else alpha), "beta": 0.5}, name=name
        )
    if kind == "hard_swish":
        return b.node("HardSwish", [x], name=name)
    if kind in ("relu6", "clip"):
        lo, hi = (0.0, 6.0) if kind == "relu6" else (min, max)
        ins = [
            x,
            b.constant(f"{name}.min", np.array(lo, F32)) if lo is not None else "",
            b.constant(f"{name}.max", np.array(hi, F32)) if hi is not None else "",
        ]
        while ins and ins[-1] == "":
            ins.pop()
        return b.node("Clip", ins, name=name)
    if kind == "mish":
        t = b.node("Tanh", [b.node("Softplus", [x], name=f"{name}.softplus")], name=f"{name}.tanh")
        return b.node("Mul", [x, t], name=name)
    if kind in ("softmax", "log_softmax"):
        return b.node("Softmax" if kind == "softmax" else "LogSoftmax", [x], {"axis": int(axis)}, name=name)
    if kind == "identity":
        return x
    if kind == "silu":
        return b.node("Mul", [x, b.node("Sigmoid", [x], name=f"{name}.sigmoid")], name=name)
    if kind == "gelu":
        # opset 18 has no Gelu: 0.5 x (1 + erf(x / sqrt 2))
        inv = b.constant(f"{name}.inv_sqrt2", np.array(1.0 / math.sqrt(2.0), F32))
        half = b.constant(f"{name}.half", np.array(0.5, F32))
        one = b.constant(f"{name}.one", np.array(1.0, F32))
        erf = b.node("Erf", [b.node("Mul", [x, inv], name=f"{name}.scale")], name=f"{name}.erf")
        return b.node(
            "Mul",
            [b.node("Mul", [x, half], name=f"{name}.half_x"), b.node("Add", [erf, one], name=f"{name}.one_plus")],
            name=name,
        )
    if kind == "gelu_tanh":
        c = b.constant(f"{name}.c", np.array(math.sqrt(2.0 / math.pi), F32))
        k = b.constant(f"{name}.k", np.array(0.044715, F32))
        half = b.constant(f"{name}.half", np.array(0.5, F32))
        one = b.constant(f"{name}.one", np.array(1.0, F32))
        x3 = b.node("Mul", [b.node("Mul", [x, x], name=f"{name}.x2"), x], name=f"{name}.x3")
        inner = b.node(
            "Mul",
            [b.node("Add", [x, b.node("Mul", [x3, k], name=f"{name}.kx3")], name=f"{name}.sum"), c],
            name=f"{name}.inner",
        )
        t = b.node("Add", [b.node("Tanh", [inner], name=f"{name}.tanh"), one], name=f"{name}.one_plus")
        return b.node("Mul", [b.node("Mul", [x, half], name=f"{name}.half_x"), t], name=name)
    raise ExportError(f"activation {kind!r} has no ONNX emitter")


def reshape(b: GraphBuilder, x: str, shape: Sequence[int], *, name: str = "reshape") -> str:
    """Reshape to ``shape`` (0 keeps a dimension, -1 infers one: use ``0`` for the batch)."""
    return b.node("Reshape", [x, b.constant(f"{name}.shape", np.array(list(shape), np.int64))], name=name)


def flatten(b: GraphBuilder, x: str, *, axis: int = 1, name: str = "flatten") -> str:
    return b.node("Flatten", [x], {"axis": int(axis)}, name=name)


def pool(
    b: GraphBuilder, kind: str, x: str, *, kernel, strides, pads=None, channels_last: bool = False, name: str = "pool"
) -> str:
    """Max or average pooling (``kind`` 'max' / 'avg'), pads as (lo, hi) pairs; 'global_avg' reduces to 1."""
    rank = len(kernel) if kernel is not None else None
    if channels_last:
        x = b.node("Transpose", [x], {"perm": _to_first(rank)}, name=f"{name}.to_channels_first")
    if kind == "global_avg":
        y = b.node("GlobalAveragePool", [x], name=name)
    else:
        attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": onnx_pads(pads or [(0, 0)] * rank)}
        if kind == "avg":
            attrs["count_include_pad"] = 0
        y = b.node("MaxPool" if kind == "max" else "AveragePool", [x], attrs, name=name)
    if channels_last:
        y = b.node("Transpose", [y], {"perm": _to_last(rank)}, name=f"{name}.to_channels_last")
    return y
