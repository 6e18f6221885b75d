"""Where the measuring process runs (a fresh process on this host, or a board over SSH), and
what its end means: a result, a model that does not fit, or a failure with the worker's words.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.errors import DoesNotFit, MeasurementError

OUT_OF_MEMORY = re.compile(
    r"MemoryError|bad_alloc|[Ff]ailed to allocate|[Cc]annot allocate|out of memory|ENOMEM"
)


@dataclass(frozen=True)
class WorkerExit:
    """How a measuring process ended, wherever it ran."""

    returncode: int
    stderr: str
    result: str | None  # the result file's text; None: the worker wrote none
    where: dict[str, Any] = field(default_factory=dict)  # the board it ran on; empty: here


def memory_failures(errors: dict[str, str]) -> dict[str, str]:
    return {family: error for family, error in errors.items() if OUT_OF_MEMORY.search(error)}


def run_here(request: dict, work: Path, timeout_s: float) -> WorkerExit:
    """The worker in a fresh process on this host."""
    request_path = work / "request.json"
    request_path.write_text(json.dumps(request))
    env = {**os.environ, "OMP_NUM_THREADS": str(request["settings"]["threads"])}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgeslim.measure.worker", str(request_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise MeasurementError(f"measurement timed out after {timeout_s:g} s") from exc
    result_path = Path(request["result"])
    result = result_path.read_text() if result_path.exists() else None
    return WorkerExit(done.returncode, done.stderr, result)


class ThisHost:
    """The default device: a fresh worker process here (a Board is the other kind)."""

    name = "this host"

    def run_worker(self, request: dict, work: Path, timeout_s: float) -> WorkerExit:
        return run_here(request, work, timeout_s)


THIS_HOST = ThisHost()


def read_result(ended: WorkerExit, memory_limit_mb: float | None) -> dict:
    """The worker's result, or why there is none: a crash under a memory cap means the model
    does not fit; any other crash is a failure that quotes the worker's last words."""
    if ended.returncode == 0 and ended.result is not None:
        return json.loads(ended.result)
    if ended.returncode < 0:
        reason = f"killed by {signal.Signals(-ended.returncode).name}"
    else:
        reason = f"exit code {ended.returncode}"
    tail = " | ".join(ended.stderr.strip().splitlines()[-3:])
    on = f" on board {ended.where['board']} ({ended.where['ssh']})" if ended.where else ""
    if memory_limit_mb and (ended.returncode < 0 or OUT_OF_MEMORY.search(ended.stderr)):
        raise DoesNotFit(
            f"does not fit in {memory_limit_mb:g} MB: the measuring process{on} failed "
            f"({reason}){': ' + tail if tail else ''}"
        )
    raise MeasurementError(f"measuring process{on} failed ({reason}){': ' + tail if tail else ''}")
