"""Latency targets in the report: what was predicted, what was measured, and where the time goes
per layer (predicted by the model's latency table) in the baseline against the pruned model."""

from __future__ import annotations

from typing import Any

HEADER = [
    "candidate",
    "runtime",
    "target ms",
    "predicted ms",
    "measured when pruned ms",
    "measured p50 ms (this record)",
    "predicted / measured − 1",
]


def latency_said(record: dict[str, Any]) -> dict[str, Any] | None:
    """What the candidate's latency-targeted pruning step recorded, if it has one."""
    for step in reversed(record.get("recipe") or []):
        result = (step.get("prune") or {}).get("result") or {}
        if "latency" in result:
            return result["latency"]
    return None


def latency_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per candidate with a prediction. The record's own p50 comes from the full
    measurement (another process, another moment), so its error includes the host's drift."""
    rows = []
    for record in records:
        said = latency_said(record)
        if said is None:
            continue
        measured = record.get("latency_p50_ms")
        error = f"{said['predicted_ms'] / measured - 1:+.1%}" if measured else "–"
        rows.append(
            [
                record["name"],
                str(said.get("runtime", "")),
                f"{said['target_ms']:.4g}",
                f"{said['predicted_ms']:.4g}",
                f"{said['measured_ms']:.4g}",
                f"{measured:.4g}" if measured else "–",
                error,
            ]
        )
    return rows


def layer_costs(record: dict[str, Any] | None) -> tuple[str, dict[str, float], dict[str, float]]:
    """(candidate, baseline ms per layer, its ms per layer), predicted; empty without a target."""
    said = latency_said(record) if record else None
    layers = (said or {}).get("layers_ms")
    if not layers:
        return "", {}, {}
    return record["name"], layers["baseline"], layers["pruned"]
