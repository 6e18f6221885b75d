"""ONNX Runtime on the CPU execution provider: the default runtime, and the reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnxruntime as ort


@dataclass
class OrtSession:
    session: ort.InferenceSession
    input_name: str = ""
    input_shape: tuple = ()
    run: Any = field(init=False)

    def __post_init__(self) -> None:
        first = self.session.get_inputs()[0]
        self.input_name, self.input_shape = first.name, tuple(first.shape)
        self.run = self.session.run  # ORT's own method: nothing between it and the timer


def load(path: str, threads: int) -> OrtSession:
    """A session pinned to ``threads`` intra-op threads, run sequentially."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return OrtSession(ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]))


def version() -> str:
    return ort.__version__


def details() -> dict[str, str]:
    return {"provider": "CPUExecutionProvider"}
