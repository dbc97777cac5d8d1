"""Open Inference Protocol (KServe v2) tensors <-> numpy, shared by server and client."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Protocol datatype -> numpy dtype.
DATATYPE_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

#: onnxruntime type string -> protocol datatype.
ORT_TO_DATATYPE: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

#: protocol datatype -> Triton config.pbtxt data_type.
DATATYPE_TO_TRITON: dict[str, str] = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}

FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})


class ProtocolError(ValueError):
    """A request that does not follow the protocol or does not fit the model.

    ``status`` is the HTTP status to answer with (400 unless said otherwise).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def datatype_of(array: np.ndarray) -> str:
    """Protocol datatype for a numpy array (``float32`` -> ``"FP32"``)."""
    dt = array.dtype
    if dt.kind in "OUS":
        return "BYTES"
    for name, np_dt in DATATYPE_TO_NUMPY.items():
        if np_dt == dt and name != "BYTES":
            return name
    raise ValueError(f"numpy dtype {dt} has no Open Inference Protocol datatype")


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """numpy array -> protocol tensor dict with flat, row-major ``data``."""
    array = np.asarray(array)
    datatype = datatype_of(array)
    flat = array.reshape(-1)
    if datatype == "BYTES":
        data = [v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v) for v in flat.tolist()]
    else:
        data = flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def decode_output(obj: Any) -> tuple[str, np.ndarray]:
    """Protocol tensor dict (as a response carries it) -> (name, numpy array)."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"output must be an object, got {type(obj).__name__}")
    name = obj.get("name")
    datatype = obj.get("datatype")
    shape = obj.get("shape")
    data = obj.get("data")
    if datatype not in DATATYPE_TO_NUMPY:
        raise ProtocolError(f"output {name!r}: unknown datatype {datatype!r}")
    dtype = DATATYPE_TO_NUMPY[datatype]
    arr = np.array(data, dtype=dtype)
    return name, arr.reshape(shape)


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_header(where: str, datatype: Any, shape: Any, expected_datatype: str, expected_shape: Sequence[int]) -> int:
    """Check a tensor's ``datatype`` and ``shape`` against the model's; return the element count."""
    if not isinstance(datatype, str):
        raise ProtocolError(f"{where}: 'datatype' must be a string, got {datatype!r}")
    if datatype not in DATATYPE_TO_NUMPY:
        raise ProtocolError(f"{where}: unknown datatype {datatype!r}; expected one of {sorted(DATATYPE_TO_NUMPY)}")
    if datatype != expected_datatype:
        raise ProtocolError(f"{where}: wrong datatype {datatype}; the model expects {expected_datatype}")
    if not isinstance(shape, (list, tuple)) or any(
        isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape
    ):
        raise ProtocolError(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if len(shape) != len(expected_shape):
        raise ProtocolError(
            f"{where}: shape {_shape_text(shape)} has rank {len(shape)}; the model expects "
            f"rank {len(expected_shape)} {_shape_text(expected_shape)} (-1 = any size)"
        )
    for axis, (got, want) in enumerate(zip(shape, expected_shape)):
        if want >= 0 and got != want:
            raise ProtocolError(
                f"{where}: shape {_shape_text(shape)} does not fit the model's "
                f"{_shape_text(expected_shape)}: dimension {axis} must be {want}, got {got}"
            )
    return math.prod(shape)


def check_count(where: str, count: int, max_values: int | None) -> None:
    """Refuse a tensor of more than ``max_values`` elements (400 naming the limit)."""
    if max_values is not None and count > max_values:
        raise ProtocolError(
            f"{where}: {count} values is over the limit of {max_values} values per request (nmn serve --max-values)"
        )


def check_finite(where: str, arr: np.ndarray, datatype: str) -> None:
    """Refuse NaN/Inf in a float tensor, naming the first bad element."""
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
        raise ProtocolError(
            f"{where}: element {bad} is NaN or infinite (or too large for {datatype}); non-finite values are refused"
        )


def bytes_elements(where: str, buf: bytes | bytearray | memoryview, count: int) -> np.ndarray:
    """BYTES tensor from the binary form: each element a 4-byte little-endian length + bytes."""
    view = memoryview(buf)
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise ProtocolError(f"{where}: BYTES data ends inside element {i} of {count}")
        n = int.from_bytes(view[pos : pos + 4], "little")
        pos += 4
        if pos + n > len(view):
            raise ProtocolError(f"{where}: BYTES data ends inside element {i} of {count}")
        out[i] = bytes(view[pos : pos + n])
        pos += n
    if pos != len(view):
        raise ProtocolError(f"{where}: BYTES data holds {len(view) - pos} bytes after its {count} elements")
    return out


def serialize_bytes(array: np.ndarray) -> bytes:
    """The binary form of a BYTES tensor (length-prefixed elements, row-major)."""
    parts = []
    for v in array.reshape(-1).tolist():
        b = v if isinstance(v, (bytes, bytearray)) else str(v).encode("utf-8")
        parts.append(len(b).to_bytes(4, "little"))
        parts.append(bytes(b))
    return b"".join(parts)


def array_from_bytes(
    where: str,
    datatype: str,
    shape: Sequence[int],
    buf: bytes | bytearray | memoryview,
    *,
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """A validated array from raw little-endian bytes (binary extension, gRPC raw contents).

    The size must be exactly ``prod(shape) x itemsize``; a short or long buffer
    is a :class:`ProtocolError`, never a reshape. The array shares ``buf``.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return bytes_elements(where, buf, count).reshape(shape)
    dtype = DATATYPE_TO_NUMPY[datatype].newbyteorder("<")
    want = count * dtype.itemsize
    size = memoryview(buf).nbytes
    if size != want:
        raise ProtocolError(
            f"{where}: shape {_shape_text(shape)} of {datatype} needs {want} bytes "
            f"({count} x {dtype.itemsize}) but {size} came"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)
    if datatype in FLOAT_DATATYPES and not allow_nonfinite:
        check_finite(where, arr, datatype)
    return arr


