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
from edgeslim.measure import METRICS
from edgeslim.report.columns import (
    NOT_FINITE_NOTE,
    device_line,
    fmt,
    how_measured,
    label,
    noisy,
    not_finite,
    ordered_metrics,
    recipe_text,
    scalar_metrics,
    why_not,
)
from edgeslim.report.detections import detections_html
from edgeslim.report.latency import HEADER as LATENCY_HEADER
from edgeslim.report.latency import latency_rows, layer_costs
from edgeslim.report.runtimes import (
    legend,
    runtimes_in,
    same_candidate_table,
    unshown_savings,
)
from edgeslim.select import (
    Objective,
    Selection,
    device_metrics,
    figure,
    host_figures,
    hypervolume_history,
    pareto_ranks,
)

if TYPE_CHECKING:
    from edgeslim.config import Experiment

COSTS = ("latency_p95_ms", "storage_kb", "model_memory_kb")  # x axes the objectives leave free
PARALLEL = ("accuracy", "latency_p95_ms", "storage_kb", "model_memory_kb", "macs", "energy_mj")
COLORS = {"fits": "#2a9d8f", "misses": "#e76f51", "recommended": "#264653"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: .2rem; } .muted { color: #666; }
.verdict { background: #f1f7f6; border-left: 4px solid #2a9d8f; padding: .8rem 1rem; }
.verdict.none { background: #fbefeb; border-color: #e76f51; }
.verdict pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; font-size: .9rem; }
#why-not li { margin: .15rem 0; } .why { text-align: left; white-space: normal; min-width: 16rem; }
.noisy { color: #b5651d; font-weight: 600; } th.bounded { background: #fdf1e6; }
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
    """``y`` against ``x``, each point labelled with its candidate's name, the Pareto front over
    the two and the budget's bounds on them drawn. A bound's metric that a record's runtime does
    not report (the arena, off TFLite Micro) takes the fallback the budget checks."""
    at: dict[str, dict[str, float]] = {}
    for r in records:
        (at_x, _), (at_y, _) = figure(r, x), figure(r, y)
        if at_x is not None and at_y is not None:
            at[r["name"]] = {x: at_x, y: at_y}
    usable = [r for r in records if r["name"] in at]
    if not usable:
        return f"<p class='muted'>{esc(x)} was not measured for any candidate.</p>"
    objectives = [Objective(x, METRICS[x].better), Objective(y, METRICS[y].better)]
    ranks = pareto_ranks([at[r["name"]] for r in usable], objectives)
    middle = (min(p[x] for p in at.values()) + max(p[x] for p in at.values())) / 2
    fig = go.Figure()
    for group, color in COLORS.items():
        chosen = [r for r in usable if point_group(r, selection) == group]
        if not chosen:
            continue
        fig.add_trace(
            go.Scatter(
                x=[at[r["name"]][x] for r in chosen],
                y=[at[r["name"]][y] for r in chosen],
                mode="markers+text",
                name={"fits": "fits the budget", "misses": "misses the budget"}.get(group, group),
                text=[r["name"] for r in chosen],
                textposition=[side(at[r["name"]][x], middle) for r in chosen],
                cliponaxis=False,  # a label near an edge runs into the margin, not cut off
                textfont={"size": 10, "color": color},
                customdata=[point_note(r, x, y, selection) for r in chosen],
                marker={
                    "color": color,
                    "size": 14 if group == "recommended" else 9,
                    "symbol": "star" if group == "recommended" else "circle",
                },
                hovertemplate="<b>%{text}</b><br>"
                + f"{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<br>%{{customdata}}<extra></extra>",
            )
        )
    front = sorted(
        (at[r["name"]] for r, rank in zip(usable, ranks, strict=True) if rank == 1),
        key=lambda p: p[x],
    )
    fig.add_trace(
        go.Scatter(
            x=[p[x] for p in front],
            y=[p[y] for p in front],
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


def side(value: float, middle: float) -> str:
    """A label's place: towards the plot's middle, so labels at the edges stay inside it."""
    return "top left" if value > middle else "top right"


def point_note(record: dict[str, Any], x: str, y: str, selection: Selection) -> str:
    """A point's hover note: where a figure came from a fallback, and why it is not chosen."""
    notes = [
        f"{metric} from {source}"
        for metric in (x, y)
        if (source := figure(record, metric)[1]) != metric
    ]
    if noisy(record):
        notes.append(noisy(record))
    notes.append(why_not(record, selection))
    return html.escape("; ".join(notes), quote=False)  # plotly reads it as its own HTML


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


def latency_html(records: list[dict[str, Any]], selection: Selection) -> str:
    """Predicted against measured for every candidate with a latency target, and where the
    time goes per layer in the baseline against the recommended model (or the first such)."""
    rows = latency_rows(records)
    if not rows:
        return ""
    table = f"<div class='scroll'>{grid_html(LATENCY_HEADER, rows, 'latency')}</div>"
    charted = (layer_costs(r) for r in (selection.recommended, *records))
    name, baseline, pruned = next((c for c in charted if c[0]), ("", {}, {}))
    if not name:  # a record from before the per-layer figures were kept
        return f"<h2>Latency targets: predicted against measured</h2>{table}"
    fig = go.Figure(
        [
            go.Bar(x=list(baseline), y=list(baseline.values()), name="baseline"),
            go.Bar(x=list(pruned), y=[pruned.get(n, 0.0) for n in baseline], name=name),
        ]
    )
    fig.update_layout(
        title=f"predicted ms per layer on the runtime: baseline against {name}",
        yaxis_title="ms (latency table's predictor)",
        barmode="group",
    )
    return (
        f"<h2>Latency targets: predicted against measured</h2>{table}"
        f"<div class='plot'>{figure_html(fig, 'latency-layers')}</div>"
    )


def grid_html(header: list[str], rows: list[list[str]], table_id: str) -> str:
    """A plain table of text cells, escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table_html(records: list[dict[str, Any]], selection: Selection, metrics: list[str]) -> str:
    """One row per candidate: its name, why it is (not) the recommendation, the device's
    columns (the optimised objective, the budget's bounds, the other objectives), its Pareto
    rank, then every other metric and its recipe."""
    shown = ordered_metrics(metrics, selection)
    lead = [m for m in shown if m in device_metrics(selection.objectives, selection.budget)]
    bounds = {m: [str(b) for b in selection.budget.bounds if b.metric == m] for m in lead}
    heads = [
        "<th>candidate</th>",
        "<th>why (not)</th>",
        *(
            f"<th class='bounded' title='budget: {esc(', '.join(bounds[m]))}'>{esc(label(m))}</th>"
            if bounds[m]
            else f"<th>{esc(label(m))}</th>"
            for m in lead
        ),
        "<th>Pareto rank</th>",
        *(f"<th>{esc(label(m))}</th>" for m in shown[len(lead) :]),
        "<th>recipe</th>",
    ]
    head = "".join(heads)
    rows = []
    for r in records:
        group = point_group(r, selection)
        classes = {"recommended": ["fits", "recommended"], "fits": ["fits"]}.get(group, [])
        status = r.get("status", "ok")
        if status == "failed":
            classes.append("failed")
        reason = why_not(r, selection)
        flag = f"<span class='noisy'>⚠ {esc(noisy(r))}</span>; " if noisy(r) else ""
        cells = [
            f"<td>{esc(r['name'])}</td>",
            f"<td class='why' data-value='{esc(status)}' title='{esc(reason)}'>"
            f"{flag}{esc(cut(reason))}</td>",
            *(cell(r, m) for m in lead),
            f"<td>{selection.ranks.get(r['name'], '–')}</td>",
            *(cell(r, m) for m in shown[len(lead) :]),
            f"<td class='recipe'>{esc(recipe_text(r))}</td>",
        ]
        rows.append(f"<tr class='{' '.join(classes)}'>{''.join(cells)}</tr>")
    return (
        f"<table class='sortable' id='candidates'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def cell(record: dict[str, Any], metric: str) -> str:
    return f"<td data-value='{esc(record.get(metric, ''))}'>{fmt(record.get(metric), metric)}</td>"


def cut(text: str, limit: int = 200) -> str:
    """A long reason (a failure's error) cut for the table; the cell's title holds it all."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def why_not_html(records: list[dict[str, Any]], selection: Selection) -> str:
    """Each candidate other than the recommendation, and why it is not the pick."""
    best = selection.recommended["name"] if selection.recommended else None
    items = "".join(
        f"<li><b>{esc(r['name'])}</b>"
        + (f" <span class='noisy'>⚠ {esc(noisy(r))}</span>" if noisy(r) else "")
        + f": {esc(cut(why_not(r, selection), 400))}</li>"
        for r in records
        if r.get("name") != best
    )
    if not items:
        return ""
    return f"<h2>Why not the others</h2><ul id='why-not'>{items}</ul>"


def runtimes_html(records: list[dict[str, Any]], selection: Selection) -> str:
    """The same candidate on every runtime (when there are several), and the savings a
    runtime did not show."""
    parts = []
    if len(runtimes_in(records)) > 1:
        header, rows = same_candidate_table(records, selection)
        parts.append(
            "<h2>The same candidate on every runtime</h2><p class='muted'>"
            f"{esc(legend(selection))}</p>"
            f"<div class='scroll'>{grid_html(header, rows, 'runtimes')}</div>"
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
    """Three (cost, quality) pairs: the optimised objective against what the device bounds,
    then against the other objectives, then the usual costs; never against a figure of this
    host that a bound on the device's own makes meaningless (peak RSS beside an arena bound)."""
    quality, *costs = device_metrics(selection.objectives, selection.budget)
    host_only = host_figures(selection.budget)
    costs = [c for c in dict.fromkeys([*costs, *COSTS]) if c not in host_only]
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
    host_only = host_figures(selection.budget)
    wanted = [*device_metrics(selection.objectives, selection.budget), *PARALLEL]
    parallel_metrics = [m for m in dict.fromkeys(wanted) if m in metrics and m not in host_only]
    parallel_metrics = parallel_metrics[:8]
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
<div class="{verdict_class}" id="recommendation"><pre>{esc(selection.summary())}</pre></div>
{device}
<p>Budget: {esc(", ".join(selection.budget.describe()) or "none")}.
Objectives (first is optimised): {esc(", ".join(objective_names))}.</p>
{why_not_html(records, selection)}
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
{latency_html(records, selection)}
{detections_html(examples, records, selection.recommended)}
{f"<h2>Failed candidates</h2><ul>{failures}</ul>" if failed else ""}
<h2>Recommended model, layer by layer</h2>
<div class="plot">{layer_plot(selection.recommended)}</div>
<h2>How it was measured</h2>
<ul>{measured}</ul>
<script>{SORT_SCRIPT}</script>
</body></html>
"""
