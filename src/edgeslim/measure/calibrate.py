"""``edgeslim devices calibrate``: the board's measured slowdown against this host, which then
replaces a profile's assumed one when the board's budget is applied to figures measured here."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from edgeslim.boards.board import Board
from edgeslim.boards.registry import save_calibration
from edgeslim.data import load
from edgeslim.measure.api import measure
from edgeslim.measure.settings import MeasureSettings
from edgeslim.models import build

# small zoo models of different shapes (plain conv, depthwise, residual), untrained: latency does
# not depend on the weights' values
REFERENCE_MODELS = ("small-cnn", "lenet5", "mobilenet-v1", "resnet8")


def calibrate(
    board: Board,
    models: tuple[str, ...] = REFERENCE_MODELS,
    data: str = "digits",
    runs: int = 300,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure each model's batch-1 latency here and on the board (same runtime, one thread,
    pinned), and store the median of the board/host ratios of p50 latency."""
    dataset = load(data)
    runtime = board.config.runtimes[0]
    settings = MeasureSettings(
        runtime=runtime, threads=1, runs=runs, min_runs=min(100, runs), batch_sizes=(1,)
    )
    per_model: dict[str, dict[str, Any]] = {}
    for name in models:
        model = build(name, dataset.spec).eval()
        here = measure(model, dataset, settings)
        there = measure(model, dataset, settings, board=board)
        ratio = there["latency_p50_ms"] / here["latency_p50_ms"]
        per_model[name] = {
            "host_p50_ms": round(here["latency_p50_ms"], 4),
            "board_p50_ms": round(there["latency_p50_ms"], 4),
            "ratio": round(ratio, 3),
        }
        say(
            f"{name}: {here['latency_p50_ms']:.3f} ms here, {there['latency_p50_ms']:.3f} ms on "
            f"{board.name}: {ratio:.2f}x"
        )
    entry = {
        "slowdown": round(statistics.median(m["ratio"] for m in per_model.values()), 3),
        "models": list(per_model),
        "per_model": per_model,
        "runtime": runtime,
        "host_cpu": here["measured_with"]["cpu"],
        "board_cpu": there["measured_with"]["cpu"],
        "board_host": there["measured_with"]["host"],
    }
    entry["file"] = str(save_calibration(board.name, entry))
    return entry
