"""The interchange layout: one package per framework with the same entry points, no flat per-framework modules.

The oracle is the live packages: ``nmn.interchange.export``/``load`` dispatch through each package's
``ENTRY_POINTS``, so every framework must name its own, with the shared argument names.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from nmn.interchange import _MODULES, FRAMEWORKS
from nmn.interchange.registry import EntryPoints, Registry

_HOSTS = {
    "torch": "torch",
    "nnx": "flax.nnx",
    "linen": "flax.linen",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx.core",
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_framework_package_names_its_entry_points(framework):
    pytest.importorskip(_HOSTS[framework], reason=f"{framework} is not installed")
    package = importlib.import_module(f"nmn.interchange.{_MODULES[framework]}")
    entry = package.ENTRY_POINTS[framework]
    assert isinstance(entry, EntryPoints)
    export = list(inspect.signature(entry.export).parameters)
    assert export[:3] == ["model", "example_inputs", "path"], export
    assert inspect.signature(entry.export).parameters["path"].default is None
    assert list(inspect.signature(entry.load).parameters)[0] == "source"
    assert list(inspect.signature(entry.predict).parameters)[:2] == ["model", "inputs"]
    assert {f for f, m in _MODULES.items() if m == _MODULES[framework]} == set(package.ENTRY_POINTS)


@pytest.mark.parametrize(
    "old",
    ["_torch_trace", "_jax_trace", "_jax_load", "_keras_load", "_tf_load", "_mlx_trace"]
    + [f"stdops.prims_{fw}" for fw in ("torch", "jax", "keras", "tf", "mlx")],
)
def test_the_flat_modules_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"nmn.interchange.{old}")


def test_registry_keeps_the_first_emitter_and_finds_base_classes():
    table = Registry("t")
    table.add([ValueError], lambda e: "first")
    table.add([ValueError, KeyError], lambda e: "second")

    class Mine(ValueError):
        pass

    assert table.for_type(Mine)(None) == "first"
    assert table.for_type(KeyError)(None) == "second"
    assert table.for_type(TypeError) is None
    assert table.get(["unhashable"]) is None
    assert ["unhashable"] not in table
