"""Tiny hand-made models whose metrics can be worked out with pencil and paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from edgeslim.data.bundle import Dataset, DataSpec, Split


def export(model: torch.nn.Module, data: Dataset, path: Path) -> Path:
    from edgeslim.export import export_onnx

    export_onnx(model.eval(), data, path)
    return path


def random_data(shape: tuple[int, ...], classes: int = 3, n: int = 60, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)

    def split(k: int) -> Split:
        return Split(rng.normal(size=(k, *shape)).astype("float32"), rng.integers(0, classes, k))

    return Dataset(DataSpec(shape, classes), split(n), split(n // 3), split(n // 3))


def conv_linear() -> torch.nn.Module:
    """Conv 1->2 (3x3, pad 1) on 4x4, flatten, Linear 32->3.

    MACs: conv 2*4*4 outputs x 1*3*3 = 288; linear 32*3 = 96; total 384.
    Params: 2*1*3*3 + 2 + 32*3 + 3 = 119.
    """
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(32, 3)
    )


def relu_chain_onnx(path: Path) -> Path:
    """input -> Relu(a) -> Relu(b) -> Add(a, b) -> out, all float32 1x1x4x4 (64 bytes).

    Alive at each step: Relu a: {input, a} 128 B; Relu b: {a, b} 128 B; Add: {a, b, out} 192 B.
    """
    shape = [1, 1, 4, 4]
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["input"], ["a"]),
            helper.make_node("Relu", ["a"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["logits"]),
        ],
        "chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def matmul_onnx(path: Path, weight: np.ndarray) -> Path:
    """input (batch, K) @ weight (K, N): MACs K*N at batch 1, params K*N."""
    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["logits"])],
        "mm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def qdq_mlp_onnx(path: Path) -> Path:
    """x (float 1x16) -> Q -> DQ -> MatMul 16x256 -> Q -> DQ -> MatMul 256x10 -> out (float).

    Held as a runtime with fused integer kernels holds it: x 64 B (float input), xq 16 B,
    h 256 B (written as int8: only a QuantizeLinear reads it), out 40 B; DQ outputs are views.
    Alive: Q(x) {x, xq} 80 B; MatMul1 {xq, h} 272 B; MatMul2 {h, out} 296 B -> peak 296 B.
    Counted as float between the Q/DQ pairs, the peak would be DQ(hq) {hq, hd} 1,280 B.
    """
    rng = np.random.default_rng(0)
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(0, np.int8), "zero")
    w1 = numpy_helper.from_array(rng.normal(size=(16, 256)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(256, 10)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
            helper.make_node("MatMul", ["xd", "w1"], ["h"]),
            helper.make_node("QuantizeLinear", ["h", "scale", "zero"], ["hq"]),
            helper.make_node("DequantizeLinear", ["hq", "scale", "zero"], ["hd"]),
            helper.make_node("MatMul", ["hd", "w2"], ["logits"]),
        ],
        "qdq-mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [scale, zero, w1, w2],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path
