"""A framework-neutral ONNX graph builder: every exporter emits through it, so every framework writes the
same ONNX for the same model.

The exporters of the six frameworks walk their own model (an fx graph, a jaxpr, a Keras layer graph, a module
tree) and call :class:`GraphBuilder`: ``input``, ``node``, ``initializer`` and the layer emitters of
:mod:`nmn.interchange.emit`. :meth:`GraphBuilder.build` attaches the ``nmn`` functions the graph calls, writes
the layer manifest into ``metadata_props`` and validates the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import nmn
from nmn.core.schemas import DOMAIN, DOMAIN_VERSION, OPSET

MANIFEST_KEY = "nmn.manifest"
MANIFEST_FORMAT = 1
IR_VERSION = 10


class ExportError(ValueError):
    """An export could not be completed; nothing was written."""


_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_dtype(dtype: Any) -> int:
    """The ONNX element type of a numpy dtype (ValueError for unsupported ones)."""
    try:
        return _NP_TO_ONNX[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise ExportError(
            f"dtype {dtype!r} has no ONNX counterpart in nmn (supported: {sorted(str(d) for d in _NP_TO_ONNX)})"
        ) from None


@dataclass
class LayerRecord:
    """One manifest entry: a Yat (or standard) layer of the source model and where its pieces went."""

    name: str
    kind: str
    config: dict
    params: dict[str, str]  # canonical param name -> initializer name
    node: str  # the ONNX node that computes it
    trainable: dict[str, bool] = field(default_factory=dict)
    host: dict = field(default_factory=dict)  # host-specific extras (class name, layout)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "config": _jsonable(self.config),
            "params": self.params,
            "node": self.node,
            "trainable": self.trainable,
            "host": self.host,
        }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class GraphBuilder:
    """Collects inputs, nodes, initializers and manifest entries, then builds a validated ``ModelProto``.

    >>> import numpy as np
    >>> b = GraphBuilder(source="example")
    >>> x = b.input("x", (None, 3))
    >>> w = b.initializer("fc.weight", np.eye(3, dtype=np.float32))
    >>> y = b.node("MatMul", [x, w], name="fc")
    >>> b.output(y, "y")
    'y'
    >>> model = b.build()
    >>> [n.op_type for n in model.graph.node]
    ['MatMul']
    """

    def __init__(self, source: str, *, layout: str | None = None, graph_name: str = "nmn_model"):
        self.source = source
        self.layout = layout
        self.graph_name = graph_name
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.layers: list[LayerRecord] = []
        self.extra_metadata: dict[str, str] = {}
        self._names: set[str] = set()
        self._counter = 0

    # -------------------------------------------------------------------------------------------- naming
    def fresh(self, hint: str) -> str:
        """A value name not used yet, derived from ``hint``."""
        hint = hint or "v"
        name = hint
        while name in self._names:
            self._counter += 1
            name = f"{hint}_{self._counter}"
        self._names.add(name)
        return name

    # -------------------------------------------------------------------------------------------- pieces
    def input(self, name: str, shape: Sequence[Any], dtype: Any = np.float32) -> str:
        """Declare a graph input; ``None`` (or a string) in ``shape`` is a symbolic dimension."""
        if name in self._names:
            raise ExportError(f"graph input name {name!r} is used twice")
        self._names.add(name)
        dims = ["batch" if d is None else d for d in shape]
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), dims))
        return name

    def output(self, value: str, name: str | None = None) -> str:
        """Declare ``value`` as a graph output (renamed through an Identity when ``name`` differs)."""
        if name is not None and name != value:
            if name in self._names:
                raise ExportError(f"graph output name {name!r} is already used by another value")
            self._names.add(name)
            producer = next((n for n in self.nodes if value in n.output), None)
            declared = {v.name for v in self.inputs + self.outputs}
            if producer is not None and value not in declared:
                # rename the producing node's output (and its consumers) instead of adding an Identity
                for n in self.nodes:
                    n.output[:] = [name if o == value else o for o in n.output]
                    n.input[:] = [name if i == value else i for i in n.input]
            else:
                self.nodes.append(helper.make_node("Identity", [value], [name], name=f"output_{name}"))
            value = name
        self.outputs.append(helper.make_empty_tensor_value_info(value))
        return value

    def initializer(self, name: str, array: Any) -> str:
        """Add a tensor (a parameter or a constant) under ``name`` (made unique) and return the name."""
        name = self.fresh(name)
        self.initializers[name] = np.array(array, order="C")  # a copy; 0-d stays 0-d (ascontiguousarray makes it 1-d)
        return name

    def constant(self, hint: str, array: Any) -> str:
        """A non-trainable constant tensor (an initializer named after ``hint``)."""
        return self.initializer(hint, array)

    def node(
        self,
        op: str,
        inputs: Sequence[str],
        attrs: dict | None = None,
        *,
        domain: str = "",
        name: str | None = None,
        outputs: int | Sequence[str] = 1,
    ) -> Any:
        """Append a node; returns its output name (or the list of names when ``outputs > 1``)."""
        base = name or op.lower()
        if isinstance(outputs, int):
            outs = [self.fresh(base if outputs == 1 else f"{base}_{i}") for i in range(outputs)]
        else:
            outs = [self.fresh(o) for o in outputs]
        node_name = self.fresh(f"node_{base}")
        self.nodes.append(
            helper.make_node(
                op,
                list(inputs),
                outs,
                name=node_name,
                domain=domain or None,
                **{k: v for k, v in (attrs or {}).items()},
            )
        )
        return outs[0] if len(outs) == 1 else outs

    def record(self, layer: LayerRecord) -> None:
        """Add a manifest entry."""
        self.layers.append(layer)

    # -------------------------------------------------------------------------------------------- build
    def manifest(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "nmn_version": nmn.__version__,
            "domain": DOMAIN,
            "domain_version": DOMAIN_VERSION,
            "source": self.source,
            "layout": self.layout,
            "layers": [layer.to_json() for layer in self.layers],
        }

    def build(self, *, validate: bool = True) -> onnx.ModelProto:
        """Assemble the model: nodes, initializers, the called ``nmn`` functions and the manifest."""
        import onnx_ops

        used = sorted({n.op_type for n in self.nodes if n.domain == DOMAIN})
        functions = onnx_ops.function_protos(used) if used else []
        referenced = {i for n in self.nodes for i in n.input}
        referenced |= {init for layer in self.layers for init in layer.params.values()}  # a layer's whole state
        inits = [numpy_helper.from_array(a, name) for name, a in self.initializers.items() if name in referenced]
        graph = helper.make_graph(self.nodes, self.graph_name, self.inputs, self.outputs, initializer=inits)
        opsets = [helper.make_opsetid("", OPSET)]
        if used:
            opsets.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
        model = helper.make_model(
            graph,
            opset_imports=opsets,
            functions=functions,
            ir_version=IR_VERSION,
            producer_name="nmn",
            producer_version=nmn.__version__,
        )
        meta = {MANIFEST_KEY: json.dumps(self.manifest(), sort_keys=True), **self.extra_metadata}
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        _complete_output_types(model)
        if validate:
            from nmn.interchange.validate import validate_model

            validate_model(model)
        return model


def _complete_output_types(model: onnx.ModelProto) -> None:
    """Give every graph output a type and shape (the checker requires both).

    Shape inference through the functions fills most outputs; where it cannot (e.g. the gathers of a
    reflect-padded YatConv), the model is run once in onnxruntime at two batch sizes and the dimensions that
    follow the batch become the symbolic ``batch``.
    """
    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.input)}
    missing = []
    for out in model.graph.output:
        tt = out.type.tensor_type
        if out.type.HasField("tensor_type") and tt.elem_type and tt.HasField("shape"):
            continue
        if out.name in known and known[out.name].type.tensor_type.HasField("shape"):
            out.CopyFrom(known[out.name])
        else:
            missing.append(out)
    if not missing:
        return
    runs = []
    for batch in (1, 2):
        feeds = {}
        for vi in model.graph.input:
            t = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else batch for d in t.shape.dim]
            feeds[vi.name] = np.zeros(dims, helper.tensor_dtype_to_np_dtype(t.elem_type))
        runs.append(dict(zip([o.name for o in model.graph.output], run_onnx(model, feeds))))
    for out in missing:
        a, b = runs[0][out.name], runs[1][out.name]
        dims = ["batch" if da != db else da for da, db in zip(a.shape, b.shape)]
        out.CopyFrom(helper.make_tensor_value_info(out.name, onnx_dtype(a.dtype), dims))


def manifest_of(model: onnx.ModelProto) -> dict | None:
    """The nmn manifest stored in a model's ``metadata_props``, or ``None`` for a foreign file.

    Parsed within bounds, validated against its schema and against the graph
    (:func:`nmn.interchange.manifest.read_manifest`; a bad one raises ``ManifestError``).
    """
    from nmn.interchange.manifest import read_manifest

    return read_manifest(model)


def run_onnx(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model in onnxruntime on CPU (all optimisations on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


#: The least tolerance of the export check for a graph with a Yat-Performer node: its features are sign-indefinite
#: and its l1 denominator amplifies float32 rounding, more so at higher degrees (a degree-4 performer in a small
#: model measured 1.2e-5 of the output scale); the conformance table holds the performer to the same 5e-5.
PERFORMER_RTOL = 5e-5
#: the nodes held to :data:`PERFORMER_RTOL`: every random-feature attention (SLAY, MAY's products of D-dimensional
#: dot products, RAY's cosines) is sign-indefinite under an l1 denominator
_RANDOM_FEATURE_OPS = (
    "YatPerformerMultiHeadAttention",
    "YatMaclaurinMultiHeadAttention",
    "YatRadialMultiHeadAttention",
)


def check_against(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    expected: Sequence[np.ndarray],
    *,
    rtol: float = 1e-5,
    what: str = "model",
) -> float:
    """Run ``model`` in onnxruntime and compare every output with ``expected`` (max |diff| <= rtol * scale).

    A graph that calls a random-feature attention (Yat-Performer, MAY, RAY) is held to at least
    :data:`PERFORMER_RTOL`.
    Returns the largest relative error; raises :class:`ExportError` naming the output that differs.
    """
    if any(n.domain == DOMAIN and n.op_type in _RANDOM_FEATURE_OPS for n in model.graph.node):
        rtol = max(rtol, PERFORMER_RTOL)
    got = run_onnx(model, feeds)
    if len(got) != len(expected):
        raise ExportError(f"{what}: onnxruntime returned {len(got)} outputs, the model {len(expected)}")
    worst = 0.0
    for i, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        if g.shape != e.shape:
            raise ExportError(f"{what}: output {i} has shape {g.shape} in onnxruntime but {e.shape} in the model")
        scale = max(float(np.max(np.abs(e.astype(np.float64)))) if e.size else 0.0, 1e-12)
        err = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))) if e.size else 0.0
        worst = max(worst, err / scale)
        if err > rtol * scale:
            raise ExportError(
                f"{what}: onnxruntime differs from the model on output {i}: "
                f"max |diff| {err:.3g} > {rtol:g} x output scale {scale:.3g}; nothing was written"
            )
    return worst


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write ``model`` atomically (a temporary file in the same folder, then rename): never a half-written file."""
    from nmn.interchange._atomic import write_bytes  # one atomic writer for every nmn output (modes follow the umask)

    return write_bytes(path, model.SerializeToString())


def inline_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with every ``nmn`` function inlined, for tools that do not understand ONNX functions."""
    import onnx.inliner

    inlined = onnx.inliner.inline_local_functions(model)
    del inlined.opset_import[:]
    inlined.opset_import.extend([helper.make_opsetid("", OPSET)])
    return inlined
