"""The framework-neutral half of loading: run an :class:`OnnxGraph` with a framework's op table, and write a
loaded (possibly retrained) model back to ONNX with the file's own names.

A loaded model in any framework is an ordinary module of that framework holding the file's tensors as native
parameters; its forward pass is :func:`execute` over the graph's nodes: ``nmn`` nodes call the framework's Yat
layers, standard nodes run the shared semantics of :mod:`nmn.interchange.stdops` on the framework's primitives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nmn.core.options import SOFTERMAX_EPSILON
from nmn.interchange import emit
from nmn.interchange.graph import GraphBuilder
from nmn.interchange.reader import NodeSpec, OnnxGraph, UnsupportedModelError
from nmn.interchange.stdops import run_node, unsupported_summary


def check_supported(graph: OnnxGraph, framework: str) -> None:
    """Raise :class:`UnsupportedModelError` listing each standard op the loaders lack once, with its count."""
    ops = [n.op for n in graph.nodes if n.name not in graph.node_layer and not _skipped(graph, n)]
    message = unsupported_summary(ops, framework)
    if message:
        raise UnsupportedModelError(message)


SQUASHER_OPS = ("Softermax", "SofterSigmoid", "SoftTanh")
SQUASHER_KINDS = ("softermax", "softer_sigmoid", "soft_tanh")


def squash(functions, op: str, config: dict, x):
    """Run an ``nmn`` squasher node (one of :data:`SQUASHER_OPS`) with ``functions`` (a framework's nmn package,
    which has ``softermax``, ``softer_sigmoid``, ``soft_tanh``) and the layer's spec ``config``."""
    if op == "Softermax":
        return functions.softermax(
            x, n=config.get("n", 1.0), epsilon=config.get("epsilon", SOFTERMAX_EPSILON), axis=config.get("axis", -1)
        )
    return (functions.softer_sigmoid if op == "SofterSigmoid" else functions.soft_tanh)(x, n=config.get("n", 1.0))


def _skipped(graph: OnnxGraph, node: NodeSpec) -> bool:
    """A ``Softplus`` that turns a layer's raw epsilon into its value belongs to that Yat layer."""
    if node.op != "Softplus" or not node.inputs or node.inputs[0] not in graph.initializers:
        return False
    return any(spec.param_inits.get("epsilon_param") == node.inputs[0] for spec in graph.layers.values())


def execute(
    graph: OnnxGraph, inputs: list, *, tensor: Callable[[str], Any], prims, yat: Callable[[NodeSpec, list], Any]
) -> list:
    """Run the graph: ``inputs`` in graph-input order, ``tensor(name)`` gives an initializer as a host tensor,
    standard nodes run with :func:`nmn.interchange.stdops.run_node` on the framework's primitives ``prims``."""
    if len(inputs) != len(graph.inputs):
        names = [i[0] for i in graph.inputs]
        raise ValueError(f"the loaded model takes {len(names)} input(s) {names}, got {len(inputs)}")
    env: dict[str, Any] = {name: x for (name, _, _), x in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        if _skipped(graph, node):
            continue
        args = [None if not i else env[i] if i in env else tensor(i) for i in node.inputs]
        if node.name in graph.node_layer:
            out = yat(node, args)
            outs = out if len(node.outputs) > 1 else (out,)
        else:
            outs = run_node(prims, node.op, args, node.attrs, opset=graph.opset, n_outputs=len(node.outputs))
        for name, value in zip(node.outputs, outs):
            if name:
                env[name] = value
    outs = [env[o] if o in env else graph.initializers[o] for o in graph.outputs]
    return [prims.asarray(o) if isinstance(o, np.ndarray) else o for o in outs]  # constant-folded outputs


def replay(
    graph: OnnxGraph,
    *,
    source: str,
    param: Callable[[str], np.ndarray],
    yat_spec: Callable[[str], tuple[str, dict, dict]],
) -> GraphBuilder:
    """Rebuild a :class:`GraphBuilder` for a loaded model: same nodes and names, current parameter values.

    ``param(initializer name)`` returns the current value of a tensor (trained or constant), ``yat_spec(layer
    name)`` the current ``(kind, config, params)`` of a Yat layer.
    """
    layout = graph.manifest.get("layout") if graph.manifest else None
    b = GraphBuilder(source=source, layout=layout)
    env = {}
    for name, shape, dtype in graph.inputs:
        env[name] = b.input(name, shape, dtype)
    for entry in (graph.manifest or {}).get("layers", []):
        if entry["name"] in graph.standard:
            b.record(
                emit.LayerRecord(
                    entry["name"],
                    entry["kind"],
                    entry["config"],
                    dict(entry["params"]),
                    entry["node"],
                    dict(entry.get("trainable", {})),
                    dict(entry.get("host", {})),
                )
            )
    inits: dict[str, str] = {}
    done_layers: dict[str, str] = {}
    for node in graph.nodes:
        if _skipped(graph, node):
            continue
        args = [env.get(i, "") if i in env or not i else None for i in node.inputs]
        if node.name in graph.node_layer:
            spec = graph.layers[graph.node_layer[node.name]]
            kind, config, params = yat_spec(spec.name)
            x = next(a for a in args if a)
            call = {}
            if node.op == "YatEmbedAttend":
                call["method"] = "attend"
            if node.op.endswith("MultiHeadAttention") and node.inputs[3] not in graph.initializers:
                call["mask"] = env[node.inputs[3]]
            ins = [x]
            if "Attention" in node.op:
                ins = [env[node.inputs[0]], env[node.inputs[1]], env[node.inputs[2]]]
            names = {k: v[len(spec.name) + 1 :] for k, v in spec.param_inits.items() if v.startswith(spec.name + ".")}
            out = emit.yat_layer(
                b,
                spec.name,
                kind,
                config,
                params,
                ins,
                in_shape=graph_shape(graph, node.inputs[0]),
                call=call,
                param_names=names,
                trainable=spec.trainable,
                pads=node.attrs.get("pads"),
            )
            env[node.outputs[0]] = out
            done_layers[spec.name] = out
            continue
        real_args = []
        for i, _arg in zip(node.inputs, args):
            if not i:
                real_args.append("")
            elif i in env:
                real_args.append(env[i])
            else:
                if i not in inits:
                    inits[i] = b.initializer(i, param(i))
                real_args.append(inits[i])
        outs = b.node(
            node.op,
            real_args,
            node.attrs,
            domain=node.domain,
            name=node.name,
            outputs=node.outputs if len(node.outputs) > 1 else [node.outputs[0]],
        )
        outs = outs if isinstance(outs, list) else [outs]
        for o, new in zip(node.outputs, outs):
            env[o] = new
    for out in graph.outputs:
        b.output(env[out], out if env[out] != out else None)
    return b


def graph_shape(graph: OnnxGraph, value: str):
    """The (inferred) shape of a value of the original graph, or ``None``."""
    return graph.shapes.get(value)
