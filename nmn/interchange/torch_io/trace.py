"""The ``torch.fx`` trace behind :mod:`nmn.interchange.torch_io`'s exporter: nmn (and standard ``torch.nn``) layers
and nmn's functional squashers are leaves; ``YatEmbed.attend`` becomes one marked call."""

from __future__ import annotations

import numpy as np
import torch
import torch.fx
import torch.nn as nn

from nmn.interchange.graph import ExportError


def _yat_types():
    from nmn.torch import spec

    return (
        spec.YatNMN,
        spec._YatConvNd,
        spec._YatConvTransposeNd,
        spec.MultiHeadYatAttention,
        spec.RotaryYatAttention,
        spec.YatEmbed,
        spec.Softermax,
        spec.SofterSigmoid,
        spec.SoftTanh,
    )


def _attend_marker(layer_path: str, query):  # a call_function target standing for ``embed.attend(query)``
    raise RuntimeError("placeholder for YatEmbed.attend inside traced graphs; never executed")


class _Tracer(torch.fx.Tracer):
    def __init__(self, yat_types, leaf_functions=()):
        super().__init__(autowrap_functions=tuple(leaf_functions))
        self.yat_types = yat_types

    def is_leaf_module(self, m, qualname):
        return isinstance(m, self.yat_types) or super().is_leaf_module(m, qualname)


def _squasher_functions():
    import nmn.torch as nt

    return (nt.softermax, nt.softer_sigmoid, nt.soft_tanh)


def _bare_graph(model: nn.Module, n_inputs: int) -> tuple[torch.fx.Graph, str]:
    """The graph of a model that is itself one leaf layer (``export(nt.YatNMN(4, 3), x)``): fx would trace into
    its ``forward`` (and stop at its input checks), so the one ``call_module`` node is written here. The layer is
    named after its class, as the MLX exporter names a bare layer."""
    import inspect

    name = type(model).__name__
    try:
        params = [
            p.name
            for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    params = (params + [f"input_{i}" for i in range(len(params), n_inputs)])[:n_inputs]
    graph = torch.fx.Graph()
    args = tuple(graph.placeholder(p) for p in params)
    graph.output(graph.call_module(name, args))
    return graph, name


def _trace(model: nn.Module, n_inputs: int = 1) -> tuple[torch.fx.Graph, dict]:
    """``(graph, modules by qualified name)``: nmn layers, standard ``torch.nn`` layers and calls of nmn's
    functional squashers (``nt.softermax(x)``, or ``softermax(x)`` imported by name) are leaves."""
    import nmn.torch as nt
    import nmn.torch.functional as ntf

    squashers = _squasher_functions()
    tracer = _Tracer(_yat_types(), squashers)
    if tracer.is_leaf_module(model, ""):
        graph, name = _bare_graph(model, n_inputs)
        return graph, {name: model}
    original = nt.YatEmbed.attend

    def attend(self, query):
        if isinstance(query, torch.fx.Proxy):
            return tracer.create_proxy("call_function", _attend_marker, (tracer.path_of_module(self), query), {})
        return original(self, query)

    def leaf(fn):
        def call(*args, **kwargs):
            if any(isinstance(a, torch.fx.Proxy) for a in (*args, *kwargs.values())):
                return tracer.create_proxy("call_function", fn, args, kwargs)
            return fn(*args, **kwargs)

        return call

    # ``nt.softermax(x)`` is an attribute lookup that fx's autowrap (module globals only) does not see
    patched = [(mod, fn.__name__, fn) for mod in (nt, ntf) for fn in squashers if getattr(mod, fn.__name__, None) is fn]
    nt.YatEmbed.attend = attend
    for mod, attr, fn in patched:
        setattr(mod, attr, leaf(fn))
    try:
        return tracer.trace(model), dict(model.named_modules())
    except Exception as err:
        raise ExportError(
            f"{type(model).__name__}: torch.fx could not trace forward() ({type(err).__name__}: "
            f"{err}); nmn export needs a forward without data-dependent Python control flow"
        ) from err
    finally:
        nt.YatEmbed.attend = original
        for mod, attr, fn in patched:
            setattr(mod, attr, fn)


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _np_param(t):
    return None if t is None else _np(t).astype(np.float32, copy=False)
