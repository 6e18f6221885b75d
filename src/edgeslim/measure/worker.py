"""The measuring process: ``python -m edgeslim.measure.worker REQUEST.json``.

It imports numpy and the one runtime it measures on (no onnx, and no torch unless the runtime's
Python bindings need it: ExecuTorch's do), so its memory is the model's own and it could run on
a device that has nothing else. It reads the request, runs every
runtime metric family in order, and writes ``{"metrics", "errors", "info", "not_finite"}`` to the
result path (a NaN or infinite figure goes to ``not_finite``, never to ``metrics``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):  # x86; Arm boards
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where this process runs: the record of a measurement on a board says which board."""
    import socket

    return {
        "host": socket.gethostname(),
        "uname": " ".join(part for part in platform.uname() if part),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "os": platform.platform(),
    }


def pin_to_cores(threads: int, cores: list[int] | None = None) -> list[int]:
    """Restrict this process to ``cores`` (default: ``threads`` of them), so timings do not
    wander between cores and a smaller device's core count can be emulated."""
    if not hasattr(os, "sched_setaffinity"):
        return []
    available = sorted(os.sched_getaffinity(0))
    if cores:
        missing = sorted(set(cores) - set(available))
        if missing:
            raise SystemExit(f"cores {missing} are not available here (available: {available})")
        chosen = sorted(cores)
    else:
        chosen = available[-threads:]  # the last cores: core 0 tends to get the interrupts
    os.sched_setaffinity(0, chosen)
    return chosen


def cap_memory(limit_mb: float) -> int:
    """Let the address space grow by at most ``limit_mb`` from here on: a model that needs more
    fails to allocate (and is reported as not fitting) instead of swapping the host."""
    import resource

    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    cap = vm_kb * 1024 + int(limit_mb * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return cap


def inject_fault(kind: str) -> None:
    """Fault injection for the isolation tests (``EDGESLIM_FAULT``): the worker dies the way
    a broken runtime or model would, and the parent must record it and go on."""
    import signal
    import time

    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "hang":
        time.sleep(10**6)
    elif kind == "oom":
        hog = []
        while True:  # under a memory cap this ends in MemoryError
            hog.append(bytearray(64 * 1024 * 1024))


def check_runs(ctx) -> str | None:
    """Load the model and run one sample before anything is timed: a runtime that refuses the
    model fails the measurement with its own words, and the output shape goes to the parent."""
    try:
        session = ctx.loaded = ctx.session()
        feed = {session.input_name: next(ctx.batches(session, ctx.x[:1]))[0]}
        ctx.info["output_shape"] = list(session.run(None, feed)[0].shape)
    except Exception as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def main(request_path: str) -> int:
    started = time.time()
    request = json.loads(Path(request_path).read_text())
    settings = request["settings"]
    cores = (
        pin_to_cores(settings["threads"], settings.get("cores")) if settings["pin_cores"] else []
    )

    import numpy as np

    # registration of the runtime families (these modules import numpy only)
    from edgeslim.data.bundle import DataSpec
    from edgeslim.figures import without_nonfinite
    from edgeslim.measure import accuracy, detection, latency, memory, sparsity  # noqa: F401
    from edgeslim.measure.registry import CHECK_ORDER, families
    from edgeslim.measure.runtime import RuntimeContext
    from edgeslim.runtimes import runtime

    engine = runtime(settings["runtime"])
    engine.check_installed()  # imported now, so peak memory counts the model, not the library

    with np.load(request["data"]) as arrays:
        x, y = arrays["x"], arrays["y"]
    spec = DataSpec.from_dict(request["spec"]) if request.get("spec") else None
    ctx = RuntimeContext(
        model_path=request["model"],
        x=x,
        y=y,
        settings=settings,
        spec=spec,
        activations_path=request.get("activations_model"),
        activation_names=request.get("activation_names", []),
    )
    if settings.get("memory_limit_mb"):
        ctx.info["memory_cap_bytes"] = cap_memory(settings["memory_limit_mb"])
    if os.environ.get("EDGESLIM_FAULT"):
        inject_fault(os.environ["EDGESLIM_FAULT"])
    metrics, errors = {}, {}
    checked = False
    for fam in families("runtime", spec.task if spec else "classification"):
        if not checked and fam.order >= CHECK_ORDER:
            checked = True
            refused = check_runs(ctx)
            if refused:  # nothing else can be measured; the parent says why
                errors = {"runs": refused}
                break
        try:
            metrics.update(fam.fn(ctx))
        except Exception as exc:  # one family failing must not lose the others
            errors[fam.name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
    metrics, not_finite = without_nonfinite(metrics)  # never emitted as figures; said here
    for name, value in not_finite.items():
        print(f"edgeslim worker: {name} came out {value}; left out of the figures", file=sys.stderr)
    ctx.info.update(
        {
            "runtime": engine.name,
            "runtime_version": engine.version(),
            "runtime_details": engine.details(),
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "cores": cores,
            "torch_loaded_in_worker": "torch" in sys.modules,
            **machine(),
            "worker_wall": [round(started, 3), round(time.time(), 3)],  # this machine's clock
        }
    )
    result = Path(request["result"])
    partial = result.with_suffix(".part")
    outcome = {"metrics": metrics, "errors": errors, "info": ctx.info, "not_finite": not_finite}
    partial.write_text(json.dumps(outcome))
    partial.replace(result)  # the parent sees a whole result or none
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
