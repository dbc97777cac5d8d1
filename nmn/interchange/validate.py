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
from nmn.interchange.safe_load import DEFAULT_MAX_BYTES

ALLOWED_DOMAINS = {"", "ai.onnx", DOMAIN}


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
    """Open an untrusted nmn ONNX file: :func:`nmn.interchange.safe_load.load_model_safely` (bounded size,
    external data confined to the model's folder, domains and functions checked, full onnx check), then
    nmn's own :func:`validate_model`.
    """
    from nmn.interchange import safe_load

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX file {str(path)!r} does not exist or is not a file")
    model = safe_load.load_model_safely(path, max_bytes=max_bytes)
    if validate:
        validate_model(model, source=str(path), full_check=False)   # safe_load already ran the full check
    return model
