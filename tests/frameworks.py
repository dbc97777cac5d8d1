"""The six host frameworks as the tests see them: their names, the module each needs, and a skip-or-import helper.

One table for every test file that runs per framework (a missing optional framework is a skip, never a failure).

>>> HOST_MODULE["nnx"]
'flax.nnx'
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from nmn.core.names import FRAMEWORKS

__all__ = ["FRAMEWORKS", "HOST_MODULE", "require", "nmn_module"]

HOST_MODULE = {
    "torch": "torch",
    "nnx": "flax.nnx",
    "linen": "flax.linen",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx.core",
}


def require(framework: str) -> ModuleType:
    """Import the host module of ``framework`` or skip the calling test when it is not installed."""
    return pytest.importorskip(HOST_MODULE[framework], reason=f"{framework} is not installed")


def nmn_module(framework: str) -> ModuleType:
    """``nmn.<framework>``, skipping the calling test when the host framework is not installed."""
    require(framework)
    return importlib.import_module(f"nmn.{framework}")
