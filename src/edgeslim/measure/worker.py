"""The measuring process: ``python -m edgeslim.measure.worker REQUEST.json``.

It imports numpy and the one runtime it measures on (no onnx, and no torch unless the runtime's
Python bindings need it: ExecuTorch's do), so its memory is the model's own and it could run on
a device that has nothing else. It reads the request, runs every
runtime metric family in order, and writes ``{"metrics", "errors", "info", "not_finite"}`` to the
result path (a NaN or infinite figure goes to ``not_finite``, never to ``metrics``).

Before that it needs the runtime's own memory, which ``model_memory_kb`` leaves out: fresh
workers started as this one (``mode: reference``) load and run the request's trivial model, once
per runtime version, threads and host; the figure is cached in the user's cache folder.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

from edgeslim.measure import memory


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


def cache_path() -> Path:
    """Where this machine keeps its reference figures (the user's cache folder)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "edgeslim" / "reference-memory.json"


def read_cache() -> dict:
    try:
        cached = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def write_cache(key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``, atomically (a cache that cannot be written is skipped)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        partial.write_text(json.dumps({**read_cache(), key: entry}, indent=1, sort_keys=True))
        partial.replace(path)
    except OSError:
        pass


def reference_run(request: dict, model: Path, run: int, timeout_s: float) -> dict:
    """One fresh worker, started as this one was, that loads and runs the trivial model and
    reports its memory (``mode: reference``): its result."""
    folder = model.parent
    child = {
        **request,
        "model": str(model),
        "mode": "reference",
        "reference_model": None,
        "activations_model": None,
        "settings": {**request["settings"], "memory_limit_mb": None},
        "result": str(folder / f"reference-{run}.result.json"),
    }
    path = folder / f"reference-{run}.request.json"
    path.write_text(json.dumps(child))
    env = {k: v for k, v in os.environ.items() if k != "EDGESLIM_FAULT"}
    done = subprocess.run(
        [sys.executable, "-m", "edgeslim.measure.worker", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
    )
    result = Path(child["result"])
    if done.returncode != 0 or not result.exists():
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])
        raise RuntimeError(f"the reference worker failed (exit code {done.returncode}): {tail}")
    return json.loads(result.read_text())


def reference_memory(request: dict, request_path: str, engine, numpy_version: str) -> dict:
    """The private peak of this runtime for the request's trivial model, loaded and run as the
    model will be, each time by a fresh worker started as this one was: the median of
    ``memory.REFERENCE_RUNS`` and their spread (the noise of a fresh load), cached on this machine
    per runtime version, threads, Python, numpy and host (never reused across versions)."""
    entry = request.get("reference_model")
    if not entry:
        return {"reference_kb": None, "why": "the request names no reference model"}
    if "error" in entry:
        raise RuntimeError(f"the reference model could not be made: {entry['error']}")
    settings = request["settings"]
    key = "|".join(
        [
            f"v{memory.MODEL_MEMORY_VERSION}",
            engine.name,
            engine.version(),
            f"threads={settings['threads']}",
            entry["sha256"],
            f"python {platform.python_version()}",
            f"numpy {numpy_version}",
            platform.node(),
            platform.machine(),
        ]
    )
    cached = read_cache().get(key)
    if cached:
        return {**cached, "cached": True}
    folder = Path(request_path).resolve().parent
    model = folder / f"reference{entry['suffix']}"
    model.write_bytes(base64.b64decode(entry["base64"]))
    timeout_s = min(300.0, settings["timeout_s"] / 2)
    runs = [reference_run(request, model, run, timeout_s) for run in range(memory.REFERENCE_RUNS)]
    privates = [run["info"].get("private_memory_kb") for run in runs]
    if any(p is None for p in privates):
        return {"reference_kb": None, "why": "this system does not show private memory"}
    found = {
        "reference_kb": statistics.median(privates),
        "reference_runs_kb": privates,
        "noise_kb": max(privates) - min(privates),
        "reference_peak_kb": statistics.median(
            run["metrics"]["peak_memory_mb"] * 1024 for run in runs
        ),
        "runtime_version": engine.version(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_cache(key, found)
    return {**found, "cached": False}


def describe(engine, numpy_version: str, cores: list[int], started: float) -> dict:
    """What a result says about where and with what it was measured."""
    return {
        "runtime": engine.name,
        "runtime_version": engine.version(),
        "runtime_details": engine.details(),
        "numpy_version": numpy_version,
        "python_version": platform.python_version(),
        "cores": cores,
        "torch_loaded_in_worker": "torch" in sys.modules,
        **machine(),
        "worker_wall": [round(started, 3), round(time.time(), 3)],  # this machine's clock
    }


def write_result(result: Path, outcome: dict) -> None:
    partial = result.with_suffix(".part")
    partial.write_text(json.dumps(outcome))
    partial.replace(result)  # the parent sees a whole result or none


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
    from edgeslim.measure import accuracy, detection, latency, sparsity  # noqa: F401
    from edgeslim.measure.registry import CHECK_ORDER, families
    from edgeslim.measure.runtime import RuntimeContext
    from edgeslim.runtimes import runtime

    engine = runtime(settings["runtime"])
    engine.check_installed()  # imported now, so peak memory counts the model, not the library

    with np.load(request["data"]) as arrays:  # the test split, and the validation split if sent
        x, y = arrays["x"], arrays["y"]
        val_x, val_y = (arrays["val_x"], arrays["val_y"]) if "val_x" in arrays else (None, None)
    spec = DataSpec.from_dict(request["spec"]) if request.get("spec") else None
    ctx = RuntimeContext(
        model_path=request["model"],
        x=x,
        y=y,
        val_x=val_x,
        val_y=val_y,
        settings=settings,
        spec=spec,
        activations_path=request.get("activations_model"),
        activation_names=request.get("activation_names", []),
    )
    metrics, errors = {}, {}
    if request.get("mode") == "reference":  # a fresh worker measuring the trivial model
        figures = memory.peak_memory(ctx)
        Path(request["result"]).write_text(json.dumps({"metrics": figures, "info": ctx.info}))
        return 0
    if request.get("mode") == "latency":  # a latency table's variants: their p50 only
        ctx.info.update(describe(engine, np.__version__, cores, started))
        outcome = {"latencies": latency.latency_of_files(ctx, request["models"]), "info": ctx.info}
        write_result(Path(request["result"]), outcome)
        return 0
    try:  # before the memory cap: the reference workers would inherit it
        ctx.info["model_memory"] = {
            "method": memory.MODEL_MEMORY_METHOD,
            **reference_memory(request, request_path, engine, np.__version__),
        }
    except Exception as exc:  # the other figures stand without it
        errors["model_memory"] = " ".join(f"{type(exc).__name__}: {exc}".split())
    if settings.get("memory_limit_mb"):
        ctx.info["memory_cap_bytes"] = cap_memory(settings["memory_limit_mb"])
    if os.environ.get("EDGESLIM_FAULT"):
        inject_fault(os.environ["EDGESLIM_FAULT"])
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
    ctx.info.update(describe(engine, np.__version__, cores, started))
    outcome = {"metrics": metrics, "errors": errors, "info": ctx.info, "not_finite": not_finite}
    write_result(Path(request["result"]), outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
