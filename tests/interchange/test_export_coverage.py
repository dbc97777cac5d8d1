"""Export coverage: the standard layers users put around Yat layers, bare nmn layers, arithmetic on weights and
the squashers (functional and module forms) export from every framework, or fail with nmn's own ExportError
naming the operation (issues 12 and 18).

Every exported file is checked here against the host model with onnxruntime (``run_onnx``, independent of the
exporter's own check), on a fresh input of another batch size.
"""

from __future__ import annotations

import numpy as np
import pytest

from nmn.interchange import ExportError, export, run_onnx

try:  # imported by name at module level, as users do: fx's autowrap sees module globals
    from nmn.torch import softer_sigmoid
except ImportError:  # pragma: no cover - without torch the torch tests skip
    softer_sigmoid = None

RNG = np.random.default_rng(0)
SQUASH_OPS = {"Softermax", "SofterSigmoid", "SoftTanh"}


def _ops(proto):
    return [n.op_type for n in proto.graph.node]


def _close(got, want, tol=1e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= tol * max(np.max(np.abs(want)), 1e-6)


# ------------------------------------------------------------------------------------------------------ torch


def _torch():
    torch = pytest.importorskip("torch")
    import nmn.torch as nt

    return torch, torch.nn, nt


def _torch_check(model, shape, *, expect=(), positive=False):
    torch, _, _ = _torch()
    model.eval()
    make = (lambda s: RNG.uniform(0.1, 2.0, s)) if positive else (lambda s: RNG.normal(size=s))
    x = torch.from_numpy(make(shape).astype(np.float32))
    proto = export(model, x, framework="torch")
    fresh = make((shape[0] + 1, *shape[1:])).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(fresh)).numpy()
    _close(run_onnx(proto, {proto.graph.input[0].name: fresh})[0], want)
    assert set(expect) <= set(_ops(proto)), _ops(proto)
    return proto


