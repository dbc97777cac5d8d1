"""MAY / RAY attention files (issue 17): every framework exports them, onnxruntime runs them, every other loads them.

``MultiHeadYatAttention(use_performer=True, performer_kind='maclaurin' | 'radial')`` exports as one
``nmn::YatMaclaurinMultiHeadAttention`` / ``nmn::YatRadialMultiHeadAttention`` node whose sampled projections
(``may_*`` / ``ray_*``) are frozen initializers. The oracle of every comparison is onnxruntime running the file's
``nmn`` function: the exporting framework's own forward must equal it, and so must each other framework's layer
loaded from the file. Files are untrusted: a degree mask that is not a 0/1 prefix, a projection of the wrong shape
or a non-finite value is refused with an error naming the layer or node.

Sizes are tiny (head size 4, 16 MAY features of degree 6, RAY 4 x 2 x 4) and RAY runs at ``epsilon=1.0``: at the
default 1e-5 its radial frequencies (~ 1/sqrt(eps)) make float32 cosines lose ~1e-3 of the output (see
tests/conformance/cases.py).
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.frameworks import require

FRAMEWORKS = ["torch", "keras", "tf", "nnx", "linen", "mlx"]
KINDS = ["maclaurin", "radial"]
E, H, L = 8, 2, 5
RTOL = 5e-5  # of the output scale: nmn.interchange.graph.PERFORMER_RTOL, the export check's own tolerance
NODE = {"maclaurin": "YatMaclaurinMultiHeadAttention", "radial": "YatRadialMultiHeadAttention"}
PARAMS = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}


def options(kind: str) -> dict:
    """The layer keywords of a row (every framework spells these the same, issue 17's contract)."""
    if kind == "maclaurin":
        return dict(use_performer=True, performer_kind="maclaurin", num_features=16, performer_nmax=6)
    return dict(
        use_performer=True,
        performer_kind="radial",
        performer_sketch_m=4,
        performer_num_radial=2,
        performer_radial_dim=4,
        performer_bias=1.0,
        epsilon=1.0,
    )


def _model(framework: str, kind: str):
    """``(model, export options, forward(x))``: one ``MultiHeadYatAttention(8, 2, **options(kind))`` over
    ``x (B, 5, 8)`` (self-attention) in ``framework``."""
    kw = options(kind)
    if framework == "torch":
        import torch

        import nmn.torch as nt

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nt.MultiHeadYatAttention(E, H, **kw)

            def forward(self, x):
                return self.attn(x)

        torch.manual_seed(0)
        model = Net().eval()
        return model, {}, lambda x: model(torch.as_tensor(x)).detach().numpy()
    if framework == "keras":
        import keras

        import nmn.keras as nk

        x = keras.Input((L, E))
        model = keras.Model(x, nk.MultiHeadYatAttention(E, H, seed=0, **kw)(x))
        return model, {}, lambda a: keras.ops.convert_to_numpy(model(a))
    if framework == "tf":
        import tensorflow as tf

        import nmn.tf as ntf

        class TfNet(tf.Module):
            def __init__(self):
                super().__init__()
                self.attn = ntf.MultiHeadYatAttention(E, H, seed=0, **kw)

            def __call__(self, x):
                return self.attn(x)

        model = TfNet()
        return model, {}, lambda a: model(tf.constant(a)).numpy()
    if framework == "nnx":
        from flax import nnx

        import nmn.nnx as N

        class NnxNet(nnx.Module):
            def __init__(self):
                self.attn = N.MultiHeadYatAttention(H, E, rngs=nnx.Rngs(0), **kw)

            def __call__(self, x):
                return self.attn(x)

        model = NnxNet()
        return model, {}, lambda a: np.asarray(model(a))
    if framework == "linen":
        import flax.linen as ln
        import jax

        import nmn.linen as Lm

        class LinenNet(ln.Module):
            @ln.compact
            def __call__(self, x):
                return Lm.MultiHeadYatAttention(H, qkv_features=E, **kw)(x)

        model = LinenNet()
        variables = model.init(jax.random.PRNGKey(0), np.ones((2, L, E), np.float32))
        return model, {"variables": variables}, lambda a: np.asarray(model.apply(variables, a))
    import mlx.core as mx
    import mlx.nn as mnn

    import nmn.mlx as nm

    class MlxNet(mnn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nm.MultiHeadYatAttention(E, H, **kw)

        def __call__(self, x):
            return self.attn(x, x, x)

    # the projections' seed comes from mlx.random. Fixed draws everywhere (torch.manual_seed, Rngs(0), seed=0):
    # the features are sign-indefinite, so some draws put the readout's denominator near 0 for a query and
    # amplify float32 rounding past the tolerance (MLX seed 0 does, for RAY: output scale ~1e3)
    mx.random.seed(5)
    model = MlxNet()
    return model, {}, lambda a: np.array(model(mx.array(a)))


def _x(seed: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, L, E)).astype(np.float32)


@functools.cache
def _exported(framework: str, kind: str):
    """``(file, forward)`` of a row, exported once per process."""
    from nmn.interchange import export

    model, opts, forward = _model(framework, kind)
    return export(model, [_x(0)], framework=framework, **opts), forward


def _ort(proto, x):
    from nmn.interchange import run_onnx

    (y,) = run_onnx(proto, {proto.graph.input[0].name: x})
    return np.asarray(y, np.float64)


def _assert_close(got, want, what):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, onnxruntime {want.shape}"
    scale = float(np.max(np.abs(want)))
    err = float(np.max(np.abs(got - want)))
    assert err <= RTOL * scale, f"{what}: max|diff| {err:.3g} > {RTOL} x output scale {scale:.3g}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_export_is_one_node_with_frozen_projections(framework, kind):
    """The file holds one MAY / RAY node fed by the layer's projections, listed frozen in the manifest; it
    validates, and onnxruntime running it equals the framework's forward on a fresh batch size."""
    require(framework)
    from nmn.interchange import read_model, validate_model

    proto, forward = _exported(framework, kind)
    validate_model(proto)
    ops = [n.op_type for n in proto.graph.node if n.domain == "nmn"]
    assert ops == [NODE[kind]], f"{framework}: nmn nodes {ops}"
    node = next(n for n in proto.graph.node if n.op_type == NODE[kind])
    assert len(node.input) == 14 + len(PARAMS[kind])
    (spec,) = read_model(proto).layers.values()
    assert spec.config["use_performer"] and spec.config["performer_kind"] == kind
    assert [spec.param_inits[p] for p in PARAMS[kind]] == list(node.input[14:])
    assert all(spec.trainable.get(p) is False for p in PARAMS[kind]), f"{framework}: {spec.trainable}"
    if kind == "radial":
        bias = next(a.f for a in node.attribute if a.name == "bias")
        assert bias == pytest.approx(1.0)
    x = _x(5, batch=3)
    _assert_close(forward(x), _ort(proto, x), f"{framework} {kind}: the framework vs onnxruntime on its file")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", FRAMEWORKS)
@pytest.mark.parametrize("source", FRAMEWORKS)
def test_file_loads_into_every_other_framework(source, target, kind):
    """A file written by ``source`` loads into ``target`` as a MAY / RAY layer holding the file's projections:
    its output equals onnxruntime running the file."""
    if source == target:
        pytest.skip("the exporter's own forward is test_export_is_one_node_with_frozen_projections")
    require(source)
    require(target)
    from nmn.interchange import load, predict

    proto, _ = _exported(source, kind)
    x = _x(8, batch=3)
    (got,) = predict(load(proto, target), target, [x])
    _assert_close(got, _ort(proto, x), f"{source} file in {target} ({kind})")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", FRAMEWORKS)
def test_foreign_file_loads_from_its_node(target, kind):
    """Without the manifest (a file from another tool), the layer is derived from the node alone: the sizes
    from the projections' shapes, RAY's bias from the node's attribute; the output equals onnxruntime."""
    require(target)
    from nmn.interchange import load, predict, read_model

    proto = _strip_manifest(_torch_file(kind))
    (spec,) = read_model(proto).layers.values()
    assert spec.config["performer_kind"] == kind
    if kind == "maclaurin":
        assert (spec.config["num_features"], spec.config["performer_nmax"]) == (16, 6)
    else:
        sizes = [spec.config[k] for k in ("performer_sketch_m", "performer_num_radial", "performer_radial_dim")]
        assert sizes == [4, 2, 4] and spec.config["performer_bias"] == pytest.approx(1.0)
    x = _x(9, batch=2)
    (got,) = predict(load(proto, target), target, [x])
    _assert_close(got, _ort(proto, x), f"foreign {kind} file in {target}")


# ---------------------------------------------------------------------------------------------- untrusted files


def _torch_file(kind):
    pytest.importorskip("torch")
    proto, _ = _exported("torch", kind)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def _replace(proto, param, array, kind):
    """``proto`` with the initializer of the layer's ``param`` replaced by ``array`` (same name)."""
    node = next(n for n in proto.graph.node if n.op_type == NODE[kind])
    name = node.input[14 + PARAMS[kind].index(param)]
    (i,) = [i for i, t in enumerate(proto.graph.initializer) if t.name == name]
    proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.asarray(array, np.float32), name))
    return proto


