"""Recording for the JAX export walk: trace a Flax model to a jaxpr in which every known layer is one marked
region (the walk itself, :mod:`nmn.interchange.jax_io.walker`, writes that jaxpr through the
:class:`~nmn.interchange.graph.GraphBuilder`).

How a layer is found: during the export only, the ``__call__`` (and ``YatEmbed.attend``) of every known layer
class (nmn's NNX/Linen layers and Flax's Linear/Dense, Conv, ConvTranspose, LayerNorm, BatchNorm, Dropout,
Embed) runs inside ``jax.named_scope("nmnlayer<k>")`` with its array inputs and outputs passed through
``lax.optimization_barrier``. In ``jax.make_jaxpr`` of the model that gives, for each layer call, a run of
equations under that scope which opens with a barrier whose operands are the layer's inputs (in order) and
closes with one whose results are its outputs. The run becomes one ``nmn::`` node (or the standard layer's ONNX
op); the equations between layers (residual additions, activations, reshapes, pooling, reductions) are
translated primitive by primitive. Nothing is patched outside :func:`recording`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nmn.interchange.graph import ExportError

_SCOPE = re.compile(r"nmnlayer(\d+)")


@dataclass
class Call:
    """One recorded layer call: the module, the method, how its arrays map to arguments, extras."""

    module: Any
    method: str
    arg_names: list[str]
    extras: dict = field(default_factory=dict)


class Recorder:
    def __init__(self):
        self.calls: list[Call] = []
        self.depth = 0


_ACTIVE: list[Recorder] = []


def _normalize_args(cls_name, method, args, kwargs):
    """The layer's array arguments in a fixed order, and a function rebuilding the call from them."""
    if method == "__call__" and cls_name in ("MultiHeadYatAttention", "MultiHeadAttention"):
        q = args[0] if args else kwargs.pop("inputs_q")
        k = args[1] if len(args) > 1 and args[1] is not None else kwargs.pop("inputs_k", None)
        v = args[2] if len(args) > 2 and args[2] is not None else kwargs.pop("inputs_v", None)
        k = q if k is None else k
        v = k if v is None else v
        mask = kwargs.pop("mask", None)
        arrays = [q, k, v] + ([mask] if mask is not None else [])
        names = ["q", "k", "v"] + (["mask"] if mask is not None else [])

        def rebuild(xs):
            return (xs[0], xs[1], xs[2]), dict(kwargs, **({"mask": xs[3]} if mask is not None else {}))

        return arrays, names, rebuild
    if method == "__call__" and cls_name == "RotaryYatAttention":
        if kwargs.get("decode"):
            raise ExportError("RotaryYatAttention: decode=True (the KV cache) is not exported; export the full pass")
        mask = kwargs.pop("mask", None)
        arrays = [args[0]] + ([mask] if mask is not None else [])

        def rebuild(xs):
            return (xs[0],), dict(kwargs, **({"mask": xs[1]} if mask is not None else {}))

        return arrays, ["x"] + (["mask"] if mask is not None else []), rebuild
    x = args[0] if args else next(iter(kwargs.values()))
    rest = args[1:]

    def rebuild(xs):
        return (xs[0], *rest), kwargs

    return [x], ["x"], rebuild


def _patched(cls, method, original):
    def wrapper(self, *args, **kwargs):
        rec = _ACTIVE[-1] if _ACTIVE else None
        if rec is None or rec.depth > 0:
            return original(self, *args, **kwargs)
        kwargs = dict(kwargs)
        arrays, names, rebuild = _normalize_args(cls.__name__, method, list(args), kwargs)
        k = len(rec.calls)
        call = Call(self, method, names)
        rec.calls.append(call)
        rec.depth += 1
        try:
            with jax.named_scope(f"nmnlayer{k}"):
                arrays = list(lax.optimization_barrier(tuple(jnp.asarray(a) for a in arrays)))
                a2, kw2 = rebuild(arrays)
                out = original(self, *a2, **kw2)
                if not isinstance(out, jax.Array) and not hasattr(out, "shape"):
                    raise ExportError(f"{type(self).__name__}: only layers returning one array are exported")
                (out,) = lax.optimization_barrier((out,))
            call.extras["after"] = _after_call(self)
        finally:
            rec.depth -= 1
        return out

    wrapper.__wrapped__ = original
    return wrapper


def _after_call(module):
    """For a Linen module (bound during its call): its path and variables; nothing for NNX."""
    scope = getattr(module, "scope", None)
    if scope is None or not hasattr(module, "variables"):
        return None
    try:
        return {"path": tuple(scope.path), "variables": jax.tree.map(np.asarray, dict(module.variables))}
    except Exception:  # pragma: no cover - an unbound module: nothing to record
        return None


@contextlib.contextmanager
def recording(classes: list[tuple[type, str]]):
    """Patch ``classes`` (``(class, method)``) for the duration of one export and yield the recorder."""
    rec = Recorder()
    saved = []
    for cls, method in classes:
        original = getattr(cls, method, None)
        if original is None:
            continue
        saved.append((cls, method, cls.__dict__.get(method)))
        setattr(cls, method, _patched(cls, method, original))
    _ACTIVE.append(rec)
    try:
        yield rec
    finally:
        _ACTIVE.pop()
        for cls, method, own in reversed(saved):
            if own is None:
                delattr(cls, method)
            else:
                setattr(cls, method, own)


# ---------------------------------------------------------------------------------------------- jaxpr walk
_SQUASH_SCOPE = re.compile(r"nmnsquash\|([a-z_]+)\|([^/]*)")


def _squash_scope(eqn) -> str | None:
    m = _SQUASH_SCOPE.search(str(eqn.source_info.name_stack))
    return m.group(0) if m else None


def squash_config(scope: str) -> tuple[str, dict]:
    """``(kind, config)`` of a squasher from its scope name ``nmnsquash|<kind>|<n>[|<epsilon>|<axis>]``."""
    kind, *args = scope.split("|")[1:]
    values = [float(a) for a in args]
    if kind == "softermax":
        return kind, {"n": values[0], "epsilon": values[1], "axis": int(values[2])}
    return kind, {"n": values[0]}


def _scope(eqn) -> int | None:
    m = _SCOPE.search(str(eqn.source_info.name_stack))
    return int(m.group(1)) if m else None
