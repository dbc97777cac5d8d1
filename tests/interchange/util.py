"""Helpers shared by the per-framework interchange tests (``test_torch``, ``test_jax``, ``test_mlx``)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper


def inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The file's initializers by name, as numpy."""
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def assert_same_inits(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    """Both files hold the same initializer names with bit-identical values."""
    a, b = inits(a), inits(b)
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


def close(got, want, rtol=1e-5, floor=0.0):
    """``got`` equals ``want`` in shape and within ``rtol`` of ``want``'s largest magnitude (at least ``floor``)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= rtol * max(np.max(np.abs(want)), floor)


def one_input_model(nodes, shape) -> onnx.ModelProto:
    """An opset-18 model of ``nodes`` from float input ``x`` to float output ``y``, both of ``shape``."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def tan_hardmax_model() -> onnx.ModelProto:
    """A file of two ops no loader supports (``Tan``, ``Hardmax``; checked against ``stdops.SUPPORTED``)."""
    from nmn.interchange.stdops import SUPPORTED

    assert "Tan" not in SUPPORTED and "Hardmax" not in SUPPORTED, "pick two ops the loaders do not support"
    return one_input_model(
        [helper.make_node("Tan", ["x"], ["a"], name="c1"), helper.make_node("Hardmax", ["a"], ["y"], name="h1")], [2]
    )


def torch_dense_export():
    """``(file, x)``: a torch chain of Yat and standard dense layers exported by ``torch_io``, and its input
    (skips without torch)."""
    torch = pytest.importorskip("torch")
    nt = pytest.importorskip("nmn.torch")
    from nmn.interchange import torch_io

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        nt.YatNMN(4, 6, learnable_epsilon=True), torch.nn.ReLU(), torch.nn.Linear(6, 3), nt.YatNMN(3, 2, spherical=True)
    ).eval()
    x = torch.randn(5, 4)
    return torch_io.export(net, x), x.numpy()
