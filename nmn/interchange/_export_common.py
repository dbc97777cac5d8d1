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
