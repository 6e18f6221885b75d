"""OpenVINO on its CPU plug-in. It reads the ONNX file directly (no conversion step), and runs
it in FP32: left to its defaults it silently computes in bf16 on CPUs that have it, which
would change accuracy and speed behind the user's back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import openvino as ov


class OpenVinoSession:
    """One compiled model per input shape: each batch size runs on static shapes, as a
    deployed model would, instead of OpenVINO's slower dynamic-shape path."""

    def __init__(self, path: str, threads: int) -> None:
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        self.config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        first = self.model.inputs[0]
        self.input_name = first.get_any_name()
        self.input_shape = tuple(
            d.get_length() if d.is_static else "?" for d in first.get_partial_shape()
        )
        self.output_index = {
            name: i for i, out in enumerate(self.model.outputs) for name in out.get_names()
        }
        self.requests: dict[tuple[int, ...], ov.InferRequest] = {}

    def request(self, shape: tuple[int, ...]) -> ov.InferRequest:
        if shape not in self.requests:
            model = self.model.clone()
            model.reshape({0: ov.PartialShape(list(shape))})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.requests[shape] = compiled.create_infer_request()
        return self.requests[shape]

    def prepared(self, feed: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
        """OpenVINO's own feed (input index -> array), its request compiled before timing."""
        x = feed[self.input_name]
        self.timed_request = self.request(x.shape)
        return {0: x}

    def run_prepared(self, outputs: Sequence[str] | None, feed: dict[int, np.ndarray]) -> Any:
        """What latency times: ``infer`` on the prepared request, as a bare loop calls it."""
        return self.timed_request.infer(feed)

    def run(self, outputs: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed[self.input_name]
        request = self.request(x.shape)
        request.infer({0: x})
        wanted = (
            range(len(self.model.outputs))
            if outputs is None
            else map(self.output_index.__getitem__, outputs)
        )
        return [request.get_output_tensor(i).data.copy() for i in wanted]


def load(path: str, threads: int) -> OpenVinoSession:
    return OpenVinoSession(path, threads)


def version() -> str:
    return ov.get_version()


def details() -> dict[str, str]:
    return {"device": "CPU", "inference_precision": "f32"}
