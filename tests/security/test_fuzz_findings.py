"""Files the fuzzer (scripts/fuzz_files.py) found getting past the checks, kept as regressions for every loader.

Each is an ordinary graph with one untrusted attribute value; every framework's ``load`` must refuse it with
nmn's own one-line error instead of a framework traceback or a run-away allocation.
"""

from __future__ import annotations

import importlib.util

import onnx
import pytest
from onnx import TensorProto, helper

from nmn.interchange import load
from nmn.interchange.reader import UnsupportedModelError
from nmn.interchange.validate import ModelValidationError

# keras runs the graph while it builds the model; torch runs it at the first call (the test calls it)
FRAMEWORKS = {"torch": "torch", "keras": "keras"}


def _model(node: onnx.NodeProto, out_shape) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


CASES = {
    # a pool window of 2**31 (the loaders looped over every kernel offset)
    "pool-kernel-2**31": (
        _model(
            helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2**31], strides=[2, 2]), ["n", "c", "h", "w"]
        ),
        "AveragePool: a window of 2147483648 over an input of 4",
    ),
    # a Transpose perm that is not a permutation (keras raised from inside its shape inference)
    "transpose-perm": (
        _model(helper.make_node("Transpose", ["x"], ["y"], perm=[2**31, -1, 7, -1]), ["a", "b", "c", "d"]),
        "perm",  # refused by the validator's shape inference here; by stdops where the input shape is unknown
    ),
}


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("case", list(CASES))
def test_fuzz_finding_is_refused_in_one_line(framework, case):
    if importlib.util.find_spec(FRAMEWORKS[framework]) is None:
        pytest.skip(f"{FRAMEWORKS[framework]} is not installed")
    model, words = CASES[case]
    with pytest.raises((UnsupportedModelError, ModelValidationError)) as info:
        loaded = load(model, framework=framework)
        if framework == "torch":
            import torch

            loaded(torch.zeros(1, 2, 4, 4))
    message = str(info.value)
    assert words in message and "\n" not in message, message
