"""Runtime as a dimension of the report: the same candidate on every runtime, each runtime's
own Pareto front, and the savings a runtime did not turn into speed or memory.

That last flag answers the complaint users file most against compression tools: "I pruned
half the MACs and it is no faster" or "the file is 4x smaller and it uses as much RAM". The RAM
it compares is the memory the model controls, never the process's whole peak (mostly the
runtime's own), and a measured figure flags only what lies outside its noise band.
"""

from __future__ import annotations

from typing import Any

from edgeslim.budget import FALLBACK
from edgeslim.figures import is_figure
from edgeslim.measure.memory import model_memory_noise_kb
from edgeslim.report.columns import fmt
from edgeslim.select import Selection, host_figures, select

Record = dict[str, Any]

# a saving counts from this ratio on; the runtime shows it if the figure moves by 5% or more
SAVING = 1.2
SHOWN = 0.95
# the memory a smaller file should shrink, the most exact first: the arena or memory plan the
# runtime reports, the model's own share of the measured peak, the graph's activation estimate
MEMORY_FIGURES = ("tensor_arena_kb", "planned_memory_kb", "model_memory_kb", "activation_memory_kb")


def runtime_of(record: Record) -> str:
    return record.get("runtime") or record.get("measured_with", {}).get("runtime", "onnxruntime")


def candidate_of(record: Record) -> str:
    return record.get("candidate") or record["name"]


def runtimes_in(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(runtime_of(r) for r in records))


def memory_metric(record: Record, baseline: Record) -> str | None:
    """The memory both records hold that the model controls, the most exact first (None when
    they share none): the process's peak RSS is mostly the runtime's own, whatever the model."""
    return next(
        (m for m in MEMORY_FIGURES if is_figure(record.get(m)) and is_figure(baseline.get(m))),
        None,
    )


def memory_noise_kb(metric: str, *records: Record) -> float:
    """How far two measurements of one model may lie apart on ``metric`` (KB): nothing for an
    exact figure (arena, plan) or one computed from the graph; for model memory, its noise
    band (``memory.model_memory_noise_kb``) at the larger figure, with the widest spread the
    workers measured for their references."""
    if metric != "model_memory_kb":
        return 0.0
    spreads = [
        (r.get("measured_with", {}).get("model_memory") or {}).get("noise_kb") or 0.0
        for r in records
    ]
    return model_memory_noise_kb(max(r[metric] for r in records), max(spreads))


def unshown_memory(base: Record, record: Record, metric: str) -> str | None:
    """Why ``record``'s smaller file did not shrink its memory on ``metric``, or None when it
    did, or when nobody could tell: a file saving no larger than the figure's noise proves
    nothing either way."""
    band = memory_noise_kb(metric, base, record)
    file_saved = base["storage_kb"] - record["storage_kb"]
    mine, theirs = record[metric], base[metric]
    less = theirs - mine
    if file_saved <= band or (less > band and less >= (1 - SHOWN) * theirs):
        return None
    text = f"{ratio(base, record, 'storage_kb'):.1f}x smaller file but no less RAM ({metric}"
    if band:  # a measured figure: the flag carries what backs it
        text += (
            f": {mine:.0f} KB against the baseline's {theirs:.0f} KB, while the file lost "
            f"{file_saved:.0f} KB; noise ±{band:.0f} KB"
        )
    return text + f") on {runtime_of(record)}"


def unshown_savings(records: list[Record]) -> dict[str, list[str]]:
    """Record name -> what its compression saved on paper but not on its runtime, against the
    baseline measured on the same runtime: fewer MACs but not faster; a smaller file (by more
    than the memory figure's noise) but no less of the memory the model controls."""
    baselines = {
        runtime_of(r): r
        for r in records
        if candidate_of(r) == "baseline" and r.get("status", "ok") == "ok"
    }
    flags: dict[str, list[str]] = {}
    for r in records:
        base = baselines.get(runtime_of(r))
        if base is None or r is base or r.get("status", "ok") != "ok":
            continue
        found = []
        if ratio(base, r, "macs") >= SAVING and ratio(base, r, "latency_p50_ms") < 1 / SHOWN:
            found.append(
                f"{ratio(base, r, 'macs'):.1f}x fewer MACs but not faster on {runtime_of(r)}"
            )
        memory = memory_metric(r, base)
        if memory and ratio(base, r, "storage_kb") >= SAVING:
            unshown = unshown_memory(base, r, memory)
            if unshown:
                found.append(unshown)
        if found:
            flags[r["name"]] = found
    return flags