def _param(proto, param, kind):
    node = next(n for n in proto.graph.node if n.op_type == NODE[kind])
    name = node.input[14 + PARAMS[kind].index(param)]
    return numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == name)).copy()


def _strip_manifest(proto):
    keep = [p for p in proto.metadata_props if p.key != "nmn.manifest"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    return proto


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "foreign"])
def test_degree_mask_that_is_not_a_prefix_is_refused(manifest):
    """DEGMASK rows must be ones then zeros (the function multiplies a row's first n_r factors): a hole in a row,
    or a value other than 0/1, is refused naming the layer's node -- with or without the manifest."""
    from nmn.interchange import read_model

    proto = _torch_file("maclaurin")
    mask = _param(proto, "may_degmask", "maclaurin")
    holed = mask.copy()
    holed[0] = 0.0
    holed[0, 0] = holed[0, 2] = 1.0
    bad = _replace(proto, "may_degmask", holed, "maclaurin")
    if not manifest:
        bad = _strip_manifest(bad)
    with pytest.raises(ValueError, match=r"node '[^']+'.*may_degmask row 0 .* ones then zeros"):
        read_model(bad)
    half = mask.copy()
    half[1, 0] = 0.5
    bad = _replace(_torch_file("maclaurin"), "may_degmask", half, "maclaurin")
    if not manifest:
        bad = _strip_manifest(bad)
    with pytest.raises(ValueError, match=r"may_degmask must hold only 0 and 1"):
        read_model(bad)


