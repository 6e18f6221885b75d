"""Memory: peak RSS of the measuring process (runtime) and peak live activations (graph).

Peak RSS is read from the kernel's high-water mark (VmHWM), reset just before the model is
loaded (``/proc/self/clear_refs``), so it covers the session and batch-1 inference alone.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import TYPE_CHECKING

from edgeslim.measure.registry import family
from edgeslim.measure.storage import KB

if TYPE_CHECKING:
    from edgeslim.measure.graph import GraphSummary
    from edgeslim.measure.runtime import RuntimeContext

MB = 1024 * 1024
# how activation_memory_kb is estimated, recorded with every measurement
ACTIVATION_METHOD = (
    "graph order; a buffer lives from its producer to its last reader, none shared or reused "
    "in place; 8-bit where Q/DQ pairs or integer ops say so (fused kernels hold no float copy), "
    "16-bit for FP16 tensors, 32-bit otherwise"
)


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


@family(
    "peak_memory",
    "runtime",
    [
        ("peak_memory_mb", "MB", "lower", "peak RSS above the empty process, batch-1 inference"),
    ],
    order=0,
)
def peak_memory(ctx: RuntimeContext) -> dict:
    baseline_kb = status_kb("VmRSS")
    resettable = reset_peak() and baseline_kb is not None
    session = ctx.session()
    feed = {session.input_name: next(ctx.batches(session, ctx.x[:1]))[0]}
    for _ in range(10):
        session.run(None, feed)
    if resettable:
        peak_kb = status_kb("VmHWM")
        method = "VmHWM after clear_refs, minus VmRSS before loading"
    else:  # ru_maxrss includes start-up; an upper bound
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        baseline_kb = baseline_kb or 0
        method = "ru_maxrss minus VmRSS before loading (upper bound)"
    ctx.info["peak_memory_method"] = method
    return {"peak_memory_mb": max(0, peak_kb - baseline_kb) * KB / MB}


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
    from edgeslim.measure.graph import activation_peak_bytes

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