class DataSegment:
    """A JSON ``data`` array left in the request body, cut out of what ``json.loads`` sees.

    ``body[start:end]`` is the text between its ``[`` and ``]`` (flat: no nested
    lists); :func:`split_data` makes these.
    """

    __slots__ = ("body", "start", "end")

    def __init__(self, body: bytes | bytearray, start: int, end: int) -> None:
        self.body, self.start, self.end = body, start, end

    def as_list(self) -> Any:
        return json.loads(self.body[self.start - 1 : self.end + 1])


_SEGMENT_KEY = "\x00nmn-data-segment"  # a key no client writes by accident
_SEGMENT_JSON = b"\\u0000nmn-data-segment"  # the same key as JSON text
_DATA_KEY = re.compile(rb'"data"\s*:\s*\[')
_INT_CHARS = b"0123456789-, \t\n\r"
_FLOAT_CHARS = _INT_CHARS + b".eE+"
# Numbers are parsed 64 KiB of text at a time: small enough that numpy's growing
# buffers stay in the allocator's reusable sizes (1 MiB pieces left the server
# ~20 MiB bigger after a few 40 MB requests; tests/serve/test_serve_limits.py).
_PIECE = 64 * 1024


#: Data arrays with at least this much text are parsed by numpy from the body;
#: smaller ones by ``json.loads``, which is faster per value (numpy's text
#: parser is slower per number but builds no Python float objects).
NUMPY_MIN_BYTES = 256 * 1024


