"""ONNX file -> a framework-neutral description that every framework's loader turns into native layers.

:func:`read_model` opens a file through the safe loader and returns an :class:`OnnxGraph`: the graph's inputs
and outputs, its nodes with plain-Python attributes, the initializers as numpy arrays, and a :class:`LayerSpec`
for every ``nmn`` node (the neutral spec of docs/extending.md). Files written by nmn carry a manifest with each
layer's config; a foreign file (no manifest) still loads, its specs derived from the node and its tensors.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nmn.core.conv import pairs_from_onnx
from nmn.core.options import DEFAULTS, PERFORMER_LEGACY_DEGREE
from nmn.core.schemas import DOMAIN
from nmn.core.spec import fold_cancelled_alpha
from nmn.interchange.graph import manifest_of
from nmn.interchange.manifest import RF_NODES, RF_PARAMS, ManifestError, check_random_features
from nmn.interchange.validate import load_model_safely, validate_model

_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class UnsupportedModelError(ValueError):
    """A model uses ops a loader cannot map; the message lists every one of them."""


@dataclass
class NodeSpec:
    op: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    name: str


@dataclass
class LayerSpec:
    """A Yat layer of the file: neutral ``kind``/``config``/``params`` plus where they live in the graph."""

    name: str
    kind: str
    config: dict
    params: dict[str, np.ndarray]
    param_inits: dict[str, str]  # canonical name -> initializer name
    nodes: list[str] = field(default_factory=list)
    trainable: dict[str, bool] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)  # canonical name -> initializer now read as a constant


@dataclass
class OnnxGraph:
    inputs: list[tuple[str, tuple, np.dtype]]
    outputs: list[str]
    nodes: list[NodeSpec]
    initializers: dict[str, np.ndarray]
    manifest: dict | None
    layers: dict[str, LayerSpec]  # by layer name
    node_layer: dict[str, str]  # node name -> layer name (Yat layers, incl. an embedding's Gather)
    standard: dict[str, dict] = field(default_factory=dict)  # manifest entries of standard layers, by name
    producers: dict[str, NodeSpec] = field(default_factory=dict)
    shapes: dict[str, tuple] = field(default_factory=dict)  # inferred value shapes (None = symbolic)
    opset: int = 18  # the file's ai.onnx opset version

    def trainable_initializers(self) -> set[str]:
        """Initializers that are parameters (trainable) rather than constants.

        The manifest decides for the layers it lists; any other float tensor that feeds a weight slot of a
        standard op (Gemm, Conv, MatMul, LayerNormalization, BatchNormalization scale/shift, Gather's table, or
        a non-scalar operand of Add/Sub/Mul/Div) counts as a parameter, so that files from other tools, and
        layers an exporter did not list, still train after loading.
        """
        listed_true, listed_false = set(), set()
        for entry in (self.manifest or {}).get("layers", []):
            for key, init in entry["params"].items():
                (listed_true if entry.get("trainable", {}).get(key, True) else listed_false).add(init)
        owned = {init for spec in self.layers.values() for init in spec.param_inits.values()}
        slots = {
            "Gemm": (1, 2),
            "Conv": (1, 2),
            "ConvTranspose": (1, 2),
            "MatMul": (0, 1),
            "LayerNormalization": (1, 2),
            "BatchNormalization": (1, 2),
            "Gather": (0,),
            "Add": (0, 1),
            "Sub": (0, 1),
            "Mul": (0, 1),
            "Div": (0, 1),
            "PRelu": (1,),
        }
        guessed = set()
        for node in self.nodes:
            for i in slots.get(node.op, ()):
                name = node.inputs[i] if i < len(node.inputs) else ""
                array = self.initializers.get(name)
                if array is not None and array.dtype.kind == "f" and array.size > 1:
                    guessed.add(name)
        if self.manifest is None:
            guessed |= {n for n in self.initializers if n.endswith(("alpha", "epsilon_param"))}
        folded = {init for spec in self.layers.values() for init in spec.folded.values()}
        return (listed_true | guessed) - listed_false - (owned - listed_true) - folded


def _attr_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def read_model(source: str | os.PathLike | onnx.ModelProto) -> OnnxGraph:
    """Read (and validate) an ONNX model into an :class:`OnnxGraph`."""
    if isinstance(source, onnx.ModelProto):
        model = source
        validate_model(model)
    else:
        model = load_model_safely(source)
    inits = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}
    init_names = set(inits)
    inputs = []
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        inputs.append((vi.name, shape, helper.tensor_dtype_to_np_dtype(tt.elem_type)))
    nodes = [
        NodeSpec(
            n.op_type,
            n.domain,
            list(n.input),
            list(n.output),
            {a.name: _attr_value(a) for a in n.attribute},
            n.name or f"node{i}",
        )
        for i, n in enumerate(model.graph.node)
    ]
    # Constant nodes become initializers, so that loaders see every tensor the same way.
    kept = []
    for node in nodes:
        if node.op == "Constant" and node.domain in ("", "ai.onnx") and "value" in node.attrs:
            inits[node.outputs[0]] = np.asarray(node.attrs["value"])
        else:
            kept.append(node)
    graph = OnnxGraph(inputs, [o.name for o in model.graph.output], kept, inits, manifest_of(model), {}, {})
    graph.producers = {o: n for n in kept for o in n.outputs}
    graph.opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
    graph.shapes = _inferred_shapes(model)
    _collect_layers(graph)
    return graph


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shapes are a convenience (conv 'same' padding on re-export); never fatal
        inferred = model
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return shapes


def _collect_layers(graph: OnnxGraph) -> None:
    by_node = {n.name: n for n in graph.nodes}
    if graph.manifest is not None:
        for entry in graph.manifest["layers"]:
            if entry["kind"] in _YAT_KINDS:
                spec = LayerSpec(
                    entry["name"],
                    entry["kind"],
                    entry["config"],
                    {k: graph.initializers[v] for k, v in entry["params"].items()},
                    dict(entry["params"]),
                    list(entry.get("host", {}).get("nodes", [entry["node"]])),
                    dict(entry.get("trainable", {})),
                )
                _performer_kernel(spec, by_node)
                graph.layers[spec.name] = spec
                for node_name in spec.nodes:
                    graph.node_layer[node_name] = spec.name
            else:
                graph.standard[entry["name"]] = entry
    for node in graph.nodes:
        if node.domain == DOMAIN and node.name not in graph.node_layer:
            spec = _derive_spec(graph, node)
            graph.layers[spec.name] = spec
            graph.node_layer[node.name] = spec.name
    for spec in graph.layers.values():
        _fold_cancelled_alpha(spec)
        _check_random_features(spec, by_node)
    missing = [n for n in graph.node_layer if n not in by_node]
    if missing:
        raise UnsupportedModelError(f"the manifest names nodes that are not in the graph: {missing}")


def _performer_kernel(spec: LayerSpec, by_node: dict[str, NodeSpec]) -> None:
    """A performer written before ``performer_nmax``/``performer_bias`` were options has neither in its manifest
    config: its node's ``degree``/``bias`` attributes (absent there too: the schema defaults 3 and 0, what those
    files computed) say which kernel it estimates. A RAY attention's ``performer_bias`` must be its node's
    ``bias`` attribute (the loaders compute with the config's, onnxruntime with the node's)."""
    if spec.kind != "MultiHeadYatAttention" or not spec.config.get("use_performer"):
        return
    kind = spec.config.get("performer_kind", DEFAULTS["performer_kind"])
    if kind == "radial":
        nodes = [by_node[n] for n in spec.nodes if n in by_node and by_node[n].op == RF_NODES["radial"]]
        if nodes:
            node_bias = float(nodes[0].attrs.get("bias", 1.0))  # the schema's default
            bias = spec.config.get("performer_bias", DEFAULTS["performer_bias"])
            if not math.isclose(float(bias), node_bias, rel_tol=1e-6, abs_tol=1e-7):
                raise ManifestError(
                    f"nmn manifest: layer {spec.name!r}: performer_bias={bias!r} but its node {nodes[0].name!r} "
                    f"computes with bias={node_bias!r}"
                )
    if kind != "slay":
        return
    nodes = [by_node[n] for n in spec.nodes if n in by_node and by_node[n].op == "YatPerformerMultiHeadAttention"]
    attrs = nodes[0].attrs if nodes else {}
    config = dict(spec.config)
    config.setdefault("performer_nmax", int(attrs.get("degree", PERFORMER_LEGACY_DEGREE)))
    config.setdefault("performer_bias", float(attrs.get("bias", 0.0)))
    spec.config = config


def _check_random_features(spec: LayerSpec, by_node: dict[str, NodeSpec]) -> None:
    """Refuse MAY / RAY projections no sampler of nmn could write (shapes, non-finite values, a degree mask
    that is not a 0/1 prefix), naming the file's node: :func:`nmn.interchange.manifest.check_random_features`."""
    if spec.kind != "MultiHeadYatAttention" or not spec.config.get("use_performer"):
        return
    if spec.config.get("performer_kind", DEFAULTS["performer_kind"]) not in RF_PARAMS:
        return
    node = next((n for n in spec.nodes if n in by_node and by_node[n].domain == DOMAIN), spec.nodes[0])
    label = f"layer {spec.name!r} (node {node!r})" if node != spec.name else f"node {node!r}"
    check_random_features(label, spec.config, spec.params)


