"""Load an ONNX file that came from somewhere you do not fully trust.

:func:`load_model_safely` refuses a file before any runtime sees it unless

* it is a regular file no larger than ``max_bytes`` (model plus external data),
* it parses as an ONNX ``ModelProto`` (read *without* following external data),
* every external-data reference is a plain relative path that stays inside the
  model's folder: no absolute path, no ``..``, no symbolic link on the way, no
  hard link (``st_nlink > 1``), and ``offset``/``length`` inside the file,
* every operator domain is the standard one, ``ai.onnx.ml`` or ``nmn``, every
  node in the ``nmn`` domain calls a function carried in ``model.functions``
  (so the file runs on plain onnxruntime), and function calls do not recurse,
* the bounds of :class:`Limits` hold (nodes after inlining, function call depth
  and fan-out, tensor bytes, external-data bytes), counted statically, before
  the checker or any runtime inlines or allocates anything,
* ``onnx.checker.check_model(model, full_check=True)`` passes.

This module imports only the standard library and onnx.

Example::

    >>> import onnx, tempfile, os
    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph(
    ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    >>> path = os.path.join(tempfile.mkdtemp(), "relu.onnx")
    >>> onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), path)
    >>> load_model_safely(path).graph.node[0].op_type
    'Relu'
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import onnx
from onnx import AttributeProto, FunctionProto, GraphProto, ModelProto, TensorProto

__all__ = [
    "ALLOWED_DOMAINS",
    "DEFAULT_MAX_BYTES",
    "Limits",
    "UnsafeModelError",
    "check_limits",
    "default_limits",
    "load_model_safely",
    "using_limits",
]

#: Operator domains a served file may use. ``""`` and ``"ai.onnx"`` are the
#: standard operator set; ``"nmn"`` ops must be functions carried in the file.
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "nmn"})
FUNCTION_DOMAIN = "nmn"

#: Default bound on model file plus external data: 4 GiB.
DEFAULT_MAX_BYTES = 4 * 1024**3

# Protobuf cannot serialize a message of 2 GiB or more; stay well below.
_INLINE_LIMIT = 2 * 1024**3 - 64 * 1024**2


class UnsafeModelError(ValueError):
    """The file was refused; the message names the file and the reason."""


@dataclass(frozen=True)
class Limits:
    """The bounds an untrusted file must stay within (docs/security.md has the table).

    Each bound is named in its refusal, with the option that raises it: ``Limits(max_nodes=...)`` in Python,
    ``nmn check --max-nodes ...`` on the command line (every field is an option of ``nmn check``, ``_`` as ``-``).

    Args:
        max_bytes: model file plus external data, in bytes.
        max_nodes: nodes after inlining every function call, subgraphs included (counted without inlining).
        max_call_depth: longest chain of nested function calls.
        max_fanout: function-call nodes in one graph or function body.
        max_tensor_bytes: bytes of all initializers and constant tensors together (inline and external).
        max_external_bytes: bytes read from external data files.
        max_manifest_bytes: size of the nmn layer manifest (JSON in ``metadata_props``).
        max_manifest_depth: nesting depth of the manifest's JSON.
        max_manifest_layers: entries in the manifest's ``layers`` list.
        check_seconds: wall-clock budget of one run on random inputs (``nmn check``).
        check_memory_bytes: address-space budget of that run, and the largest constant-shaped tensor it may build.

    >>> Limits().max_nodes
    100000
    >>> Limits(max_nodes=10).max_nodes
    10
    """

    max_bytes: int = 4 * 1024**3
    max_nodes: int = 100_000
    max_call_depth: int = 16
    max_fanout: int = 10_000
    max_tensor_bytes: int = 4 * 1024**3
    max_external_bytes: int = 4 * 1024**3
    max_manifest_bytes: int = 8 * 1024**2
    max_manifest_depth: int = 32
    max_manifest_layers: int = 100_000
    check_seconds: float = 300.0
    check_memory_bytes: int = 4 * 1024**3

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Limits.{f.name}: expected a positive number, got {value!r}")

    @staticmethod
    def option(name: str) -> str:
        """The ``nmn check`` option that raises bound ``name``.

        >>> Limits.option("max_nodes")
        '--max-nodes'
        """
        return "--" + name.replace("_", "-")

    def over(self, name: str, what: str, value) -> str:
        """A refusal line: ``what`` is ``value``, over bound ``name`` (and how to raise it)."""
        return (
            f"{what} is {value}, over the limit {name}={getattr(self, name)} "
            f"(raise it with Limits({name}=...) or {self.option(name)})"
        )


_DEFAULT_LIMITS = [Limits()]


def default_limits() -> Limits:
    """The limits used when a caller passes none (see :func:`using_limits`)."""
    return _DEFAULT_LIMITS[-1]


@contextlib.contextmanager
def using_limits(limits: Limits):
    """Make ``limits`` the default inside a ``with`` block (for loaders that take no ``limits=``).

    >>> with using_limits(Limits(max_nodes=5)):
    ...     default_limits().max_nodes
    5
    """
    _DEFAULT_LIMITS.append(limits)
    try:
        yield limits
    finally:
        _DEFAULT_LIMITS.remove(limits)


def load_model_safely(
    path: str | os.PathLike,
    max_bytes: int | None = None,
    *,
    load_external_data: bool = True,
    limits: Limits | None = None,
) -> ModelProto:
    """Validate the ONNX file at ``path`` and return its ``ModelProto``.

    Raises :class:`UnsafeModelError` (a ``ValueError``) naming the file and
    what was wrong. With ``load_external_data=True`` (the default) validated
    external tensors are read into the returned proto (from the checked files,
    never following a link), so the result can be handed to
    ``onnxruntime.InferenceSession(model.SerializeToString())``; if model and
    data together are too big for one protobuf (about 2 GiB) the external
    references are left in place and the caller should open the file by path.

    Args:
        path: the ``.onnx`` file.
        max_bytes: bound on model file plus external data (overrides ``limits.max_bytes``).
        load_external_data: read validated external tensors into the returned proto.
        limits: the bounds (:class:`Limits`); by default :func:`default_limits`.

    Example::

        from nmn.interchange.safe_load import load_model_safely
        import onnxruntime as ort
        model = load_model_safely("model.onnx")
        sess = ort.InferenceSession(model.SerializeToString())
    """
    path = os.fspath(path)
    where = f"model file {path!r}"
    limits = limits or default_limits()
    if max_bytes is not None and max_bytes != limits.max_bytes:
        limits = dataclasses.replace(limits, max_bytes=max_bytes)
    max_bytes = limits.max_bytes

    def refuse(reason: str) -> UnsafeModelError:
        return UnsafeModelError(f"{where}: {reason}")

    try:
        st = os.stat(path)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse("is not a regular file")
    if st.st_size > max_bytes:
        raise refuse(
            f"is {st.st_size} bytes, over the limit of {max_bytes} bytes "
            f"(raise it with max_bytes= or {Limits.option('max_bytes')})"
        )

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise refuse(f"is not a valid ONNX model ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, ModelProto) or not model.HasField("graph"):
        raise refuse("is not a valid ONNX model (no graph)")

    _check_domains(model, refuse)
    check_limits(model, limits, refuse)

    model_dir = os.path.dirname(os.path.abspath(path))
    external = _check_external_data(model, model_dir, refuse)
    ext_bytes = sum(length for _, _, _, length in external)
    if ext_bytes > limits.max_external_bytes:
        raise refuse(limits.over("max_external_bytes", "external data", f"{ext_bytes} bytes"))
    total = st.st_size + ext_bytes
    if total > max_bytes:
        raise refuse(
            f"model plus external data is {total} bytes, over the limit of {max_bytes} bytes "
            f"(raise it with max_bytes= or {Limits.option('max_bytes')})"
        )

    inline = bool(external) and total <= _INLINE_LIMIT
    checked = model
    if inline:
        if not load_external_data:
            checked = ModelProto()
            checked.CopyFrom(model)
            external = _check_external_data(checked, model_dir, refuse)
        # Read the validated ranges (never following a link) into the proto.
        for tensor, full, offset, length in external:
            tensor.raw_data = _read_exact(full, offset, length, refuse)
            del tensor.external_data[:]
            tensor.data_location = TensorProto.DEFAULT

    try:
        if external and not inline:
            # Too big for one protobuf: let the checker open the (validated) file.
            onnx.checker.check_model(path, full_check=True)
        else:
            onnx.checker.check_model(checked, full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError, InferenceError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise refuse(f"fails onnx.checker.check_model(full_check=True): {first}") from None
    return model


# --------------------------------------------------------------------------- domains


def _walk_graph_nodes(graph: GraphProto | FunctionProto) -> Iterator[onnx.NodeProto]:
    """Every node of a graph or a function body, and of the subgraphs in their attributes."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _walk_graph_nodes(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _walk_graph_nodes(g)


