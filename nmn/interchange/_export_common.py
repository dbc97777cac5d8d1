"""What every framework's ``export`` does around its own tracing: eval mode for the trace, the onnxruntime check
against the framework's outputs, the atomic save and the optional inlined copy. Framework-free (no framework is
imported here); each ``<framework>_io`` passes the parts only it knows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

from nmn.interchange.graph import check_against, save_model


def as_list(example_inputs: Any) -> list:
    """One example input or a tuple/list of them, as a list."""
    return list(example_inputs) if isinstance(example_inputs, (tuple, list)) else [example_inputs]


def outputs_list(out: Any) -> list:
    """A model's output (one array, or a tuple/list of them) as a list."""
    return list(out) if isinstance(out, (tuple, list)) else [out]


@contextlib.contextmanager
def eval_mode(model):
    """Run the block with ``model.eval()`` and give the model back its training flag afterwards (torch, MLX)."""
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def write(proto: onnx.ModelProto, path: str | os.PathLike | None, inline: bool) -> None:
    """Save ``proto`` at ``path`` (atomically; nothing when ``path`` is None) and, with ``inline``, a copy with the
    ``nmn`` functions inlined at ``<stem>.inlined.onnx``; both are staged and renamed into place together, so a
    failure leaves neither new file and no existing file changed (:mod:`nmn.interchange._atomic`)."""
    if path is None:
        return
    if not inline:
        save_model(proto, path)
        return
    from pathlib import Path

    from nmn.interchange._atomic import Stage
    from nmn.interchange.graph import inline_copy

    path = Path(path)
    p = path.name
    inlined_name = p[:-5] + ".inlined.onnx" if p.endswith(".onnx") else p + ".inlined"
    inlined = inline_copy(proto)
    with Stage(path.parent, overwrite=True) as stage:
        save_model(proto, stage.path(path.name))
        save_model(inlined, stage.path(inlined_name))
        stage.commit()


def checked_export(
    model,
    inputs: Sequence[Any],
    path,
    *,
    build: Callable[[], tuple[onnx.ModelProto, list]],
    to_numpy: Callable[[Any], np.ndarray],
    rtol: float,
    inline: bool,
    check: Callable = check_against,
) -> onnx.ModelProto:
    """``build() -> (proto, expected outputs)`` in eval mode, then ``check`` ``proto`` in onnxruntime on ``inputs``
    (made numpy by ``to_numpy``) against them, restore the training flag and :func:`write` the file.

    ``check`` is :func:`~nmn.interchange.graph.check_against`; each ``<framework>_io`` passes the name it
    imported, so a test can replace that module's ``check_against``."""
    with eval_mode(model):
        proto, expected = build()
        feeds = {vi.name: to_numpy(x) for vi, x in zip(proto.graph.input, inputs)}
        check(proto, feeds, expected, rtol=rtol, what=type(model).__name__)
    write(proto, path, inline)
    return proto


# ------------------------------------------------------------------------ standard layers beyond emit's table
EXTRA_ACTIVATIONS = ("celu", "log_sigmoid", "softmin")
"""Activation kinds written here on top of :data:`nmn.interchange.emit.ACTIVATIONS` (every exporter maps its
host's activations to the union, through :func:`activation`)."""


def activation(b, kind: str, x: str, *, name: str | None = None, axis: int = -1, alpha: float | None = None, **kw):
    """One activation of ``emit.ACTIVATIONS + EXTRA_ACTIVATIONS`` as ONNX nodes: celu (``alpha``, default 1),
    log_sigmoid (``-softplus(-x)``), softmin (``softmax(-x)`` along ``axis``); the rest as
    :func:`nmn.interchange.emit.activation`.

    >>> from nmn.interchange.graph import GraphBuilder
    >>> b = GraphBuilder("mlx")
    >>> _ = activation(b, "log_sigmoid", b.input("x", (None, 3)))
    >>> [n.op_type for n in b.nodes]
    ['Neg', 'Softplus', 'Neg']
    """
    from nmn.interchange import emit

    name = name or kind
    if kind == "celu":
        return b.node("Celu", [x], {"alpha": float(1.0 if alpha is None else alpha)}, name=name)
    if kind == "log_sigmoid":
        neg = b.node("Neg", [x], name=f"{name}.neg")
        return b.node("Neg", [b.node("Softplus", [neg], name=f"{name}.softplus")], name=name)
    if kind == "softmin":
        return b.node("Softmax", [b.node("Neg", [x], name=f"{name}.neg")], {"axis": int(axis)}, name=name)
    return emit.activation(b, kind, x, name=name, axis=axis, alpha=alpha, **kw)


def rms_norm(b, name: str, x: str, weight: np.ndarray | None, epsilon: float, *, axes=(-1,)) -> str:
    """RMS normalization over ``axes``: ``x / sqrt(mean(x * x) + epsilon) * weight`` (opset 18 has no
    RMSNormalization; the weight, ``<name>.weight``, feeds a Mul and so loads as a trainable parameter).

    >>> from nmn.interchange.graph import GraphBuilder
    >>> b = GraphBuilder("mlx")
    >>> _ = rms_norm(b, "norm", b.input("x", (None, 4)), np.ones(4, np.float32), 1e-5)
    >>> [n.op_type for n in b.nodes]
    ['Mul', 'ReduceMean', 'Add', 'Sqrt', 'Div', 'Mul']
    """
    square = b.node("Mul", [x, x], name=f"{name}.square")
    axes_c = b.constant(f"{name}.axes", np.array(list(axes), np.int64))
    mean = b.node("ReduceMean", [square, axes_c], {"keepdims": 1}, name=f"{name}.mean")
    eps = b.constant(f"{name}.epsilon", np.array(epsilon, np.float32))
    rms = b.node("Sqrt", [b.node("Add", [mean, eps], name=f"{name}.add_eps")], name=f"{name}.rms")
    y = b.node("Div", [x, rms], name=f"{name}.normalize" if weight is not None else name)
    if weight is None:
        return y
    return b.node("Mul", [y, b.initializer(f"{name}.weight", np.asarray(weight, np.float32))], name=name)
