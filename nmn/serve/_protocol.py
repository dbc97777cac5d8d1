"""Open Inference Protocol (KServe v2) tensors <-> numpy, shared by server and client."""

from __future__ import annotations

import math
from typing import Any, Sequence

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
        data = [
            v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)
            for v in flat.tolist()
        ]
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


def decode_input(
    obj: Any,
    *,
    model: str,
    expected_datatype: str,
    expected_shape: Sequence[int],
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Validate one request input against the model's declaration; return the array.

    ``expected_shape`` uses -1 for a symbolic dimension. Every failure raises
    :class:`ProtocolError` with a message naming the model and the input.
    """
    name = obj["name"]
    where = f"model {model!r}, input {name!r}"
    datatype = obj.get("datatype")
    if not isinstance(datatype, str):
        raise ProtocolError(f"{where}: 'datatype' must be a string, got {datatype!r}")
    if datatype not in DATATYPE_TO_NUMPY:
        raise ProtocolError(
            f"{where}: unknown datatype {datatype!r}; expected one of {sorted(DATATYPE_TO_NUMPY)}"
        )
    if datatype != expected_datatype:
        raise ProtocolError(
            f"{where}: wrong datatype {datatype}; the model expects {expected_datatype}"
        )
    shape = obj.get("shape")
    if (
        not isinstance(shape, list)
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape)
    ):
        raise ProtocolError(
            f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}"
        )
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
    count = math.prod(shape)
    params = obj.get("parameters")
    if isinstance(params, dict) and "binary_data_size" in params:
        raise ProtocolError(f"{where}: the binary tensor data extension is not supported; send JSON 'data'")
    if "data" not in obj:
        raise ProtocolError(f"{where}: 'data' is missing")
    data = obj["data"]
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: 'data' must be a (flat or nested) list, got {type(data).__name__}")

    try:
        raw = np.array(data)
    except (ValueError, OverflowError, TypeError) as exc:
        raise ProtocolError(
            f"{where}: 'data' is not a regular array of numbers ({exc})"
        ) from None
    if raw.size != count:
        raise ProtocolError(
            f"{where}: shape {_shape_text(shape)} needs {count} elements but 'data' holds {raw.size}"
        )
    target = DATATYPE_TO_NUMPY[datatype]
    kind = raw.dtype.kind
    if count == 0:
        kind = None  # an empty list carries no type information
    if datatype in FLOAT_DATATYPES:
        if kind not in (None, "f", "i", "u"):
            raise ProtocolError(f"{where}: {datatype} input must hold numbers, got {_kind_text(kind)}")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = raw.astype(target)
        if not allow_nonfinite and arr.size and not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
            raise ProtocolError(
                f"{where}: element {bad} is NaN or infinite (or too large for {datatype}); "
                "non-finite values are refused"
            )
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
                raise ProtocolError(
                    f"{where}: values from {lo} to {hi} do not fit {datatype} "
                    f"[{info.min}, {info.max}]"
                )
        arr = raw.astype(target)
    return arr.reshape(shape)


def _kind_text(kind: str | None) -> str:
    return {
        "f": "floating-point numbers",
        "i": "integers",
        "u": "integers",
        "b": "booleans",
        "U": "strings",
        "O": "mixed or non-numeric values (null, objects, huge integers)",
    }.get(kind or "", f"values of numpy kind {kind!r}")
