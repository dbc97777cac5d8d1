"""PyTorch interchange: export -> onnxruntime, load -> equals onnxruntime, export(load(f)) bit-identical, training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn

import nmn.torch as nt
from nmn.interchange import ExportError, UnsupportedModelError, manifest_of, run_onnx, torch_io
from tests.interchange.util import inits, one_input_model


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.yat = nt.YatConv2D(8, 8, 3, padding="same", groups=2)
        self.pool = nn.MaxPool2d(2)
        self.up = nt.YatConvTranspose2D(8, 4, 2, stride=2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nt.YatNMN(4, 6, learnable_epsilon=True)
        self.out = nn.Linear(6, 3)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        h = torch.relu(self.bn(self.stem(x)))
        h = h + self.yat(h)  # residual
        h = self.up(self.pool(h))
        h = torch.flatten(self.gap(h), 1)
        return self.out(self.drop(nn.functional.gelu(self.head(h))))


class TinyTransformer(nn.Module):
    def __init__(self, vocab=11, dim=8):
        super().__init__()
        self.embed = nt.YatEmbed(vocab, dim)
        self.attn = nt.MultiHeadYatAttention(dim, 2)
        self.rot = nt.RotaryYatAttention(dim, 2, max_seq_len=16)
        self.norm = nn.LayerNorm(dim)
        self.ff = nt.YatNMN(dim, dim)

    def forward(self, ids):
        h = self.embed(ids)
        h = self.norm(h + self.attn(h))
        h = h + self.rot(h)
        h = h + self.ff(h)
        return self.embed.attend(h)


_inits = inits


@pytest.fixture(scope="module")
def convnet():
    torch.manual_seed(0)
    net = ConvNet()
    with torch.no_grad():  # non-trivial running statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_export_structure_and_numbers(convnet, tmp_path):
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "convnet.onnx"
    model = torch_io.export(convnet, x, path)
    assert path.exists()
    ops = [n.op_type for n in model.graph.node if n.domain == "nmn"]
    assert ops == ["YatConv", "YatConvTranspose", "YatDense"]  # one node per Yat layer
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"
    names = set(_inits(model))
    assert {"yat.weight", "yat.bias", "yat.alpha", "head.epsilon_param", "stem.weight", "bn.running_var"} <= names
    manifest = manifest_of(model)
    assert manifest["source"] == "torch"
    assert [l["kind"] for l in manifest["layers"] if l["kind"].startswith("Yat")] == [
        "YatConv",
        "YatConvTranspose",
        "YatNMN",
    ]
    assert {f.name for f in model.functions} >= {"YatConv", "YatConvTranspose", "YatDense"}
    for batch in (1, 5):  # symbolic batch really works
        xb = torch.randn(batch, 3, 8, 8)
        (got,) = run_onnx(model, {"x": xb.numpy()})
        want = convnet(xb).detach().numpy()
        assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_load_matches_onnxruntime_and_reexport_is_bit_identical(convnet, tmp_path):
    model = torch_io.export(convnet, torch.randn(2, 3, 8, 8), tmp_path / "m.onnx")
    loaded = torch_io.load(tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    (ort_out,) = run_onnx(model, {"x": x})
    got = loaded(torch.from_numpy(x)).detach().numpy()
    assert np.max(np.abs(got - ort_out)) <= 1e-5 * np.max(np.abs(ort_out))
    again = torch_io.export(loaded, torch.from_numpy(x))
    a, b = _inits(model), _inits(again)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name


def test_learnable_epsilon_travels_as_raw_parameter(convnet):
    model = torch_io.export(convnet, torch.randn(2, 3, 8, 8))
    softplus = [n for n in model.graph.node if n.op_type == "Softplus"]
    assert len(softplus) == 1 and softplus[0].input[0] == "head.epsilon_param"
    loaded = torch_io.load(model)
    layer = loaded.layer("head")
    assert layer.epsilon_param.detach().numpy().tobytes() == convnet.head.epsilon_param.detach().numpy().tobytes()


def test_loaded_model_trains(convnet):
    loaded = torch_io.load(torch_io.export(convnet, torch.randn(2, 3, 8, 8)))
    loaded.train()
    params = list(loaded.parameters())
    assert any(p.requires_grad for p in params)
    opt = torch.optim.Adam(params, lr=1e-2)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 3, (16,))
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(loaded(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert loaded.layer("yat").weight.grad is not None
    # state_dict keys are the file's initializer names
    assert set(loaded.state_dict()) >= {"yat.weight", "stem.weight", "bn.running_mean", "head.epsilon_param"}


def test_transformer_roundtrip():
    torch.manual_seed(1)
    net = TinyTransformer().eval()
    ids = torch.randint(0, 11, (2, 6))
    model = torch_io.export(net, ids)
    ops = [n.op_type for n in model.graph.node if n.domain == "nmn"]
    assert ops == ["YatMultiHeadAttention", "RotaryYatMultiHeadAttention", "YatDense", "YatEmbedAttend"]
    gathers = [n for n in model.graph.node if n.op_type == "Gather"]
    attend = [n for n in model.graph.node if n.op_type == "YatEmbedAttend"]
    assert gathers[0].input[0] == attend[0].input[1] == "embed.weight"  # tied table, stored once
    ids2 = torch.randint(0, 11, (3, 6))
    (ort_out,) = run_onnx(model, {"ids": ids2.numpy()})
    loaded = torch_io.load(model)
    got = loaded(ids2).detach().numpy()
    assert np.max(np.abs(got - ort_out)) <= 1e-5 * np.max(np.abs(ort_out))
    a, b = _inits(model), _inits(torch_io.export(loaded, ids2))
    assert all(a[k].tobytes() == b[k].tobytes() for k in a) and sorted(a) == sorted(b)


def test_failed_check_writes_nothing(convnet, tmp_path, monkeypatch):
    path = tmp_path / "never.onnx"

    def broken(*args, **kwargs):
        raise ExportError("simulated mismatch")

    monkeypatch.setattr(torch_io, "check_against", broken)
    with pytest.raises(ExportError):
        torch_io.export(convnet, torch.randn(2, 3, 8, 8), path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_unsupported_module_is_named():
    net = nn.Sequential(
        nt.YatNMN(4, 6), nn.PReLU(), nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")
    )
    with pytest.raises(ExportError) as err:
        torch_io.export(net, torch.randn(2, 4))
    message = str(err.value)  # every problem in one error
    assert "PReLU" in message and "Unflatten" in message and "circular" in message


def test_load_lists_every_unsupported_op():
    from onnx import helper

    nodes = [helper.make_node("Tan", ["x"], ["a"], name="c"), helper.make_node("Hardmax", ["a"], ["y"], name="e")]
    m = one_input_model(nodes, [2, 2])
    with pytest.raises(UnsupportedModelError) as err:
        torch_io.load(m)
    assert "Tan" in str(err.value) and "Hardmax" in str(err.value)


def test_legacy_exporter_shape_arithmetic_with_0d_indices():
    from tests.stdops.test_semantics import scalar_index_shape_model

    model = scalar_index_shape_model()
    x = np.random.default_rng(3).normal(size=(5, 3, 4)).astype(np.float32)
    (want,) = run_onnx(model, {"x": x})
    loaded = torch_io.load(model)
    assert loaded.get_buffer("zero").dim() == 0  # a 0-d initializer stays 0-d
    (got,) = torch_io.predict(loaded, [x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
