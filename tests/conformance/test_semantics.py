"""One meaning in six frameworks (issue 18): the behaviour rows that the forward/gradient table cannot see.

Each row is checked against an independent oracle: the float64 numpy reference of the ``nmn`` function
(``onnx_ops.reference``) for masks, the host framework's own layer for transposed-conv output shapes, and plain
inequalities on freshly drawn weights for initialisation.

| row | expectation (every framework) | test |
|---|---|---|
| mask (B, Lq, Lk) | per batch element, broadcast over heads (Keras MHA, Flax); B == H | ``test_mask_3d_is_per_batch`` |
| mask (B, H, Lq, Lk) | per head | ``test_mask_4d_is_per_head`` |
| mask of another rank | one-line ``ValueError`` naming the layer | ``test_mask_bad_rank`` |
| attention init | q, k, v and output kernels drawn independently | ``test_attention_projections_independent`` |
| defaults | performer ``num_features`` from ``nmn.core.options.DEFAULTS`` | ``test_performer_default_features`` |
| attention alpha | a parameter under softmax only (it cancels under l1, softermax, the performer); every parameter gets a non-zero gradient | ``test_attention_alpha_only_where_it_trains`` |
| alpha in a file where it cancels | loads as ``constant_alpha`` in every framework, output equal to onnxruntime | ``test_file_alpha_that_cancels_loads`` |
| mask (B, Lq, Lk) as a graph input | exported with a head axis (``Unsqueeze``), onnxruntime equals the host for B == H and B != H | ``test_mask_3d_input_exports_per_batch`` |
| that file | loads in every framework, output equal to onnxruntime | ``test_mask_3d_file_loads_everywhere`` |
| squashers | one ``nmn::`` node each from every exporter, functional and layer/module forms, ``sharpness`` = ``n`` | ``test_squashers_export_as_nmn_nodes`` |
| subclassed keras.Model | the keras exporter refuses it with ExportError (no layer graph) | ``test_keras_subclassed_model_export_is_refused`` |
| random-feature defaults | ``performer_kind`` and the RAY sizes default to ``nmn.core.options.DEFAULTS`` | ``test_random_feature_defaults`` |
| random-feature keywords | a kind keyword where it does nothing, or a bad value: one ``ValueError`` naming the layer and keyword | ``test_random_feature_keyword_errors`` |
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from onnx_ops import reference
from tests.conformance import cases as case_table
from tests.conformance.test_conformance import ADAPTERS
from tests.frameworks import require


def _oracle(case, mask4):
    p = case.params
    x = case.inputs[0]
    return reference.YatMultiHeadAttention(
        x,
        x,
        x,
        mask4,
        p["q_weight"],
        p["q_bias"],
        p["k_weight"],
        p["k_bias"],
        p["v_weight"],
        p["v_bias"],
        p["out_weight"],
        p["out_bias"],
        p["alpha"],
        np.float32(case.config["epsilon"]),
        num_heads=case.config["num_heads"],
    )


def _masks(b, h, length, seed):
    rng = np.random.default_rng(seed)
    m3 = rng.random((b, length, length)) > 0.4
    m3[np.arange(b), :, 0] = True  # no fully masked row: every row's weights depend on the mask
    m4 = rng.random((b, h, length, length)) > 0.4
    m4[..., 0] = True
    return m3, m4


def _run(adapter, case, mask):
    if adapter is None:
        pytest.skip("framework not installed")
    case.call = {"mask": mask}
    layer = adapter.build(case.kind, case.config, case.params)
    return np.asarray(adapter.forward(layer, case.kind, case.inputs, case.call), np.float64)


@pytest.mark.parametrize("b", [2, 3], ids=["batch==heads", "batch!=heads"])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_mask_3d_is_per_batch(adapter, b):
    case = case_table.attention_case("mask3", b=b, h=2, l=5)
    m3, _ = _masks(b, 2, 5, 1)
    expected = _oracle(case, m3[:, None])
    got = _run(adapter, case, m3)
    scale = float(np.max(np.abs(expected)))
    assert np.max(np.abs(got - expected)) <= 1e-5 * scale, f"{adapter.name}: (B, Lq, Lk) mask is not per batch"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_mask_4d_is_per_head(adapter):
    case = case_table.attention_case("mask4", b=2, h=2, l=5)
    _, m4 = _masks(2, 2, 5, 2)
    expected = _oracle(case, m4)
    got = _run(adapter, case, m4)
    scale = float(np.max(np.abs(expected)))
    assert np.max(np.abs(got - expected)) <= 1e-5 * scale, f"{adapter.name}: (B, H, Lq, Lk) mask is not per head"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_mask_bad_rank(adapter):
    case = case_table.attention_case("mask5", b=2, h=2, l=5)
    with pytest.raises(ValueError, match=r"mask must be \(Lq, Lk\), \(B, Lq, Lk\) or \(B, H, Lq, Lk\)"):
        _run(adapter, case, np.ones((1, 2, 2, 5, 5), bool))


# ------------------------------------------------------------------------------------- initialisation


def _kernels_torch():
    from nmn.torch import MultiHeadYatAttention, RotaryYatAttention

    out = []
    for layer in (MultiHeadYatAttention(8, 2), RotaryYatAttention(8, 2, max_seq_len=8)):
        out.append([p.weight.detach().numpy() for p in (layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj)])
    return out


def _kernels_keras():
    import keras

    from nmn.keras import MultiHeadYatAttention, RotaryYatAttention

    out = []
    for layer in (
        MultiHeadYatAttention(8, 2),
        RotaryYatAttention(8, 2, max_seq_len=8),
        MultiHeadYatAttention(8, 2, seed=3),
    ):
        layer(keras.ops.ones((1, 4, 8)))
        out.append(
            [keras.ops.convert_to_numpy(w) for w in (layer.q_kernel, layer.k_kernel, layer.v_kernel, layer.out_kernel)]
        )
    # a seeded layer is reproducible: two layers with the same seed draw the same four kernels
    again = MultiHeadYatAttention(8, 2, seed=3)
    again(keras.ops.ones((1, 4, 8)))
    np.testing.assert_array_equal(out[-1][0], keras.ops.convert_to_numpy(again.q_kernel))
    return out


def _kernels_tf():
    import tensorflow as tf

    from nmn.tf import MultiHeadYatAttention, RotaryYatAttention

    out = []
    for layer in (MultiHeadYatAttention(8, 2), RotaryYatAttention(8, 2, max_seq_len=8)):
        layer(tf.ones((1, 4, 8)))
        out.append([w.numpy() for w in (layer.q_kernel, layer.k_kernel, layer.v_kernel, layer.out_kernel)])
    return out


def _kernels_nnx():
    from flax import nnx

    from nmn.nnx import MultiHeadAttention, RotaryYatAttention

    out = []
    for layer in (
        MultiHeadAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0)),
        RotaryYatAttention(num_heads=2, in_features=8, max_seq_len=8, rngs=nnx.Rngs(0)),
    ):
        out.append([np.asarray(m.kernel[...]) for m in (layer.query, layer.key, layer.value, layer.out)])
    return out


def _kernels_linen():
    import jax
    import jax.numpy as jnp

    from nmn.linen import MultiHeadAttention

    variables = MultiHeadAttention(num_heads=2, qkv_features=8).init(jax.random.PRNGKey(0), jnp.ones((1, 4, 8)))
    params = variables["params"]
    return [[np.asarray(params[k]["kernel"]).reshape(8, -1) for k in ("query", "key", "value", "out")]]


def _kernels_mlx():
    from nmn.mlx import MultiHeadYatAttention

    layer = MultiHeadYatAttention(8, 2)
    return [[np.asarray(m.weight) for m in (layer.query_proj, layer.key_proj, layer.value_proj, layer.out_proj)]]


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_attention_projections_independent(framework):
    require(framework)
    for kernels in globals()[f"_kernels_{framework}"]():
        assert len(kernels) == 4, f"{framework}: expected 4 projection kernels, got {len(kernels)}"
        for i in range(4):
            for j in range(i + 1, 4):
                diff = float(np.max(np.abs(kernels[i] - kernels[j])))
                assert diff > 1e-3, f"{framework}: projection kernels {i} and {j} start equal (max diff {diff:.2g})"


# ------------------------------------------------------------------------------------------- defaults


def _default_of(framework):
    if framework == "torch":
        from nmn.torch import MultiHeadYatAttention as cls
    elif framework == "keras":
        from nmn.keras import MultiHeadYatAttention as cls
    elif framework == "tf":
        from nmn.tf import MultiHeadYatAttention as cls
    elif framework == "nnx":
        from nmn.nnx import MultiHeadAttention as cls
    elif framework == "linen":
        from nmn.linen import MultiHeadAttention as cls

        return cls.__dataclass_fields__["num_features"].default
    else:
        from nmn.mlx import MultiHeadYatAttention as cls
    return inspect.signature(cls.__init__).parameters["num_features"].default


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_performer_default_features(framework):
    require(framework)
    from nmn.core.options import DEFAULTS

    assert _default_of(framework) == DEFAULTS["performer_num_features"] == 256


# ------------------------------------------------------------------------------------------- random features


def _mha_class(framework):
    return importlib.import_module(f"nmn.{framework}").MultiHeadYatAttention


def _build_mha(framework, **kw):
    """Construct (and for Linen, initialise: its checks run in setup) one ``MultiHeadYatAttention(8, 2, **kw)``."""
    cls = _mha_class(framework)
    if framework == "nnx":
        from flax import nnx

        return cls(2, 8, rngs=nnx.Rngs(0), **kw)
    if framework == "linen":
        import jax

        layer = cls(2, qkv_features=8, **kw)
        layer.init(jax.random.PRNGKey(0), np.ones((1, 3, 8), np.float32))
        return layer
    return cls(8, 2, **kw)


def _defaults_of(framework, name):
    cls = _mha_class(framework)
    if framework == "linen":
        return cls.__dataclass_fields__[name].default
    return inspect.signature(cls.__init__).parameters[name].default


_RF_KEYS = ("performer_kind", "performer_sketch_m", "performer_num_radial", "performer_radial_dim")


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_random_feature_defaults(framework):
    """Every framework's ``MultiHeadYatAttention`` has nmn 0.3's random-feature keywords with DEFAULTS' values."""
    require(framework)
    from nmn.core.options import DEFAULTS

    got = {k: _defaults_of(framework, k) for k in _RF_KEYS}
    assert got == {k: DEFAULTS[k] for k in _RF_KEYS}, f"{framework}: {got}"


