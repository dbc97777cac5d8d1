"""``nmn::Softermax`` / ``SofterSigmoid`` / ``SoftTanh`` nodes load in every framework and match onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from nmn.interchange import FRAMEWORKS, export, load, predict, run_onnx
from tests.frameworks import require


@pytest.fixture(scope="module")
def squasher_file():
    torch = pytest.importorskip("torch")
    import nmn.torch as nt

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 5)
            self.sm, self.ss, self.st = nt.Softermax(n=2.0, dim=-1), nt.SofterSigmoid(n=1.5), nt.SoftTanh(n=3.0)

        def forward(self, x):
            h = torch.relu(self.fc(x)) + 0.1
            return self.sm(h) + self.ss(h) + self.st(h)

    return export(Net().eval(), torch.rand(2, 4))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_squasher_nodes_load_and_match_onnxruntime(squasher_file, framework):
    require(framework)
    x = np.random.default_rng(1).random((3, 4)).astype(np.float32)
    want = run_onnx(squasher_file, {squasher_file.graph.input[0].name: x})[0]
    got = predict(load(squasher_file, framework), framework, [x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