def _tampered(fn: FunctionProto) -> str | None:
    """Why ``fn`` is not the canonical body of the nmn function of its name (``None`` if it is, or if nmn has
    no function of that name: this generic loader serves model-local helpers too; nmn's validator does not)."""
    from nmn.interchange.validate import _normalised, canonical_function

    canonical = canonical_function(fn.name)
    if canonical is not None and _normalised(fn) != canonical:
        return (
            f"function {fn.domain}.{fn.name} is not the canonical body of nmn v1 (tampered or from another "
            "nmn version; re-export the model)"
        )
    return None


def _check_domains(model: ModelProto, refuse) -> None:
    allowed = ", ".join(repr(d) for d in sorted(ALLOWED_DOMAINS))
    for op in model.opset_import:
        if op.domain not in ALLOWED_DOMAINS:
            raise refuse(f"imports operator domain {op.domain!r}; only {allowed} are allowed")

    functions: dict[tuple[str, str, str], FunctionProto] = {}
    for fn in model.functions:
        key = (fn.domain, fn.name, fn.overload)
        if fn.domain != FUNCTION_DOMAIN:
            raise refuse(
                f"carries function {fn.name!r} in domain {fn.domain!r}; "
                f"only functions in domain {FUNCTION_DOMAIN!r} are allowed"
            )
        if key in functions:
            raise refuse(f"carries function {fn.domain}.{fn.name} twice")
        functions[key] = fn
        tampered = _tampered(fn)
        if tampered:
            raise refuse(tampered)
        for op in fn.opset_import:
            if op.domain not in ALLOWED_DOMAINS:
                raise refuse(
                    f"function {fn.domain}.{fn.name} imports operator domain {op.domain!r}; only {allowed} are allowed"
                )

    def check_node(node: onnx.NodeProto, context: str) -> None:
        if node.domain not in ALLOWED_DOMAINS:
            raise refuse(
                f"{context}node {node.name or node.op_type!r} uses op "
                f"{node.domain}.{node.op_type} from custom domain {node.domain!r}; "
                f"only {allowed} are allowed"
            )
        if (
            node.domain == FUNCTION_DOMAIN
            and (
                node.domain,
                node.op_type,
                node.overload,
            )
            not in functions
        ):
            raise refuse(
                f"{context}node {node.name or node.op_type!r} calls {node.domain}.{node.op_type} "
                f"but the file carries no such function (model.functions has "
                f"{sorted(f'{d}.{n}' for d, n, _ in functions) or 'none'}); "
                "export with the nmn functions included"
            )

    for node in _walk_graph_nodes(model.graph):
        check_node(node, "")
    calls: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}
    for key, fn in functions.items():
        calls[key] = set()
        for node in _walk_graph_nodes(fn):
            check_node(node, f"function {fn.domain}.{fn.name}: ")
            if node.domain == FUNCTION_DOMAIN:
                calls[key].add((node.domain, node.op_type, node.overload))

    # Refuse recursive function calls (the runtime would inline forever).
    state: dict[tuple[str, str, str], int] = {}

    def visit(key: tuple[str, str, str]) -> None:
        state[key] = 1
        for callee in calls.get(key, ()):
            if state.get(callee) == 1:
                raise refuse(f"function {key[0]}.{key[1]} calls itself (directly or indirectly)")
            if callee not in state:
                visit(callee)
        state[key] = 2

    for key in calls:
        if key not in state:
            visit(key)