_RF_BAD = [
    ({"performer_kind": "radial"}, r"performer_kind='radial' has no effect with use_performer=False"),
    ({"use_performer": True, "performer_kind": "maclaurin", "performer_sketch_m": 4}, r"performer_sketch_m=4"),
    ({"use_performer": True, "performer_kind": "radial", "performer_nmax": 3}, r"performer_nmax=3 has no effect"),
    ({"use_performer": True, "performer_kind": "radial", "num_features": 32}, r"num_features=32 has no effect"),
    ({"use_performer": True, "performer_kind": "maclaurin", "performer_nmax": 65}, r"performer_nmax must be"),
    ({"use_performer": True, "performer_kind": "radial", "performer_num_radial": 0}, r"performer_num_radial"),
    ({"use_performer": True, "performer_kind": "anchor"}, r"performer_kind must be one of"),
]


@pytest.mark.parametrize("bad", [pytest.param(b, id=str(i)) for i, b in enumerate(_RF_BAD)])
@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_random_feature_keyword_errors(framework, bad):
    """A random-feature keyword with no effect (or out of range) is one ValueError naming the layer and the
    keyword, the same in every framework (nmn.core.spec.AttentionSpec.build says it once)."""
    require(framework)
    kw, words = bad
    with pytest.raises(ValueError, match=r"MultiHeadYatAttention: .*" + words):
        _build_mha(framework, **kw)


