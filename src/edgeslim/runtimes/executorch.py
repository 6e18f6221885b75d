"""ExecuTorch, PyTorch's on-device runtime, running a program lowered to its XNNPACK delegate.

Not torch-free: ExecuTorch's Python bindings take and return ``torch.Tensor`` and import torch,
so this worker loads it (the record's ``torch_loaded_in_worker`` says so); on a device, the C++
runtime needs no torch. Its peak memory therefore includes torch's libraries, loaded before the
model is, which the baseline reading of the peak-memory family already subtracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version as package_version

import numpy as np
import torch
from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
from executorch.runtime import Runtime

from edgeslim.runtimes.native_output import c_output


class ExecuTorchSession:
    """The program's ``forward`` at the batch size it was exported with (1)."""

    def __init__(self, path: str, threads: int) -> None:
        loaded = []
        c_output(lambda: loaded.append(Runtime.get().load_program(path)))  # cpuinfo's notes
        _unsafe_reset_threadpool(threads)
        torch.set_num_threads(threads)
        self.method = loaded[0].load_method("forward")
        meta = self.method.metadata.input_tensor_meta(0)
        self.input_name = "input"
        self.input_shape = tuple(meta.sizes())

    def prepared(self, feed: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The feed as the tensors ExecuTorch's bindings take, made before timing."""
        return {self.input_name: torch.from_numpy(feed[self.input_name])}

    def run_prepared(self, outputs: Sequence[str] | None, feed: dict[str, torch.Tensor]) -> list:
        """What latency times: ``execute`` on a prepared tensor, as a bare loop calls it."""
        return self.method.execute([feed[self.input_name]])

    def run(self, outputs: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.run_prepared(outputs, self.prepared(feed))[0].numpy()]


def load(path: str, threads: int) -> ExecuTorchSession:
    return ExecuTorchSession(path, threads)


def version() -> str:
    return package_version("executorch")


def details() -> dict[str, str]:
    return {"delegate": "XNNPACK", "bindings": "executorch.runtime (imports torch)"}
