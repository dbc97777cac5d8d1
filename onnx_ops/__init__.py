"""The ``nmn`` ONNX domain (version 1): every Yat op as an onnxscript function, plus a registry and helpers.

``REGISTRY`` lists every function of :data:`nmn.core.schemas.FUNCTIONS` and the helper functions they call;
:func:`function_protos` returns the ``FunctionProto`` of some functions and of everything they call, callees
first; :func:`make_model` builds a one-node model calling a function; :func:`run_function` runs one in
onnxruntime with every attribute written explicitly (schema defaults filled in).

>>> sorted(REGISTRY)[:3]
['AffineProjection', 'NormalizationCode', 'PadAxisStep']
>>> import numpy as np
>>> x = np.array([[1.0, 0.0]], np.float32); w = np.array([[1.0, 0.0]], np.float32)
>>> float(run_function("YatDense", [x, w, np.zeros(1, np.float32), np.ones(1, np.float32),
...                                  np.full(1, 0.5, np.float32)])[0, 0])
2.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx.helper as oh

from nmn.core.schemas import DOMAIN, DOMAIN_VERSION, FUNCTIONS, OPSET
from onnx_ops._common import YatTail
from onnx_ops.attention import (
    AffineProjection,
    NormalizationCode,
    PerformerFeatureMap,
    RotaryEmbedding,
    RotaryYatMultiHeadAttention,
    SplitHeads,
    YatAttention,
    YatLinearAttention,
    YatMultiHeadAttention,
    YatPerformerFeatures,
    YatPerformerMultiHeadAttention,
)
from onnx_ops.conv import PadAxisStep, PadModeCode, SpatialPad, YatConv
from onnx_ops.conv_transpose import YatConvTranspose
from onnx_ops.dense import YatDense
from onnx_ops.embed import YatEmbedAttend
from onnx_ops.random_features import (
    UnitRows,
    YatAnchorFeatures,
    YatMaclaurinFeatures,
    YatMaclaurinMultiHeadAttention,
    YatRadialFeatures,
    YatRadialMultiHeadAttention,
)
from onnx_ops.squash import Softermax, SofterSigmoid, SoftTanh

__all__ = ["REGISTRY", "FunctionInfo", "function_protos", "make_model", "run_function", "HELPERS"]


@dataclass(frozen=True)
class FunctionInfo:
    """One function of the domain: its name, domain, version, input and attribute names and the onnxscript object."""

    name: str
    domain: str
    version: int
    inputs: tuple[str, ...]
    attributes: tuple[str, ...]
    function: Any
    public: bool  # True for the functions of nmn.core.schemas.FUNCTIONS, False for helpers

    @property
    def proto(self) -> onnx.FunctionProto:
        return self.function.to_function_proto()


_PUBLIC = [
    YatDense,
    YatConv,
    YatConvTranspose,
    YatAttention,
    YatMultiHeadAttention,
    RotaryYatMultiHeadAttention,
    YatPerformerMultiHeadAttention,
    YatEmbedAttend,
    RotaryEmbedding,
    YatPerformerFeatures,
    YatLinearAttention,
    YatMaclaurinFeatures,
    YatRadialFeatures,
    YatAnchorFeatures,
    YatMaclaurinMultiHeadAttention,
    YatRadialMultiHeadAttention,
    Softermax,
    SofterSigmoid,
    SoftTanh,
]
_HELPERS = [
    YatTail,
    PadModeCode,
    PadAxisStep,
    SpatialPad,
    NormalizationCode,
    AffineProjection,
    SplitHeads,
    PerformerFeatureMap,
    UnitRows,
]
HELPERS = tuple(f.name for f in _HELPERS)


def _info(fn, public: bool) -> FunctionInfo:
    fp = fn.to_function_proto()
    attrs = tuple(fp.attribute) + tuple(a.name for a in fp.attribute_proto)
    return FunctionInfo(fn.name, fp.domain, DOMAIN_VERSION, tuple(fp.input), attrs, fn, public)


REGISTRY: dict[str, FunctionInfo] = {
    **{fn.name: _info(fn, True) for fn in _PUBLIC},
    **{fn.name: _info(fn, False) for fn in _HELPERS},
}

_PROTOS: dict[str, onnx.FunctionProto] = {}


def _proto(name: str) -> onnx.FunctionProto:
    if name not in _PROTOS:
        if name not in REGISTRY:
            raise KeyError(f"unknown nmn function {name!r}; known: {sorted(REGISTRY)}")
        _PROTOS[name] = REGISTRY[name].proto
    return _PROTOS[name]


def function_protos(names: Sequence[str] | str) -> list[onnx.FunctionProto]:
    """The FunctionProtos of ``names`` and of every nmn function they call, each callee before its callers."""
    if isinstance(names, str):
        names = [names]
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for node in _proto(name).node:
            if node.domain == DOMAIN:
                visit(node.op_type)
        order.append(name)

    for n in names:
        visit(n)
    return [_proto(n) for n in order]


_NP_TO_ONNX = {
    np.dtype(np.float32): onnx.TensorProto.FLOAT,
    np.dtype(np.float16): onnx.TensorProto.FLOAT16,
    np.dtype(np.float64): onnx.TensorProto.DOUBLE,
    np.dtype(np.bool_): onnx.TensorProto.BOOL,
    np.dtype(np.int64): onnx.TensorProto.INT64,
}


def full_attributes(name: str, rank: int | None = None, **attrs) -> dict[str, Any]:
    """Every attribute of ``name`` with the schema defaults filled in.

    ``ints`` attributes whose schema default is None get the rank-appropriate ONNX default from ``rank`` (the
    number of spatial axes): strides/dilations ones, pads ``2 * rank`` zeros, output_padding zeros.
    """
    schema = FUNCTIONS.get(name)
    if schema is None:
        raise KeyError(f"{name!r} is not a public nmn function")
    unknown = set(attrs) - set(schema.attributes)
    if unknown:
        raise ValueError(f"{name}: unknown attribute(s) {sorted(unknown)}; expected {sorted(schema.attributes)}")
    out: dict[str, Any] = {}
    for key, (kind, default) in schema.attributes.items():
        if key in attrs and attrs[key] is not None:
            value = attrs[key]
        elif default is not None:
            value = default
        elif kind == "ints":
            if rank is None:
                raise ValueError(f"{name}: attribute {key!r} has no default and the spatial rank is unknown")
            value = [0] * (2 * rank) if key == "pads" else [0] * rank if key == "output_padding" else [1] * rank
        else:
            raise ValueError(f"{name}: attribute {key!r} is required")
        if kind == "ints":
            value = [int(v) for v in value]
        elif kind == "int":
            value = int(value)
        elif kind == "float":
            value = float(value)
        elif kind == "string":
            value = str(value)
        out[key] = value
    return out


def make_model(
    node_op: str,
    inputs: Mapping[str, Any],
    attrs: Mapping[str, Any] | None = None,
    *,
    output_shape: Sequence[Any] | None = None,
    dynamic: bool = False,
) -> onnx.ModelProto:
    """A model whose graph is one call ``nmn::node_op(*inputs, **attrs)`` with the function bodies attached.

    ``inputs`` maps each input name (in order) to an array (its dtype and shape are used) or a shape tuple
    (float32). With ``dynamic=True`` every input dimension is symbolic. The output's element type is the first
    input's; its shape is ``output_shape`` if given, else inferred (``onnx.shape_inference``).
    ``attrs`` are written as given: pass :func:`full_attributes` for a call with every attribute explicit.
    """
    attrs = dict(attrs or {})
    vis = []
    first_type = None
    for _i, (name, value) in enumerate(inputs.items()):
        if isinstance(value, np.ndarray):
            elem, shape = _NP_TO_ONNX[value.dtype], list(value.shape)
        else:
            elem, shape = onnx.TensorProto.FLOAT, list(value)
        if dynamic:
            shape = [f"{name}_{j}" for j in range(len(shape))]
        vis.append(oh.make_tensor_value_info(name, elem, shape))
        if first_type is None:
            first_type = elem
    schema = FUNCTIONS.get(node_op)
    outputs = list(schema.outputs) if schema else ["Y"]
    node = oh.make_node(node_op, list(inputs), outputs, domain=DOMAIN, **attrs)
    graph_outputs = [oh.make_tensor_value_info(o, first_type, output_shape) for o in outputs]
    graph = oh.make_graph([node], f"{node_op}_call", vis, graph_outputs)
    model = oh.make_model(
        graph,
        functions=function_protos([node_op]),
        opset_imports=[oh.make_opsetid("", OPSET), oh.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        ir_version=10,
    )
    if output_shape is None and not dynamic:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
        for out in model.graph.output:
            vi = known.get(out.name)
            if vi is not None and vi.type.tensor_type.HasField("shape"):
                out.type.tensor_type.shape.CopyFrom(vi.type.tensor_type.shape)
    # every nmn function returns a tensor of its first input's rank; name the dims that inference left open
    first_rank = len(vis[0].type.tensor_type.shape.dim) if vis else 0
    for out in model.graph.output:
        if not out.type.tensor_type.HasField("shape"):
            out.type.tensor_type.shape.CopyFrom(
                oh.make_tensor_type_proto(first_type, [f"{out.name}_{j}" for j in range(first_rank)]).tensor_type.shape
            )
    return model


_SESSIONS: dict[tuple, Any] = {}


def _spatial_rank(name: str, inputs: Sequence[np.ndarray]) -> int | None:
    if name in ("YatConv", "YatConvTranspose"):
        return np.asarray(inputs[0]).ndim - 2
    return None


def session_for(name: str, inputs: Sequence[np.ndarray], **attrs):
    """A cached onnxruntime session running ``name`` with every attribute explicit, and its input names."""
    import onnxruntime as ort

    full = full_attributes(name, _spatial_rank(name, inputs), **attrs)
    names = FUNCTIONS[name].inputs
    if len(inputs) != len(names):
        raise ValueError(f"{name} takes {len(names)} inputs {names}, got {len(inputs)}")
    arrays = [np.asarray(x) for x in inputs]
    key = (
        name,
        tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in full.items())),
        tuple((a.dtype.str, a.ndim) for a in arrays),
    )
    if key not in _SESSIONS:
        model = make_model(name, dict(zip(names, arrays)), full, dynamic=True)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        _SESSIONS[key] = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[key], names


def run_function(name: str, inputs: Sequence[np.ndarray], **attrs):
    """Run ``nmn::name`` on ``inputs`` (in schema order) in onnxruntime; every attribute is written explicitly.

    Returns the output array (a tuple if the function has several outputs). Sessions are cached by the name,
    the full attribute set and the inputs' dtypes and ranks (shapes are symbolic), so repeated calls are cheap.
    """
    sess, names = session_for(name, inputs, **attrs)
    outs = sess.run(None, {n: np.asarray(x) for n, x in zip(names, inputs)})
    return outs[0] if len(outs) == 1 else tuple(outs)
