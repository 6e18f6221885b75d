"""The trivial model a runtime's own memory is measured on (host side).

``model_memory_kb`` is a model's private peak less its runtime's for a model that does next to
nothing: one ReLU on the same input, loaded and run the same way (``memory``, ``worker``). The
file travels inside the request (base64, a few hundred bytes to a few KB), so a board over SSH
gets it with no new file to copy. Runtimes that read ONNX get it built with ``onnx.helper``;
the others get it made by their own converter from the same ReLU in PyTorch, once per process.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import tempfile
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from edgeslim.data.bundle import Dataset, DataSpec, Split
from edgeslim.runtimes import runtime

OPSET = 17


def relu_onnx(input_shape: tuple[int, ...]) -> bytes:
    """input (1, *input_shape) -> Relu -> output: no weights, one activation."""
    shape = [1, *input_shape]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "reference",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model.SerializeToString()


def relu_converted(name: str, input_shape: tuple[int, ...]) -> bytes:
    """The same ReLU made by the runtime's converter from PyTorch, as a candidate is."""
    import torch  # only the runtimes that convert from PyTorch need it, on the host

    engine = runtime(name)
    zeros = np.zeros((1, *input_shape), dtype=np.float32)
    split = Split(zeros, np.zeros(1, dtype=np.int64))
    data = Dataset(DataSpec(tuple(input_shape), 1), split, split, split)
    converter = importlib.import_module(engine.converter)
    with tempfile.TemporaryDirectory(prefix="edgeslim-reference-") as tmp:
        path = Path(tmp) / f"reference{engine.formats[0]}"
        converter.convert(torch.nn.ReLU().eval(), None, data, path)
        return path.read_bytes()


@functools.cache
def reference_model(name: str, input_shape: tuple[int, ...]) -> dict[str, str]:
    """The trivial model for runtime ``name`` on samples of ``input_shape``, as the request
    carries it: its suffix, its SHA-256 (part of the worker's cache key) and its bytes."""
    engine = runtime(name)
    content = relu_onnx(input_shape) if engine.reads_onnx else relu_converted(name, input_shape)
    return {
        "suffix": engine.formats[0],
        "sha256": hashlib.sha256(content).hexdigest(),
        "base64": base64.b64encode(content).decode(),
    }
