"""Which metrics a report shows and how each value is written: shared by HTML and Markdown."""

from __future__ import annotations

from typing import Any

from edgeslim.budget import Violation
from edgeslim.candidate import step_label
from edgeslim.figures import is_figure, nonfinite
from edgeslim.measure import METRICS
from edgeslim.select import Selection, device_metrics, figure, host_figures, margin

# the short table: what a reader compares first
MAIN = (
    "val_accuracy",
    "accuracy",
    "val_map50",
    "map50",
    "map",
    "precision",
    "recall",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_e2e_p95_ms",
    "throughput",
    "model_memory_kb",
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
        validation_line(how),
        f"storage: file bytes; compressed with {how.get('storage_compressor')}",
        f"energy (estimate): {how.get('energy_table')}",
        *dict.fromkeys(where_measured(h) for h in measured),  # each board of a pool once
    ]


def validation_line(how: dict[str, Any]) -> str:
    """Which split chose and which is reported: a run measured before validation figures
    says so, rather than leave a reader to assume."""
    if how.get("val_samples") is None:
        return (
            "chosen on the test split: measured before edgeslim measured the validation split "
            "(measure again to choose on validation)"
        )
    return (
        f"chosen on the validation split ({how['val_samples']} samples, "
        f"{how['validation']}); the test split is reported, "
        "never chosen on"
    )


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
    this host emulating a profile (with the slowdown its time bounds were divided by, when the
    budget has any)."""
    parts = []
    board = experiment.board
    if board is not None and experiment.on_board:
        parts.append(f"measured on board {board.name} over SSH ({', '.join(board.ssh)})")
    elif board is not None:
        parts.append(f"measured on this host for board {board.name}")
    if experiment.device is not None:
        parts.append(f"device profile {experiment.device.name}")
    timed = [b for b in experiment.budget.bounds if time_bound(b.metric)]
    if experiment.slowdown and timed and (board is not None or experiment.device):
        value, source = experiment.slowdown["value"], experiment.slowdown["source"]
        if value == 1:
            parts.append(
                f"the device's latency bounds hold as written (as fast as this host, {source})"
            )
        else:
            parts.append(
                f"the device's latency bounds divided by its slowdown {value:g} ({source})"
            )
    return "; ".join(parts)


def time_bound(metric: str) -> bool:
    """A bound a device's slowdown scales: a time (ms) or a rate (per second)."""
    unit = METRICS[metric].unit if metric in METRICS else ""
    return unit == "ms" or unit.endswith("/s")


def ordered_metrics(metrics: list[str], selection: Selection) -> list[str]:
    """``metrics`` with the device's first (the primary objective, the budget's bounds, the
    other objectives), then the rest in their own order; a figure of this host that a bound
    on the device's own makes meaningless (peak RSS beside an arena bound) goes last."""
    lead = [m for m in device_metrics(selection.objectives, selection.budget) if m in metrics]
    host_only = host_figures(selection.budget)
    rest = [m for m in metrics if m not in lead and m not in host_only]
    return [*lead, *rest, *(m for m in metrics if m in host_only and m not in lead)]


def noisy(record: dict[str, Any]) -> str:
    """``timing noisy: cv 0.41 > 0.25`` when the host was noisy while timing it, else ``""``."""
    flag = record.get("timing_noisy")
    return f"timing noisy: {flag}" if flag else ""


def broken_bound(violation: Violation, record: dict[str, Any]) -> str:
    """``storage_kb 600.0 > 512 (17% over)``: the bound a record breaks and its measured value."""
    bound = violation.bound
    if violation.measured is None:
        return f"{bound.metric} not measured (bound {bound.op} {bound.value:g})"
    if not is_figure(violation.measured):
        return f"{bound.metric} is {violation.measured} (bound {bound.op} {bound.value:g})"
    _, source = figure(record, bound.metric)
    shown = bound.metric + (f" (from {source})" if source != bound.metric else "")
    wrong_side, off = (">", "over") if bound.op == "<=" else ("<", "short")
    return (
        f"{shown} {format_value(violation.measured, unit_of(bound.metric))} {wrong_side} "
        f"{bound.value:g} ({violation.relative:.0%} {off})"
    )


def unit_of(metric: str) -> str:
    return METRICS[metric].unit if metric in METRICS else ""


def why_not(record: dict[str, Any], selection: Selection) -> str:
    """Why a candidate is not the recommendation, in one line: it failed, a bound it breaks
    (and by how much), an objective it lacks, or, when it fits, the first objective on which it
    ranks below the winner (with the margin against the test set's noise on a proportion)."""
    best = selection.recommended
    status = record.get("status", "ok")
    if best is not None and record.get("name") == best["name"]:
        return "recommended"
    if status == "failed":
        return f"failed at {record.get('stage', '?')}: {record.get('error', 'no error recorded')}"
    if status != "ok":
        return f"{status}: {record.get('does_not_fit') or record.get('error') or ''}".rstrip(": ")
    missing = [o.metric for o in selection.objectives if o.value(record) is None]
    broken = selection.budget.violations(record)
    if broken:
        return "misses the budget: " + "; ".join(broken_bound(v, record) for v in broken)
    if missing:
        flagged = {**(record.get("not_finite") or {}), **nonfinite(record)}
        return "not ranked: " + ", ".join(
            f"{m} is {flagged[m]}" if m in flagged else f"{m} not measured" for m in missing
        )
    if best is None:
        return "fits"  # unreachable: anything measured that fits is recommended or a runner-up
    role = "runner-up" if any(r["name"] == record["name"] for r in selection.runner_ups) else "fits"
    for objective in selection.objectives:
        mine, theirs = objective.value(record), objective.value(best)
        if mine == theirs:
            continue
        unit = unit_of(objective.metric)
        text = (
            f"{role}; {objective.metric} {format_value(mine, unit)} vs "
            f"{format_value(theirs, unit)} ({best['name']})"
        )
        gap = margin(best, record, objective.metric)
        if objective is selection.primary and gap is not None:
            text += f": {gap.text()}" + (", as good a pick" if gap.within else "")
        return text
    return f"{role}; ties with {best['name']} on every objective (the name decides)"
