"""nmn 0.3's ``softplus_bias`` / ``scalar_bias`` and the conv kernel ``mask``: export -> onnxruntime -> load, in
all six frameworks (issue 17).

No file format carries these options: an exported file holds the EFFECTIVE bias (``softplus(b)`` broadcast to
``(out,)``) and the EFFECTIVE kernel (``kernel * mask``). So (1) onnxruntime running the file gives the layer's
output, (2) the file's bias initializer is the effective bias (checked against numpy's softplus of the raw
parameter) and no initializer is the raw ``(1,)`` scalar, (3) the neutral spec names none of the options, (4) the
file loads back into the same framework as a plain model computing the same thing, whose re-export carries the same
initializers. Keras runs on its current backend only.
"""

from __future__ import annotations

import numpy as np
import pytest

from nmn.interchange import export, load, predict, run_onnx
from tests.interchange.util import inits

RNG = np.random.default_rng(3)
OPTION_KEYS = ("softplus_bias", "scalar_bias", "mask")
# the rows' options (the same in every framework): dense softplus + scalar, conv2d mask + softplus (groups 2),
# convT1d mask + scalar
SOFTPLUS = {"dense": True, "conv2d": True, "convT1d": False}


def _softplus(v):
    return np.logaddexp(0.0, np.asarray(v, np.float64))