def test_projection_of_the_wrong_shape_is_refused():
    """An OMEGA whose head size disagrees with embed_dim / num_heads is refused before any loader builds a layer:
    by the manifest (its config says the shape), and in a foreign file by the shape check against the node."""
    from nmn.interchange import read_model

    proto = _torch_file("maclaurin")
    omega = _param(proto, "may_omega", "maclaurin")
    wrong = np.concatenate([omega, omega[..., :1]], axis=-1)  # D + 1 columns
    with pytest.raises(ValueError, match=r"may_omega"):
        read_model(_replace(proto, "may_omega", wrong, "maclaurin"))
    proto = _strip_manifest(_torch_file("radial"))
    w1 = _param(proto, "ray_w1", "radial")
    with pytest.raises(ValueError, match=r"ray_w2 must be \[4, 5\].*got \[4, 4\]|ray_w2"):
        read_model(_replace(proto, "ray_w2", w1[:, :-1], "radial"))


@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_projection_is_refused(kind):
    from nmn.interchange import read_model

    proto = _torch_file(kind)
    param = PARAMS[kind][0]
    values = _param(proto, param, kind)
    values.reshape(-1)[0] = np.nan
    with pytest.raises(ValueError, match=rf"{param} holds values that are not finite"):
        read_model(_replace(proto, param, values, kind))


def test_radial_bias_must_agree_with_its_node():
    """The manifest's performer_bias is what the loaders compute with, the node's bias what onnxruntime does:
    a file where they differ is refused."""
    from nmn.interchange import read_model

    proto = _torch_file("radial")
    node = next(n for n in proto.graph.node if n.op_type == NODE["radial"])
    next(a for a in node.attribute if a.name == "bias").f = 2.0
    with pytest.raises(ValueError, match=r"performer_bias=1.0 but its node .* bias=2.0"):
        read_model(proto)
