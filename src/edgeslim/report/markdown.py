"""``report.md``: the recommendation and the main table, for terminals and pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeslim.report.columns import (
    MAIN,
    NOT_FINITE_NOTE,
    device_line,
    fmt,
    how_measured,
    noisy,
    not_finite,
    ordered_metrics,
    recipe_text,
    why_not,
)
from edgeslim.report.latency import HEADER as LATENCY_HEADER
from edgeslim.report.latency import latency_rows
from edgeslim.report.runtimes import legend, runtimes_in, same_candidate_table, unshown_savings
from edgeslim.select import Selection, device_metrics

if TYPE_CHECKING:
    from edgeslim.config import Experiment


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def cell_text(text: str, limit: int = 200) -> str:
    """Text for a table cell: on one line, pipes escaped, cut at ``limit`` characters."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(
    records: list[dict[str, Any]], selection: Selection, experiment: Experiment
) -> str:
    config = experiment.config
    metrics = ordered_metrics([m for m in MAIN if any(m in r for r in records)], selection)
    lead = [m for m in metrics if m in device_metrics(selection.objectives, selection.budget)]
    best = selection.recommended["name"] if selection.recommended else None
    lines = [
        f"# edgeslim report: {config.name}",
        "",
        f"Model `{config.model}` on `{config.data}`, {len(records)} candidates.",
        f"Budget: {', '.join(selection.budget.describe()) or 'none'}"
        + (f" ({device_line(experiment)})" if device_line(experiment) else "")
        + ".",
        f"Objectives: {', '.join(o.metric for o in selection.objectives)} "
        "(the first is optimised).",
        "",
        "```",
        selection.summary(),
        "```",
        "",
        "## Candidates",
        "",
        "✓ fits the budget, ★ recommended; rank 1 is the Pareto front; the device's columns "
        "(the optimised objective, the budget's bounds, the other objectives) come first.",
        "",
    ]
    rows = []
    for r in records:
        mark = "★ " if r["name"] == best else "✓ " if selection.is_fitting(r) else ""
        flag = f" ⚠ {noisy(r)}" if noisy(r) else ""
        rows.append(
            [
                f"{mark}{r['name']}{flag}",
                cell_text(why_not(r, selection)),
                *(fmt(r.get(m), m) for m in lead),
                str(selection.ranks.get(r["name"], "–")),
                *(fmt(r.get(m), m) for m in metrics[len(lead) :]),
                recipe_text(r),
            ]
        )
    header = ["candidate", "why (not)", *lead, "rank", *metrics[len(lead) :], "recipe"]
    lines += markdown_table(header, rows)
    if len(runtimes_in(records)) > 1:
        header, table = same_candidate_table(records, selection)
        lines += ["", "## The same candidate on every runtime", ""]
        lines += [legend(selection), ""]
        lines += markdown_table(header, table)
    targets = latency_rows(records)
    if targets:
        lines += ["", "## Latency targets: predicted against measured", ""]
        lines += markdown_table(LATENCY_HEADER, targets)
    flags = unshown_savings(records)
    if flags:
        lines += ["", "## Savings the runtime did not show", ""]
        lines += [f"- **{name}**: {'; '.join(found)}" for name, found in flags.items()]
    broken = not_finite(records)
    if broken:
        lines += ["", "## Figures that are not numbers", "", NOT_FINITE_NOTE, ""]
        lines += [f"- **{name}**: {', '.join(found)}" for name, found in broken.items()]
    failed = [r for r in records if r.get("status") in ("failed", "does-not-fit")]
    if failed:
        lines += ["", "## Failed or not fitting", ""]
        lines += [f"- **{r['name']}**: {r.get('error') or r.get('does_not_fit')}" for r in failed]
    lines += ["", "## How it was measured", "", *(f"- {line}" for line in how_measured(records))]
    return "\n".join(lines) + "\n"
