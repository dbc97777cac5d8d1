"""Export walk of the JAX route: the jaxpr of a Flax model, recorded with each known layer as one marked region
(:mod:`nmn.interchange.jax_io.record`), written equation by equation through the
:class:`~nmn.interchange.graph.GraphBuilder`: a layer region by the layer emitter given to :class:`JaxprWriter`, a
squasher scope as one ``nmn::`` node, any other equation by the emitter registered for its primitive in
:data:`PRIMITIVES`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Literal

from nmn.interchange import emit
from nmn.interchange.graph import GraphBuilder
from nmn.interchange.jax_io.record import Call, _scope, _squash_scope, squash_config
from nmn.interchange.registry import Registry

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
        """Write one equation through the emitter registered for its primitive in :data:`PRIMITIVES`."""
        p = eqn.primitive.name
        fn = PRIMITIVES.get(p)
        if fn is None:
            return self.unknown(eqn)

        def ins():
            return [self.value(env, v) for v in eqn.invars]

        return fn(self, eqn, ins)

    def unknown(self, eqn):
        self.unsupported.append(eqn.primitive.name)
        return [self.b.fresh("unsupported") for _ in eqn.outvars]

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


# ---------------------------------------------------------------------------------------------- primitive emitters
# primitive name -> emitter(writer, eqn, ins) returning the output names; ``ins()`` writes the inputs (a literal
# becomes a new constant at each call, so each emitter calls it exactly once per input use)
PRIMITIVES = Registry("jaxpr primitives")
_CALLS = ("custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr", "pjit", "jit", "closed_call", "remat")


@PRIMITIVES.register(*_CALLS, "checkpoint")
def _call(w, eqn, ins):
    params = eqn.params
    inner = params.get("call_jaxpr") or params.get("jaxpr") or params.get("fun_jaxpr")
    if inner is None:
        return w.unknown(eqn)
    closed = inner if hasattr(inner, "consts") else ClosedJaxpr(inner, ())
    return w.run(closed.jaxpr, closed.consts, ins())


@PRIMITIVES.register(*_IDENTITY)
def _identity(w, eqn, ins):
    return ins()[: len(eqn.outvars)]


def _unary(w, eqn, ins):
    return [w.b.node(_UNARY[eqn.primitive.name], ins())]


def _binary(w, eqn, ins):
    return [w.b.node(_BINARY[eqn.primitive.name], ins())]


PRIMITIVES.add(_UNARY, _unary)
PRIMITIVES.add(_BINARY, _binary)


@PRIMITIVES.register("ne")
def _ne(w, eqn, ins):
    return [w.b.node("Not", [w.b.node("Equal", ins())])]


@PRIMITIVES.register("not")
def _not(w, eqn, ins):
    if eqn.invars[0].aval.dtype != jnp.bool_:
        return w.unknown(eqn)
    return [w.b.node("Not", ins())]


@PRIMITIVES.register("expm1", "erfc")
def _expm1_erfc(w, eqn, ins):  # exp(x) - 1, 1 - erf(x)
    b = w.b
    one = b.constant("one", np.array(1.0, eqn.invars[0].aval.dtype))
    if eqn.primitive.name == "expm1":
        return [b.node("Sub", [b.node("Exp", ins()), one])]
    return [b.node("Sub", [one, b.node("Erf", ins())])]


@PRIMITIVES.register("rsqrt")
def _rsqrt(w, eqn, ins):
    return [w.b.node("Reciprocal", [w.b.node("Sqrt", ins())])]


@PRIMITIVES.register("log1p")
def _log1p(w, eqn, ins):
    b = w.b
    return [b.node("Log", [b.node("Add", [ins()[0], b.constant("one", np.array(1.0, np.float32))])])]


@PRIMITIVES.register("integer_pow")
def _integer_pow(w, eqn, ins):
    b, y, x = w.b, eqn.params["y"], ins()[0]
    if y == 2:
        return [b.node("Mul", [x, x])]
    return [b.node("Pow", [x, b.constant("exponent", np.array(float(y), np.float32))])]


@PRIMITIVES.register("square")
def _square(w, eqn, ins):
    x = ins()[0]
    return [w.b.node("Mul", [x, x])]


@PRIMITIVES.register("convert_element_type")
def _convert(w, eqn, ins):
    from nmn.interchange.graph import onnx_dtype

    return [w.b.node("Cast", ins(), {"to": onnx_dtype(eqn.params["new_dtype"])})]


@PRIMITIVES.register("reshape")
def _reshape(w, eqn, ins):
    old = eqn.invars[0].aval.shape
    new = list(eqn.params["new_sizes"])
    if new and old and new[0] == old[0]:
        new[0] = 0  # keep the (symbolic) batch dimension
    return [emit.reshape(w.b, ins()[0], new)]


@PRIMITIVES.register("transpose")
def _transpose(w, eqn, ins):
    return [w.b.node("Transpose", ins(), {"perm": list(eqn.params["permutation"])})]


@PRIMITIVES.register("squeeze", "expand_dims")
def _squeeze(w, eqn, ins):
    axes = w.b.constant("axes", np.array(list(eqn.params["dimensions"]), np.int64))
    op = "Squeeze" if eqn.primitive.name == "squeeze" else "Unsqueeze"
    return [w.b.node(op, [ins()[0], axes])]


@PRIMITIVES.register("broadcast_in_dim")
def _broadcast_in_dim(w, eqn, ins):
    b = w.b
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    x = ins()[0]
    missing = [d for d in range(len(shape)) if d not in dims]
    if missing and eqn.invars[0].aval.ndim:  # a scalar (maybe a 1-element constant) broadcasts as is
        x = b.node("Unsqueeze", [x, b.constant("axes", np.array(missing, np.int64))])
    target = [1 if i == 0 else int(s) for i, s in enumerate(shape)]
    return [b.node("Expand", [x, b.constant("shape", np.array(target, np.int64))])]


@PRIMITIVES.register(*_REDUCE)
def _reduce(w, eqn, ins):
    axes = w.b.constant("axes", np.array(list(eqn.params["axes"]), np.int64))
    return [w.b.node(_REDUCE[eqn.primitive.name], [ins()[0], axes], {"keepdims": 0})]


@PRIMITIVES.register("concatenate")
def _concatenate(w, eqn, ins):
    return [w.b.node("Concat", ins(), {"axis": int(eqn.params["dimension"])})]


@PRIMITIVES.register("select_n")
def _select_n(w, eqn, ins):
    b = w.b
    c, *cases = ins()
    if len(cases) != 2:
        w.unsupported.append("select_n with more than two cases")
        return [b.fresh("unsupported")]
    cond = c if eqn.invars[0].aval.dtype == jnp.bool_ else b.node("Cast", [c], {"to": 9})
    return [b.node("Where", [cond, cases[1], cases[0]])]


@PRIMITIVES.register("reduce_window_max", "reduce_window_sum")
def _reduce_window(w, eqn, ins):
    return [w.pool(eqn, ins()[0])]
