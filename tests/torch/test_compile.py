"""torch.compile and torch.export of nmn.torch layers equal eager execution."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn as nn

from nmn.torch import (
    MultiHeadYatAttention,
    RotaryYatAttention,
    YatConv1D,
    YatConv2D,
    YatConvTranspose2D,
    YatEmbed,
    YatNMN,
)


class EveryLayer(nn.Module):
    """A model with every nmn.torch layer kind on one path."""

    def __init__(self):
        super().__init__()
        self.embed = YatEmbed(11, 8)
        self.mha = MultiHeadYatAttention(8, 2)
        self.performer = MultiHeadYatAttention(8, 2, use_performer=True, num_features=8, causal=True)
        self.rotary = RotaryYatAttention(8, 2, max_seq_len=16, causal=True)
        self.conv1 = YatConv1D(8, 4, 3, padding="same")
        self.conv2 = YatConv2D(1, 2, 3, padding=1, padding_mode="reflect")
        self.convt = YatConvTranspose2D(2, 2, 3, stride=2, padding="same")
        self.dense = YatNMN(2 * 8 * 12, 5, learnable_epsilon=True)

    def forward(self, ids):
        h = self.embed(ids)  # (B, 6, 8)
        a = self.mha(h) + self.performer(h) + self.rotary(h)
        h = self.conv1(a.transpose(1, 2))  # (B, 4, 6)
        h = self.conv2(h[:, None])  # (B, 2, 4, 6)
        h = self.convt(h)  # (B, 2, 8, 12)
        return self.dense(h.flatten(1)), self.embed.attend(a)


def _compiler_missing(err: Exception) -> bool:
    text = f"{type(err).__name__}: {err}"
    return any(s in text for s in ("CppCompileError", "InvalidCxxCompiler", "C++ compiler", "cl is not found"))


def test_torch_compile_yatnmn_equals_eager_forward_and_backward():
    if shutil.which("g++") is None and shutil.which("c++") is None and shutil.which("clang++") is None:
        pytest.xfail("torch.compile (inductor) needs a C++ compiler on CPU; none is installed")
    layer = YatNMN(16, 8, learnable_epsilon=True)
    compiled = torch.compile(layer)
    x = torch.randn(4, 16, requires_grad=True)
    try:
        got = compiled(x)
    except Exception as err:
        if _compiler_missing(err):
            pytest.xfail(f"inductor cannot compile on this machine: {type(err).__name__}")
        raise
    want = layer(x)
    torch.testing.assert_close(got, want)
    g_got = torch.autograd.grad(got.sum(), [x, layer.weight, layer.epsilon_param])
    g_want = torch.autograd.grad(want.sum(), [x, layer.weight, layer.epsilon_param])
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_torch_compile_every_layer_kind_equals_eager():
    torch.manual_seed(0)
    model = EveryLayer().eval()
    ids = torch.randint(0, 11, (2, 6))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # graph capture + AOT autograd
    got, want = compiled(ids), model(ids)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    (got[0].sum() + got[1].sum()).backward()
    assert model.dense.weight.grad is not None and model.mha.q_proj.weight.grad is not None


def test_torch_compile_inductor_every_layer_kind_equals_eager():
    torch.manual_seed(0)
    model = EveryLayer().eval()
    ids = torch.randint(0, 11, (2, 6))
    try:
        with torch.no_grad():
            got, want = torch.compile(model, fullgraph=True)(ids), model(ids)
    except Exception as err:
        if _compiler_missing(err):
            pytest.xfail(f"inductor cannot compile on this machine: {type(err).__name__}")
        raise
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * float(w.abs().max()))


def test_torch_export_every_layer_kind():
    torch.manual_seed(0)
    model = EveryLayer().eval()
    ids = torch.randint(0, 11, (2, 6))
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (ids,), dynamic_shapes=({0: batch},))
    other = torch.randint(0, 11, (3, 6))
    torch.testing.assert_close(program.module()(other), model(other), rtol=1e-5, atol=1e-5)
