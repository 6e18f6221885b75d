"""What runtime metric families get inside the worker. Imports numpy and onnxruntime only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort


@dataclass
class RuntimeContext:
    model_path: str
    x: np.ndarray  # test samples, normalised float32
    y: np.ndarray
    settings: dict  # MeasureSettings as a dict
    activations_path: str | None = None  # the model with layer inputs exposed as outputs
    activation_names: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # how things were measured, filled by families

    def session(self, path: str | None = None) -> ort.InferenceSession:
        """A session pinned to the configured thread count, run sequentially."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings["threads"]
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return ort.InferenceSession(
            path or self.model_path, options, providers=["CPUExecutionProvider"]
        )

    @staticmethod
    def fixed_batch(session: ort.InferenceSession) -> int | None:
        """The batch size the model insists on, or None if any batch size runs."""
        first = session.get_inputs()[0].shape[0]
        return first if isinstance(first, int) and first > 0 else None

    def batches(
        self, session: ort.InferenceSession, x: np.ndarray, batch_size: int = 256
    ) -> Iterator[tuple[np.ndarray, int]]:
        """(batch, real sample count); a fixed-batch model gets zero padding at the end."""
        fixed = self.fixed_batch(session)
        size = fixed or batch_size
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            real = len(chunk)
            if fixed and real < fixed:
                pad = np.zeros((fixed - real, *x.shape[1:]), dtype=x.dtype)
                chunk = np.concatenate([chunk, pad])
            yield chunk, real
