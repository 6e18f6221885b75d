"""Memory: what the measuring process needs for the model (runtime), what of it the model is
responsible for (runtime), and the peak of live activations (graph).

``peak_memory_mb`` is read from the kernel's high-water mark (VmHWM), reset just before the model
is loaded (``/proc/self/clear_refs``), minus the resident memory before: the session and batch-1
inference, whole: what a device must have free. Most of it is the runtime's own (ONNX Runtime
pages in about 8 MB of its library's code and sets up its allocators for any model at all), so
it barely tells one model from another.

``model_memory_kb`` is the part the model is responsible for. From the peak it leaves out the
pages of shared libraries read in meanwhile (the runtime's code for the model's kernels: shared
with every process that maps the library and read back from disk when the kernel drops them),
which leaves the process's private peak; from that it subtracts the private peak of the same
runtime for a trivial model (one ReLU on the same input), loaded and run the same way by a
worker started the same way (fresh processes, cached per runtime version, threads and host:
``worker.reference_memory``). What is left is the weights as the runtime holds them (its copies
and repacked forms included), the activations, and the runtime's bookkeeping of the graph.

So it is not the activation estimate plus the weight bytes, and on a small model not within 2x
of it. resnet8 INT8 at 28x28 (36.8 KB of activations, a file of 82-97 KB) measured 652-664 KB on
ONNX Runtime (5.5x: it reads and parses the whole file before it builds its session, keeps about
3 KB per node of the Q/DQ graph, 56 nodes, and its C heap keeps what it freed while building),
5.0 MB on OpenVINO (its compiled INT8 graph; 2.5 MB for resnet8 FP32), 500 KB on LiteRT, 356 KB
on TFLite Micro (in a 45.5 KB arena) and 336 KB on ExecuTorch. With weights of a few MB the
weights dominate: an MLP with 1.2 MB of them reads 2.4-2.9 MB (1.3 MB on ExecuTorch), one with
4.8 MB of them 9.6-10.5 MB (two copies at the peak: the file's and the runtime's own layout).
"""

from __future__ import annotations

import ctypes
import re
import resource
from pathlib import Path
from typing import TYPE_CHECKING

from edgeslim.measure.registry import family
from edgeslim.measure.storage import KB

if TYPE_CHECKING:
    from edgeslim.graph import GraphSummary
    from edgeslim.measure.runtime import RuntimeContext

MB = 1024 * 1024
# how activation_memory_kb is estimated, recorded with every measurement
ACTIVATION_METHOD = (
    "graph order; a buffer lives from its producer to its last reader, none shared or reused "
    "in place; 8-bit where Q/DQ pairs or integer ops say so (fused kernels hold no float copy), "
    "16-bit for FP16 tensors, 32-bit otherwise"
)
# how model_memory_kb is measured, recorded with every measurement
MODEL_MEMORY_METHOD = (
    "private peak (VmHWM after clear_refs, the C heap trimmed first, less the pages of shared "
    "libraries read in by the end of the phase, load or runs, that holds the peak) minus the "
    "same runtime's private peak for a one-ReLU model on the same input, loaded and run alike "
    "in fresh workers started alike (median of 3; cached per runtime version, threads and host)"
)
# model_memory_kb's noise band: how far fresh measurements of one model lie apart. Measured with
# 3-5 fresh workers per model on a loaded 2-core x86 VM (issue 31; the small CNN at widths 0.5,
# 1 and 2, resnet8 FP32 and INT8 at 28x28, MLPs of 1.2 and 4.8 MB of weights): ONNX Runtime
# 0-12 KB, but 148 KB for resnet8 FP32 (1408-1556 KB) and about 0.5% of an MLP of 17 MB; OpenVINO
# 4-28 KB; LiteRT 0-8 KB; TFLite Micro 4-24 KB; ExecuTorch 4-16 KB, 76 KB for the 4.8 MB MLP.
# The band is the widest of: this floor, this share of the figure, and the spread the worker
# measured for its reference.
MODEL_MEMORY_NOISE_KB = 160.0
MODEL_MEMORY_NOISE_SHARE = 0.05
# a shared object's file name: libonnxruntime.so.1.20.0, _core.cpython-311-x86_64-linux-gnu.so
SHARED_OBJECT = re.compile(r"\.so(\.\d+)*( \(deleted\))?$")
RUNS = 10  # batch-1 inferences after loading: buffers made on the first call count too
REFERENCE_RUNS = 3  # fresh workers measuring the trivial model: their median, and spread
MODEL_MEMORY_VERSION = 1  # part of the reference cache's key: a new method measures anew


def model_memory_noise_kb(figure_kb: float, reference_spread_kb: float = 0.0) -> float:
    """The noise band of a ``model_memory_kb`` figure: two measurements of one model that
    differ by less say nothing about which needs more."""
    return max(MODEL_MEMORY_NOISE_KB, MODEL_MEMORY_NOISE_SHARE * figure_kb, reference_spread_kb)


