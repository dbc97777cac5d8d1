"""Standard ONNX ops, written once for every loader.

Each op is one function ``fn(P, args, attrs, ctx)`` in :mod:`nmn.interchange.stdops.semantics` that reads the
ONNX attributes (defaults by opset version, negative axes, optional inputs, integer vs float arithmetic) and
computes with a small *primitives* namespace ``P`` (a native conv, slicing, reductions, element-wise functions).
Each framework supplies only ``P`` (``nmn.interchange.stdops.prims_<framework>``); :data:`SUPPORTED` is the one
list of ops and opset versions every loader shares.

A node whose inputs are all known (numpy constants, or concrete values of an eager framework) is computed with
numpy (:mod:`nmn.interchange.stdops.prims_numpy`), which constant-folds shape arithmetic (``Shape``, ``Gather``,
``Concat``, ``Range``...) wherever its inputs allow.

>>> import numpy as np
>>> from nmn.interchange.stdops import run_node
>>> from nmn.interchange.stdops.prims_numpy import NUMPY
>>> run_node(NUMPY, "Div", [np.array([-7, 7]), np.array([2, 2])], {}, opset=17)[0]
array([-3,  3])
"""

from __future__ import annotations

from nmn.interchange.stdops.semantics import SUPPORTED, StdOpError, run_node, unsupported_summary, value_inputs

__all__ = ["SUPPORTED", "StdOpError", "run_node", "unsupported_summary", "value_inputs"]