# ------------------------------------------------------------------------------------------- squashers


def _squashers(framework):
    """``(softer_sigmoid, soft_tanh, to_numpy, from_numpy)`` of a framework's public functional forms."""
    if framework == "torch":
        import torch

        from nmn.torch import soft_tanh, softer_sigmoid

        return softer_sigmoid, soft_tanh, lambda y: y.numpy(), torch.as_tensor
    if framework in ("nnx", "linen"):
        import jax.numpy as jnp

        mod = __import__(f"nmn.{framework}", fromlist=["softer_sigmoid"])
        return mod.softer_sigmoid, mod.soft_tanh, np.asarray, jnp.asarray
    if framework == "keras":
        import keras

        from nmn.keras import soft_tanh, softer_sigmoid

        return softer_sigmoid, soft_tanh, keras.ops.convert_to_numpy, keras.ops.convert_to_tensor
    if framework == "tf":
        import tensorflow as tf

        from nmn.tf import soft_tanh, softer_sigmoid

        return softer_sigmoid, soft_tanh, lambda y: y.numpy(), tf.constant
    import mlx.core as mx

    from nmn.mlx import soft_tanh, softer_sigmoid

    return softer_sigmoid, soft_tanh, np.asarray, mx.array


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_squasher_keywords(framework):
    """The seed README's ``softer_sigmoid(x, sharpness=1)``: ``sharpness`` is ``n`` everywhere, default 1."""
    require(framework)
    sig, tanh, to_np, from_np = _squashers(framework)
    x = np.linspace(0.1, 3.0, 7).astype(np.float32)
    for n in (1.0, 2.0, 0.5):
        p = x.astype(np.float64) ** n
        np.testing.assert_allclose(to_np(sig(from_np(x), sharpness=n)), p / (1 + p), rtol=2e-6)
        np.testing.assert_allclose(to_np(sig(from_np(x), n=n)), p / (1 + p), rtol=2e-6)
        np.testing.assert_allclose(to_np(tanh(from_np(x), sharpness=n)), (p - 1) / (p + 1), rtol=2e-6, atol=1e-7)
    p = x.astype(np.float64)
    np.testing.assert_allclose(to_np(sig(from_np(x))), p / (1 + p), rtol=2e-6)  # default n = sharpness = 1
    with pytest.raises(ValueError, match="softer_sigmoid: n and sharpness name the same power"):
        sig(from_np(x), n=3.0, sharpness=2.0)