def split_data(body: bytes | bytearray, min_bytes: int | None = None) -> tuple[bytes, list[DataSegment]]:
    """Cut large flat ``"data": [...]`` number arrays out of a JSON body (bytes or bytearray).

    Returns the body with each such array replaced by a placeholder object, and
    the arrays' places in ``body``, so ``json.loads`` never builds Python lists
    of millions of numbers; :func:`decode_input` parses them straight into numpy,
    a piece at a time, from the body itself (no copy of the text). Arrays that
    are nested, small, or hold anything but number characters stay in place.
    The caller checks that every placeholder came back as an input's ``data``
    (otherwise it parses the original body whole).
    """
    if min_bytes is None:
        min_bytes = NUMPY_MIN_BYTES
    spans = []
    pos = 0
    if len(body) < min_bytes:
        return body, []
    while True:
        m = _DATA_KEY.search(body, pos)
        if m is None:
            break
        start = m.end()  # first byte after '['
        end = body.find(b"]", start)
        if end < 0:
            break
        pos = end + 1
        if end - start < min_bytes or body.find(b"[", start, end) >= 0:
            continue
        spans.append((start, end))
    if not spans:
        return body, []
    pieces = []
    segments = []
    last = 0
    for k, (start, end) in enumerate(spans):
        pieces.append(bytes(body[last : start - 1]))
        pieces.append(b'{"%s":%d}' % (_SEGMENT_JSON, k))
        segments.append(DataSegment(body, start, end))
        last = end + 1
    pieces.append(bytes(body[last:]))
    return b"".join(pieces), segments


def segment_index(data: Any) -> int | None:
    """The placeholder number if ``data`` is one :func:`split_data` wrote, else None."""
    if isinstance(data, dict) and len(data) == 1:
        k = data.get(_SEGMENT_KEY)
        if isinstance(k, int):
            return k
    return None


def _fast_numbers(seg: DataSegment, datatype: str) -> np.ndarray | None:
    """Parse a flat number list with numpy (no Python floats); None where the slow path must judge."""
    if datatype in FLOAT_DATATYPES:
        allowed = _FLOAT_CHARS
    elif datatype in DATATYPE_TO_NUMPY and datatype not in ("BOOL", "BYTES", "UINT64"):
        allowed = _INT_CHARS
    else:
        return None
    parse = np.float32 if datatype == "FP32" else np.float64 if allowed is _FLOAT_CHARS else np.int64
    body, start, end = seg.body, seg.start, seg.end
    out = np.empty(body.count(b",", start, end) + 1, dtype=parse)
    filled = 0
    pos = start
    while pos < end:
        stop = end if end - pos <= _PIECE else body.rfind(b",", pos, pos + _PIECE)
        if stop <= pos:
            return None
        piece = bytes(body[pos:stop])
        if piece.translate(None, allowed) or not piece.strip():
            return None  # other characters (NaN, null, strings, ...) or an empty item: the JSON path decides
        n = piece.count(b",") + 1
        if filled + n > out.size:
            return None
        try:
            # No count=: with one numpy pads a short parse with zeros instead of refusing it.
            values = np.fromstring(piece, dtype=parse, sep=",")
        except ValueError:
            return None
        if values.size != n:
            return None
        out[filled : filled + n] = values
        filled += n
        pos = stop + 1 if stop < end else end
    if filled != out.size:
        return None
    if parse is np.int64 and out.size and (out.max() == np.iinfo(np.int64).max or out.min() == np.iinfo(np.int64).min):
        return None  # numpy saturates on overflow; let the exact path say so
    return out


