"""nmn's own model validator and the one safe way to open an ONNX file.

``onnx.checker`` alone is not enough (onnx-notes.md section 4): it accepts a model whose ``nmn`` function is
missing and unknown attributes on a call. :func:`validate_model` checks, besides the full onnx check, that
every ``nmn`` node has its function attached, writes exactly the attributes of its schema, has the schema's
inputs, that the ``nmn`` domain version is known, and that no other custom domain appears.

>>> import onnx
>>> from onnx import helper, TensorProto
>>> g = helper.make_graph([helper.make_node("YatDense", list("XWBAE"), ["Y"], domain="nmn")], "g",
...     [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "XWBAE"],
...     [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
>>> m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("nmn", 1)])
>>> validate_model(m)
Traceback (most recent call last):
...
nmn.interchange.validate.ModelValidationError: model is not a valid nmn ONNX file:
  - node 'YatDense' (nmn::YatDense): its function is not attached to the model
  - node 'YatDense' (nmn::YatDense): missing attributes ['spherical', 'weight_normalized'] (every attribute must be written)
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from nmn.core.schemas import DOMAIN, DOMAIN_VERSION, FUNCTIONS

ALLOWED_DOMAINS = {"", "ai.onnx", DOMAIN}
DEFAULT_MAX_BYTES = 2 * 1024**3


class ModelValidationError(ValueError):
    """The model breaks one or more nmn rules; the message lists every problem."""


def validate_model(model: onnx.ModelProto, *, full_check: bool = True, source: str = "model") -> None:
    """Raise :class:`ModelValidationError` listing every problem of ``model`` (nothing if it is valid)."""
    problems: list[str] = []
    imports = {o.domain: o.version for o in model.opset_import}
    for domain in imports:
        if domain not in ALLOWED_DOMAINS:
            problems.append(f"custom domain {domain!r} is not allowed (only '' and {DOMAIN!r})")
    if DOMAIN in imports and imports[DOMAIN] != DOMAIN_VERSION:
        problems.append(f"domain {DOMAIN!r} version {imports[DOMAIN]} is unknown (this nmn knows {DOMAIN_VERSION})")
    functions = {(f.domain, f.name): f for f in model.functions}
    for f in model.functions:
        if f.domain != DOMAIN:
            problems.append(f"function {f.domain}::{f.name} is outside the {DOMAIN!r} domain")
    for node in model.graph.node:
        label = f"node {node.name or node.op_type!r} ({node.domain or 'ai.onnx'}::{node.op_type})"
        if node.domain not in ALLOWED_DOMAINS:
            problems.append(f"{label}: custom domain {node.domain!r} is not allowed")
            continue
        if node.domain != DOMAIN:
            continue
        schema = FUNCTIONS.get(node.op_type)
        if schema is None:
            problems.append(f"{label}: {node.op_type!r} is not a function of {DOMAIN} v{DOMAIN_VERSION}")
            continue
        if (DOMAIN, node.op_type) not in functions:
            problems.append(f"{label}: its function is not attached to the model")
        if len(node.input) != len(schema.inputs) or any(not i for i in node.input):
            problems.append(f"{label}: expected the {len(schema.inputs)} inputs {list(schema.inputs)}, "
                            f"got {list(node.input)}")
        given = {a.name for a in node.attribute}
        unknown = sorted(given - set(schema.attributes))
        missing = sorted(set(schema.attributes) - given)
        if unknown:
            problems.append(f"{label}: unknown attributes {unknown} (known: {sorted(schema.attributes)})")
        if missing:
            problems.append(f"{label}: missing attributes {missing} (every attribute must be written)")
    if not problems and full_check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
            problems.append(f"onnx checker: {err}")
    if problems:
        raise ModelValidationError(f"{source} is not a valid nmn ONNX file:\n  - " + "\n  - ".join(problems))


def load_model_safely(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                      validate: bool = True) -> onnx.ModelProto:
    """Open an untrusted ONNX file: bounded size, external data confined to the model's folder, validated.

    External data must be a plain file inside the model's folder: absolute paths, ``..``, symbolic links and
    hard links are refused (onnxruntime alone still followed a hard link in a probe, onnx-notes.md 10).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {str(path)!r} does not exist or is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ModelValidationError(f"{path}: {size} bytes is over the limit of {max_bytes} bytes")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises several unrelated types for garbage input
        raise ModelValidationError(f"{path}: not an ONNX model ({type(err).__name__}: {err})") from None
    folder = path.resolve().parent
    total = size
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location)
        if os.path.isabs(location) or ".." in Path(location).parts or not location:
            raise ModelValidationError(f"{path}: external data {location!r} of {tensor.name!r} leaves the folder")
        if target.is_symlink() or not target.is_file():
            raise ModelValidationError(f"{path}: external data {location!r} of {tensor.name!r} is not a plain file")
        if target.resolve().parent != folder and folder not in target.resolve().parents:
            raise ModelValidationError(f"{path}: external data {location!r} resolves outside the model's folder")
        if target.stat().st_nlink > 1:
            raise ModelValidationError(f"{path}: external data {location!r} is a hard link; refused")
        total += target.stat().st_size
        if total > max_bytes:
            raise ModelValidationError(f"{path}: model plus external data is over {max_bytes} bytes")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model)):
        onnx.load_external_data_for_model(model, str(folder))
    if validate:
        validate_model(model, source=str(path))
    return model


def _tensors(model: onnx.ModelProto):
    yield from model.graph.initializer
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