# ----------------------------------------------------------------------------- transposed-conv output shapes

_TRANSPOSE_GRID = [
    (pad, op, s, d, k)
    for pad in ("valid", "same")
    for op in (None, 0, 1, 2)
    for s in (1, 2, 3)
    for d in (1, 2)
    for k in (2, 3)
]


def _host_shape(host, x, **kw):
    try:
        layer = host(**kw)
        try:
            return tuple(layer(x).shape)
        except ValueError:
            raise
        except Exception:  # TF's CPU kernels do not run dilation > 1: the host layer's declared output shape
            return tuple(layer.compute_output_shape(tuple(x.shape)))
    except ValueError:  # the host refuses this combination (e.g. output_padding >= stride)
        return None


@pytest.mark.parametrize("framework", ["keras", "tf"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_transpose_shape_equals_host(framework, rank):
    """Every padding / output_padding / stride / dilation: the Yat layer's output shape is the host layer's."""
    if framework == "tf":
        tf = pytest.importorskip("tensorflow")
        import nmn.tf as mod

        host_mod, x = tf.keras.layers, tf.ones((1, *(4,) * rank, 1))
    else:
        keras = pytest.importorskip("keras")
        import nmn.keras as mod

        host_mod, x = keras.layers, keras.ops.ones((1, *(4,) * rank, 1))
    host = getattr(host_mod, f"Conv{rank}DTranspose")
    yat = getattr(mod, f"YatConvTranspose{rank}D")
    grid = _TRANSPOSE_GRID if rank == 2 else [g for g in _TRANSPOSE_GRID if g[4] == 3 and g[3] == 1]
    compared = 0
    for pad, op, s, d, k in grid:
        kw = dict(filters=2, kernel_size=k, strides=s, padding=pad, output_padding=op, dilation_rate=d)
        want = _host_shape(host, x, **kw)
        if want is None:
            continue
        got = tuple(yat(**kw)(x).shape)
        assert got == want, f"{framework} YatConvTranspose{rank}D({kw}): shape {got}, host {want}"
        compared += 1
    assert compared >= len(grid) // 3, f"only {compared} of {len(grid)} combinations were accepted by the host"


@pytest.mark.parametrize(
    "padding,output_padding,strides,kernel", [("same", 1, 2, 3), ("valid", 0, 3, 2), ("same", 0, 2, 3)]
)
def test_conv_transpose_keras_geometry_interchange(padding, output_padding, strides, kernel):
    """The Keras shape survives export: onnxruntime and a torch load give the keras layer's output."""
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    import nmn.keras as nk
    from nmn.interchange import keras_io, torch_io

    x = keras.Input((4, 4, 2), name="x")
    layer = nk.YatConvTranspose2D(3, kernel, strides=strides, padding=padding, output_padding=output_padding, name="yt")
    model = keras.Model(x, layer(x))
    xs = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype(np.float32)
    want = keras.ops.convert_to_numpy(model(xs))
    host = keras.layers.Conv2DTranspose(3, kernel, strides=strides, padding=padding, output_padding=output_padding)
    assert want.shape == tuple(host.compute_output_shape(xs.shape))
    proto = keras_io.export(model, xs)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: xs})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(want))))
    loaded = torch_io.load(proto)
    out = loaded(torch.as_tensor(xs))
    out = out[0] if isinstance(out, (list, tuple)) else out
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(want))))


