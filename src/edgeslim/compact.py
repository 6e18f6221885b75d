"""Strip what an ONNX file carries for people, not for the runtime: long tensor names, node
names, doc strings and shape annotations.

Quantizers name every tensor after its whole history (``5.conv2.weight_quantized_scale``) and
exporters after the module path; on a 12k-parameter INT8 model those strings are a third of the
file. The stored weights keep their names, because reports name layers after them, and so do
the graph's inputs and outputs; every other tensor gets a short one. The values, the graph and
its outputs are unchanged.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import onnx

from edgeslim.graph import GraphWalk, external_files


def compact_graph(graph: onnx.GraphProto) -> None:
    weights = {name for _, name in GraphWalk(graph).weighted_nodes()}
    kept = {v.name for v in [*graph.input, *graph.output]} | weights | {""}
    numbers = itertools.count()
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if name in kept:
            return name
        while name not in renamed:
            candidate = format(next(numbers), "x")
            if candidate not in kept:
                renamed[name] = candidate
        return renamed[name]

    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
        tensor.doc_string = ""
    for node in graph.node:
        node.name = ""
        node.doc_string = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    graph.doc_string = ""


def compact(path: str | Path) -> int:
    """Compact the ONNX file at ``path`` in place; the bytes saved (0 when left alone)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    has_subgraphs = any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for n in model.graph.node
        for a in n.attribute
    )
    if has_subgraphs or external_files(model, path):
        return 0
    before = path.stat().st_size
    compact_graph(model.graph)
    model.doc_string = ""
    partial = path.with_name(f".{path.name}.compact")
    onnx.save(model, str(partial))
    partial.replace(path)
    return before - path.stat().st_size