def _x(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def _mask(shape, seed):
    m = (np.random.default_rng(seed).random(shape) > 0.4).astype(np.float32)
    m.reshape(-1)[0] = 0.0  # at least one tap off
    return m


# ------------------------------------------------------------------------------- per-framework layers and calls
# each builder returns [(id, layer-or-model, x, run(x) -> numpy, export kwargs, raw bias, n_out, spec(layer))]
def _torch():
    torch = pytest.importorskip("torch")
    import nmn.torch as nt
    from nmn.torch import spec

    torch.manual_seed(0)
    rows = [
        ("dense", nt.YatNMN(5, 4, softplus_bias=True, scalar_bias=True), _x(3, 5), 4),
        ("conv2d", nt.YatConv2D(4, 6, 3, groups=2, mask=_mask((6, 2, 3, 3), 1), softplus_bias=True), _x(2, 4, 6, 6), 6),
        (
            "convT1d",
            nt.YatConvTranspose1D(3, 4, 3, stride=2, mask=_mask((3, 4, 3), 2), scalar_bias=True),
            _x(2, 3, 5),
            4,
        ),
    ]
    out = []
    for name, layer, x, n in rows:
        with torch.no_grad():
            layer.bias.normal_(0.0, 0.7)
        layer.eval()

        def run(x, layer=layer):
            with torch.no_grad():
                return layer(torch.as_tensor(x)).numpy()

        out.append((name, layer, x, run, {}, layer.bias.detach().numpy().copy(), n, spec.to_spec))
    return "torch", out


def _nnx():
    jnp = pytest.importorskip("jax.numpy")
    from flax import nnx

    import nmn.nnx as nn_
    from nmn.nnx import spec

    rngs = nnx.Rngs(0)
    rows = [
        ("dense", nn_.YatNMN(5, 4, softplus_bias=True, scalar_bias=True, rngs=rngs), _x(3, 5), 4),
        (
            "conv2d",
            nn_.YatConv2D(
                4,
                6,
                3,
                padding="VALID",
                feature_group_count=2,
                mask=_mask((3, 3, 2, 6), 1),
                softplus_bias=True,
                rngs=rngs,
            ),
            _x(2, 6, 6, 4),
            6,
        ),
        (
            "convT1d",
            nn_.YatConvTranspose1D(
                3, 4, 3, strides=2, padding="VALID", mask=_mask((3, 3, 4), 2), scalar_bias=True, rngs=rngs
            ),
            _x(2, 5, 3),
            4,
        ),
    ]
    out = []
    for name, layer, x, n in rows:
        layer.bias[...] = jnp.asarray(RNG.normal(scale=0.7, size=layer.bias.shape), jnp.float32)
        out.append(
            (
                name,
                layer,
                x,
                lambda x, layer=layer: np.asarray(layer(jnp.asarray(x))),
                {},
                np.asarray(layer.bias[...]),
                n,
                spec.to_spec,
            )
        )
    return "nnx", out


def _linen():
    jax = pytest.importorskip("jax")
    import nmn.linen as L
    from nmn.linen import spec

    rows = [
        ("dense", L.YatNMN(features=4, softplus_bias=True, scalar_bias=True), _x(3, 5), 4),
        (
            "conv2d",
            L.YatConv2D(
                features=6,
                kernel_size=3,
                padding="VALID",
                feature_group_count=2,
                mask=_mask((3, 3, 2, 6), 1),
                softplus_bias=True,
            ),
            _x(2, 6, 6, 4),
            6,
        ),
        (
            "convT1d",
            L.YatConvTranspose1D(
                features=4, kernel_size=3, strides=2, padding="VALID", mask=_mask((3, 3, 4), 2), scalar_bias=True
            ),
            _x(2, 5, 3),
            4,
        ),
    ]
    out = []
    for name, module, x, n in rows:
        variables = module.init(jax.random.key(0), x)
        params = dict(variables["params"])
        params["bias"] = RNG.normal(scale=0.7, size=params["bias"].shape).astype(np.float32)
        variables = {**variables, "params": params}
        out.append(
            (
                name,
                module,
                x,
                lambda x, m=module, v=variables: np.asarray(m.apply(v, x)),
                {"variables": variables},
                np.asarray(params["bias"]),
                n,
                lambda m, v=variables: spec.to_spec(m, v),
            )
        )
    return "linen", out


def _keras():
    keras = pytest.importorskip("keras")
    import nmn.keras as nk
    from nmn.keras import spec

    rows = [
        ("dense", nk.YatNMN(4, softplus_bias=True, scalar_bias=True), _x(3, 5), 4),
        ("conv2d", nk.YatConv2D(6, 3, groups=2, mask=_mask((3, 3, 2, 6), 1), softplus_bias=True), _x(2, 6, 6, 4), 6),
        ("convT1d", nk.YatConvTranspose1D(4, 3, strides=2, mask=_mask((3, 4, 3), 2), scalar_bias=True), _x(2, 5, 3), 4),
    ]
    out = []
    for name, layer, x, n in rows:
        model = keras.Sequential([keras.Input(x.shape[1:]), layer])
        layer.bias.assign(RNG.normal(scale=0.7, size=tuple(layer.bias.shape)).astype(np.float32))
        out.append(
            (
                name,
                model,
                x,
                lambda x, m=model: np.asarray(keras.ops.convert_to_numpy(m(x))),
                {},
                keras.ops.convert_to_numpy(layer.bias),
                n,
                lambda m: spec.to_spec(m.layers[-1]),
            )
        )
    return "keras", out


def _tf():
    tf = pytest.importorskip("tensorflow")
    import nmn.tf as ntf
    from nmn.tf import spec

    rows = [
        ("dense", ntf.YatNMN(4, softplus_bias=True, scalar_bias=True, seed=0), _x(3, 5), 4),
        (
            "conv2d",
            ntf.YatConv2D(6, 3, groups=2, mask=_mask((3, 3, 2, 6), 1), softplus_bias=True, seed=1),
            _x(2, 6, 6, 4),
            6,
        ),
        (
            "convT1d",
            ntf.YatConvTranspose1D(4, 3, strides=2, mask=_mask((3, 4, 3), 2), scalar_bias=True, seed=2),
            _x(2, 5, 3),
            4,
        ),
    ]
    out = []
    for name, layer, x, n in rows:
        layer(x)
        layer.bias.assign(RNG.normal(scale=0.7, size=tuple(layer.bias.shape)).astype(np.float32))
        out.append(
            (name, layer, x, lambda x, m=layer: m(tf.constant(x)).numpy(), {}, layer.bias.numpy(), n, spec.to_spec)
        )
    return "tf", out


def _mlx():
    mx = pytest.importorskip("mlx.core")
    import nmn.mlx as nm
    from nmn.mlx import spec

    rows = [
        ("dense", nm.YatNMN(4, in_features=5, softplus_bias=True, scalar_bias=True), _x(3, 5), 4),
        (
            "conv2d",
            nm.YatConv2D(6, 3, in_channels=4, groups=2, mask=_mask((6, 3, 3, 2), 1), softplus_bias=True),
            _x(2, 6, 6, 4),
            6,
        ),
        (
            "convT1d",
            nm.YatConvTranspose1D(4, 3, in_channels=3, strides=2, mask=_mask((4, 3, 3), 2), scalar_bias=True),
            _x(2, 5, 3),
            4,
        ),
    ]
    out = []
    for name, layer, x, n in rows:
        layer.bias = mx.array(RNG.normal(scale=0.7, size=tuple(layer.bias.shape)).astype(np.float32))
        layer.eval()
        out.append(
            (name, layer, x, lambda x, m=layer: np.array(m(mx.array(x))), {}, np.array(layer.bias), n, spec.to_spec)
        )
    return "mlx", out


BUILDERS = {"torch": _torch, "nnx": _nnx, "linen": _linen, "keras": _keras, "tf": _tf, "mlx": _mlx}


def _rows():
    for fw in BUILDERS:
        for name in ("dense", "conv2d", "convT1d"):
            yield pytest.param(fw, name, id=f"{fw}-{name}")


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(fw):
        if fw not in cache:
            cache[fw] = BUILDERS[fw]()
        return cache[fw]

    return get


# ------------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize(("fw", "name"), list(_rows()))
def test_file_carries_the_effective_params_and_loads_as_a_plain_layer(built, fw, name):
    framework, rows = built(fw)
    _, layer, x, run, kwargs, raw_bias, n_out, to_spec = next(r for r in rows if r[0] == name)
    want = run(x)
    kind, config, params = to_spec(layer)
    assert not set(OPTION_KEYS) & set(config), f"{fw} {name}: the neutral spec names an option: {config}"
    scalar = raw_bias.shape == (1,)
    effective = np.broadcast_to(_softplus(raw_bias) if SOFTPLUS[name] else raw_bias, (n_out,))
    np.testing.assert_allclose(params["bias"], effective, rtol=1e-6, atol=1e-7)

    proto = export(layer, x, framework=framework, **kwargs)
    values = list(inits(proto).values())
    assert any(v.shape == (n_out,) and np.allclose(v, effective, rtol=1e-6, atol=1e-7) for v in values), (
        f"{fw} {name}: no initializer holds the effective bias {effective}"
    )
    assert not any(v.shape == (1,) and np.allclose(v, raw_bias) for v in values if scalar), (
        f"{fw} {name}: the raw scalar bias is in the file"
    )
    (ort,) = run_onnx(proto, {proto.graph.input[0].name: x})
    scale = float(np.max(np.abs(want)))
    assert np.max(np.abs(ort - want)) <= 1e-5 * scale, f"{fw} {name}: onnxruntime differs from the layer"

    loaded = load(proto, framework)
    (got,) = predict(loaded, framework, [x])
    assert np.max(np.abs(np.asarray(got) - want)) <= 1e-5 * scale, f"{fw} {name}: the loaded model differs"
    again_kwargs = {"variables": loaded[1]} if framework == "linen" else {}
    again = export(loaded[0] if framework == "linen" else loaded, x, framework=framework, **again_kwargs)
    a, b = inits(proto), inits(again)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), (
        f"{fw} {name}: the re-export of the loaded model carries other initializers"
    )