# ------------------------------------------------------------------------------------------- attention alpha

_ALPHA_ROWS = {
    "softmax": {},
    "l1": {"normalization": "l1"},
    "softermax": {"normalization": "softermax", "power": 2.0},
    "performer": {"use_performer": True},
}


@pytest.mark.parametrize("row", list(_ALPHA_ROWS))
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_attention_alpha_only_where_it_trains(adapter, row):
    """``use_alpha=True`` gives an alpha parameter only under softmax (issue 18 item 2); after one backward pass
    every parameter of every framework has a non-zero gradient (the oracle: a parameter that cancels would get
    exactly the float64 finite difference 0 of the ONNX reference)."""
    if adapter is None:
        pytest.skip("framework not installed")
    case = case_table.attention_case(f"alpha-{row}", **_ALPHA_ROWS[row])
    assert ("alpha" in case.params) == (row == "softmax"), f"{row}: the case table disagrees with nmn.core.spec"
    layer = adapter.build(case.kind, case.config, case.params)
    rng = np.random.default_rng(7)
    cotangent = rng.normal(size=(2, 5, 8)).astype(np.float32)
    grads = adapter.grads(layer, case.kind, case.inputs, case.call, cotangent)
    expected = {f"{p}_{w}" for p in ("q", "k", "v", "out") for w in ("weight", "bias")}
    expected |= {"alpha"} if row == "softmax" else set()
    expected |= {"proj"} if row == "performer" else set()
    assert set(grads) - {"input0"} == expected, f"{adapter.name} {row}: parameters {sorted(set(grads) - {'input0'})}"
    for name, g in grads.items():
        if name == "proj":  # a fixed random projection (a buffer), not trained
            continue
        size = float(np.max(np.abs(np.asarray(g, np.float64))))
        assert size > 1e-7, f"{adapter.name} {row}: the gradient of {name} is zero (max |g| = {size:.3g})"


