"""Every framework's ``from_spec`` lays canonical kernels out as :mod:`nmn.core.layouts` says (one table of
canonical <-> host permutations): a dense, a conv and a grouped conv-transpose layer built from random
canonical weights hold ``to_host(framework, kind, w, groups=g)``."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from nmn.core.layouts import to_host
from tests.conformance.cases import conv_case, conv_transpose_case, dense_case

CASES = {
    "dense": dense_case("layout-dense", n_in=5, n_out=3, seed=1),
    "conv": conv_case("layout-conv", rank=2, c=4, m=6, k=3, seed=2),
    "conv_transpose": conv_transpose_case("layout-convT", rank=2, c=4, m=6, k=3, groups=2, seed=3),
}


def _torch_kernel(spec, case):
    return spec.from_spec(case.kind, case.config, case.params).weight.detach().numpy()


def _nnx_kernel(spec, case):
    return np.asarray(spec.from_spec(case.kind, case.config, case.params).kernel[...])


def _linen_kernel(spec, case):
    _, variables = spec.from_spec(case.kind, case.config, case.params)
    return np.asarray(variables["params"]["kernel"])


def _mlx_kernel(spec, case):
    return np.array(spec.from_spec(case.kind, case.config, case.params)["kernel"])


FRAMEWORKS = {
    "torch": ("torch", "nmn.torch.spec", _torch_kernel),
    "nnx": ("flax", "nmn.nnx.spec", _nnx_kernel),
    "linen": ("flax", "nmn.linen.spec", _linen_kernel),
    "mlx": ("mlx.core", "nmn.mlx.spec", _mlx_kernel),
}


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_from_spec_kernel_is_core_layout(framework, kind):
    requirement, module, kernel_of = FRAMEWORKS[framework]
    pytest.importorskip(requirement)
    spec = importlib.import_module(module)
    case = CASES[kind]
    w = np.asarray(case.params["weight"], np.float32)
    groups = case.config.get("groups", 1)
    want = np.asarray(to_host(framework, kind, w, groups=groups))
    got = kernel_of(spec, case)
    assert got.shape == want.shape, (framework, kind, got.shape, want.shape)
    assert np.array_equal(got, want), (framework, kind)