def status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def library_kb() -> int | None:
    """Resident pages of shared libraries as read from their files (code and read-only data; a
    page a library wrote to is its process's own, counted under ``Anonymous``). Read line by
    line, so reading it moves the process's memory by no more than a line."""
    total = rss = 0
    library = False
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                key, _, rest = line.partition(" ")
                if not key.endswith(":"):  # a mapping: range perms offset device inode path
                    fields = line.split(None, 5)
                    library = len(fields) == 6 and bool(SHARED_OBJECT.search(fields[5].strip()))
                elif library and key == "Rss:":
                    rss = int(rest.split()[0])
                elif library and key == "Anonymous:":
                    total += rss - int(rest.split()[0])
    except OSError:
        return None
    return total


def trim_heap() -> bool:
    """Hand the C heap's free memory back to the system (glibc's ``malloc_trim``): memory that
    start-up freed (importing torch frees a lot) would otherwise take the model's first
    allocations without the resident memory moving. False where the C library has none."""
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (AttributeError, OSError):
        return False


def load_and_run(ctx: RuntimeContext) -> dict:
    """Load the model, run it ``RUNS`` times on one sample, and say what the process's memory
    did (KB): ``peak`` above the resident memory before, and ``private``, the peak less the
    shared libraries' pages read in by the end of the phase (load or runs) that holds it."""
    trim_heap()
    libraries_before = library_kb()
    baseline_kb = status_kb("VmRSS")
    resettable = reset_peak() and baseline_kb is not None
    session = ctx.session()
    loaded_peak, libraries_loaded = status_kb("VmHWM"), library_kb()
    feed = {session.input_name: next(ctx.batches(session, ctx.x[:1]))[0]}
    for _ in range(RUNS):
        session.run(None, feed)
    if not resettable:  # ru_maxrss includes start-up; an upper bound
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - (baseline_kb or 0)
        return {
            "peak": max(0, peak),
            "private": None,
            "method": "ru_maxrss minus VmRSS before loading (upper bound)",
        }
    run_peak, libraries_run = status_kb("VmHWM"), library_kb()
    # the libraries' pages at the end of the phase that holds the peak (they only grow)
    libraries_then = libraries_run if run_peak > loaded_peak else libraries_loaded
    private = None
    if libraries_before is not None and libraries_then is not None:
        private = max(0, run_peak - baseline_kb - (libraries_then - libraries_before))
    return {
        "peak": max(0, run_peak - baseline_kb),
        "private": private,
        "method": "VmHWM after clear_refs, minus VmRSS before loading (C heap trimmed first)",
    }


@family(
    "peak_memory",
    "runtime",
    [
        (
            "peak_memory_mb",
            "MB",
            "lower",
            "peak RSS above the empty process, batch-1 inference: the runtime's session and "
            "the model, what a device must have free",
        ),
        (
            "model_memory_kb",
            "KB",
            "lower",
            "the part of the peak the model is responsible for: the private peak less the "
            "same runtime's for a trivial model (weights as held, activations, graph)",
        ),
    ],
    order=0,
)
def peak_memory(ctx: RuntimeContext) -> dict:
    measured = load_and_run(ctx)
    ctx.info["peak_memory_method"] = measured["method"]
    ctx.info["private_memory_kb"] = measured["private"]
    figures = {"peak_memory_mb": measured["peak"] * KB / MB}
    reference = ctx.info.get("model_memory") or {}
    if measured["private"] is not None and reference.get("reference_kb") is not None:
        figures["model_memory_kb"] = max(0, measured["private"] - reference["reference_kb"])
    return figures


@family(
    "activation_memory",
    "graph",
    [
        (
            "activation_memory_kb",
            "KB",
            "lower",
            "peak bytes of activations alive at once, batch 1, each at the width the runtime "
            "holds it",
        ),
    ],
)
def activation_memory(summary: GraphSummary) -> dict:
    from edgeslim.graph import activation_peak_bytes  # onnx: the worker imports this module

    return {"activation_memory_kb": activation_peak_bytes(summary) / KB}


@family(
    "planned_memory",
    "graph",
    [
        (
            "planned_memory_kb",
            "KB",
            "lower",
            "activation memory ExecuTorch plans up front for the float program on its "
            "portable kernels, exact",
        ),
    ],
)
def planned_memory(summary: GraphSummary) -> dict:
    """Known to the converter of runtimes that plan memory ahead of time (ExecuTorch)."""
    planned = (summary.conversion or {}).get("planned_memory_bytes")
    return {} if planned is None else {"planned_memory_kb": planned / KB}


@family(
    "tensor_arena",
    "runtime",
    [
        (
            "tensor_arena_kb",
            "KB",
            "lower",
            "the smallest tensor arena the runtime runs the model in, exact (TFLite Micro)",
        ),
    ],
    order=45,
)
def tensor_arena(ctx: RuntimeContext) -> dict:
    """Only runtimes that plan their memory up front can tell; the others leave it out."""
    arena = getattr(ctx.loaded or ctx.session(), "arena_bytes", None)
    return {} if arena is None else {"tensor_arena_kb": arena / KB}