# ------------------------------------------------------------------------------ limits


def _subgraphs(node: onnx.NodeProto) -> Iterator[GraphProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def check_limits(model: ModelProto, limits: Limits | None = None, refuse=None) -> None:
    """Refuse a model over the static bounds of ``limits``, without inlining or allocating anything.

    Counts the nodes the model has after inlining every local function call (each function's count is
    memoised, so a call tree of 2**32 nodes is counted in microseconds; Python integers do not overflow), the depth of nested calls, the
    function calls in one body, and the bytes of every tensor the file carries. Recursive calls are refused.

    Args:
        model: the parsed model (external data not loaded).
        limits: the bounds; by default :func:`default_limits`.
        refuse: ``reason -> exception`` (default: :class:`UnsafeModelError` of the reason).

    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])] * 3, "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    >>> check_limits(helper.make_model(g), Limits(max_nodes=2))
    Traceback (most recent call last):
    ...
    nmn.interchange.safe_load.UnsafeModelError: nodes after inlining is 3, over the limit max_nodes=2 (raise it with Limits(max_nodes=...) or --max-nodes)
    """
    limits = limits or default_limits()
    refuse = refuse or UnsafeModelError
    functions = {(f.domain, f.name, f.overload): f for f in model.functions}
    memo: dict[tuple[str, str, str], tuple[int, int]] = {}
    active: set[tuple[str, str, str]] = set()

    def body(nodes, label: str) -> tuple[int, int]:
        """(nodes after inlining, call depth) of a list of nodes."""
        count, depth, calls = 0, 0, 0
        for node in nodes:
            key = (node.domain, node.op_type, node.overload)
            if key in functions:
                calls += 1
                if calls > limits.max_fanout:
                    raise refuse(
                        limits.over("max_fanout", f"{label}: function calls in one body", f"over {limits.max_fanout}")
                    )
                n, d = fn_count(key)
                count += n
                depth = max(depth, d + 1)
            else:
                count += 1
            for g in _subgraphs(node):
                n, d = body(g.node, f"{label} > subgraph {g.name or node.op_type!r}")
                count += n
                depth = max(depth, d)
        return count, depth

    def fn_count(key) -> tuple[int, int]:
        if key in memo:
            return memo[key]
        if key in active:
            raise refuse(f"function {key[0]}.{key[1]} calls itself (directly or indirectly)")
        active.add(key)
        n, d = body(functions[key].node, f"function {key[0]}.{key[1]}")
        active.discard(key)
        if d > limits.max_call_depth:
            raise refuse(limits.over("max_call_depth", f"function {key[0]}.{key[1]}: nested call depth", d))
        memo[key] = (n, d)
        return n, d

    total, depth = body(model.graph.node, "graph")
    if depth > limits.max_call_depth:
        raise refuse(limits.over("max_call_depth", "nested function call depth", depth))
    if total > limits.max_nodes:
        raise refuse(limits.over("max_nodes", "nodes after inlining", total))

    # a ConstantOfShape of a constant shape is a tensor the file asks for: it counts like one
    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            for a in node.attribute:
                if a.name == "value" and a.type == AttributeProto.TENSOR:
                    constants[node.output[0]] = a.t
    built = 0
    for node in model.graph.node:
        if (
            node.op_type == "ConstantOfShape"
            and node.domain in ("", "ai.onnx")
            and node.input
            and node.input[0] in constants
        ):
            shape_t = constants[node.input[0]]
            try:
                dims = [int(v) for v in onnx.numpy_helper.to_array(shape_t).reshape(-1)]
            except Exception:
                continue  # the checker refuses a malformed tensor
            itemsize = 4
            for a in node.attribute:
                if a.name == "value" and a.type == AttributeProto.TENSOR:
                    itemsize = (_expected_nbytes(a.t) or 4) // max(1, _count(a.t.dims))
            n = _count([max(d, 0) for d in dims]) * max(itemsize, 1)
            built += n
            if built > limits.max_tensor_bytes:
                raise refuse(
                    limits.over(
                        "max_tensor_bytes",
                        f"ConstantOfShape node {node.name or node.output[0]!r}: a constant of shape {dims}",
                        f"{n} bytes",
                    )
                )

    nbytes = built
    for tensor in _model_tensors(model):
        expected = _expected_nbytes(tensor)
        if expected is None:
            if tensor.data_type == TensorProto.STRING:
                expected = sum(len(s) for s in tensor.string_data)
            else:
                expected = len(tensor.raw_data)
        elif tensor.data_location != TensorProto.EXTERNAL and tensor.HasField("raw_data"):
            if len(tensor.raw_data) != expected:
                raise refuse(
                    f"tensor {tensor.name or '<unnamed>'!r}: dims {list(tensor.dims)} of "
                    f"{_dtype_name(tensor.data_type)} need {expected} bytes "
                    f"but raw_data holds {len(tensor.raw_data)}"
                )
        if any(d < 0 for d in tensor.dims):
            raise refuse(f"tensor {tensor.name or '<unnamed>'!r}: negative dimension in {list(tensor.dims)}")
        nbytes += expected
        if nbytes > limits.max_tensor_bytes:
            raise refuse(
                limits.over(
                    "max_tensor_bytes", "tensors (initializers and constants)", f"over {limits.max_tensor_bytes} bytes"
                )
            )


# ----------------------------------------------------------------------- external data


def _attribute_tensors(attr: AttributeProto) -> Iterator[TensorProto]:
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    if attr.HasField("sparse_tensor"):
        yield attr.sparse_tensor.values
        yield attr.sparse_tensor.indices
    for sp in attr.sparse_tensors:
        yield sp.values
        yield sp.indices
    if attr.HasField("g"):
        yield from _graph_tensors(attr.g)
    for g in attr.graphs:
        yield from _graph_tensors(g)


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in graph.node:
        for attr in node.attribute:
            yield from _attribute_tensors(attr)


def _model_tensors(model: ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for fn in model.functions:
        for node in fn.node:
            for attr in node.attribute:
                yield from _attribute_tensors(attr)


def _count(dims) -> int:
    count = 1
    for d in dims:
        count *= int(d)
    return count


def _dtype_name(code: int) -> str:
    try:
        return TensorProto.DataType.Name(code)
    except ValueError:
        return f"unknown data type {code}"


def _expected_nbytes(tensor: TensorProto) -> int | None:
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:
        return None
    if np_dtype.kind in "OUS" or tensor.data_type in (
        TensorProto.STRING,
        TensorProto.INT4,
        TensorProto.UINT4,
    ):
        return None
    count = 1
    for d in tensor.dims:
        count *= int(d)
    return count * np_dtype.itemsize


def _check_location(location: str, model_dir: str, refuse, tname: str) -> str:
    if not location or "\x00" in location:
        raise refuse(f"tensor {tname!r}: external data location is empty or invalid")
    if (
        os.path.isabs(location)
        or PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
        or location.startswith(("/", "\\"))
    ):
        raise refuse(
            f"tensor {tname!r}: external data location {location!r} is an absolute path; "
            "it must be a relative path inside the model's folder"
        )
    parts = [p for p in location.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise refuse(f"tensor {tname!r}: external data location {location!r} leaves the model's folder")
    current = model_dir
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            raise refuse(
                f"tensor {tname!r}: external data file {location!r} does not exist "
                f"next to the model (looked for {current!r})"
            ) from None
        if stat.S_ISLNK(st.st_mode):
            raise refuse(
                f"tensor {tname!r}: external data location {location!r} goes through a "
                f"symbolic link ({current!r}); links are refused"
            )
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(st.st_mode):
            raise refuse(f"tensor {tname!r}: {current!r} is not a folder")
        if last:
            if not stat.S_ISREG(st.st_mode):
                raise refuse(f"tensor {tname!r}: external data {current!r} is not a regular file")
            if st.st_nlink > 1:
                raise refuse(
                    f"tensor {tname!r}: external data file {current!r} has {st.st_nlink} "
                    "hard links; hard-linked files are refused"
                )
    real_dir = os.path.realpath(model_dir)
    real = os.path.realpath(current)
    if os.path.commonpath([real_dir, real]) != real_dir:
        raise refuse(f"tensor {tname!r}: external data location {location!r} resolves outside the model's folder")
    return current


def _check_external_data(model: ModelProto, model_dir: str, refuse) -> list[tuple[TensorProto, str, int, int]]:
    found: list[tuple[TensorProto, str, int, int]] = []
    for tensor in _model_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            if tensor.external_data:
                raise refuse(f"tensor {tensor.name!r} has external_data entries but is not marked EXTERNAL")
            continue
        tname = tensor.name or "<unnamed>"
        info: dict[str, str] = {}
        for entry in tensor.external_data:
            if entry.key in info:
                raise refuse(f"tensor {tname!r}: external data key {entry.key!r} given twice")
            info[entry.key] = entry.value
        unknown = set(info) - {"location", "offset", "length", "checksum", "basepath"}
        if unknown:
            raise refuse(f"tensor {tname!r}: unknown external data keys {sorted(unknown)}")
        if "basepath" in info and info["basepath"] not in ("", "."):
            raise refuse(f"tensor {tname!r}: external data 'basepath' is not supported")
        full = _check_location(info.get("location", ""), model_dir, refuse, tname)
        try:
            offset = int(info.get("offset", "0"))
            size = os.lstat(full).st_size
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError:
            raise refuse(f"tensor {tname!r}: external data offset/length is not an integer") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise refuse(
                f"tensor {tname!r}: external data range offset={offset} length={length} "
                f"does not fit in {info['location']!r} ({size} bytes)"
            )
        expected = _expected_nbytes(tensor)
        if expected is not None and expected != length:
            raise refuse(
                f"tensor {tname!r}: external data holds {length} bytes but dims "
                f"{list(tensor.dims)} of {_dtype_name(tensor.data_type)} "
                f"need {expected}"
            )
        found.append((tensor, full, offset, length))
    return found


def _read_exact(full: str, offset: int, length: int, refuse) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(full, flags)
    except OSError as exc:
        raise refuse(f"cannot open external data {full!r} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise refuse(f"external data {full!r} changed while loading")
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        remaining = length
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                raise refuse(f"external data {full!r} is shorter than expected")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