def ratio(base: Record, record: Record, metric: str) -> float:
    """How many times smaller ``record``'s figure is than the baseline's (1.0 if unknown)."""
    mine, theirs = record.get(metric), base.get(metric)
    if not is_figure(mine) or not is_figure(theirs) or mine <= 0:
        return 1.0
    return theirs / mine


def fronts(records: list[Record], selection: Selection) -> dict[str, set[str]]:
    """Runtime -> the record names on that runtime's own Pareto front."""
    objectives = [o.metric for o in selection.objectives]
    by_runtime: dict[str, set[str]] = {}
    for runtime in runtimes_in(records):
        mine = [r for r in records if runtime_of(r) == runtime]
        ranks = select(mine, selection.budget, objectives=objectives).ranks
        by_runtime[runtime] = {name for name, rank in ranks.items() if rank == 1}
    return by_runtime


def quality_of(selection: Selection) -> str:
    """The quality the objectives maximise (accuracy, mAP@0.5): the first higher-is-better."""
    return next((o.metric for o in selection.objectives if o.better == "higher"), "accuracy")


def legend(selection: Selection) -> str:
    fallback = (
        ", else the graph's activation memory the arena bound holds it to"
        if "peak_memory_mb" in host_figures(selection.budget)
        else ""
    )
    return (
        f"{quality_of(selection)} · p95 latency · storage · memory (the exact tensor arena where "
        f"the runtime reports one{fallback}, else the model's own memory); ◆ on that runtime's "
        "own Pareto front."
    )


def table_memory(record: Record, selection: Selection) -> tuple[str, str]:
    """The memory figure a row shows and its unit: the exact arena where the runtime reports
    one; under an arena bound, the activation memory the budget holds the rest to; else the
    model's own memory (the measuring process's peak RSS in a record without it)."""
    if "tensor_arena_kb" in record:
        return "tensor_arena_kb", "KB arena"
    if "peak_memory_mb" in host_figures(selection.budget) and FALLBACK["tensor_arena_kb"] in record:
        return FALLBACK["tensor_arena_kb"], "KB activations"
    if "model_memory_kb" in record:
        return "model_memory_kb", "KB model"
    return "peak_memory_mb", "MB peak"


def same_candidate_table(
    records: list[Record], selection: Selection
) -> tuple[list[str], list[list[str]]]:
    """Rows: candidates; columns: each runtime's quality (accuracy, mAP), p95 latency, storage
    and memory (the exact arena where there is one). ◆ marks a point on its runtime's own
    front."""
    runtimes = runtimes_in(records)
    quality = quality_of(selection)
    on_front = fronts(records, selection)
    cells: dict[str, dict[str, str]] = {}
    for r in records:
        runtime = runtime_of(r)
        if r.get("status", "ok") != "ok":
            text = r.get("status", "failed")
        else:
            memory, unit = table_memory(r, selection)
            text = (
                f"{fmt(r.get(quality), quality)} · "
                f"{fmt(r.get('latency_p95_ms'), 'latency_p95_ms')} ms · "
                f"{fmt(r.get('storage_kb'), 'storage_kb')} KB · "
                f"{fmt(r.get(memory), memory)} {unit}"
            )
            if r["name"] in on_front.get(runtime, set()):
                text = "◆ " + text
        cells.setdefault(candidate_of(r), {})[runtime] = text
    header = ["candidate", *runtimes]
    rows = [[name, *(row.get(rt, "–") for rt in runtimes)] for name, row in cells.items()]
    return header, rows
