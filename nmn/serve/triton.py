"""Write a Triton Inference Server model repository for nmn ONNX files.

Triton's onnxruntime backend runs the files unchanged (the ``nmn`` functions
travel inside them). The layout is::

    DIR/<name>/config.pbtxt
    DIR/<name>/1/model.onnx
"""

from __future__ import annotations

import os

import onnx

from ._protocol import DATATYPE_TO_TRITON
from .repository import ServedModel, model_files

__all__ = ["write_triton_repo", "triton_config"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def triton_config(model: ServedModel, max_batch: int | None = None, batch_timeout_ms: float = 2.0) -> str:
    """The ``config.pbtxt`` text for one loaded model.

    With ``max_batch`` > 1 and a symbolic first dimension on every input and
    output, Triton is told the model batches (``max_batch_size`` and dims
    without the batch dimension, plus ``dynamic_batching``); otherwise
    ``max_batch_size: 0`` and full dims (-1 for symbolic ones).
    """
    batching = bool(max_batch and max_batch > 1 and model.batchable)
    lines = [
        f"name: {_quote(model.name)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {int(max_batch) if batching else 0}",
    ]

    def block(kind: str, specs) -> None:
        lines.append(f"{kind} [")
        for i, t in enumerate(specs):
            dims = list(t.shape[1:] if batching else t.shape)
            lines.extend(
                [
                    "  {",
                    f"    name: {_quote(t.name)}",
                    f"    data_type: {DATATYPE_TO_TRITON[t.datatype]}",
                ]
            )
            if dims:
                lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
            else:  # Triton wants at least one dim: declare [1] and reshape to a scalar
                lines.extend(["    dims: [ 1 ]", "    reshape: { shape: [ ] }"])
            lines.append("  }" + ("," if i < len(specs) - 1 else ""))
        lines.append("]")

    block("input", model.inputs)
    block("output", model.outputs)
    if batching:
        lines += [
            "dynamic_batching {",
            f"  max_queue_delay_microseconds: {int(batch_timeout_ms * 1000)}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def write_triton_repo(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_batch: int | None = None,
    batch_timeout_ms: float = 2.0,
) -> list[str]:
    """Validate the model(s) at ``path`` and write a Triton repository to ``out_dir``.

    Returns the model names written. Each model is saved (external data
    folded in) as ``out_dir/<name>/1/model.onnx`` next to its ``config.pbtxt``.

    Example::

        write_triton_repo("models/", "triton_repo")   # -> ['cnn', 'mlp']
    """
    from nmn.interchange.safe_load import load_model_safely

    out_dir = os.fspath(out_dir)
    names = []
    for f in model_files(path):
        served = ServedModel(f)
        try:
            proto = load_model_safely(f)
            target = os.path.join(out_dir, served.name, "1")
            os.makedirs(target, exist_ok=True)
            onnx.save(proto, os.path.join(target, "model.onnx"))
            with open(os.path.join(out_dir, served.name, "config.pbtxt"), "w", encoding="utf-8") as fh:
                fh.write(triton_config(served, max_batch, batch_timeout_ms))
            names.append(served.name)
        finally:
            served.close()
    return names
