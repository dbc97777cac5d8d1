"""Shared pieces of the ``nmn`` ONNX functions: the domain, the opset and the Yat tail.

The tail ``ALPHA * (DOT + B)^2 / (relu(DIST) + EPS)`` is written once here and called by every op family
(docs/design.md §1, "The shared tail").
"""

from typing import TypeVar, Union

from onnxscript import BFLOAT16, DOUBLE, FLOAT, FLOAT16, script
from onnxscript import opset18 as op
from onnxscript.values import Opset

from nmn.core.schemas import DOMAIN, DOMAIN_VERSION

nmn = Opset(DOMAIN, DOMAIN_VERSION)

# bound=Union (not TypeVar("T", A, B)): torch's exporter rejects the constrained form (docs/design.md §N1a).
T = TypeVar("T", bound=Union[FLOAT, FLOAT16, BFLOAT16, DOUBLE])  # noqa: UP007 (onnxscript reads Union, not |)


@script(nmn, default_opset=op)
def YatTail(DOT: FLOAT, DIST: FLOAT, B: FLOAT, ALPHA: FLOAT, EPS: FLOAT) -> FLOAT:
    """``ALPHA * (DOT + B)^2 / (relu(DIST) + EPS)``; B, ALPHA, EPS already broadcastable to DOT."""
    num = op.Add(DOT, B)
    return op.Mul(op.Div(op.Mul(num, num), op.Add(op.Relu(DIST), EPS)), ALPHA)
