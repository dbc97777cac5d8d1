"""The framework-neutral half of loading: run an :class:`OnnxGraph` with a framework's op table, and write a
loaded (possibly retrained) model back to ONNX with the file's own names.

A loaded model in any framework is an ordinary module of that framework holding the file's tensors as native
parameters; its forward pass is :func:`execute` over the graph's nodes: ``nmn`` nodes call the framework's Yat
layers, standard nodes call the framework's ops (``table``: ONNX op type -> ``fn(args, attrs)``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from nmn.interchange import emit
from nmn.interchange.graph import GraphBuilder
from nmn.interchange.reader import NodeSpec, OnnxGraph, UnsupportedModelError

OpTable = dict[str, Callable[[list, dict], Any]]


def check_supported(graph: OnnxGraph, table: OpTable, framework: str) -> None:
    """Raise :class:`UnsupportedModelError` listing every node whose op ``table`` lacks."""
    missing = sorted({f"{n.domain or 'ai.onnx'}::{n.op} (node {n.name!r})" for n in graph.nodes
                      if n.name not in graph.node_layer and not _skipped(graph, n) and n.op not in table})
    if missing:
        raise UnsupportedModelError(f"cannot load into {framework}: {len(missing)} unsupported node(s):\n  - "
                                    + "\n  - ".join(missing))


def _skipped(graph: OnnxGraph, node: NodeSpec) -> bool:
    """A ``Softplus`` that turns a layer's raw epsilon into its value belongs to that Yat layer."""
    if node.op != "Softplus" or not node.inputs or node.inputs[0] not in graph.initializers:
        return False
    return any(spec.param_inits.get("epsilon_param") == node.inputs[0] for spec in graph.layers.values())


def execute(graph: OnnxGraph, inputs: list, *, tensor: Callable[[str], Any], table: OpTable,
            yat: Callable[[NodeSpec, list], Any]) -> list:
    """Run the graph: ``inputs`` in graph-input order, ``tensor(name)`` gives an initializer as a host tensor."""
    if len(inputs) != len(graph.inputs):
        names = [i[0] for i in graph.inputs]
        raise ValueError(f"the loaded model takes {len(names)} input(s) {names}, got {len(inputs)}")
    env: dict[str, Any] = {name: x for (name, _, _), x in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        if _skipped(graph, node):
            continue
        args = [None if not i else env[i] if i in env else tensor(i) for i in node.inputs]
        out = yat(node, args) if node.name in graph.node_layer else table[node.op](args, node.attrs)
        if len(node.outputs) == 1:
            env[node.outputs[0]] = out
        else:
            for name, value in zip(node.outputs, out):
                env[name] = value
    return [env[o] for o in graph.outputs]


def replay(graph: OnnxGraph, *, source: str, param: Callable[[str], np.ndarray],
           yat_spec: Callable[[str], tuple[str, dict, dict]]) -> GraphBuilder:
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
            b.record(emit.LayerRecord(entry["name"], entry["kind"], entry["config"], dict(entry["params"]),
                                      entry["node"], dict(entry.get("trainable", {})), dict(entry.get("host", {}))))
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
            names = {k: v[len(spec.name) + 1:] for k, v in spec.param_inits.items()
                     if v.startswith(spec.name + ".")}
            out = emit.yat_layer(b, spec.name, kind, config, params, ins, in_shape=graph_shape(graph, node.inputs[0]),
                                 call=call, param_names=names, trainable=spec.trainable, pads=node.attrs.get("pads"))
            env[node.outputs[0]] = out
            done_layers[spec.name] = out
            continue
        real_args = []
        for i, a in zip(node.inputs, args):
            if not i:
                real_args.append("")
            elif i in env:
                real_args.append(env[i])
            else:
                if i not in inits:
                    inits[i] = b.initializer(i, param(i))
                real_args.append(inits[i])
        outs = b.node(node.op, real_args, node.attrs, domain=node.domain, name=node.name,
                      outputs=node.outputs if len(node.outputs) > 1 else [node.outputs[0]])
        outs = outs if isinstance(outs, list) else [outs]
        for o, new in zip(node.outputs, outs):
            env[o] = new
    for out in graph.outputs:
        b.output(env[out], out if env[out] != out else None)
    return b


def graph_shape(graph: OnnxGraph, value: str):
    """The (inferred) shape of a value of the original graph, or ``None``."""
    return graph.shapes.get(value)