def decode_input(
    obj: Any,
    *,
    model: str,
    expected_datatype: str,
    expected_shape: Sequence[int],
    allow_nonfinite: bool = False,
    segments: Sequence[DataSegment] = (),
    max_values: int | None = None,
) -> np.ndarray:
    """Validate one JSON request input against the model's declaration; return the array.

    ``expected_shape`` uses -1 for a symbolic dimension. Every failure raises
    :class:`ProtocolError` with a message naming the model and the input.
    ``segments`` are the data arrays :func:`split_data` cut out of the body.

    Example:

        >>> decode_input({"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2.5]},
        ...              model="m", expected_datatype="FP32", expected_shape=[-1, 2])
        array([[1. , 2.5]], dtype=float32)
    """
    name = obj["name"]
    where = f"model {model!r}, input {name!r}"
    datatype = obj.get("datatype")
    shape = obj.get("shape")
    count = check_header(where, datatype, shape, expected_datatype, expected_shape)
    check_count(where, count, max_values)
    params = obj.get("parameters")
    if isinstance(params, dict) and "binary_data_size" in params:
        raise ProtocolError(f"{where}: 'binary_data_size' given but the request carries no binary data")
    if "data" not in obj:
        raise ProtocolError(f"{where}: 'data' is missing")
    data = obj["data"]
    k = segment_index(data)
    if k is not None and 0 <= k < len(segments):
        fast = _fast_numbers(segments[k], datatype)
        if fast is not None:
            if fast.size != count:
                raise ProtocolError(
                    f"{where}: shape {_shape_text(shape)} needs {count} elements but 'data' holds {fast.size}"
                )
            return _finish(where, fast, datatype, allow_nonfinite, count).reshape(shape)
        try:
            data = segments[k].as_list()
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"model {model!r}: request body is not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: 'data' must be a (flat or nested) list, got {type(data).__name__}")

    try:
        raw = np.array(data)
    except (ValueError, OverflowError, TypeError) as exc:
        raise ProtocolError(f"{where}: 'data' is not a regular array of numbers ({exc})") from None
    if raw.size != count:
        raise ProtocolError(f"{where}: shape {_shape_text(shape)} needs {count} elements but 'data' holds {raw.size}")
    return _finish(where, raw, datatype, allow_nonfinite, count).reshape(shape)


def _finish(where: str, raw: np.ndarray, datatype: str, allow_nonfinite: bool, count: int) -> np.ndarray:
    target = DATATYPE_TO_NUMPY[datatype]
    kind = raw.dtype.kind
    if count == 0:
        kind = None  # an empty list carries no type information
    if datatype in FLOAT_DATATYPES:
        if kind not in (None, "f", "i", "u"):
            raise ProtocolError(f"{where}: {datatype} input must hold numbers, got {_kind_text(kind)}")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = raw.astype(target, copy=False)
        if not allow_nonfinite:
            check_finite(where, arr, datatype)
    elif datatype == "BOOL":
        if kind not in (None, "b"):
            raise ProtocolError(f"{where}: BOOL input must hold true/false, got {_kind_text(kind)}")
        arr = raw.astype(target)
    elif datatype == "BYTES":
        if kind not in (None, "U"):
            raise ProtocolError(f"{where}: BYTES input must hold strings, got {_kind_text(kind)}")
        arr = raw.astype(object)
    else:  # integers
        if kind not in (None, "i", "u"):
            raise ProtocolError(f"{where}: {datatype} input must hold integers, got {_kind_text(kind)}")
        if count:
            info = np.iinfo(target)
            lo, hi = int(raw.min()), int(raw.max())
            if lo < info.min or hi > info.max:
                raise ProtocolError(f"{where}: values from {lo} to {hi} do not fit {datatype} [{info.min}, {info.max}]")
        arr = raw.astype(target, copy=False)
    return arr


def json_data_text(array: np.ndarray, chunk: int = 65536) -> bytes:
    """The JSON text of a tensor's flat ``data`` list, built chunk by chunk.

    Gives the same text as ``json.dumps(array.reshape(-1).tolist())`` without a
    Python list of every value at once.
    """
    flat = array.reshape(-1)
    if flat.size <= chunk:
        return json.dumps(_json_values(flat), allow_nan=True, separators=(",", ":")).encode()
    parts = [
        json.dumps(_json_values(flat[i : i + chunk]), allow_nan=True, separators=(",", ":")).encode()[1:-1]
        for i in range(0, flat.size, chunk)
    ]
    return b"[" + b",".join(parts) + b"]"


def _json_values(flat: np.ndarray) -> list:
    if flat.dtype.kind in "OSU":
        return [v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v) for v in flat.tolist()]
    return flat.tolist()


def _kind_text(kind: str | None) -> str:
    return {
        "f": "floating-point numbers",
        "i": "integers",
        "u": "integers",
        "b": "booleans",
        "U": "strings",
        "O": "mixed or non-numeric values (null, objects, huge integers)",
    }.get(kind or "", f"values of numpy kind {kind!r}")
