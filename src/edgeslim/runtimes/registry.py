"""Runtime name -> how the worker loads and runs a model file on it.

A runtime module registers one ``Runtime``: the package it needs (and the extra that installs
it), the file formats it reads, and ``load``, which the torch-free worker calls to get a
``Session``. The metric families only ever see a Session, so adding a runtime is adding one
module; the measurement API and the families stay as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeslim.errors import ConfigError, MissingRuntimeError, short
from edgeslim.names import did_you_mean


class Session(Protocol):
    """One loaded model, run at a fixed thread count. ``run`` has ONNX Runtime's signature
    (output names or None, {input name: array}) -> list of arrays, so the timing loop calls
    ORT's own method with nothing in between."""

    input_name: str
    input_shape: tuple[int | str, ...]  # as the runtime declares it, batch first
    run: Callable[[Sequence[str] | None, dict[str, np.ndarray]], list[np.ndarray]]


def timed_call(
    session: Session, feed: dict[str, np.ndarray]
) -> tuple[Callable[[Sequence[str] | None, dict[str, np.ndarray]], list], dict[str, np.ndarray]]:
    """What the timing loops call, and on what: the runtime's own call on a feed already in the
    model's input format. A session whose ``run`` converts on the way (a full-integer .tflite
    quantizes a float sample and dequantizes its answer; OpenVINO and ExecuTorch take their own
    feed types) offers ``prepared`` and ``run_prepared``, so the conversion is done once, before
    timing, as a device does it in C; ONNX Runtime's ``run`` is its bare call already."""
    run_prepared = getattr(session, "run_prepared", None)
    if run_prepared is None:
        return session.run, feed
    return run_prepared, session.prepared(feed)


def fixed_batch(session: Session) -> int | None:
    """The batch size the model insists on (1 for converted .tflite/.pte files), or None if
    any batch size runs."""
    first = session.input_shape[0] if session.input_shape else None
    return first if isinstance(first, int) and first > 0 else None


def outputs(session: Session, x: np.ndarray) -> np.ndarray:
    """The session's first output on ``x``, in slices of its batch size where it fixes one (the
    last slice padded with zeros and its answers dropped)."""
    size = fixed_batch(session)
    if size is None:
        return session.run(None, {session.input_name: x})[0]
    padded = np.concatenate([x, np.zeros((-len(x) % size, *x.shape[1:]), x.dtype)])
    slices = [padded[i : i + size] for i in range(0, len(padded), size)]
    return np.concatenate([session.run(None, {session.input_name: s})[0] for s in slices])[: len(x)]


