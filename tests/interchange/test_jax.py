"""Flax NNX / Linen <-> ONNX: export structure and numbers, load == onnxruntime, bit-identical re-export,
loaded models train (optax), DAGs with several inputs, errors that list everything unsupported.

The any-to-any matrix (tests/interchange/test_matrix.py) covers the reference models for nnx and linen in both
directions; these tests cover the JAX-specific behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import optax
import pytest
from flax import linen as nn
from flax import nnx

import nmn.linen as L
import nmn.nnx as N
from nmn.interchange import ExportError, UnsupportedModelError, jax_io, manifest_of, run_onnx
from nmn.interchange.graph import PERFORMER_RTOL
from tests.interchange.util import assert_same_inits, close, inits, tan_hardmax_model, torch_dense_export

_inits = inits


def _close(got, want, rtol=1e-5):
    close(got, want, rtol, floor=1e-12)


class ConvNet(nnx.Module):
    def __init__(self, rngs):
        self.c1 = N.YatConv2D(3, 8, 3, rngs=rngs)
        self.c2 = nnx.Conv(8, 8, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.up = N.YatConvTranspose2D(8, 4, 2, strides=2, feature_group_count=2, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc = N.YatNMN(4 * 4 * 4, 10, learnable_epsilon=True, rngs=rngs)
        self.ln = nnx.LayerNorm(10, rngs=rngs)
        self.out = nnx.Linear(10, 3, rngs=rngs)

    def __call__(self, x):
        h = self.c1(x)
        h = h + jax.nn.relu(self.bn(self.c2(h)))  # a residual addition
        h = nnx.avg_pool(nnx.max_pool(h, (2, 2), (2, 2)), (2, 2), (2, 2))
        h = self.drop(self.up(h).reshape(h.shape[0], -1))
        return self.out(jax.nn.gelu(self.ln(self.fc(h))))


@pytest.fixture(scope="module")
def convnet():
    model = ConvNet(nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    return model, x, jax_io.export(model, x)


def test_export_structure(convnet, tmp_path):
    model, x, proto = convnet
    ops = [n.op_type for n in proto.graph.node]
    assert [o for o in ops if o.startswith("Yat")] == ["YatConv", "YatConvTranspose", "YatDense"]
    assert {n.domain for n in proto.graph.node if n.op_type.startswith("Yat")} == {"nmn"}
    standard = {"Conv", "BatchNormalization", "MaxPool", "AveragePool", "LayerNormalization", "Gemm", "Softplus"}
    assert standard <= set(ops)
    assert {f.name for f in proto.functions} >= {"YatConv", "YatConvTranspose", "YatDense"}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [8, 8, 3]  # NHWC kept
    names = set(_inits(proto))
    assert {
        "c1.kernel",
        "c1.alpha",
        "c2.kernel",
        "bn.mean",
        "bn.var",
        "fc.kernel",
        "fc.epsilon_param",
        "ln.scale",
        "out.kernel",
    } <= names
    manifest = manifest_of(proto)
    assert manifest["source"] == "nnx" and manifest["layout"] == "channels_last"
    assert {e["kind"] for e in manifest["layers"]} >= {"YatConv", "YatConvTranspose", "YatNMN"}
    fresh = np.random.default_rng(1).normal(size=(5, 8, 8, 3)).astype(np.float32)  # another batch size
    _close(run_onnx(proto, {"input": fresh})[0], jax_io.predict(model, [fresh])[0])
    assert model.drop.deterministic is False  # train flags restored


def test_load_equals_onnxruntime_and_reexport_is_bit_identical(convnet, tmp_path):
    _, _, proto = convnet
    path = tmp_path / "convnet.onnx"
    onnx.save(proto, path)
    loaded = jax_io.load(path)
    fresh = np.random.default_rng(2).normal(size=(3, 8, 8, 3)).astype(np.float32)
    _close(loaded(fresh), run_onnx(proto, {"input": fresh})[0])
    _close(nnx.jit(lambda m, x: m(x))(loaded, fresh), run_onnx(proto, {"input": fresh})[0])
    again = jax_io.export(loaded, fresh, tmp_path / "again.onnx")
    a, b = _inits(proto), _inits(again)
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert (tmp_path / "again.onnx").exists()


def test_loaded_nnx_model_trains_with_optax(convnet):
    _, x, proto = convnet
    loaded = jax_io.load(proto)
    optimizer = nnx.Optimizer(loaded, optax.sgd(1e-2), wrt=nnx.Param)
    target = jnp.ones((2, 3))

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - target) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(loaded, optimizer)) for _ in range(4)]
    assert losses[-1] < losses[0]
    before = _inits(proto)
    after = _inits(jax_io.export(loaded, x))
    assert not np.array_equal(before["c1.kernel"], after["c1.kernel"])  # trained weights written back
    np.testing.assert_array_equal(before["bn.mean"], after["bn.mean"])  # running stats are constants


class LM(nnx.Module):
    def __init__(self, rngs):
        self.emb = N.YatEmbed(20, 8, rngs=rngs)
        self.attn = N.RotaryYatAttention(2, 8, causal=True, rope_style="half", rngs=rngs)
        self.mha = N.MultiHeadYatAttention(2, 8, use_performer=True, num_features=8, rngs=rngs)
        self.ff = N.YatNMN(8, 8, lazy=True, rngs=rngs)

    def __call__(self, ids, mask):
        h = self.emb(ids)
        h = h + self.attn(h, mask=mask)
        h = h + self.mha(h)
        return N.softer_sigmoid(self.emb.attend(self.ff(h)), n=2.0)  # tied embedding; one nmn::SofterSigmoid


def test_attention_embedding_and_mask_input_round_trip():
    model = LM(nnx.Rngs(0))
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.int32)
    mask = np.ones((2, 1, 4, 4), bool)
    mask[0, 0, 2, :2] = False
    proto = jax_io.export(model, (ids, mask))
    yat = [n.op_type for n in proto.graph.node if n.domain == "nmn"]
    assert yat == [
        "RotaryYatMultiHeadAttention",
        "YatPerformerMultiHeadAttention",
        "YatDense",
        "YatEmbedAttend",
        "SofterSigmoid",
    ]
    assert proto.graph.node[0].op_type == "Gather"  # the YatEmbed lookup
    manifest = {e["name"]: e for e in manifest_of(proto)["layers"]}
    assert manifest["ff"]["trainable"]["weight"] is False and manifest["mha"]["trainable"]["proj"] is False
    feeds = {"input_0": ids, "input_1": mask}
    loaded = jax_io.load(proto)
    _close(loaded(ids, mask), run_onnx(proto, feeds)[0], rtol=PERFORMER_RTOL)  # the degree-4 performer (D = 4, m = 8)
    assert isinstance(loaded.yat["ff"].kernel, N.FrozenParam) and isinstance(loaded.yat["mha"].proj, N.Buffer)
    a, b = _inits(proto), _inits(jax_io.export(loaded, (ids, mask)))
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = L.YatConv1D(4, 3, padding="CAUSAL", kernel_dilation=2)(x)
        h = nn.Conv(4, (3,))(h)
        h = h.mean(axis=1)
        h = L.YatNMN(5, constant_alpha=True)(h)
        return nn.Dense(2)(jax.nn.silu(h))


def test_linen_export_load_train_and_reexport():
    net = LinenNet()
    x = np.random.default_rng(0).normal(size=(3, 6, 2)).astype(np.float32)
    variables = net.init(jax.random.key(0), x)
    proto = jax_io.export(net, x, variables=variables)
    assert "YatConv1D_0.kernel" in _inits(proto) and "Dense_0.kernel" in _inits(proto)
    module, loaded_vars = jax_io.load(proto, framework="linen")
    fresh = np.random.default_rng(3).normal(size=(4, 6, 2)).astype(np.float32)
    _close(module.apply(loaded_vars, fresh), run_onnx(proto, {"input": fresh})[0])
    a, b = _inits(proto), _inits(jax_io.export(module, x, variables=loaded_vars))
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)

    params, rest = loaded_vars["params"], {k: v for k, v in loaded_vars.items() if k != "params"}
    opt = optax.sgd(0.05)
    state = opt.init(params)

    def loss_fn(p):
        return jnp.mean(module.apply({"params": p, **rest}, x) ** 2)

    loss0, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = opt.update(grads, state, params)
    assert float(loss_fn(optax.apply_updates(params, updates))) < float(loss0)


def test_unsupported_operations_are_listed_and_nothing_is_written(tmp_path):
    net = nnx.Sequential(N.YatNMN(3, 3, rngs=nnx.Rngs(0)), lambda h: jnp.cumsum(jnp.sort(h, axis=-1), axis=-1))
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="cumsum.*sort|sort.*cumsum"):
        jax_io.export(net, np.ones((2, 3), np.float32), path)
    assert not path.exists()
    with pytest.raises(ExportError, match="CIRCULAR"):
        jax_io.export(nnx.Conv(2, 2, (3,), padding="CIRCULAR", rngs=nnx.Rngs(0)), np.ones((1, 5, 2), np.float32))


def test_unsupported_ops_of_a_file_are_listed():
    with pytest.raises(UnsupportedModelError) as info:
        jax_io.load(tan_hardmax_model())
    assert "Tan" in str(info.value) and "Hardmax" in str(info.value)


def test_a_torch_exported_file_loads_into_nnx():
    proto, x = torch_dense_export()
    loaded = jax_io.load(proto)
    (want,) = run_onnx(proto, {vi.name: x for vi in proto.graph.input})
    _close(loaded(x), want)
    assert_same_inits(proto, jax_io.export(loaded, x))


@pytest.mark.parametrize("framework", ["nnx", "linen"])
def test_legacy_exporter_shape_arithmetic_with_0d_indices(framework):
    from tests.stdops.test_semantics import scalar_index_shape_model

    model = scalar_index_shape_model()
    x = np.random.default_rng(3).normal(size=(5, 3, 4)).astype(np.float32)
    (want,) = run_onnx(model, {"x": x})
    loaded = jax_io.load(model, framework=framework)
    (got,) = jax_io.predict(loaded, [x], framework=framework)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
