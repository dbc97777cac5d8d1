"""nmn's own model validator and the one safe way to open an ONNX file.

``onnx.checker`` alone is not enough (docs/design.md §N4): it accepts a model whose ``nmn`` function is
missing, a tampered function body and unknown attributes on a call. :func:`validate_model` checks, besides the
full onnx check, that

* the static bounds of :class:`~nmn.interchange.safe_load.Limits` hold (nodes after inlining, call depth and
  fan-out, tensor bytes), before the checker or a loader inlines anything;
* the graph has outputs and its inputs are numeric tensors;
* every ``nmn`` node, in the graph or in any subgraph, has its function attached, the schema's inputs, and
  exactly the schema's attributes with values of the right type and range; the ``nmn`` domain version is known;
* every function in ``model.functions`` is the canonical body ``onnx_ops`` defines for ``nmn`` v1 (or, for
  the performer functions, the earlier body that files written before their ``degree``/``bias`` attributes carry);
* nodes use only the standard domain or ``nmn`` (an opset import of another standard domain, such as the
  ``ai.onnx.ml`` that tf2onnx writes, is fine when no node uses it); no custom domain is imported;
* the layer manifest parses within its bounds, matches its schema and agrees with the graph
  (:mod:`nmn.interchange.manifest`).

Every problem is listed, on one line.

>>> import onnx
>>> from onnx import helper, TensorProto
>>> g = helper.make_graph([helper.make_node("YatDense", list("XWBAE"), ["Y"], domain="nmn")], "g",
...     [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "XWBAE"],
...     [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
>>> m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("nmn", 1)])
>>> validate_model(m)
Traceback (most recent call last):
...
nmn.interchange.validate.ModelValidationError: model is not a valid nmn ONNX file: node 'YatDense' (nmn::YatDense): its function is not attached to the model; node 'YatDense' (nmn::YatDense): missing attributes ['spherical', 'weight_normalized'] (every attribute must be written)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import onnx
from onnx import AttributeProto, TensorProto

from nmn.core.schemas import DOMAIN, DOMAIN_VERSION, FUNCTIONS, LATER_ATTRIBUTES
from nmn.interchange.manifest import ManifestError, read_manifest
from nmn.interchange.safe_load import DEFAULT_MAX_BYTES, Limits, check_limits, default_limits

#: domains a node may use
ALLOWED_DOMAINS = {"", "ai.onnx", DOMAIN}
#: standard domains a file may import (tf2onnx writes ``ai.onnx.ml``) as long as no node uses them
STANDARD_IMPORTS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}

_ATTR_TYPES = {
    "int": AttributeProto.INT,
    "float": AttributeProto.FLOAT,
    "string": AttributeProto.STRING,
    "ints": AttributeProto.INTS,
}
#: allowed values of attributes, by name (checked on every nmn node)
_FLAGS = ("spherical", "weight_normalized", "causal", "interleaved")
_STRING_CHOICES = {
    "auto_pad": ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"),
    "pad_mode": ("constant", "reflect", "edge", "wrap"),
    "normalization": ("softmax", "l1", "softermax"),
}
_MAX_ATTR_INT = 2**31 - 1


class ModelValidationError(ValueError):
    """The model breaks one or more nmn rules; the message lists every problem on one line."""


# --------------------------------------------------------------------------------------- canonical bodies

_CANONICAL: dict[str, bytes] = {}


def _normalised(fn: onnx.FunctionProto) -> bytes:
    """A function proto's bytes without its documentation (the only part that may differ harmlessly).

    An earlier canonical body that files still carry (:func:`legacy_functions`: bodies from before a later
    attribute, whose default computes what that body computes) normalises to the current canonical bytes, so every check that compares bodies (here and in ``safe_load``) accepts it.
    """
    raw = _raw_bytes(fn)
    if fn.domain == DOMAIN and raw in legacy_functions(fn.name):
        return canonical_function(fn.name)
    return raw


def _raw_bytes(fn: onnx.FunctionProto) -> bytes:
    copy = onnx.FunctionProto()
    copy.CopyFrom(fn)
    copy.ClearField("doc_string")
    for node in copy.node:
        node.ClearField("doc_string")
    return copy.SerializeToString(deterministic=True)


def canonical_function(name: str) -> bytes | None:
    """The normalised bytes of ``onnx_ops``'s body of ``nmn::name`` (``None`` if nmn v1 has no such function).

    >>> canonical_function("YatDense") is not None, canonical_function("Square")
    (True, None)
    """
    if name not in _CANONICAL:
        import onnx_ops

        if name not in onnx_ops.REGISTRY:
            return None
        _CANONICAL[name] = _raw_bytes(onnx_ops.function_protos([name])[-1])
    return _CANONICAL[name]


_LEGACY_ALL: dict[str, tuple[bytes, ...]] = {}


def legacy_functions(name: str) -> tuple[bytes, ...]:
    """The normalised bytes of every earlier canonical body of ``nmn::name`` that files still carry (the
    performer functions before their ``degree``/``bias`` attributes, ``YatLinearAttention`` before its
    ``epsilon`` and ``YatPerformerMultiHeadAttention`` calling it without ``epsilon``); ``()`` if none.

    >>> len(legacy_functions("YatPerformerMultiHeadAttention")), legacy_functions("YatDense")
    (2, ())
    """
    if not _LEGACY_ALL:
        from onnx_ops.attention import legacy_function_versions

        _LEGACY_ALL.update(
            {n: tuple(_raw_bytes(f) for f in protos) for n, protos in legacy_function_versions().items()}
        )
    return _LEGACY_ALL.get(name, ())


def _check_functions(model: onnx.ModelProto, problems: list[str], local_functions: bool = False) -> None:
    seen = set()
    for f in model.functions:
        label = f"function {f.domain}::{f.name}"
        if f.domain != DOMAIN:
            problems.append(f"{label} is outside the {DOMAIN!r} domain")
            continue
        if (f.name, f.overload) in seen:
            problems.append(f"{label} is carried twice")
            continue
        seen.add((f.name, f.overload))
        canonical = canonical_function(f.name)
        if canonical is None:
            if not local_functions:
                problems.append(f"{label} is not a function of {DOMAIN} v{DOMAIN_VERSION}")
        elif _normalised(f) != canonical:
            problems.append(
                f"{label} is not the canonical body of {DOMAIN} v{DOMAIN_VERSION} (tampered or from "
                "another nmn version; re-export the model)"
            )


# ------------------------------------------------------------------------------------------ nmn nodes


def _walk(graph: onnx.GraphProto, where: str = ""):
    for node in graph.node:
        yield node, where
        for attr in node.attribute:
            subs = (
                [attr.g]
                if attr.type == AttributeProto.GRAPH
                else list(attr.graphs)
                if attr.type == AttributeProto.GRAPHS
                else []
            )
            for g in subs:
                yield from _walk(g, f"{where}subgraph {attr.name!r} of node {node.name or node.op_type!r}: ")


def _check_attribute(label: str, attr: onnx.AttributeProto, kind: str, problems: list[str]) -> None:
    want = _ATTR_TYPES.get(kind)
    if want is not None and attr.type != want:
        problems.append(
            f"{label}: attribute {attr.name!r} must be of type {kind}, got "
            f"{AttributeProto.AttributeType.Name(attr.type) if attr.type in AttributeProto.AttributeType.values() else attr.type}"
        )
        return
    name = attr.name
    if name in _FLAGS and attr.i not in (0, 1):
        problems.append(f"{label}: attribute {name!r} must be 0 or 1, got {attr.i}")
    elif name in ("group", "num_heads") and not 1 <= attr.i <= _MAX_ATTR_INT:
        problems.append(f"{label}: attribute {name!r} must be an integer >= 1, got {attr.i}")
    elif name in ("strides", "dilations") and (
        len(attr.ints) > 3 or any(not 1 <= v <= _MAX_ATTR_INT for v in attr.ints)
    ):
        problems.append(f"{label}: attribute {name!r} must be at most 3 integers >= 1, got {list(attr.ints)}")
    elif name in ("pads", "output_padding") and (
        len(attr.ints) > 6 or any(not 0 <= v <= _MAX_ATTR_INT for v in attr.ints)
    ):
        problems.append(f"{label}: attribute {name!r} must be at most 6 integers >= 0, got {list(attr.ints)}")
    elif name in _STRING_CHOICES:
        try:
            value = attr.s.decode()
        except UnicodeDecodeError:
            value = repr(attr.s)
        if value not in _STRING_CHOICES[name]:
            problems.append(f"{label}: attribute {name!r} must be one of {list(_STRING_CHOICES[name])}, got {value!r}")
    elif kind == "float" and not math.isfinite(attr.f):
        problems.append(f"{label}: attribute {name!r} must be finite, got {attr.f}")
    elif name == "degree" and not 1 <= attr.i <= 64:
        problems.append(f"{label}: attribute 'degree' must be an integer in 1..64, got {attr.i}")
    elif name == "bias" and not attr.f >= 0:
        problems.append(f"{label}: attribute 'bias' must be >= 0, got {attr.f}")
    elif name in ("power", "n", "epsilon") and not attr.f > 0:
        problems.append(f"{label}: attribute {name!r} must be > 0, got {attr.f}")


def _check_node(
    node: onnx.NodeProto, where: str, functions: set[str], problems: list[str], local_functions: bool = False
) -> None:
    label = f"{where}node {node.name or node.op_type!r} ({node.domain or 'ai.onnx'}::{node.op_type})"
    if node.domain not in ALLOWED_DOMAINS:
        kind = "standard domain" if node.domain in STANDARD_IMPORTS else "custom domain"
        problems.append(f"{label}: {kind} {node.domain!r} is not allowed (nmn loads only ai.onnx and {DOMAIN} ops)")
        return
    if node.domain != DOMAIN:
        return
    schema = FUNCTIONS.get(node.op_type)
    if schema is None and local_functions and node.op_type in functions and canonical_function(node.op_type) is None:
        return  # a model-local helper function (allowed when serving); its body was counted and checked
    if schema is None:
        problems.append(f"{label}: {node.op_type!r} is not a function of {DOMAIN} v{DOMAIN_VERSION}")
        return
    if node.op_type not in functions:
        problems.append(f"{label}: its function is not attached to the model")
    if len(node.input) != len(schema.inputs) or any(not i for i in node.input):
        problems.append(
            f"{label}: expected the {len(schema.inputs)} inputs {list(schema.inputs)}, got {list(node.input)}"
        )
    if len(node.output) != len(schema.outputs):
        problems.append(
            f"{label}: expected the {len(schema.outputs)} outputs {list(schema.outputs)}, got {list(node.output)}"
        )
    given = [a.name for a in node.attribute]
    if len(set(given)) != len(given):
        problems.append(f"{label}: an attribute is given twice ({sorted(given)})")
    unknown = sorted(set(given) - set(schema.attributes))
    missing = sorted(set(schema.attributes) - set(given) - set(LATER_ATTRIBUTES.get(node.op_type, ())))
    if unknown:
        problems.append(f"{label}: unknown attributes {unknown} (known: {sorted(schema.attributes)})")
    if missing:
        problems.append(f"{label}: missing attributes {missing} (every attribute must be written)")
    for attr in node.attribute:
        if attr.name in schema.attributes:
            _check_attribute(label, attr, schema.attributes[attr.name][0], problems)


def _check_io(model: onnx.ModelProto, problems: list[str]) -> None:
    graph = model.graph
    if not graph.output:
        problems.append("the graph has no outputs")
    inits = {t.name for t in graph.initializer}
    for vi in graph.input:
        if vi.name in inits:
            continue
        if not vi.type.HasField("tensor_type"):
            problems.append(f"graph input {vi.name!r} is not a tensor (nmn loads tensor inputs only)")
            continue
        elem = vi.type.tensor_type.elem_type
        if elem in (TensorProto.STRING, TensorProto.UNDEFINED) or elem not in TensorProto.DataType.values():
            name = TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else str(elem)
            problems.append(f"graph input {vi.name!r} has element type {name}; nmn loads numeric tensors only")


# ------------------------------------------------------------------------------------------------ entry


def validate_model(
    model: onnx.ModelProto,
    *,
    full_check: bool = True,
    source: str = "model",
    limits: Limits | None = None,
    local_functions: bool = False,
) -> None:
    """Raise :class:`ModelValidationError` listing every problem of ``model`` (nothing if it is valid).

    Args:
        model: the model (external data loaded or not).
        full_check: also run ``onnx.checker.check_model(full_check=True)`` when nothing else is wrong.
        source: how the model is named in the message (a path).
        limits: the bounds (:class:`~nmn.interchange.safe_load.Limits`); by default the current defaults.
        local_functions: allow ``nmn`` functions that are not part of nmn v1 (model-local helpers a server
            may run; the loaders, which build native layers from nmn v1, never allow them).

    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], [])
    >>> validate_model(helper.make_model(g), source="relu.onnx")
    Traceback (most recent call last):
    ...
    nmn.interchange.validate.ModelValidationError: relu.onnx is not a valid nmn ONNX file: the graph has no outputs
    """
    limits = limits or default_limits()

    def fail(problems: list[str]) -> ModelValidationError:
        return ModelValidationError(f"{source} is not a valid nmn ONNX file: " + "; ".join(problems))

    # the static bounds first: nothing below may walk or inline a bomb
    check_limits(model, limits, refuse=lambda reason: fail([reason]))
    problems: list[str] = []
    imports: dict[str, int] = {}
    for o in model.opset_import:
        if o.domain in imports:
            problems.append(f"operator domain {o.domain!r} is imported twice")
        imports[o.domain] = o.version
    for domain in imports:
        if domain not in STANDARD_IMPORTS | {DOMAIN}:
            problems.append(f"custom domain {domain!r} is not allowed (only the standard domains and {DOMAIN!r})")
    if DOMAIN in imports and imports[DOMAIN] != DOMAIN_VERSION:
        problems.append(f"domain {DOMAIN!r} version {imports[DOMAIN]} is unknown (this nmn knows {DOMAIN_VERSION})")
    _check_io(model, problems)
    _check_functions(model, problems, local_functions)
    functions = {f.name for f in model.functions if f.domain == DOMAIN}
    for node, where in _walk(model.graph):
        _check_node(node, where, functions, problems, local_functions)
    if not problems:
        try:
            read_manifest(model, limits)
        except ManifestError as err:
            problems.append(str(err))
    if not problems and full_check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as err:  # ValidationError, InferenceError, and whatever else the checker raises
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            problems.append(f"onnx checker: {first}")
    if problems:
        raise fail(problems)


def load_model_safely(
    path: str | os.PathLike, *, max_bytes: int | None = None, validate: bool = True, limits: Limits | None = None
) -> onnx.ModelProto:
    """Open an untrusted nmn ONNX file: :func:`nmn.interchange.safe_load.load_model_safely` (bounded size,
    external data confined to the model's folder, domains, functions and static bounds checked, full onnx
    check), then nmn's own :func:`validate_model`.

    Args:
        path: the ``.onnx`` file.
        max_bytes: bound on model file plus external data (overrides ``limits.max_bytes``).
        validate: run :func:`validate_model` (nmn's rules) after the generic safe load.
        limits: the bounds; by default the current defaults.

    >>> import tempfile, os
    >>> load_model_safely(os.path.join(tempfile.mkdtemp(), "missing.onnx"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: ONNX file '.../missing.onnx' does not exist or is not a file
    """
    from nmn.interchange import safe_load

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX file {str(path)!r} does not exist or is not a file")
    limits = limits or default_limits()
    model = safe_load.load_model_safely(path, max_bytes=max_bytes, limits=limits)
    if validate:
        # safe_load already ran the full check
        validate_model(model, source=f"model file {str(path)!r}", full_check=False, limits=limits)
    return model


# --------------------------------------------------------------------------------- bounded runs


class BudgetError(ValueError):
    """A run on random inputs went past its time or memory budget, or could not run; one line."""


_CHILD = r"""
import resource, sys, traceback
folder, limit = sys.argv[1], int(sys.argv[2])
try:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
except (ValueError, OSError):
    pass
try:
    import numpy as np
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(folder + "/model.onnx", opts, providers=["CPUExecutionProvider"])
    with np.load(folder + "/feeds.npz") as f:
        feeds = {k: f[k] for k in f.files}
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
    np.savez(folder + "/outputs.npz", **{f"o{i}": o for i, o in enumerate(outs)})
except MemoryError:
    sys.stderr.write("NMN-MEMORY\n")
    sys.exit(3)
except Exception as exc:
    text = str(exc).strip() or type(exc).__name__
    if "allocate" in text or "bad_alloc" in text or "std::bad_alloc" in text:
        sys.stderr.write("NMN-MEMORY " + text.splitlines()[0] + "\n")
        sys.exit(3)
    sys.stderr.write("NMN-ERROR " + " ".join(text.split())[:500] + "\n")
    sys.exit(4)
"""


def static_sizes(model: onnx.ModelProto, feeds: dict, limits: Limits | None = None, source: str = "model") -> None:
    """Refuse, before anything runs, a model whose shapes (inferred for these ``feeds``) need a tensor larger
    than ``limits.check_memory_bytes`` (a ConstantOfShape of 6 GB, an Expand of a huge shape ...).

    Shape inference failures are not fatal here (the bounded run still has its budget).
    """
    import numpy as np
    from onnx import helper

    limits = limits or default_limits()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in feeds and vi.type.HasField("tensor_type"):
            shape = vi.type.tensor_type.shape
            shape.ClearField("dim")
            for d in np.shape(feeds[vi.name]):
                shape.dim.add().dim_value = int(d)
    try:
        inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:
        return
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape") or not all(d.HasField("dim_value") for d in tt.shape.dim):
            continue
        try:
            itemsize = helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
        except Exception:
            itemsize = 1
        nbytes = math.prod(max(int(d.dim_value), 0) for d in tt.shape.dim) * itemsize
        if nbytes > limits.check_memory_bytes:
            raise BudgetError(
                f"{source}: value {vi.name!r} would hold {nbytes} bytes; "
                + limits.over("check_memory_bytes", "its size", f"{nbytes} bytes")
            )


def run_bounded(model: onnx.ModelProto, feeds: dict, limits: Limits | None = None, *, source: str = "model") -> list:
    """Run ``model`` in onnxruntime on ``feeds`` in a child process bounded by ``limits.check_seconds`` (wall
    clock) and ``limits.check_memory_bytes`` (address space, ``RLIMIT_AS``); return the outputs.

    Raises :class:`BudgetError` naming the bound that was hit, or onnxruntime's own error as one line.
    """
    import subprocess
    import sys
    import tempfile

    import numpy as np

    limits = limits or default_limits()
    static_sizes(model, feeds, limits, source)
    with tempfile.TemporaryDirectory(prefix="nmn-check-") as folder:
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(model.SerializeToString())
        np.savez(os.path.join(folder, "feeds.npz"), **feeds)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, folder, str(int(limits.check_memory_bytes))],
                capture_output=True,
                text=True,
                timeout=limits.check_seconds,
            )
        except subprocess.TimeoutExpired:
            raise BudgetError(
                f"{source}: the run on random inputs did not end within {limits.check_seconds:g} s "
                f"(the limit check_seconds; raise it with Limits(check_seconds=...) or "
                f"{Limits.option('check_seconds')})"
            ) from None
        err = proc.stderr.strip().splitlines()
        last = next((line for line in reversed(err) if line.startswith("NMN-")), "")
        if proc.returncode == 3 or last.startswith("NMN-MEMORY") or proc.returncode in (-9, -11, 137):
            raise BudgetError(
                f"{source}: the run on random inputs needed more memory than "
                f"check_memory_bytes={limits.check_memory_bytes} (raise it with "
                f"Limits(check_memory_bytes=...) or {Limits.option('check_memory_bytes')})"
            )
        if proc.returncode != 0:
            detail = (
                last[len("NMN-ERROR ") :]
                if last.startswith("NMN-ERROR")
                else (err[-1] if err else f"exit {proc.returncode}")
            )
            raise BudgetError(f"{source}: onnxruntime could not run it: {detail}")
        with np.load(os.path.join(folder, "outputs.npz")) as f:
            return [f[f"o{i}"] for i in range(len(f.files))]


__all__ = [
    "ALLOWED_DOMAINS",
    "BudgetError",
    "DEFAULT_MAX_BYTES",
    "ModelValidationError",
    "STANDARD_IMPORTS",
    "canonical_function",
    "load_model_safely",
    "run_bounded",
    "static_sizes",
    "validate_model",
]