@pytest.mark.parametrize("fw", list(BUILDERS))
def test_masked_taps_get_no_gradient_and_the_mask_is_not_a_parameter(fw):
    """Zero mask entries cut the kernel out of the product: the file's weight is zero there (whatever the kernel
    holds), and in torch the kernel's gradient is exactly zero there while the mask itself is no parameter."""
    framework, rows = BUILDERS[fw]()
    _, layer, x, _, _, _, _, to_spec = next(r for r in rows if r[0] == "conv2d")
    _, _, params = to_spec(layer)
    from nmn.core import layouts

    host_mask = {
        "torch": lambda: layer.mask.numpy(),
        "nnx": lambda: np.asarray(layer.mask[...]),
        "linen": lambda: np.asarray(layer.mask),
        "keras": lambda: layer.layers[-1].mask,
        "tf": lambda: layer.mask,
        "mlx": lambda: layer.mask,
    }[fw]()
    canonical = layouts.to_canonical(fw, "conv", host_mask, groups=2)
    assert (canonical == 0).any()
    assert np.all(params["weight"][canonical == 0] == 0), f"{fw}: masked taps are not zero in the file"
    if fw == "torch":
        import torch

        assert "mask" not in dict(layer.named_parameters()) and "mask" in layer.state_dict()
        layer.zero_grad()
        layer(torch.as_tensor(x)).square().sum().backward()
        assert torch.all(layer.weight.grad[torch.as_tensor(layer.mask) == 0] == 0)
        assert torch.any(layer.weight.grad != 0)
