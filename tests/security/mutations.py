"""Mutations of the golden files for fuzzing, and one way to run a file through an entry point.

Byte-level (bit flips, truncations, insertions, duplicated spans) and protobuf-aware (a tensor's dims or data
type, a node's attribute value, a name, the manifest's JSON, a node dropped, an opset version) changes, each
drawn from a ``random.Random`` so that a seed reproduces a mutation. Used by ``tests/security/test_fuzz.py``
(a few mutations, in CI) and ``scripts/fuzz_files.py`` (thousands, with worker processes that catch hangs and
memory blow-ups).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import onnx
from onnx import AttributeProto, TensorProto

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "models" / "golden").glob("*.onnx"))
ENTRY_POINTS = ("check", "torch", "nnx", "linen", "keras", "tf", "mlx")

_DTYPES = [v for v in TensorProto.DataType.values() if v] + [0, 99, -1]


# --------------------------------------------------------------------------------------------- bytes


def _bit_flips(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + data[i:]


def _duplicate(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 256))
    return data[:j] + data[i:j] + data[j:]


# ------------------------------------------------------------------------------------------ protobuf


def _tensors(model: onnx.ModelProto) -> list:
    out = list(model.graph.initializer)
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR:
                out.append(a.t)
    return out


def _value_infos(model: onnx.ModelProto) -> list:
    return list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)


def _nodes(model: onnx.ModelProto, functions: bool = True) -> list:
    nodes = list(model.graph.node)
    if functions:
        for f in model.functions:
            nodes.extend(f.node)
    return nodes


def _dims(model: onnx.ModelProto, rng: random.Random) -> None:
    choices = _tensors(model) + _value_infos(model)
    target = rng.choice(choices)
    values = [0, 1, 2, 3, 7, -1, 2**31, 2**40, 200_000]
    if isinstance(target, TensorProto):
        if not target.dims:
            target.dims.append(rng.choice(values))
        else:
            i = rng.randrange(len(target.dims))
            target.dims[i] = max(rng.choice(values), 0) if rng.random() < 0.5 else target.dims[i] + 1
    else:
        dims = target.type.tensor_type.shape.dim
        if dims:
            d = dims[rng.randrange(len(dims))]
            d.dim_value = max(rng.choice(values), 0)


def _dtype(model: onnx.ModelProto, rng: random.Random) -> None:
    code = rng.choice(_DTYPES)
    if rng.random() < 0.5 and _tensors(model):
        rng.choice(_tensors(model)).data_type = max(code, 0)
    else:
        vi = rng.choice(_value_infos(model))
        vi.type.tensor_type.elem_type = max(code, 0)


def _attribute(model: onnx.ModelProto, rng: random.Random) -> None:
    nodes = [n for n in _nodes(model) if n.attribute]
    if not nodes:
        return
    node = rng.choice(nodes)
    a = rng.choice(list(node.attribute))
    ints = [0, 1, -1, 2, 7, 2**31, -(2**40), 10**6]
    if a.type == AttributeProto.INT:
        a.i = rng.choice(ints)
    elif a.type == AttributeProto.FLOAT:
        a.f = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf"), 1e-30])
    elif a.type == AttributeProto.INTS:
        del a.ints[:]
        a.ints.extend(rng.choice(ints) for _ in range(rng.randint(0, 7)))
    elif a.type == AttributeProto.STRING:
        a.s = rng.choice([b"", b"SAME_UPPER", b"reflect", b"\xff\xfe", b"l1", b"x" * 100])
    elif a.type == AttributeProto.TENSOR:
        _dims(model, rng)
    else:
        a.type = rng.choice([AttributeProto.INT, AttributeProto.STRING])


def _name(model: onnx.ModelProto, rng: random.Random) -> None:
    new = rng.choice(["", "x", "y", "fc.weight", "../etc/passwd", "a" * 300, "\u00e9\u0000"])
    pick = rng.randrange(4)
    if pick == 0 and model.graph.initializer:
        rng.choice(list(model.graph.initializer)).name = new
    elif pick == 1:
        node = rng.choice(_nodes(model))
        if node.input:
            node.input[rng.randrange(len(node.input))] = new
    elif pick == 2:
        node = rng.choice(_nodes(model))
        if rng.random() < 0.5:
            node.name = new
        else:
            node.op_type = rng.choice(["YatDense", "YatConv", "Loop", "Gemm", "Nope", new or "Relu"])
    else:
        rng.choice(_value_infos(model)).name = new


def _json_walk(value, rng: random.Random):
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        if rng.random() < 0.15:
            del value[key]
        else:
            value[key] = _json_walk(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        value[i] = _json_walk(value[i], rng)
        return value
    return rng.choice([None, 0, -1, 200_000, 2**40, 1.5, "", "x", [], {}, True, [[[[1]]]], "NaN"])


def _manifest(model: onnx.ModelProto, rng: random.Random) -> None:
    entries = [e for e in model.metadata_props if e.key == "nmn.manifest"]
    if not entries:
        return
    entry = entries[0]
    if rng.random() < 0.2:
        text = entry.value
        i = rng.randrange(len(text) + 1)
        entry.value = text[:i] + rng.choice(["{", "]", '"', "[" * 5000, "\\u0000", "9" * 400]) + text[i:]
        return
    try:
        data = json.loads(entry.value)
    except (ValueError, RecursionError):  # already broken by an earlier mutation of this round
        return
    entry.value = json.dumps(_json_walk(data, rng))


def _drop_node(model: onnx.ModelProto, rng: random.Random) -> None:
    container = (
        model.graph.node if rng.random() < 0.7 or not model.functions else rng.choice(list(model.functions)).node
    )
    if len(container):
        del container[rng.randrange(len(container))]


def _opset(model: onnx.ModelProto, rng: random.Random) -> None:
    o = rng.choice(list(model.opset_import))
    if rng.random() < 0.3:
        o.domain = rng.choice(["ai.onnx.ml", "com.microsoft", "nmn", ""])
    else:
        o.version = rng.choice([0, 1, 2, 7, 13, 17, 18, 19, 21, 99, -1])


BYTE_MUTATIONS = {"bit flips": _bit_flips, "truncation": _truncate, "insertion": _insert, "duplicated span": _duplicate}
PROTO_MUTATIONS = {
    "dims": _dims,
    "data type": _dtype,
    "attribute value": _attribute,
    "name": _name,
    "manifest": _manifest,
    "dropped node": _drop_node,
    "opset": _opset,
}
MUTATIONS = tuple(BYTE_MUTATIONS) + tuple(PROTO_MUTATIONS)


def mutate(data: bytes, seed: int, kind: str | None = None) -> tuple[str, bytes]:
    """One mutation of ``data`` (a serialised golden model), chosen and driven by ``seed``: ``(kind, bytes)``.

    >>> kind, out = mutate(GOLDEN[0].read_bytes(), 3)
    >>> kind in MUTATIONS and isinstance(out, bytes)
    True
    """
    rng = random.Random(seed)
    kind = kind or rng.choice(MUTATIONS)
    if kind in BYTE_MUTATIONS:
        return kind, BYTE_MUTATIONS[kind](data, rng)
    model = onnx.ModelProto()
    model.ParseFromString(data)
    for _ in range(rng.randint(1, 3)):
        PROTO_MUTATIONS[kind](model, rng)
    return kind, model.SerializeToString()


# ----------------------------------------------------------------------------------------------- run


def run_entry(entry: str, path: str) -> tuple[str, str]:
    """Run ``path`` through ``entry`` (``check`` or a framework's ``load``) in this process.

    Returns ``("ok", "")``, ``("refused", message)`` for nmn's own one-line error, or ``("foreign", text)`` for
    anything else (an exception that is not nmn's, a multi-line refusal, a traceback printed by ``check``).
    """
    if entry == "check":
        from nmn.cli import main

        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(["check", path, "--check-seconds", "60", "--check-memory-bytes", str(2 * 1024**3)])
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return "foreign", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        text = err.getvalue().strip()
        if "Traceback" in text or "\n" in text:
            return "foreign", text
        return ("ok", "") if code == 0 else ("refused", text)
    import nmn.interchange as interchange

    try:
        interchange.load(path, entry)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        own = type(exc).__module__.startswith("nmn.") and isinstance(exc, (ValueError, OSError))
        return ("refused", text) if own and "\n" not in str(exc).strip() else ("foreign", text)
    return "ok", ""
