"""TFLite Micro, the microcontroller runtime, run on the host through its Python interpreter.

Its figure that matters is exact: the tensor arena, the one block of RAM the firmware must
reserve for activations and the interpreter's bookkeeping. TFLite Micro reports what it
allocated; that total is the smallest arena the model runs in (a byte less and allocation
fails; tests/runtimes checks it). Its latency comes from portable reference kernels on this
host's CPU, which says little about a microcontroller: the record says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from importlib.metadata import version as package_version

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from edgeslim.runtimes.native_output import c_output
from edgeslim.runtimes.tflite_io import from_output, to_input

ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
LARGEST_ARENA = 1 << 30


class ArenaTooSmall(RuntimeError):
    pass


MISSING = re.compile(r"missing: (\d+)")
SHORT_OF_MEMORY = re.compile(r"missing: \d+|Failed to (allocate|resize)")


def interpreter(path: str, arena_bytes: int) -> runtime.Interpreter:
    """The interpreter in an arena of ``arena_bytes``, its C++ messages in any error."""
    made: list[runtime.Interpreter] = []
    failed: list[RuntimeError] = []

    def make() -> None:
        try:
            made.append(runtime.Interpreter.from_file(path, arena_size=arena_bytes))
        except RuntimeError as exc:
            failed.append(exc)

    printed = " ".join(c_output(make).split())
    if failed:
        kind = ArenaTooSmall if SHORT_OF_MEMORY.search(printed) else RuntimeError
        raise kind(f"{failed[0]} in a {arena_bytes}-byte arena: {printed[:300]}")
    return made[0]


def arena_bytes(path: str) -> int:
    """The bytes TFLite Micro allocated from a roomy arena: the smallest arena that works."""
    size = max(64 * 1024, 4 * os.path.getsize(path))
    while True:
        try:
            probe = interpreter(path, size)
            break
        except ArenaTooSmall:
            if size >= LARGEST_ARENA:
                raise
            size *= 4
    report = c_output(probe.print_allocations)
    found = ARENA_TOTAL.search(report)
    if not found:
        raise RuntimeError(f"TFLite Micro reported no arena total: {report.strip()[:200]}")
    total = int(found.group(1))
    # the report leaves out the temporary memory some kernels ask for while the interpreter is
    # built (BatchMatMul in attention); TFLite Micro then says how many bytes were missing
    for _ in range(8):
        try:
            interpreter(path, total)
            return total
        except ArenaTooSmall as exc:
            missing = MISSING.search(str(exc))
            total += int(missing.group(1)) if missing else total // 4
    raise RuntimeError(f"TFLite Micro did not settle on an arena size (last tried {total} bytes)")


class TfliteMicroSession:
    """Loaded in exactly the arena it needs; one sample per call (batch 1), one thread."""

    def __init__(self, path: str, threads: int) -> None:
        self.arena_bytes = arena_bytes(path)
        self.interpreter = interpreter(path, self.arena_bytes)
        source = self.interpreter.get_input_details(0)
        target = self.interpreter.get_output_details(0)
        self.input_name = "input"
        self.input_shape = tuple(int(d) for d in source["shape"])
        self.input_format = (source["dtype"], *quantization(source))
        self.output_scale = quantization(target)

    def prepared(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feed in the model's input format (quantized for a full-integer model)."""
        return {self.input_name: to_input(feed[self.input_name], *self.input_format)}

    def run_prepared(self, outputs: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list:
        """TFLite Micro's own call on a prepared feed: set, invoke, get; what latency times."""
        self.interpreter.set_input(feed[self.input_name], 0)
        self.interpreter.invoke()
        return [self.interpreter.get_output(0)]

    def run(self, outputs: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (raw,) = self.run_prepared(outputs, self.prepared(feed))
        return [from_output(raw, *self.output_scale)]


def quantization(detail: dict) -> tuple[float, int]:
    params = detail.get("quantization_parameters") or {}
    scales, zeros = params.get("scales", []), params.get("zero_points", [])
    return (float(scales[0]), int(zeros[0])) if len(scales) else (1.0, 0)


def load(path: str, threads: int) -> TfliteMicroSession:
    return TfliteMicroSession(path, threads)


def version() -> str:
    return package_version("tflite-micro")


def details() -> dict[str, str]:
    return {"kernels": "reference (portable C++)", "threads": "1 (TFLite Micro is single-threaded)"}