def _old_file(normalization, alpha):
    """A file as nmn wrote it before issue 18 item 2: a trainable alpha tensor on an attention whose alpha
    cancels (made from a softmax export by switching the node's and the manifest's normalization)."""
    import json

    import torch

    from nmn.interchange import export
    from nmn.interchange.manifest import MANIFEST_KEY
    from nmn.torch import MultiHeadYatAttention

    torch.manual_seed(0)
    layer = MultiHeadYatAttention(8, 2)
    with torch.no_grad():
        layer.alpha.fill_(alpha)
    model = export(torch.nn.Sequential(layer).eval(), torch.randn(2, 5, 8))
    (node,) = [n for n in model.graph.node if n.op_type == "YatMultiHeadAttention"]
    for attr in node.attribute:
        if attr.name == "normalization":
            attr.s = normalization.encode()
    (entry,) = [e for e in model.metadata_props if e.key == MANIFEST_KEY]
    manifest = json.loads(entry.value)
    for layer_entry in manifest["layers"]:
        if layer_entry["kind"] == "MultiHeadYatAttention":
            layer_entry["config"]["normalization"] = normalization
    entry.value = json.dumps(manifest)
    return model


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_file_alpha_that_cancels_loads(framework):
    """An alpha tensor on an l1 attention in a file loads as a constant alpha: the same output as onnxruntime
    running the file (the oracle), and no alpha parameter in the loaded layer."""
    require(framework)
    pytest.importorskip("torch")
    from nmn.interchange import load, predict, read_model, run_onnx

    model = _old_file("l1", 1.7)
    (spec,) = [s for s in read_model(model).layers.values() if s.kind == "MultiHeadYatAttention"]
    assert "alpha" not in spec.params and spec.config["constant_alpha"] == pytest.approx(1.7)
    x = np.random.default_rng(3).normal(size=(3, 5, 8)).astype(np.float32)
    (expected,) = run_onnx(model, {model.graph.input[0].name: x})
    (got,) = predict(load(model, framework), framework, [x])
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------- squashers export


def _squash_model(framework, form):
    """``(model, export options, forward)`` of ``y = yat(x); softermax(y, n=2) + softer_sigmoid(y, sharpness=3) +
    soft_tanh(y)`` in ``framework``, with the functional squashers or the host's layer/module forms."""
    if framework == "torch":
        import torch

        import nmn.torch as nt

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.yat = nt.YatNMN(4, 4)
                self.sm, self.ss, self.st = nt.Softermax(n=2.0), nt.SofterSigmoid(sharpness=3.0), nt.SoftTanh()

            def forward(self, x):
                h = self.yat(x)
                if form == "module":
                    return self.sm(h) + self.ss(h) + self.st(h)
                return nt.softermax(h, n=2.0) + nt.softer_sigmoid(h, sharpness=3.0) + nt.soft_tanh(h)

        torch.manual_seed(0)
        model = Net().eval()
        return model, {}, lambda a: model(torch.as_tensor(a)).detach().numpy()
    if framework == "keras":
        import keras

        import nmn.keras as nk

        x = keras.Input((4,))
        h = nk.YatNMN(4)(x)
        if form == "module":
            y = nk.Softermax(n=2.0)(h) + nk.SofterSigmoid(sharpness=3.0)(h) + nk.SoftTanh()(h)
        else:
            y = nk.softermax(h, n=2.0) + nk.softer_sigmoid(h, sharpness=3.0) + nk.soft_tanh(h)
        model = keras.Model(x, y)
        return model, {}, lambda a: keras.ops.convert_to_numpy(model(a))
    if framework == "tf":
        import tensorflow as tf

        import nmn.tf as ntf

        class TfNet(tf.Module):
            def __init__(self):
                super().__init__()
                self.yat = ntf.YatNMN(4)

            def __call__(self, x):
                h = self.yat(x)
                return ntf.softermax(h, n=2.0) + ntf.softer_sigmoid(h, sharpness=3.0) + ntf.soft_tanh(h)

        model = TfNet()
        return model, {}, lambda a: model(tf.constant(a)).numpy()
    if framework == "nnx":
        from flax import nnx

        import nmn.nnx as N

        class NnxNet(nnx.Module):
            def __init__(self):
                self.yat = N.YatNMN(4, 4, rngs=nnx.Rngs(0))

            def __call__(self, x):
                h = self.yat(x)
                return N.softermax(h, n=2.0) + N.softer_sigmoid(h, sharpness=3.0) + N.soft_tanh(h)

        model = NnxNet()
        return model, {}, lambda a: np.asarray(model(a))
    if framework == "linen":
        import flax.linen as ln
        import jax

        import nmn.linen as L

        class LinenNet(ln.Module):
            @ln.compact
            def __call__(self, x):
                h = L.YatNMN(4)(x)
                return L.softermax(h, n=2.0) + L.softer_sigmoid(h, sharpness=3.0) + L.soft_tanh(h)

        model = LinenNet()
        variables = model.init(jax.random.PRNGKey(0), np.ones((2, 4), np.float32))
        return model, {"variables": variables}, lambda a: np.asarray(model.apply(variables, a))
    import mlx.core as mx
    import mlx.nn as mnn

    import nmn.mlx as nm

    class MlxNet(mnn.Module):
        def __init__(self):
            super().__init__()
            self.yat = nm.YatNMN(4, in_features=4)

        def __call__(self, x):
            h = self.yat(x)
            return nm.softermax(h, n=2.0) + nm.softer_sigmoid(h, sharpness=3.0) + nm.soft_tanh(h)

    model = MlxNet()
    return model, {}, lambda a: np.array(model(mx.array(a)))