def _torch_bare_layers():
    torch, nn, nt = _torch()
    return [
        (nt.YatNMN(4, 3), (2, 4), "YatDense"),
        (nt.YatConv2D(3, 4, 3, padding="same"), (2, 3, 6, 6), "YatConv"),
        (nt.YatConvTranspose1D(3, 2, 3, stride=2), (2, 3, 5), "YatConvTranspose"),
        (nt.MultiHeadYatAttention(8, 2), (2, 5, 8), "YatMultiHeadAttention"),
        (nt.Softermax(n=2.0), (2, 4), "Softermax"),
        (nt.SofterSigmoid(n=2.0), (2, 4), "SofterSigmoid"),
        (nt.SoftTanh(), (2, 4), "SoftTanh"),
        (nn.Linear(4, 3), (2, 4), "Gemm"),
        (nn.Conv2d(3, 2, 3), (2, 3, 5, 5), "Conv"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_torch_exports_a_bare_layer(index):
    """``export(nt.YatNMN(4, 3), x)`` (issue 18: blamed 'data-dependent control flow'); the layer is named after
    its class, and the file loads back into torch."""
    from nmn.interchange import load

    torch, _, _ = _torch()
    layer, shape, op = _torch_bare_layers()[index]
    positive = op in SQUASH_OPS
    proto = _torch_check(layer, shape, expect=[op], positive=positive)
    if op not in ("Gemm", "Conv"):
        assert all(t.name.startswith(type(layer).__name__ + ".") for t in proto.graph.initializer)
    x = RNG.uniform(0.1, 2.0, shape).astype(np.float32)
    with torch.no_grad():
        _close(load(proto, "torch")(torch.from_numpy(x)).numpy(), run_onnx(proto, {proto.graph.input[0].name: x})[0])


def test_torch_arithmetic_on_parameters():
    """``x / torch.sqrt(p)``, ``x / (p + 1e-5)`` and other element-wise functions of weights (issue 18: a raw
    TypeError from the exporter)."""
    torch, nn, nt = _torch()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.yat = nt.YatNMN(4, 4)
            self.p = nn.Parameter(torch.rand(4) + 0.5)

        def forward(self, x):
            h = self.yat(x) / torch.sqrt(self.p) + x / (self.p + 1e-5)
            h = h * torch.rsqrt(self.p) - torch.exp(-self.p) + torch.log(self.p).abs() + self.p.reciprocal()
            return (h**2).sum(-1, keepdim=True) + torch.amax(h, dim=1, keepdim=True) - h.mean(dim=-1).unsqueeze(1)

    proto = _torch_check(Net(), (2, 4), expect=["YatDense", "Sqrt", "Exp", "Log", "Reciprocal", "Pow", "ReduceSum"])
    assert "p" in {t.name for t in proto.graph.initializer}


def test_torch_unsupported_operation_is_named_once_and_nothing_crashes():
    """An operation nmn cannot write is one line of one ExportError, and the nodes after it do not crash."""
    torch, nn, nt = _torch()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.rand(4) + 0.5)

        def forward(self, x):
            return torch.cumsum(x, -1) / torch.sqrt(self.p) + torch.sort(x, -1)[0]

    with pytest.raises(ExportError) as err:
        export(Net(), torch.randn(2, 4), framework="torch")
    message = str(err.value)
    assert "cumsum" in message and "sort" in message
    assert "Sqrt" not in message and "truediv" not in message  # the ops after an unsupported one are not blamed


def test_torch_squashers_functional_and_module_forms():
    """Both forms become ``nmn::`` nodes with their options (issue 18: the functional form crashed)."""
    torch, nn, nt = _torch()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.sm, self.ss, self.st = nt.Softermax(n=2.0, dim=0), nt.SofterSigmoid(n=1.5), nt.SoftTanh(n=3.0)

        def forward(self, x):
            f = nt.softermax(x, 2.0, dim=0) + softer_sigmoid(x, sharpness=3.0) + nt.soft_tanh(x, n=2.0)
            return f + self.sm(x) + self.ss(x) + self.st(x)

    proto = _torch_check(Net(), (3, 4), positive=True)
    nodes = [n for n in proto.graph.node if n.op_type in SQUASH_OPS]
    assert sorted(n.op_type for n in nodes) == sorted(["Softermax", "SofterSigmoid", "SoftTanh"] * 2)
    assert all(n.domain == "nmn" for n in nodes)
    n_values = sorted(a.f for n in nodes for a in n.attribute if a.name == "n")
    assert n_values == [1.5, 2.0, 2.0, 2.0, 3.0, 3.0]
    axes = [a.i for n in nodes if n.op_type == "Softermax" for a in n.attribute if a.name == "axis"]
    assert axes == [0, 0]


def test_torch_standard_layers():
    """The standard torch.nn layers and functions around Yat layers: activations (module and functional),
    norms, pools, linear/conv, reshapes."""
    torch, nn, nt = _torch()
    F = torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.yconv = nt.YatConv2D(8, 8, 3, padding="same")
            self.acts = nn.ModuleList(
                [
                    nn.LeakyReLU(0.2),
                    nn.ELU(0.7),
                    nn.SELU(),
                    nn.Hardsigmoid(),
                    nn.Hardswish(),
                    nn.ReLU6(),
                    nn.Hardtanh(-0.5, 0.5),
                    nn.Mish(),
                    nn.Softsign(),
                    nn.GELU(),
                    nn.SiLU(),
                    nn.Softplus(),
                    nn.Tanh(),
                    nn.Sigmoid(),
                    nn.ReLU(),
                ]
            )
            self.pool = nn.MaxPool2d(2)
            self.avg = nn.AvgPool2d(2, stride=1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.ln = nn.LayerNorm(8)
            self.lin = nn.Linear(8, 6)
            self.w = nn.Parameter(torch.randn(5, 6))
            self.yat = nt.YatNMN(5, 4)

        def forward(self, x):
            h = self.bn(self.conv(x))
            h = self.yconv(h)
            for act in self.acts:
                h = h + 0.1 * act(h)
            h = F.leaky_relu(h, 0.1) + F.hardswish(h) + F.relu6(h) + F.elu(h) + F.hardsigmoid(h)
            h = self.avg(self.pool(h))
            h = torch.flatten(self.gap(h), 1) + F.adaptive_avg_pool2d(h, 1).flatten(1)
            h = F.dropout(F.layer_norm(self.ln(h), (8,)), 0.1, training=False)
            h = F.log_softmax(F.linear(self.lin(h), self.w), dim=-1)
            return self.yat(h).unsqueeze(1).squeeze(1)

    model = Net()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
    _torch_check(
        model,
        (2, 3, 8, 8),
        expect=[
            "BatchNormalization",
            "YatConv",
            "LeakyRelu",
            "Elu",
            "Selu",
            "HardSigmoid",
            "HardSwish",
            "Clip",
            "Softsign",
            "MaxPool",
            "AveragePool",
            "GlobalAveragePool",
            "LayerNormalization",
            "LogSoftmax",
            "YatDense",
        ],
    )


# ------------------------------------------------------------------------------------------------------ tf
def test_tf_module_of_tf_nn_ops_and_squashers():
    """A ``tf.Module`` of plain ``tf.nn`` ops (conv2d, depthwise conv, batch_normalization, padding, the usual
    activations, arithmetic on variables) around a Yat layer, and the squashers as ``nmn::`` nodes (issue 18:
    tf wrote them as primitives; issue 12: ``tf.nn.conv2d`` had no converter)."""
    tf = pytest.importorskip("tensorflow")
    import nmn.tf as ntf

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            g = tf.random.Generator.from_seed(0)
            self.w = tf.Variable(g.normal((3, 3, 3, 4)) * 0.3)
            self.dw = tf.Variable(g.normal((3, 3, 4, 2)) * 0.3)
            self.scale, self.offset = tf.Variable(g.uniform((8,)) + 0.5), tf.Variable(g.normal((8,)))
            self.mean, self.var = tf.Variable(g.normal((8,)) * 0.1), tf.Variable(g.uniform((8,)) + 0.5)
            self.yat = ntf.YatNMN(5)

        def __call__(self, x):
            h = tf.nn.conv2d(x, self.w, 1, "SAME")
            h = tf.nn.depthwise_conv2d(h, self.dw, [1, 1, 1, 1], "VALID")
            h = tf.nn.batch_normalization(h, self.mean, self.var, self.offset, self.scale, 1e-3)
            h = tf.nn.relu6(h) + tf.nn.leaky_relu(h, 0.3) + tf.nn.elu(h) + tf.nn.selu(h) + tf.math.softsign(h)
            h = tf.nn.max_pool2d(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2, 2, "VALID")
            h = tf.reduce_mean(h, axis=[1, 2]) / tf.sqrt(self.var) + 1.0 / (self.scale + 1e-5)
            h = tf.abs(self.yat(h))
            return ntf.softermax(h, n=2.0, axis=0) + ntf.softer_sigmoid(h, sharpness=3.0) + ntf.soft_tanh(h)

    model = Net()
    x = RNG.uniform(size=(2, 8, 8, 3)).astype(np.float32)
    proto = export(model, x, framework="tf")
    fresh = RNG.uniform(size=(3, 8, 8, 3)).astype(np.float32)
    _close(run_onnx(proto, {proto.graph.input[0].name: fresh})[0], model(tf.constant(fresh)).numpy())
    ops = _ops(proto)
    assert {"Conv", "Pad", "Clip", "LeakyRelu", "Elu", "Selu", "Softsign", "MaxPool", "YatDense"} <= set(ops)
    squash = [n for n in proto.graph.node if n.op_type in SQUASH_OPS]
    assert sorted(n.op_type for n in squash) == ["SoftTanh", "SofterSigmoid", "Softermax"]
    assert all(n.domain == "nmn" for n in squash)
    assert "Pow" not in ops  # the squashers' own arithmetic is not written out
    attrs = {n.op_type: {a.name: (a.f if a.type == a.FLOAT else a.i) for a in n.attribute} for n in squash}
    assert attrs["Softermax"]["n"] == 2.0 and attrs["Softermax"]["axis"] == 0 and attrs["SofterSigmoid"]["n"] == 3.0


def test_keras_re_exports_a_model_loaded_from_a_tf_file():
    """A TF file whose graph computes from weights alone (``x / (p + 1e-5)``, ``tf.nn.batch_normalization``)
    loads into Keras and exports again (issue 12/18: 'Only input tensors may be passed as positional
    arguments'); the re-exported file computes what the original does."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    import nmn.tf as ntf
    from nmn.interchange import load

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            g = tf.random.Generator.from_seed(1)
            self.p = tf.Variable(g.uniform((4,)) + 0.5)
            self.mean, self.var = tf.Variable(g.normal((4,)) * 0.1), tf.Variable(g.uniform((4,)) + 0.5)
            self.scale, self.offset = tf.Variable(g.uniform((4,)) + 0.5), tf.Variable(g.normal((4,)))
            self.yat = ntf.YatNMN(4)

        def __call__(self, x):
            h = self.yat(x) / (self.p + 1e-5)
            return tf.nn.batch_normalization(h, self.mean, self.var, self.offset, self.scale, 1e-3)

    x = RNG.normal(size=(2, 4)).astype(np.float32)
    original = export(Net(), x, framework="tf")
    loaded = load(original, "keras")
    again = export(loaded, x, framework="keras")
    fresh = RNG.normal(size=(3, 4)).astype(np.float32)
    _close(
        run_onnx(again, {again.graph.input[0].name: fresh})[0],
        run_onnx(original, {original.graph.input[0].name: fresh})[0],
    )
    assert "YatDense" in _ops(again)


# ------------------------------------------------------------------------------------------------------ nnx
def test_nnx_activations_and_comparisons():
    """``jax.nn`` activations whose jaxprs use comparisons, ``expm1`` or ``erfc`` (leaky_relu, elu, selu,
    hard_tanh, mish, celu, log_sigmoid, exact gelu) around a Yat layer, a bare nmn layer, and the squashers."""
    jax = pytest.importorskip("jax")
    from flax import nnx

    import nmn.nnx as N

    acts = [
        jax.nn.leaky_relu,
        jax.nn.elu,
        jax.nn.selu,
        jax.nn.hard_tanh,
        jax.nn.mish,
        jax.nn.celu,
        jax.nn.log_sigmoid,
        lambda h: jax.nn.gelu(h, approximate=False),
        jax.nn.relu6,
        jax.nn.hard_swish,
        jax.nn.hard_sigmoid,
        jax.nn.soft_sign,
    ]

    class Net(nnx.Module):
        def __init__(self):
            self.yat = N.YatNMN(4, 4, rngs=nnx.Rngs(0))

        def __call__(self, x):
            h = self.yat(x) - 1.0
            y = sum(0.1 * f(h) for f in acts)
            s = jax.numpy.abs(y)
            return y + N.softermax(s, n=2.0) + N.softer_sigmoid(s, sharpness=3.0) + N.soft_tanh(s)

    for model in (Net(), N.YatNMN(4, 3, rngs=nnx.Rngs(1))):
        x = RNG.normal(size=(2, 4)).astype(np.float32)
        proto = export(model, x, framework="nnx")
        fresh = RNG.normal(size=(3, 4)).astype(np.float32)
        _close(run_onnx(proto, {proto.graph.input[0].name: fresh})[0], np.asarray(model(fresh)))
    squash = [n.op_type for n in export(Net(), x, framework="nnx").graph.node if n.op_type in SQUASH_OPS]
    assert sorted(squash) == ["SoftTanh", "SofterSigmoid", "Softermax"]


# ------------------------------------------------------------------------------------------------------ mlx
def test_mlx_standard_layers_and_activations():
    """The standard mlx.nn layers around Yat layers (Linear, Conv, BatchNorm, pools, LayerNorm, RMSNorm,
    Embedding, Dropout as identity) and every activation module and function of the shared table (issue 12
    item 5: the MLX exporter knew five activations and no RMSNorm)."""
    mx = pytest.importorskip("mlx.core")
    import mlx.nn as mnn

    import nmn.mlx as nm

    acts = [
        mnn.ReLU6(),
        mnn.LeakyReLU(0.2),
        mnn.ELU(0.7),
        mnn.CELU(0.5),
        mnn.SELU(),
        mnn.Hardswish(),
        mnn.HardTanh(),
        mnn.Mish(),
        mnn.Softsign(),
        mnn.LogSigmoid(),
        mnn.Softmin(),
        mnn.GELU(approx="tanh"),
        mnn.SiLU(),
    ]
    fns = [  # looked up at call time, as a model's __call__ does (the exporter routes them while it traces)
        lambda h: mnn.leaky_relu(h, 0.3),
        lambda h: mnn.elu(h, alpha=0.5),
        lambda h: mnn.celu(h, 0.8),
        lambda h: mnn.relu6(h),
        lambda h: mnn.selu(h),
        lambda h: mnn.hardswish(h),
        lambda h: mnn.hard_tanh(h, -0.5, 0.5),
        lambda h: mnn.mish(h),
        lambda h: mnn.softsign(h),
        lambda h: mnn.log_sigmoid(h),
        lambda h: mnn.tanh(h),
        lambda h: mnn.log_softmax(h, axis=-1),
        lambda h: mnn.softmin(h, axis=-1),
    ]

    class Net(mnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = mnn.Conv2d(3, 8, 3, padding=1)
            self.bn = mnn.BatchNorm(8)
            self.yconv = nm.YatConv2D(8, 3, in_channels=8, padding="same")
            self.pool = mnn.MaxPool2d(2)
            self.avg = mnn.AvgPool2d(2, stride=1)
            self.drop = mnn.Dropout(0.3)
            self.ln = mnn.LayerNorm(8)
            self.rms = mnn.RMSNorm(8, eps=1e-4)
            self.acts = acts
            self.lin = mnn.Linear(8, 6)
            self.yat = nm.YatNMN(4, in_features=6)

        def __call__(self, x):
            h = self.yconv(self.bn(self.conv(x)))
            h = self.avg(self.pool(h)).mean(axis=(1, 2))
            h = self.rms(self.ln(self.drop(h)))
            for act in self.acts:
                h = h + 0.1 * act(h)
            for fn in fns:
                h = h + 0.1 * fn(h)
            return self.yat(self.lin(h))

    mx.random.seed(0)
    model = Net()
    model.rms.weight = mx.random.uniform(0.5, 1.5, (8,))
    model.bn.running_mean = mx.random.uniform(-0.5, 0.5, (8,))
    model.bn.running_var = mx.random.uniform(0.5, 1.5, (8,))
    model.eval()
    x = mx.array(RNG.normal(size=(2, 6, 6, 3)).astype(np.float32))
    proto = export(model, x, framework="mlx")
    fresh = RNG.normal(size=(3, 6, 6, 3)).astype(np.float32)
    _close(run_onnx(proto, {proto.graph.input[0].name: fresh})[0], np.array(model(mx.array(fresh))), tol=1e-4)
    ops = set(_ops(proto))
    assert {"Conv", "BatchNormalization", "YatConv", "MaxPool", "AveragePool", "LayerNormalization"} <= ops
    assert {"Clip", "LeakyRelu", "Elu", "Celu", "Selu", "HardSwish", "Softsign", "LogSoftmax", "YatDense"} <= ops
    assert "rms.weight" in {t.name for t in proto.graph.initializer}


def test_mlx_embedding_with_rms_norm_loads_and_trains():
    """An exported RMSNorm's weight loads as a trainable parameter (it gets a gradient) in MLX."""
    mx = pytest.importorskip("mlx.core")
    import mlx.nn as mnn

    from nmn.interchange import load

    class Net(mnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = mnn.Embedding(11, 8)
            self.rms = mnn.RMSNorm(8)
            self.out = mnn.Linear(8, 3)

        def __call__(self, ids):
            return self.out(self.rms(self.embed(ids)))

    mx.random.seed(1)
    model = Net()
    ids = mx.array(RNG.integers(0, 11, (2, 5)).astype(np.int32))
    proto = export(model, ids, framework="mlx")
    fresh = RNG.integers(0, 11, (3, 5)).astype(np.int32)
    _close(run_onnx(proto, {proto.graph.input[0].name: fresh})[0], np.array(model(mx.array(fresh))))
    loaded = load(proto, "mlx")
    from mlx.utils import tree_flatten

    grads = mnn.value_and_grad(loaded, lambda m, i: (m(i) ** 2).sum())(loaded, mx.array(fresh))[1]
    flat = dict(tree_flatten(grads))
    rms = [k for k in flat if "rms" in k]
    assert rms and all(float(mx.abs(flat[k]).sum()) > 0 for k in rms), sorted(flat)
