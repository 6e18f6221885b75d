"""Which metrics a report shows and how each value is written: shared by HTML and Markdown."""

from __future__ import annotations

from typing import Any

from edgeslim.candidate import step_label
from edgeslim.figures import is_figure, nonfinite
from edgeslim.measure import METRICS

# the short table: what a reader compares first
MAIN = (
    "accuracy",
    "map50",
    "map",
    "precision",
    "recall",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_e2e_p95_ms",
    "throughput",
    "peak_memory_mb",
    "activation_memory_kb",
    "tensor_arena_kb",
    "planned_memory_kb",
    "storage_kb",
    "storage_compressed_kb",
    "storage_coded_kb",
    "weight_sparsity",
    "macs",
    "energy_mj",
)


def scalar_metrics(records: list[dict[str, Any]]) -> list[str]:
    """Every objective metric present in some record, in the registry's order."""
    present = {k for r in records for k, v in r.items() if is_figure(v)}
    return [name for name, m in METRICS.items() if m.better and name in present]


NOT_FINITE_NOTE = "left out of every choice: such a figure never fits a bound and never ranks"


def not_finite(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Record name -> its figures that came out NaN or infinite, as the measurement said
    (``not_finite``) or as the record holds them (an edited or older record)."""
    flags = {}
    for r in records:
        found = {**r.get("not_finite", {}), **nonfinite(r)}
        if found:
            flags[r.get("name", "?")] = [f"{name} {value}" for name, value in found.items()]
    return flags


def format_value(value: float | int, unit: str) -> str:
    """How a metric's value is written everywhere: counts with separators, fractions to 4
    places, the rest to 4 significant digits."""
    if isinstance(value, int) or unit == "count":
        return f"{int(value):,}"
    if unit == "fraction":
        return f"{value:.4f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def fmt(value: Any, metric: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    return format_value(value, METRICS[metric].unit if metric in METRICS else "")


def label(metric: str) -> str:
    unit = METRICS[metric].unit if metric in METRICS else ""
    arrow = {"higher": "↑", "lower": "↓"}.get(METRICS[metric].better if metric in METRICS else "")
    return f"{metric} ({unit}) {arrow or ''}".strip()


def recipe_text(record: dict[str, Any]) -> str:
    """``prune unstructured 0.8 → finetune 3``: the settings that tell recipes apart."""
    steps = record.get("recipe") or []
    shown = [s for s in steps if next(iter(s)) not in ("train", "export", "load")]
    return " → ".join(step_label(s, " ") for s in shown) or "baseline"


def how_measured(records: list[dict[str, Any]]) -> list[str]:
    """One line per fact about the measurement, from the first measured record, and one per
    runtime the records were measured on."""
    measured = [r["measured_with"] for r in records if r.get("measured_with")]
    if not measured:
        return ["no candidate was measured"]
    runtimes: dict[str, str] = {}
    for how in measured:
        details = how.get("runtime_details") or {"provider": how.get("provider")}
        line = (
            f"runtime: {how.get('runtime')} {how.get('runtime_version')} "
            f"({', '.join(f'{k} {v}' for k, v in details.items())}), "
            "in a fresh process per candidate"
        )
        if how.get("latency_caveat"):
            line += f"; latency caveat: {how['latency_caveat']}"
        runtimes.setdefault(str(how.get("runtime")), line)
    how = measured[0]
    s = how.get("settings", {})
    return [
        *runtimes.values(),
        f"threads: {s.get('threads')}, pinned to cores {how.get('cores')}"
        + (f", memory cap {s['memory_limit_mb']:g} MB" if s.get("memory_limit_mb") else ""),
        f"latency: batch 1, {s.get('warmup_runs')} warm-up runs, "
        f"{how.get('latency_runs')} timed runs (cap {s.get('max_seconds')} s)",
        f"throughput: best of batch sizes {s.get('batch_sizes')}",
        f"{how.get('task', 'classification')}: {how.get('test_samples')} test samples of "
        f"{how.get('data')}"
        + (
            f"; mAP by pycocotools, precision/recall at score >= {how['detection_threshold']}"
            if "detection_threshold" in how
            else ""
        ),
        f"storage: file bytes; compressed with {how.get('storage_compressor')}",
        f"energy (estimate): {how.get('energy_table')}",
        *dict.fromkeys(where_measured(h) for h in measured),  # each board of a pool once
    ]


def where_measured(how: dict[str, Any]) -> str:
    """The machine the worker ran on, as the worker saw it: a board names itself."""
    machine = (
        f"{how.get('host')}, cpu: {how.get('cpu')} ({how.get('cpu_count')} cores), "
        f"{how.get('uname') or how.get('os')}"
    )
    board = (how.get("device") or {}).get("board")
    if board:
        return f"measured on board {board} over SSH ({how['device']['ssh']}): {machine}"
    return f"measured on this host: {machine}"


def device_line(experiment: Any) -> str:
    """Where the candidates were measured and which budget that implies: a board over SSH, or
    this host emulating a profile (with the slowdown its latency bounds were divided by)."""
    parts = []
    board = experiment.board
    if board is not None and experiment.on_board:
        parts.append(f"measured on board {board.name} over SSH ({', '.join(board.ssh)})")
    elif board is not None:
        parts.append(f"measured on this host for board {board.name}")
    if experiment.device is not None:
        parts.append(f"device profile {experiment.device.name}")
    if (
        experiment.slowdown
        and experiment.budget.bounds
        and (board is not None or experiment.device)
    ):
        parts.append(
            f"the device's latency bounds divided by its slowdown "
            f"{experiment.slowdown['value']:g} ({experiment.slowdown['source']})"
        )
    return "; ".join(parts)
