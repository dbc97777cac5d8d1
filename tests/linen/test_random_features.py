"""nmn.linen.random_features (nmn 0.3's MAY / RAY / tensor-product attentions) and the Linen MAY / RAY layer option.

The generic tests of ``tests/nnx/test_random_features.py`` (onnxruntime, the float64 numpy formulas, the masked
quadratic readout, a central difference) run here on ``nmn.linen.random_features`` through the ``rf`` fixture;
the rest checks Linen's 0.3.5 signatures and the layer: its frozen ``'constants'``, its forward against the ONNX
MHA functions, a jitted ``init``, the spec round trip and the refusals.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nn = pytest.importorskip("flax.linen")

import jax.numpy as jnp

import nmn.linen as L
from nmn.linen import random_features as linen_rf
from tests.nnx.test_random_features import (  # noqa: F401  (collected here with this module's rf fixture)
    _ATTN,
    _FEAT,
    EMPTY,
    SIGNATURES_035,
    _close,
    _randn,
    check_signatures,
    test_attention_matches_onnxruntime,
    test_bad_arguments_say_what_was_expected,
    test_causal_readout_is_the_masked_quadratic_readout,
    test_features_match_onnxruntime_and_the_numpy_formula,
    test_gradient_wrt_query_is_the_central_difference,
    test_kappa_coefficients_and_a_0_3_5_maclaurin_dict,
    test_the_dicts_hold_the_core_arrays_and_0_3_5_keys,
)
from tests.random_features_util import ort_run


@pytest.fixture
def rf():
    return linen_rf


# nmn 0.3.5 Linen's signatures (nmn/linen/performer_yat.py, read, not imported); the tensor-product helpers take
# 0.3.5 NNX's (Linen had none), linear_attention_readout torch's
_LINEN_FEAT = [*_FEAT[:3], ("eps", 1e-6)]
LINEN_SIGNATURES = dict(
    SIGNATURES_035,
    maclaurin_coeffs=[("b", EMPTY), ("eps", EMPTY), ("nmax", EMPTY)],
    maclaurin_features=_LINEN_FEAT,
    radial_features=_LINEN_FEAT,
    maclaurin_yat_attention=_ATTN + [("eps_div", 1e-6)],
    radial_yat_attention=_ATTN + [("eps_div", 1e-6)],
)


def test_0_3_5_linen_signatures_and_the_three_import_paths():
    import nmn.linen.attention as attention_module

    check_signatures(linen_rf, L, attention_module, LINEN_SIGNATURES)
    assert linen_rf.yat_tp_attention.__module__ == "nmn.nnx.random_features"


# --------------------------------------------------------------------------------------------- the layer
NAMES = {
    "maclaurin": ("may_omega", "may_degmask", "may_scale"),
    "radial": ("ray_w1", "ray_w2", "ray_omega", "ray_phase", "ray_coef"),
}


def _module(kind, **kw):
    if kind == "maclaurin":
        opts = dict(performer_kind="maclaurin", num_features=8, performer_nmax=4)
    else:  # epsilon 1.0 for RAY: see tests/nnx/test_random_features.py::_layer
        opts = dict(performer_kind="radial", performer_sketch_m=3, performer_num_radial=2, performer_radial_dim=2)
        opts["epsilon"] = 1.0
    return L.MultiHeadYatAttention(2, use_performer=True, **opts, **kw)


def _mha_onnx(config, p, x, causal):
    ins = [x, x, x, np.ones((1, 1, 1, 1), bool)]
    for s in "qkv":
        ins += [p[f"{s}_weight"], p[f"{s}_bias"]]
    ins += [p["out_weight"], p["out_bias"], np.ones((1,), np.float32), np.array([config["epsilon"]], np.float32)]
    attrs = dict(num_heads=config["num_heads"], causal=int(causal))
    kind = config["performer_kind"]
    op = "YatMaclaurinMultiHeadAttention" if kind == "maclaurin" else "YatRadialMultiHeadAttention"
    if kind == "radial":
        attrs["bias"] = float(config["performer_bias"])
    out = ort_run(op, ins + [p[n] for n in NAMES[kind]], attrs)
    return out[0] if isinstance(out, (list, tuple)) else out


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_the_layer_constants_are_frozen_and_its_forward_is_the_onnx_function(kind):
    module = _module(kind, causal=True, performer_bias=0.5)
    x = _randn((2, 5, 8), 3)
    variables = module.init(jax.random.key(0), jnp.asarray(x))
    assert sorted(variables["constants"]) == sorted(NAMES[kind])
    assert not any(n.startswith(("may_", "ray_", "proj", "alpha")) for n in variables["params"])
    jitted = jax.jit(module.init)(jax.random.key(0), jnp.asarray(x))  # sampled through a traced key
    for n in NAMES[kind]:
        assert np.array_equal(np.asarray(jitted["constants"][n]), np.asarray(variables["constants"][n]))
    y = module.apply(variables, jnp.asarray(x))
    _, config, p = L.to_spec(module, variables)
    assert "proj" not in p and config["performer_kind"] == kind
    _close(y, _mha_onnx(config, p, x, True), 5e-5)
    grads = jax.grad(lambda prm: jnp.sum(module.apply({**variables, "params": prm}, jnp.asarray(x))))(
        variables["params"]
    )
    assert not any(n.startswith(("may_", "ray_")) for n in grads)


@pytest.mark.parametrize("kind", ["maclaurin", "radial"])
def test_the_layer_round_trips_through_the_spec(kind):
    module = _module(kind, performer_bias=1.0)
    x = jnp.asarray(_randn((1, 4, 8), 1))
    variables = module.init(jax.random.key(2), x)
    spec = L.to_spec(module, variables)
    back, back_vars = L.from_spec(*spec)
    _close(back.apply(back_vars, x), module.apply(variables, x), 1e-6)
    assert L.to_spec(back, back_vars)[1] == spec[1]
    if kind == "maclaurin":  # a MAY config without performer_nmax takes omega's degree
        config = {k: v for k, v in spec[1].items() if k != "performer_nmax"}
        assert L.from_spec(spec[0], config, spec[2])[0].performer_nmax == 4


def test_bad_layer_keywords_name_the_layer_and_the_keyword():
    x = jnp.ones((1, 3, 8))
    with pytest.raises(ValueError, match="MultiHeadYatAttention: performer_radial_dim=4 has no effect with"):
        L.MultiHeadYatAttention(2, use_performer=True, performer_kind="maclaurin", performer_radial_dim=4)
    with pytest.raises(ValueError, match="num_features=16 has no effect with performer_kind='radial'"):
        L.MultiHeadYatAttention(2, use_performer=True, performer_kind="radial", num_features=16)
    with pytest.raises(ValueError, match="RotaryYatAttention: performer_kind='maclaurin' has no effect here"):
        L.RotaryYatAttention(2, performer_kind="maclaurin").init(jax.random.key(0), x)
    module = _module("maclaurin")
    variables = module.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="takes no mask"):
        module.apply(variables, x, mask=jnp.ones((3, 3), bool))
