"""Every public signature of nmn carries type hints.

"Public" is what a user reaches without an underscore: the names in each package's ``__all__`` (``nmn.<framework>``,
its ``functional`` module, ``nmn.core``, ``nmn.interchange``, ``nmn.compat``) and, for a class among them, its own
``__init__`` and every public method or ``__call__`` it defines itself (what it inherits from its host framework is
the host's business). A parameter other than ``self``/``cls`` needs an annotation, and so does the return of every
function but ``__init__``. The oracle is ``inspect.signature`` over the live objects, not a list kept beside the code.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from nmn.core import names
from tests.frameworks import HOST_MODULE, require

_PACKAGES = [f"nmn.{fw}" for fw in names.FRAMEWORKS] + [f"nmn.{fw}.functional" for fw in names.FRAMEWORKS]
_PACKAGES += ["nmn.core", "nmn.interchange", "nmn.compat"]
_PACKAGES += [f"nmn.interchange.{io}" for io in ("torch_io", "jax_io", "keras_io", "tf_io", "mlx_io")]
_IO_HOST = {"torch_io": "torch", "jax_io": "nnx", "keras_io": "keras", "tf_io": "tf", "mlx_io": "mlx"}


def _module(name):
    parts = name.split(".")
    if len(parts) > 2 and parts[1] == "interchange" and parts[2] in _IO_HOST:  # nmn.interchange.<fw>_io
        parts = ["nmn", _IO_HOST[parts[2]]]
    if len(parts) > 1 and parts[1] in HOST_MODULE:
        require(parts[1])
    return importlib.import_module(name)


def _public_names(module):
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and str(getattr(v, "__module__", "")).startswith(module.__name__)
    ]


def _unhinted(fn, where):
    """The parts of ``fn``'s signature that lack a hint, as ``where(param)`` strings."""
    fn = inspect.unwrap(fn)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    out = [
        f"{where}({p.name})"
        for p in sig.parameters.values()
        if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty
    ]
    if fn.__name__ != "__init__" and sig.return_annotation is inspect.Signature.empty:
        out.append(f"{where} -> ?")
    return out


def _own_methods(cls):
    for attr, value in vars(cls).items():
        if attr.startswith("_") and attr not in ("__init__", "__call__"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            yield attr, value.__func__
        elif inspect.isfunction(value):
            yield attr, value
        elif isinstance(value, property) and value.fget is not None:
            yield attr, value.fget


def _gaps(module):
    gaps = []
    seen = set()
    for name in _public_names(module):
        obj = getattr(module, name, None)
        if obj is None or id(obj) in seen or inspect.ismodule(obj):
            continue
        seen.add(id(obj))
        if not str(getattr(obj, "__module__", "")).startswith("nmn"):
            continue  # a host object re-exported as is
        if inspect.isclass(obj):
            for attr, fn in _own_methods(obj):
                if str(getattr(fn, "__module__", "")).startswith("nmn"):
                    gaps += _unhinted(fn, f"{obj.__name__}.{attr}")
        elif callable(obj):
            gaps += _unhinted(obj, name)
    return gaps


@pytest.mark.parametrize("package", _PACKAGES)
def test_public_signatures_have_type_hints(package):
    gaps = _gaps(_module(package))
    assert not gaps, f"{package}: {len(gaps)} public parameters/returns without a type hint: {gaps[:40]}"