_SQUASH_FORMS = [(f, "functional") for f in ("torch", "keras", "tf", "nnx", "linen", "mlx")]
_SQUASH_FORMS += [("torch", "module"), ("keras", "module")]


@pytest.mark.parametrize("framework,form", _SQUASH_FORMS, ids=[f"{f}-{g}" for f, g in _SQUASH_FORMS])
def test_squashers_export_as_nmn_nodes(framework, form):
    """Every exporter writes each squasher (functional form, and the host's layer/module form where it has one)
    as one ``nmn::`` node with its power (``sharpness`` is ``n``), none of its arithmetic, and the file computes
    what the host model does (the oracle: onnxruntime running the nmn functions). Keras: its functional forms
    on ``keras.Input`` tensors used to be written as ``power``/``sum`` operations it could not export."""
    require(framework)
    from nmn.interchange import export, run_onnx

    model, options, forward = _squash_model(framework, form)
    x = np.random.default_rng(4).uniform(0.1, 2.0, (2, 4)).astype(np.float32)
    proto = export(model, x, framework=framework, **options)
    squash = {n.op_type: n for n in proto.graph.node if n.op_type in ("Softermax", "SofterSigmoid", "SoftTanh")}
    assert sorted(squash) == ["SoftTanh", "SofterSigmoid", "Softermax"], [n.op_type for n in proto.graph.node]
    assert all(n.domain == "nmn" for n in squash.values())
    powers = {op: next(a.f for a in n.attribute if a.name == "n") for op, n in squash.items()}
    assert powers == {"Softermax": 2.0, "SofterSigmoid": 3.0, "SoftTanh": 1.0}, powers
    assert not {"Pow", "ReduceSum"} & {n.op_type for n in proto.graph.node}
    fresh = np.random.default_rng(5).uniform(0.1, 2.0, (3, 4)).astype(np.float32)
    want = forward(fresh)
    (got,) = run_onnx(proto, {proto.graph.input[0].name: fresh})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(want))))


def test_keras_subclassed_model_export_is_refused():
    """A subclassed ``keras.Model`` has no layer graph: nmn's ExportError says so and what to do (it used to
    export the layers as a chain and drop the rest of ``call``, a file that computes something else)."""
    keras = pytest.importorskip("keras")
    import nmn.keras as nk
    from nmn.interchange import ExportError, export

    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.yat = nk.YatNMN(4)

        def call(self, x):
            return nk.softermax(self.yat(x), n=2.0) * 3.0

    model = Sub()
    x = np.ones((2, 4), np.float32)
    model(x)
    with pytest.raises(ExportError, match=r"sub: a subclassed keras.Model \(Sub\).*keras.Model\(inputs, outputs\)"):
        export(model, x, framework="keras")


# ------------------------------------------------------------------------------------ (B, Lq, Lk) mask export