def _fold_cancelled_alpha(spec: LayerSpec) -> None:
    """An alpha tensor on an attention whose alpha cancels (l1, softermax, performer; files written before the
    layers dropped that parameter) loads as the layer's ``constant_alpha``: the same output, no dead parameter.

    The initializer moves from ``param_inits`` to ``folded``: no loader trains it.
    """
    config, params = fold_cancelled_alpha(spec.kind, spec.config, spec.params)
    if params is not spec.params:
        spec.config, spec.params = config, params
        spec.trainable.pop("alpha", None)
        spec.folded["alpha"] = spec.param_inits.pop("alpha")


_YAT_KINDS = {
    "YatNMN",
    "YatConv",
    "YatConvTranspose",
    "MultiHeadYatAttention",
    "RotaryYatAttention",
    "YatEmbed",
    "softermax",
    "softer_sigmoid",
    "soft_tanh",
}


def _derive_spec(graph: OnnxGraph, node: NodeSpec) -> LayerSpec:
    """A spec for an ``nmn`` node of a file without manifest: every tensor input is a trainable parameter."""
    inits = graph.initializers
    name = node.name

    def tensor(i):
        v = node.inputs[i]
        if v in inits:
            return v, inits[v]
        producer = graph.producers.get(v)
        if producer is not None and producer.op == "Softplus" and producer.inputs[0] in inits:
            return producer.inputs[0], ("softplus", inits[producer.inputs[0]])
        raise UnsupportedModelError(f"node {name!r} ({node.op}): input {v!r} must be an initializer")

    def yat_tail(i_bias, cfg, params, inits_of):
        for key, idx in (("bias", i_bias), ("alpha", i_bias + 1)):
            init, arr = tensor(idx)
            params[key], inits_of[key] = arr, init
        init, arr = tensor(i_bias + 2)
        if isinstance(arr, tuple):
            params["epsilon_param"], inits_of["epsilon_param"] = arr[1], init
            cfg.update(learnable_epsilon=True, epsilon=float(np.log1p(np.exp(float(arr[1][0])))))
        else:
            cfg.update(learnable_epsilon=False, epsilon=float(arr.reshape(-1)[0]))
        cfg.update(use_bias=True, constant_bias=None, use_alpha=True, constant_alpha=None)

    params, inits_of, cfg = {}, {}, {}
    a = node.attrs
    if node.op in ("YatDense", "YatConv", "YatConvTranspose"):
        w_init, w = tensor(1)
        params["weight"], inits_of["weight"] = w, w_init
        yat_tail(2, cfg, params, inits_of)
        cfg.update(spherical=bool(a.get("spherical", 0)), weight_normalized=bool(a.get("weight_normalized", 0)))
        if node.op == "YatDense":
            kind = "YatNMN"
            cfg.update(in_features=int(w.shape[1]), out_features=int(w.shape[0]), lazy=False)
        else:
            rank = w.ndim - 2
            g = int(a.get("group", 1))
            cfg.update(
                rank=rank,
                kernel_size=list(w.shape[2:]),
                strides=list(a.get("strides") or [1] * rank),
                dilations=list(a.get("dilations") or [1] * rank),
                groups=g,
                padding=[list(p) for p in pairs_from_onnx(a.get("pads") or [0] * 2 * rank)],
            )
            if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
                raise UnsupportedModelError(f"node {name!r}: auto_pad={a['auto_pad']!r} is not supported, use pads")
            if node.op == "YatConv":
                kind = "YatConv"
                cfg.update(
                    in_channels=int(w.shape[1]) * g,
                    out_channels=int(w.shape[0]),
                    padding_mode=_PAD_MODES[a.get("pad_mode", "constant")],
                )
                dilated = [int(v) for v in a.get("input_dilations") or [1] * rank]
                if any(v != 1 for v in dilated):  # Flax's input_dilation; the other hosts have no such option
                    cfg["input_dilations"] = dilated
            else:
                kind = "YatConvTranspose"
                cfg.update(
                    in_channels=int(w.shape[0]),
                    out_channels=int(w.shape[1]) * g,
                    output_padding=list(a.get("output_padding") or [0] * rank),
                )
    elif node.op == "YatEmbedAttend":
        kind = "YatEmbed"
        e_init, e = tensor(1)
        params["embedding"], inits_of["embedding"] = e, e_init
        a_init, alpha = tensor(2)
        params["alpha"], inits_of["alpha"] = alpha, a_init
        _, eps = tensor(3)
        cfg.update(
            num_embeddings=int(e.shape[0]),
            features=int(e.shape[1]),
            use_alpha=True,
            constant_alpha=None,
            epsilon=float(eps.reshape(-1)[0]),
            spherical=bool(a.get("spherical", 0)),
        )
    elif node.op in ("RotaryYatMultiHeadAttention", *RF_NODES.values()):
        kind = "RotaryYatAttention" if node.op.startswith("Rotary") else "MultiHeadYatAttention"
        for key, idx in (
            ("q_weight", 4),
            ("q_bias", 5),
            ("k_weight", 6),
            ("k_bias", 7),
            ("v_weight", 8),
            ("v_bias", 9),
            ("out_weight", 10),
            ("out_bias", 11),
            ("alpha", 12),
        ):
            init, arr = tensor(idx)
            params[key], inits_of[key] = arr, init
        _, eps = tensor(13)
        e = int(params["q_weight"].shape[0])
        cfg.update(
            embed_dim=e,
            num_heads=int(a.get("num_heads", 1)),
            use_bias=True,
            use_alpha=True,
            constant_alpha=None,
            epsilon=float(eps.reshape(-1)[0]),
            spherical=bool(a.get("spherical", 0)),
            normalization=a.get("normalization", "softmax"),
            power=float(a.get("power", 1.0)),
            use_out_proj=True,
            causal=bool(a.get("causal", 0)),
            use_performer=False,
            num_features=0,
        )
        if node.op == "YatPerformerMultiHeadAttention":
            init, proj = tensor(14)
            params["proj"], inits_of["proj"] = proj, init
            # files written before the degree/bias attributes carry neither: the schema defaults (3, 0.0) are
            # what they computed
            cfg.update(
                use_performer=True,
                num_features=int(proj.shape[0]),
                performer_nmax=int(a.get("degree", PERFORMER_LEGACY_DEGREE)),
                performer_bias=float(a.get("bias", 0.0)),
            )
        elif node.op in (RF_NODES["maclaurin"], RF_NODES["radial"]):
            performer = "maclaurin" if node.op == RF_NODES["maclaurin"] else "radial"
            for i, key in enumerate(RF_PARAMS[performer]):
                if 14 + i >= len(node.inputs):
                    raise UnsupportedModelError(f"node {name!r} ({node.op}): input {14 + i} ({key}) is missing")
                init, arr = tensor(14 + i)
                params[key], inits_of[key] = arr, init
            cfg.update(use_performer=True, performer_kind=performer, num_features=DEFAULTS["performer_num_features"])
            if performer == "maclaurin":
                omega = params["may_omega"]
                if omega.ndim != 3:
                    raise UnsupportedModelError(
                        f"node {name!r} ({node.op}): OMEGA must be (M, N, D), got shape {list(omega.shape)}"
                    )
                # the degree and the feature count are the sampled tensors' sizes; b lives in DEGMASK and SCALE
                cfg.update(num_features=int(omega.shape[0]), performer_nmax=int(omega.shape[1]), performer_bias=0.0)
            else:
                w1, om = params["ray_w1"], params["ray_omega"]
                if w1.ndim != 2 or om.ndim != 3:
                    raise UnsupportedModelError(
                        f"node {name!r} ({node.op}): W1 must be (m, D+1) and OMEGA (J, R, D+1), got shapes "
                        f"{list(w1.shape)} and {list(om.shape)}"
                    )
                cfg.update(
                    performer_nmax=None,
                    performer_bias=float(a.get("bias", 1.0)),  # the schema's default
                    performer_sketch_m=int(w1.shape[0]),
                    performer_num_radial=int(om.shape[0]),
                    performer_radial_dim=int(om.shape[1]),
                )
        elif kind == "MultiHeadYatAttention":
            cfg.update(performer_nmax=DEFAULTS["performer_nmax"], performer_bias=DEFAULTS["performer_bias"])
        if kind == "RotaryYatAttention":
            _, cos = tensor(14)
            head = e // cfg["num_heads"]
            # recover theta from the first non-trivial frequency: angle(1, i=1) = theta^(-2/head)
            theta = 10000.0
            if cos.shape[0] > 1 and cos.shape[1] > 1:
                _, sin = tensor(15)
                theta = float(math.atan2(sin[1, 1], cos[1, 1]) ** (-head / 2.0))
            cfg.update(
                max_seq_len=int(cos.shape[0]),
                theta=theta,
                rope_style="interleaved" if a.get("interleaved", 1) else "half",
            )
    elif node.op in ("Softermax", "SofterSigmoid", "SoftTanh"):
        kind = {"Softermax": "softermax", "SofterSigmoid": "softer_sigmoid", "SoftTanh": "soft_tanh"}[node.op]
        cfg = {k: a[k] for k in a}
    else:
        raise UnsupportedModelError(f"node {name!r}: nmn::{node.op} has no layer")
    return LayerSpec(name, kind, cfg, params, inits_of, [name], {k: True for k in params})
