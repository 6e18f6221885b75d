"""LiteRT (the TensorFlow Lite runtime) with its default op resolver, which hands float and
8-bit graphs to the XNNPACK delegate: what an Android phone or an Arm Linux board runs."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version as package_version

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edgeslim.runtimes.tflite_io import from_output, to_input


class LiteRtSession:
    """The converted model's batch size is fixed (1): every call runs one sample."""

    def __init__(self, path: str, threads: int) -> None:
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        source = self.interpreter.get_input_details()[0]
        target = self.interpreter.get_output_details()[0]
        self.input_name = source["name"]
        self.input_shape = tuple(int(d) for d in source["shape"])
        self.input_index, self.output_index = source["index"], target["index"]
        self.input_format = (source["dtype"], *source["quantization"])
        self.output_scale = target["quantization"]

    def prepared(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feed in the model's input format (quantized for a full-integer model)."""
        return {self.input_name: to_input(feed[self.input_name], *self.input_format)}

    def run_prepared(self, outputs: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list:
        """LiteRT's own call on a prepared feed: set, invoke, get; what latency times."""
        self.interpreter.set_tensor(self.input_index, feed[self.input_name])
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(self.output_index)]

    def run(self, outputs: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (raw,) = self.run_prepared(outputs, self.prepared(feed))
        return [from_output(raw, *self.output_scale)]


def load(path: str, threads: int) -> LiteRtSession:
    return LiteRtSession(path, threads)


def version() -> str:
    return package_version("ai-edge-litert")


def details() -> dict[str, str]:
    return {"interpreter": "ai_edge_litert", "delegate": "XNNPACK (default op resolver)"}
