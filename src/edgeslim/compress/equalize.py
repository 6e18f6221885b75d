"""Cross-layer equalisation (Nagel et al., "Data-Free Quantization", ICCV 2019, sec. 4.1).

For two layers with a ReLU, pooling or nothing between them, y = W2 relu(W1 x + b1) is
unchanged when output channel i of W1 (and b1) is divided by s_i and input channel i of W2
multiplied by it, because relu(x / s) = relu(x) / s for s > 0. Choosing s_i =
sqrt(r1_i / r2_i), with r the largest magnitude of the channel in each layer, gives both the
same range sqrt(r1_i r2_i). Depthwise convolutions, whose channels span ranges of 100x and
more, then quantize with one scale per tensor almost as well as with one per channel. It works
on the exported ONNX graph (batch norm is already folded there), over every Conv/Gemm ->
[per-channel ops] -> Conv/Gemm pair whose middle tensors nothing else reads; ``passes`` sweeps
repeat it so chains settle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

# per-channel and positively homogeneous, f(x / s) = f(x) / s for s > 0 (ReLU6, a Clip, is not);
# the flattening ops keep channel order where the lengths match, which find_pairs checks
EQUIVARIANT = {"Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape"}


@dataclass
class Pair:
    first: onnx.NodeProto
    second: onnx.NodeProto
    first_axis: int  # the axis of the first weight that holds output channels
    second_axis: int  # the axis of the second weight that holds input channels


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """A node attribute's value (an int, a list of ints, bytes...), or ``default``."""
    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def output_axis(node: onnx.NodeProto) -> int | None:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if attribute(node, "transB", 0) else 1
    return None


def input_axis(node: onnx.NodeProto, weight: np.ndarray) -> int | None:
    if node.op_type == "Conv":
        group = attribute(node, "group", 1)
        if group == 1:
            return 1
        return 0 if group == weight.shape[0] and weight.shape[1] == 1 else None  # depthwise
    if node.op_type == "Gemm":
        return 1 if attribute(node, "transB", 0) else 0
    return None


def find_pairs(graph: onnx.GraphProto, weights: dict[str, np.ndarray]) -> list[Pair]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_user(tensor: str) -> onnx.NodeProto | None:
        readers = users.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in outputs else None

    def own_weight(node: onnx.NodeProto) -> bool:
        return len(node.input) > 1 and node.input[1] in weights and len(users[node.input[1]]) == 1

    pairs = []
    for first in graph.node:
        if output_axis(first) is None or not own_weight(first):
            continue
        second = only_user(first.output[0])
        while second is not None and second.op_type in EQUIVARIANT:
            second = only_user(second.output[0])
        if second is None or output_axis(second) is None or not own_weight(second):
            continue
        axis = input_axis(second, weights[second.input[1]])
        # channel for channel only: a flatten of a feature map feeds C*H*W inputs, not C
        w1, w2 = weights[first.input[1]], weights[second.input[1]]
        if axis is not None and w1.shape[output_axis(first)] == w2.shape[axis]:
            pairs.append(Pair(first, second, output_axis(first), axis))
    return pairs


def node_bias(node: onnx.NodeProto, weights: dict[str, np.ndarray]) -> list[str]:
    return [node.input[2]] if len(node.input) > 2 and node.input[2] in weights else []


def channel_range(weight: np.ndarray, axis: int) -> np.ndarray:
    return np.abs(np.moveaxis(weight, axis, 0)).reshape(weight.shape[axis], -1).max(axis=1)


def scale_along(weight: np.ndarray, axis: int, factor: np.ndarray) -> np.ndarray:
    shape = [1] * weight.ndim
    shape[axis] = -1
    return (weight * factor.reshape(shape)).astype(weight.dtype)


def equalize(model: onnx.ModelProto, passes: int = 4) -> dict:
    """Equalise ``model`` in place; returns the pairs and how far the ranges moved."""
    graph = model.graph
    tensors = {t.name: t for t in graph.initializer}
    weights = {name: numpy_helper.to_array(t).astype(np.float32) for name, t in tensors.items()}
    pairs = find_pairs(graph, weights)
    spread_before = spread(pairs, weights)
    for _ in range(passes):
        for pair in pairs:
            w1, w2 = pair.first.input[1], pair.second.input[1]
            r1 = channel_range(weights[w1], pair.first_axis)
            r2 = channel_range(weights[w2], pair.second_axis)
            s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.where(r2 > 0, r2, 1)), 1.0)
            weights[w1] = scale_along(weights[w1], pair.first_axis, 1 / s)
            for bias in node_bias(pair.first, weights):
                weights[bias] = (weights[bias] / s).astype(np.float32)
            weights[w2] = scale_along(weights[w2], pair.second_axis, s)
    changed = {n for p in pairs for n in (*p.first.input[1:3], p.second.input[1]) if n in weights}
    for name in changed:
        dtype = numpy_helper.to_array(tensors[name]).dtype
        tensors[name].CopyFrom(numpy_helper.from_array(weights[name].astype(dtype), name))
    return {
        "pairs": [
            f"{p.first.name or p.first.output[0]} -> {p.second.name or p.second.output[0]}"
            for p in pairs
        ],
        "channel_range_spread": {"before": spread_before, "after": spread(pairs, weights)},
    }


def spread(pairs: list[Pair], weights: dict[str, np.ndarray]) -> float:
    """The median, over the pairs' first layers, of largest / smallest channel range: how
    unevenly a per-tensor scale has to cover the channels (1 is even)."""
    ratios = []
    for pair in pairs:
        r = channel_range(weights[pair.first.input[1]], pair.first_axis)
        r = r[r > 0]
        if len(r):
            ratios.append(float(r.max() / r.min()))
    return round(float(np.median(ratios)), 2) if ratios else 1.0