@dataclass(frozen=True)
class Runtime:
    name: str
    package: str  # the module the worker imports
    extra: str  # pip install "edgeslim[EXTRA]"
    formats: tuple[str, ...]  # file suffixes it reads
    module: str  # where ``load`` and ``version`` live (imported in the worker only)
    description: str
    # host side, for runtimes that do not read ONNX: the module whose ``convert(candidate,
    # data, runtime, out_dir)`` writes the runtime's file with its own converter and quantizer
    converter: str | None = None
    # the quantize kinds its own quantizer expresses (None: every kind, on the ONNX file)
    quantize_kinds: tuple[str, ...] | None = None
    # where the latency figures are not what the device would show, why
    latency_caveat: str = ""
    worker_imports_torch: bool = False  # the runtime's Python bindings need torch

    @property
    def reads_onnx(self) -> bool:
        return ".onnx" in self.formats

    def missing(self) -> MissingRuntimeError:
        return MissingRuntimeError(
            f"runtime {self.name!r} needs the {self.package!r} package, which is not installed: "
            f'pip install "edgeslim[{self.extra}]"'
        )

    def _module(self):
        try:
            importlib.import_module(self.package)
        except ImportError as exc:
            raise self.missing() from exc
        return importlib.import_module(self.module)

    def load(self, path: str, threads: int) -> Session:
        return self._module().load(path, threads)

    def version(self) -> str:
        return self._module().version()

    def details(self) -> dict[str, str]:
        """What else a reader of the record needs to know: provider, precision, device."""
        return self._module().details()

    def check_installed(self) -> None:
        """Import the runtime, or fail with the pip command that installs it."""
        self._module()

    def check_available(self) -> None:
        """The same, on the host, without importing the runtime there."""
        if importlib.util.find_spec(self.package) is None:
            raise self.missing()

    def check_recipe(self, recipe: Sequence[dict], where: str = "candidate") -> None:
        """A quantize step this runtime's own quantizer cannot express, or a QAT model it
        cannot convert, is a ConfigError before any work is done."""
        if self.reads_onnx:
            return
        for step in recipe:
            ((key, settings),) = step.items()
            kind = (settings or {}).get("kind")
            if key == "qat" or (key == "quantize" and kind not in (self.quantize_kinds or ())):
                name = "qat" if key == "qat" else f"quantize {kind}"
                raise ConfigError(
                    f"{where}: runtime {self.name!r} cannot express the step {name!r}; "
                    f"its quantizer does {', '.join(self.quantize_kinds or ()) or 'nothing'}"
                )

    def check_format(self, path: str) -> None:
        if not path.lower().endswith(self.formats):
            raise ConfigError(
                f"{path}: runtime {self.name!r} reads {', '.join(self.formats)} files"
            )


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime(
            "onnxruntime",
            package="onnxruntime",
            extra="",  # a core dependency
            formats=(".onnx",),
            module="edgeslim.runtimes.onnxruntime",
            description="ONNX Runtime, CPU execution provider (MLAS kernels)",
        ),
        Runtime(
            "openvino",
            package="openvino",
            extra="openvino",
            formats=(".onnx",),
            module="edgeslim.runtimes.openvino",
            description="OpenVINO on the CPU plug-in, FP32 inference precision",
        ),
        Runtime(
            "litert",
            package="ai_edge_litert",
            extra="litert",
            formats=(".tflite",),
            module="edgeslim.runtimes.litert",
            description="LiteRT (TensorFlow Lite) interpreter with its default XNNPACK delegate",
            converter="edgeslim.runtimes.tflite_convert",
            quantize_kinds=("static-int8", "dynamic-int8", "weight-int8", "weight-int4"),
        ),
        Runtime(
            "tflite-micro",
            package="tflite_micro",
            extra="tflite-micro",
            formats=(".tflite",),
            module="edgeslim.runtimes.tflite_micro",
            description="TFLite Micro's interpreter (the microcontroller runtime), run on the host",
            converter="edgeslim.runtimes.tflite_convert",
            # TFLite Micro runs full-integer or float models; hybrid (dynamic) kernels are absent
            quantize_kinds=("static-int8", "weight-int8"),
            latency_caveat="TFLite Micro's portable reference kernels on this host's CPU: not "
            "the speed of a microcontroller, nor of optimised (CMSIS-NN) kernels",
        ),
        Runtime(
            "executorch",
            package="executorch",
            extra="executorch",
            formats=(".pte",),
            module="edgeslim.runtimes.executorch",
            description="ExecuTorch with the XNNPACK delegate (PyTorch's on-device runtime)",
            converter="edgeslim.runtimes.executorch_convert",
            quantize_kinds=("static-int8",),
            worker_imports_torch=True,  # its bindings pass torch.Tensor (the C++ runtime does not)
        ),
    )
}


def runtime(name: str, where: str = "runtime") -> Runtime:
    if name not in RUNTIMES:
        raise ConfigError(f"{where}: unknown runtime {name!r}; runtimes: {sorted(RUNTIMES)}")
    return RUNTIMES[name]


def check_runtime(value: str) -> str:
    """A pydantic validator's check: the name of a known runtime (ValueError otherwise)."""
    if value not in RUNTIMES:
        raise ValueError(
            f"unknown runtime {short(value)}{did_you_mean(value, RUNTIMES)}; runtimes: "
            f"{sorted(RUNTIMES)}"
        )
    return value


def onnx_outputs(path: str | Path, x: np.ndarray) -> np.ndarray:
    """An ONNX file's outputs on ``x`` from ONNX Runtime on one thread: what export checks and
    the ONNX-stage compression steps compare before and after."""
    return outputs(runtime("onnxruntime").load(str(path), threads=1), x)
