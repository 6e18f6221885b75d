"""``report.html``: one self-contained file (plotly.js inlined, works offline) with the
recommendation, the sortable candidate table, Pareto plots with the budget drawn, a parallel-
coordinates view of every metric, per-layer sparsity of the recommended model, and how every
number was measured."""

from __future__ import annotations

import datetime
import html
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from edgeslim.figures import is_figure
from edgeslim.report.columns import (
    NOT_FINITE_NOTE,
    device_line,
    fmt,
    how_measured,
    label,
    not_finite,
    recipe_text,
    scalar_metrics,
)
from edgeslim.report.detections import detections_html
from edgeslim.report.runtimes import (
    legend,
    runtimes_in,
    same_candidate_table,
    unshown_savings,
)
from edgeslim.select import Objective, Selection, hypervolume_history, pareto_ranks

if TYPE_CHECKING:
    from edgeslim.config import Experiment

COSTS = ("latency_p95_ms", "storage_kb", "peak_memory_mb")  # x axes the objectives leave free
PARALLEL = ("accuracy", "latency_p95_ms", "storage_kb", "peak_memory_mb", "macs", "energy_mj")
COLORS = {"fits": "#2a9d8f", "misses": "#e76f51", "recommended": "#264653"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: .2rem; } .muted { color: #666; }
.verdict { background: #f1f7f6; border-left: 4px solid #2a9d8f; padding: .8rem 1rem; }
.verdict.none { background: #fbefeb; border-color: #e76f51; }
table { border-collapse: collapse; font-size: .85rem; width: 100%; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #ddd; text-align: right; }
th { cursor: pointer; background: #fafafa; position: sticky; top: 0; }
td:first-child, th:first-child, td.recipe { text-align: left; }
tr.fits td:first-child::before { content: "✓ "; color: #2a9d8f; }
tr.recommended { background: #eaf4f2; font-weight: 600; }
tr.failed { color: #a33; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 1rem; }
.plot { min-height: 420px; min-width: 0; }
.scroll { overflow-x: auto; } td.recipe { min-width: 24rem; white-space: normal; }
td, th { white-space: nowrap; }
"""

SORT_SCRIPT = """
// plots drawn before the grid settled take their cells' size once the page has loaded
window.addEventListener("load", () =>
  document.querySelectorAll(".js-plotly-plot").forEach((p) => Plotly.Plots.resize(p)));
document.querySelectorAll("table.sortable th").forEach((th, col) => {
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0];
    const asc = th.dataset.order !== "asc";
    th.dataset.order = asc ? "asc" : "desc";
    const key = (row) => {
      const cell = row.cells[col]; const v = cell.dataset.value ?? cell.textContent;
      if (v === "" || v === "–") return null;  // not measured: always last
      const n = Number(v); return isNaN(n) ? v : n;
    };
    [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1);
    }).forEach((row) => body.appendChild(row));
  });
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def figure_html(fig: go.Figure, div_id: str) -> str:
    if fig.layout.margin.t is None:
        fig.update_layout(margin={"l": 60, "r": 30, "t": 60, "b": 50})
    fig.update_layout(template="plotly_white", autosize=True)
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        default_width="100%",
        default_height="420px",
        config={"responsive": True, "displaylogo": False},
    )


def point_group(record: dict[str, Any], selection: Selection) -> str:
    if selection.recommended and record["name"] == selection.recommended["name"]:
        return "recommended"
    return "fits" if selection.is_fitting(record) else "misses"


def pareto_plot(
    x: str, y: str, records: list[dict[str, Any]], selection: Selection, div_id: str
) -> str:
    from edgeslim.measure import METRICS

    usable = [r for r in records if is_figure(r.get(x)) and is_figure(r.get(y))]
    if not usable:
        return f"<p class='muted'>{esc(x)} was not measured for any candidate.</p>"
    objectives = [Objective(x, METRICS[x].better), Objective(y, METRICS[y].better)]
    ranks = pareto_ranks(usable, objectives)
    fig = go.Figure()
    for group, color in COLORS.items():
        chosen = [r for r in usable if point_group(r, selection) == group]
        if not chosen:
            continue
        fig.add_trace(
            go.Scatter(
                x=[r[x] for r in chosen],
                y=[r[y] for r in chosen],
                mode="markers",
                name={"fits": "fits the budget", "misses": "misses the budget"}.get(group, group),
                text=[r["name"] for r in chosen],
                marker={
                    "color": color,
                    "size": 14 if group == "recommended" else 9,
                    "symbol": "star" if group == "recommended" else "circle",
                },
                hovertemplate="%{text}<br>" + f"{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<extra></extra>",
            )
        )
    front = sorted(
        (r for r, rank in zip(usable, ranks, strict=True) if rank == 1), key=lambda r: r[x]
    )
    fig.add_trace(
        go.Scatter(
            x=[r[x] for r in front],
            y=[r[y] for r in front],
            mode="lines",
            line={"shape": "hv", "color": "#888", "dash": "dot"},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    for bound in selection.budget.bounds:
        if bound.metric in (x, y):
            vertical = bound.metric == x
            line = {"color": "#e76f51", "dash": "dash"}
            if vertical:
                fig.add_vline(x=bound.value, line=line, annotation_text=str(bound))
            else:
                fig.add_hline(y=bound.value, line=line, annotation_text=str(bound))
    fig.update_layout(
        title=f"{y} vs {x}",
        xaxis_title=label(x),
        yaxis_title=label(y),
        legend={"orientation": "h", "y": -0.2},
    )
    return figure_html(fig, div_id)


def parallel_plot(records: list[dict[str, Any]], metrics: list[str], selection: Selection) -> str:
    usable = [r for r in records if all(is_figure(r.get(m)) for m in metrics)]
    if len(usable) < 2 or not metrics:
        return "<p class='muted'>Too few measured candidates for a parallel-coordinates view.</p>"
    fits = [1 if selection.is_fitting(r) else 0 for r in usable]
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": fits,
                "colorscale": [[0, COLORS["misses"]], [1, COLORS["fits"]]],
                "cmin": 0,
                "cmax": 1,
            },
            dimensions=[{"label": label(m), "values": [r[m] for r in usable]} for m in metrics],
        )
    )
    fig.update_layout(
        title="every candidate on the main metrics (green: fits the budget)",
        margin={"t": 110},
    )
    return figure_html(fig, "parallel")


def search_plot(records: list[dict[str, Any]], selection: Selection) -> str:
    history = hypervolume_history(records, selection.objectives, selection.budget)
    if not history:
        return ""
    fig = go.Figure(
        go.Scatter(
            x=[t for t, _ in history],
            y=[hv for _, hv in history],
            mode="lines+markers",
            line={"shape": "hv", "color": COLORS["fits"]},
            name="hypervolume",
        )
    )
    fig.update_layout(
        title="search: hypervolume of the fitting front after each trial",
        xaxis_title="trial",
        yaxis_title="hypervolume (objectives as losses, box up to the budget)",
    )
    return f"<h2>Search progress</h2><div class='plot'>{figure_html(fig, 'search')}</div>"


def layer_plot(record: dict[str, Any] | None) -> str:
    if record is None:
        return "<p class='muted'>No recommended model, so no per-layer view.</p>"
    weights = record.get("weight_sparsity_by_layer") or {}
    acts = record.get("activation_sparsity_by_layer") or {}
    if not weights and not acts:
        return "<p class='muted'>The recommended model has no per-layer sparsity record.</p>"
    fig = go.Figure()
    if weights:
        fig.add_trace(go.Bar(x=list(weights), y=list(weights.values()), name="weight sparsity"))
    if acts:
        fig.add_trace(go.Bar(x=list(acts), y=list(acts.values()), name="activation sparsity"))
    fig.update_layout(
        title=f"per-layer sparsity of {record['name']}",
        yaxis={"title": "fraction of zeros", "range": [0, 1]},
        barmode="group",
    )
    return figure_html(fig, "layers")


def table_html(records: list[dict[str, Any]], selection: Selection, metrics: list[str]) -> str:
    head = "".join(
        f"<th>{esc(h)}</th>"
        for h in ["candidate", "status", "Pareto rank", *map(label, metrics), "recipe"]
    )
    rows = []
    for r in records:
        group = point_group(r, selection)
        classes = {"recommended": ["fits", "recommended"], "fits": ["fits"]}.get(group, [])
        if r.get("status", "ok") == "failed":
            classes.append("failed")
        status = r.get("status", "ok")
        note = r.get("error") or r.get("does_not_fit") or ""
        cells = [
            f"<td>{esc(r['name'])}</td>",
            f"<td title='{esc(note)}'>{esc(status)}</td>",
            f"<td>{selection.ranks.get(r['name'], '–')}</td>",
            *(f"<td data-value='{esc(r.get(m, ''))}'>{fmt(r.get(m), m)}</td>" for m in metrics),
            f"<td class='recipe'>{esc(recipe_text(r))}</td>",
        ]
        rows.append(f"<tr class='{' '.join(classes)}'>{''.join(cells)}</tr>")
    return (
        f"<table class='sortable' id='candidates'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def runtimes_html(records: list[dict[str, Any]], selection: Selection) -> str:
    """The same candidate on every runtime (when there are several), and the savings a
    runtime did not show."""
    parts = []
    if len(runtimes_in(records)) > 1:
        header, rows = same_candidate_table(records, selection)
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows
        )
        parts.append(
            "<h2>The same candidate on every runtime</h2><p class='muted'>"
            f"{esc(legend(selection))}</p>"
            f"<div class='scroll'><table id='runtimes'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>"
        )
    flags = unshown_savings(records)
    if flags:
        items = "".join(
            f"<li><b>{esc(name)}</b>: {esc('; '.join(found))}</li>" for name, found in flags.items()
        )
        parts.append(f"<h2>Savings the runtime did not show</h2><ul id='unshown'>{items}</ul>")
    broken = not_finite(records)
    if broken:
        items = "".join(
            f"<li><b>{esc(name)}</b>: {esc(', '.join(found))}</li>"
            for name, found in broken.items()
        )
        parts.append(
            "<h2>Figures that are not numbers</h2>"
            f"<p class='muted'>{esc(NOT_FINITE_NOTE)}</p><ul id='not-finite'>{items}</ul>"
        )
    return "".join(parts)


def trade_offs(selection: Selection) -> list[tuple[str, str]]:
    """Three (cost, quality) pairs: the optimised objective against the other objectives,
    then against the usual costs."""
    quality, *others = [o.metric for o in selection.objectives]
    costs = list(dict.fromkeys([*others, *COSTS]))
    return [(cost, quality) for cost in costs if cost != quality][:3]


def render_html(
    records: list[dict[str, Any]],
    selection: Selection,
    experiment: Experiment,
    examples: dict[str, Any] | None = None,
) -> str:
    config = experiment.config
    metrics = scalar_metrics(records)
    objective_names = [o.metric for o in selection.objectives]
    verdict_class = "verdict" if selection.recommended else "verdict none"
    plots = "".join(
        f"<div class='plot'>{pareto_plot(x, y, selection.measured, selection, f'pareto-{i}')}</div>"
        for i, (x, y) in enumerate(trade_offs(selection))
    )
    failed = [r for r in records if r.get("status") == "failed"]
    failures = "".join(
        f"<li><b>{esc(r['name'])}</b> ({esc(r.get('stage'))}): {esc(r.get('error'))}</li>"
        for r in failed
    )
    device = (
        f"<p>Device profile <b>{esc(experiment.device.name)}</b>: "
        f"{esc(experiment.device.description)}. <span class='muted'>Source: "
        f"{esc(experiment.device.source)}</span></p>"
        if experiment.device
        else ""
    )
    if device_line(experiment):
        device += f"<p>{esc(device_line(experiment))}.</p>"
    wanted = [*objective_names, *PARALLEL]
    parallel_metrics = [m for m in dict.fromkeys(wanted) if m in metrics][:8]
    measured = "".join(f"<li>{esc(line)}</li>" for line in how_measured(records))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>edgeslim report: {esc(config.name)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>edgeslim report: {esc(config.name)}</h1>
<p class="muted">model {esc(config.model)} on {esc(config.data)}; {len(records)} candidates;
written {now}</p>
<div class="{verdict_class}"><pre>{esc(selection.summary())}</pre></div>
{device}
<p>Budget: {esc(", ".join(selection.budget.describe()) or "none")}.
Objectives (first is optimised): {esc(", ".join(objective_names))}.</p>
<h2>Trade-offs</h2>
<div class="plots">{plots}</div>
{search_plot(records, selection)}
<h2>All metrics</h2>
<div class="plot">{parallel_plot(selection.measured, parallel_metrics, selection)}</div>
<h2>Candidates</h2>
<p class="muted">Click a column to sort. ✓ fits the budget; the highlighted row is recommended.
Pareto rank 1 is the front over the objectives.</p>
<div class="scroll">{table_html(records, selection, metrics)}</div>
{runtimes_html(records, selection)}
{detections_html(examples, records, selection.recommended)}
{f"<h2>Failed candidates</h2><ul>{failures}</ul>" if failed else ""}
<h2>Recommended model, layer by layer</h2>
<div class="plot">{layer_plot(selection.recommended)}</div>
<h2>How it was measured</h2>
<ul>{measured}</ul>
<script>{SORT_SCRIPT}</script>
</body></html>
"""