def _masked_model(framework):
    """``(model, export options, forward(x, mask))``: one ``MultiHeadYatAttention(8, 2)`` over ``x (B, 5, 8)``
    with a ``mask`` graph input, in ``framework``."""
    if framework == "torch":
        import torch

        import nmn.torch as nt

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nt.MultiHeadYatAttention(8, 2)

            def forward(self, x, mask):
                return self.attn(x, mask=mask)

        torch.manual_seed(0)
        model = Net().eval()
        return model, {}, lambda x, m: model(torch.as_tensor(x), torch.as_tensor(m)).detach().numpy()
    if framework == "keras":
        import keras

        import nmn.keras as nk

        x, m = keras.Input((5, 8)), keras.Input((5, 5), dtype="bool")
        model = keras.Model([x, m], nk.MultiHeadYatAttention(8, 2)(x, attention_mask=m))
        return model, {}, lambda a, b: keras.ops.convert_to_numpy(model([a, b]))
    if framework == "tf":
        import tensorflow as tf

        import nmn.tf as ntf

        class TfNet(tf.Module):
            def __init__(self):
                super().__init__()
                self.attn = ntf.MultiHeadYatAttention(8, 2)

            def __call__(self, x, mask):
                return self.attn(x, mask=mask)

        model = TfNet()
        return model, {}, lambda a, b: model(tf.constant(a), tf.constant(b)).numpy()
    if framework == "nnx":
        from flax import nnx

        import nmn.nnx as N

        class NnxNet(nnx.Module):
            def __init__(self):
                self.attn = N.MultiHeadYatAttention(2, 8, rngs=nnx.Rngs(0))

            def __call__(self, x, mask):
                return self.attn(x, mask=mask)

        model = NnxNet()
        return model, {}, lambda a, b: np.asarray(model(a, b))
    if framework == "linen":
        import flax.linen as ln
        import jax

        import nmn.linen as L

        class LinenNet(ln.Module):
            @ln.compact
            def __call__(self, x, mask):
                return L.MultiHeadYatAttention(2, qkv_features=8)(x, mask=mask)

        model = LinenNet()
        variables = model.init(jax.random.PRNGKey(0), np.ones((2, 5, 8), np.float32), np.ones((2, 5, 5), bool))
        return model, {"variables": variables}, lambda a, b: np.asarray(model.apply(variables, a, b))
    import mlx.core as mx
    import mlx.nn as mnn

    import nmn.mlx as nm

    class MlxNet(mnn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nm.MultiHeadYatAttention(8, 2)

        def __call__(self, x, mask):
            return self.attn(x, x, x, mask=mask)

    model = MlxNet()
    return model, {}, lambda a, b: np.array(model(mx.array(a), mx.array(b)))


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_mask_3d_input_exports_per_batch(framework):
    """A ``(B, Lq, Lk)`` mask graph input exports with its meaning: the exporter adds the head axis the ``nmn``
    function's MASK (broadcast against (B, H, Lq, Lk)) needs, so onnxruntime running the file equals the host
    model on a fresh batch, with batch == heads (where numpy broadcasting would silently pair batch with
    heads) and batch != heads (where it would fail). Before: every exporter failed on either batch size."""
    require(framework)
    from nmn.interchange import export, run_onnx

    model, options, forward = _masked_model(framework)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    m3, _ = _masks(2, 2, 5, 7)
    proto = export(model, [x, m3], framework=framework, **options)
    assert "Unsqueeze" in [n.op_type for n in proto.graph.node]
    for b in (2, 3):
        fresh = rng.normal(size=(b, 5, 8)).astype(np.float32)
        mask, _ = _masks(b, 2, 5, 8 + b)
        want = forward(fresh, mask)
        names = [i.name for i in proto.graph.input]
        (got,) = run_onnx(proto, dict(zip(names, [fresh, mask])))
        scale = float(np.max(np.abs(want)))
        assert np.max(np.abs(got - want)) <= 1e-5 * scale, f"{framework}: batch {b}"


@pytest.mark.parametrize("framework", ["torch", "keras", "tf", "nnx", "linen", "mlx"])
def test_mask_3d_file_loads_everywhere(framework):
    """The file of a ``(B, Lq, Lk)`` mask input (its ``Unsqueeze`` before the ``nmn`` node) loads into every
    framework and computes what onnxruntime computes from it, for batch != heads."""
    require(framework)
    pytest.importorskip("torch")
    from nmn.interchange import export, load, predict, run_onnx

    model, _, _ = _masked_model("torch")
    rng = np.random.default_rng(9)
    m2, _ = _masks(2, 2, 5, 10)
    proto = export(model, [rng.normal(size=(2, 5, 8)).astype(np.float32), m2])
    x = rng.normal(size=(3, 5, 8)).astype(np.float32)
    m3, _ = _masks(3, 2, 5, 11)
    (want,) = run_onnx(proto, {"x": x, "mask": m3})
    (got,) = predict(load(proto, framework), framework, [x, m3])
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(want))))
