"""The framework-neutral half of the loaders' ONNX op tables (``_jax_ops``, ``_mlx_ops``, ``_torch_ops``).

Attribute parsing (``pads`` as pairs, ``axes`` from an input or an attribute, ``Reshape``'s zeros, ``Flatten``'s
2-D shape, the ``Pad`` constant) is written here once; the transposed conv as a stride-1 conv comes from
:func:`nmn.core.conv.transpose_as_conv_pads`, which the layers share. Each framework's
table passes its own primitives. Only numpy and the standard library are imported; the helpers that take
arrays (:func:`gemm`, :func:`reduce_op`) use nothing but ``@``, ``.T``, ``*`` and ``+`` or the function passed.

>>> pad_pairs({"pads": [1, 0, 2, 3]}, 2)
[(1, 2), (0, 3)]
>>> reshape_dims((2, 3, 4), [0, -1])
[2, -1]
>>> flatten_shape((2, 3, 4), 1)
(2, -1)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def pairs(flat, rank: int) -> list[tuple[int, int]]:
    """ONNX's ``[x1_lo, x2_lo, ..., x1_hi, x2_hi, ...]`` as ``[(x1_lo, x1_hi), ...]``."""
    return [(int(flat[i]), int(flat[i + rank])) for i in range(rank)]


def pad_pairs(attrs: dict, rank: int) -> list[tuple[int, int]]:
    """The ``pads`` attribute of a Conv/ConvTranspose/pool node as ``rank`` ``(lo, hi)`` pairs (default zeros)."""
    return pairs(attrs.get("pads") or [0] * (2 * rank), rank)


def check_auto_pad(attrs: dict, op: str, loader: str) -> None:
    """``ValueError`` for a node that still asks for ``auto_pad`` (exporters write explicit pads)."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise ValueError(f"{op} with auto_pad={attrs['auto_pad']!r} is not supported by the {loader} loader")


def check_plain_pool(attrs: dict, loader: str) -> None:
    """``ValueError`` for a pool with ``ceil_mode`` or dilations (not supported by the loaders)."""
    if attrs.get("ceil_mode", 0) or any(d != 1 for d in (attrs.get("dilations") or [1])):
        raise ValueError(f"pooling with ceil_mode or dilations is not supported by the {loader} loader")


def ints(value) -> list[int]:
    """A constant (numpy or a framework array numpy can read) as a flat list of Python ints."""
    return [int(i) for i in np.asarray(value).reshape(-1).tolist()]


def axes(args, attrs: dict, to_ints: Callable[[Any], list[int]] = ints):
    """``axes`` of a Reduce*/Squeeze/Unsqueeze node: the second input (opset >= 13/18) or the attribute, or None."""
    if len(args) > 1 and args[1] is not None:
        return to_ints(args[1])
    return attrs.get("axes")


def reduce_op(fn: Callable, axes_of: Callable = axes) -> Callable:
    """The table entry of a Reduce* node from ``fn(x, axis=..., keepdims=...)`` (``noop_with_empty_axes`` honoured)."""
    def run(args, attrs):
        ax = axes_of(args, attrs)
        if ax is None and attrs.get("noop_with_empty_axes", 0):
            return args[0]
        return fn(args[0], axis=ax, keepdims=bool(attrs.get("keepdims", 1)))
    return run


def reshape_dims(in_shape, shape) -> list[int]:
    """ONNX ``Reshape`` target with every 0 replaced by the input's size on that axis (``allowzero=0``)."""
    return [in_shape[i] if d == 0 else d for i, d in enumerate(shape)]


def flatten_shape(in_shape, axis: int = 1) -> tuple[int, int]:
    """ONNX ``Flatten``'s 2-D target: the axes before ``axis`` become one, the rest the other (``-1``)."""
    return int(np.prod(in_shape[:axis])), -1


def pad_value(args) -> float:
    """The constant of a ``Pad`` node (third input; 0 when absent)."""
    return float(np.asarray(args[2]).reshape(-1)[0]) if len(args) > 2 and args[2] is not None else 0.0


def gemm(args, attrs: dict):
    """ONNX ``Gemm`` on 2-D arrays of any framework: ``alpha * A' @ B' + beta * C`` (multiplying only by an
    alpha or beta that is not 1)."""
    x, w = args[0], args[1]
    x = x.T if attrs.get("transA", 0) else x
    w = w.T if attrs.get("transB", 0) else w
    y = x @ w
    if attrs.get("alpha", 1.0) != 1.0:
        y = y * attrs["alpha"]
    if len(args) > 2 and args[2] is not None:
        y = y + (args[2] * attrs.get("beta", 1.0) if attrs.get("beta", 1.0) != 1.0 else args[2])
    return y


SQUASHER_OPS = ("Softermax", "SofterSigmoid", "SoftTanh")


def squash(functions, op: str, config: dict, x):
    """Run an ``nmn`` squasher node (one of :data:`SQUASHER_OPS`) with ``functions`` (a framework's nmn package,
    which has ``softermax``, ``softer_sigmoid``, ``soft_tanh``) and the layer's spec ``config``."""
    if op == "Softermax":
        return functions.softermax(x, n=config["n"], epsilon=config["epsilon"], axis=config["axis"])
    return (functions.softer_sigmoid if op == "SofterSigmoid" else functions.soft_tanh)(x, n=config["n"])


# The ops whose every framework's implementation is the Python operator (or passes its input through).
OPERATOR_OPS = {
    "MatMul": lambda x, a: x[0] @ x[1],
    "Add": lambda x, a: x[0] + x[1],
    "Sub": lambda x, a: x[0] - x[1],
    "Mul": lambda x, a: x[0] * x[1],
    "Div": lambda x, a: x[0] / x[1],
    "Pow": lambda x, a: x[0] ** x[1],
    "Identity": lambda x, a: x[0],
    "Dropout": lambda x, a: x[0],
}
