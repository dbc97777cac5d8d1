"""Export half of the JAX route: trace a Flax model to a jaxpr in which every known layer is one marked region,
and write that jaxpr through the :class:`~nmn.interchange.graph.GraphBuilder`.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import ClosedJaxpr, Literal

from nmn.interchange import emit
from nmn.interchange.graph import ExportError, GraphBuilder

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


_UNARY = {
    "neg": "Neg",
    "exp": "Exp",
    "log": "Log",
    "tanh": "Tanh",
    "logistic": "Sigmoid",
    "erf": "Erf",
    "sqrt": "Sqrt",
    "abs": "Abs",
    "sign": "Sign",
    "floor": "Floor",
    "ceil": "Ceil",
    "sin": "Sin",
    "cos": "Cos",
}
_BINARY = {
    "add": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "div": "Div",
    "max": "Max",
    "min": "Min",
    "pow": "Pow",
    "gt": "Greater",
    "lt": "Less",
    "ge": "GreaterOrEqual",
    "le": "LessOrEqual",
    "eq": "Equal",
    "and": "And",
    "or": "Or",
}
_IDENTITY = {"stop_gradient", "copy", "copy_p", "optimization_barrier"}
_REDUCE = {"reduce_sum": "ReduceSum", "reduce_max": "ReduceMax", "reduce_min": "ReduceMin"}


class JaxprWriter:
    """Translates jaxpr equations to ONNX nodes; layer regions go to ``emit_layer(call, inputs, avals)``."""

    def __init__(self, b: GraphBuilder, calls: list[Call], emit_layer: Callable):
        self.b, self.calls, self.emit_layer = b, calls, emit_layer
        self.unsupported: list[str] = []
        self.squashers = 0

    def value(self, env, v, dtype=np.float32):
        if isinstance(v, Literal):
            val = np.asarray(v.val)
            if val.dtype.kind == "f":
                val = val.astype(np.float32)
            return self.b.constant("const", val)
        return env[v]

    def run(self, jaxpr, consts, inputs: list[str]) -> list[str]:
        env = {}
        for var, c in zip(jaxpr.constvars, consts):
            arr = np.asarray(c)
            env[var] = self.b.constant("const", arr.astype(np.float32) if arr.dtype.kind == "f" else arr)
        for var, name in zip(jaxpr.invars, inputs):
            env[var] = name
        eqns = list(jaxpr.eqns)
        i = 0
        while i < len(eqns):
            eqn = eqns[i]
            k = _scope(eqn)
            if k is not None:
                j = i
                while j < len(eqns) and _scope(eqns[j]) == k:
                    j += 1
                first, last = eqns[i], eqns[j - 1]
                ins = [self.value(env, v) for v in first.invars]
                avals = [v.aval for v in first.invars]
                out = self.emit_layer(self.calls[k], ins, avals, last.outvars[0].aval)
                env[last.outvars[0]] = out
                i = j
                continue
            sq = _squash_scope(eqn)
            if sq is not None:
                j = i
                while j < len(eqns) and _squash_scope(eqns[j]) == sq:
                    j += 1
                group = eqns[i:j]
                made = {v for e in group for v in e.outvars}
                external = [v for e in group for v in e.invars if not isinstance(v, Literal) and v not in made]
                kind, config = squash_config(sq)
                self.squashers += 1
                env[group[-1].outvars[0]] = emit.yat_layer(
                    self.b, f"{kind}_{self.squashers}", kind, config, {}, [self.value(env, external[0])]
                )
                i = j
                continue
            outs = self.eqn(env, eqn)
            if outs is not None:
                for var, name in zip(eqn.outvars, outs):
                    env[var] = name
            i += 1
        return [self.value(env, v) for v in jaxpr.outvars]

    def eqn(self, env, eqn):
        b = self.b
        p = eqn.primitive.name
        ins = lambda: [self.value(env, v) for v in eqn.invars]
        params = eqn.params
        if p in (
            "custom_jvp_call",
            "custom_vjp_call",
            "custom_vjp_call_jaxpr",
            "pjit",
            "jit",
            "closed_call",
            "remat",
            "checkpoint",
        ):
            inner = params.get("call_jaxpr") or params.get("jaxpr") or params.get("fun_jaxpr")
            if inner is None:
                self.unsupported.append(p)
                return [b.fresh("unsupported") for _ in eqn.outvars]
            closed = inner if hasattr(inner, "consts") else ClosedJaxpr(inner, ())
            return self.run(closed.jaxpr, closed.consts, ins())
        if p in _IDENTITY:
            return ins()[: len(eqn.outvars)]
        if p in _UNARY:
            return [b.node(_UNARY[p], ins())]
        if p in _BINARY:
            return [b.node(_BINARY[p], ins())]
        if p == "ne":
            return [b.node("Not", [b.node("Equal", ins())])]
        if p == "not" and eqn.invars[0].aval.dtype == jnp.bool_:
            return [b.node("Not", ins())]
        if p in ("expm1", "erfc"):  # exp(x) - 1, 1 - erf(x)
            one = b.constant("one", np.array(1.0, eqn.invars[0].aval.dtype))
            if p == "expm1":
                return [b.node("Sub", [b.node("Exp", ins()), one])]
            return [b.node("Sub", [one, b.node("Erf", ins())])]
        if p == "rsqrt":
            return [b.node("Reciprocal", [b.node("Sqrt", ins())])]
        if p == "log1p":
            return [b.node("Log", [b.node("Add", [ins()[0], b.constant("one", np.array(1.0, np.float32))])])]
        if p == "integer_pow":
            y = params["y"]
            x = ins()[0]
            if y == 2:
                return [b.node("Mul", [x, x])]
            return [b.node("Pow", [x, b.constant("exponent", np.array(float(y), np.float32))])]
        if p == "square":
            x = ins()[0]
            return [b.node("Mul", [x, x])]
        if p == "convert_element_type":
            from nmn.interchange.graph import onnx_dtype

            return [b.node("Cast", ins(), {"to": onnx_dtype(params["new_dtype"])})]
        if p == "reshape":
            old = eqn.invars[0].aval.shape
            new = list(params["new_sizes"])
            if new and old and new[0] == old[0]:
                new[0] = 0  # keep the (symbolic) batch dimension
            return [emit.reshape(b, ins()[0], new)]
        if p == "transpose":
            return [b.node("Transpose", ins(), {"perm": list(params["permutation"])})]
        if p == "squeeze":
            axes = b.constant("axes", np.array(list(params["dimensions"]), np.int64))
            return [b.node("Squeeze", [ins()[0], axes])]
        if p == "expand_dims":
            axes = b.constant("axes", np.array(list(params["dimensions"]), np.int64))
            return [b.node("Unsqueeze", [ins()[0], axes])]
        if p == "broadcast_in_dim":
            shape, dims = params["shape"], params["broadcast_dimensions"]
            x = ins()[0]
            missing = [d for d in range(len(shape)) if d not in dims]
            if missing and eqn.invars[0].aval.ndim:  # a scalar (maybe a 1-element constant) broadcasts as is
                x = b.node("Unsqueeze", [x, b.constant("axes", np.array(missing, np.int64))])
            target = [1 if i == 0 else int(s) for i, s in enumerate(shape)]
            return [b.node("Expand", [x, b.constant("shape", np.array(target, np.int64))])]
        if p in _REDUCE:
            axes = b.constant("axes", np.array(list(params["axes"]), np.int64))
            return [b.node(_REDUCE[p], [ins()[0], axes], {"keepdims": 0})]
        if p == "concatenate":
            return [b.node("Concat", ins(), {"axis": int(params["dimension"])})]
        if p == "select_n":
            c, *cases = ins()
            if len(cases) != 2:
                self.unsupported.append("select_n with more than two cases")
                return [b.fresh("unsupported")]
            cond = c if eqn.invars[0].aval.dtype == jnp.bool_ else b.node("Cast", [c], {"to": 9})
            return [b.node("Where", [cond, cases[1], cases[0]])]
        if p in ("reduce_window_max", "reduce_window_sum"):
            return [self.pool(eqn, ins()[0])]
        self.unsupported.append(p)
        return [b.fresh("unsupported") for _ in eqn.outvars]

    def pool(self, eqn, x):
        params = eqn.params
        window, strides, padding = params["window_dimensions"], params["window_strides"], params["padding"]
        rank = len(window) - 2
        if (
            window[0] != 1
            or window[-1] != 1
            or strides[0] != 1
            or strides[-1] != 1
            or any(d != 1 for d in params["base_dilation"])
            or any(d != 1 for d in params["window_dilation"])
        ):
            self.unsupported.append(f"{eqn.primitive.name} (only channels-last spatial windows)")
            return self.b.fresh("unsupported")
        pads = [tuple(int(v) for v in p) for p in padding[1:-1]]
        kind = "max" if eqn.primitive.name == "reduce_window_max" else "avg"
        kernel, steps = list(window[1:-1]), list(strides[1:-1])
        if kind == "max":
            return emit.pool(
                self.b, "max", x, kernel=kernel, strides=steps, pads=pads, channels_last=True, name="max_pool"
            )
        # reduce_window_sum = average pooling (zeros counted) x window size
        y = self._avg_pool_including_pads(x, kernel, steps, pads, rank)
        return self.b.node("Mul", [y, self.b.constant("window", np.array(float(np.prod(kernel)), np.float32))])

    def _avg_pool_including_pads(self, x, kernel, strides, pads, rank):
        b = self.b
        x = b.node("Transpose", [x], {"perm": [0, rank + 1, *range(1, rank + 1)]})
        attrs = {
            "kernel_shape": kernel,
            "strides": strides,
            "pads": [p[0] for p in pads] + [p[1] for p in pads],
            "count_include_pad": 1,
        }
        y = b.node("AveragePool", [x], attrs)
        return b.node("Transpose", [y], {"perm": [0, *range(2, rank + 2), 1]})
