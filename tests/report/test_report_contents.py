"""What a report leads with, on hand-made records for a microcontroller (``mcu-nrf52840``:
storage_kb <= 512, tensor_arena_kb <= 128): the device's columns first, a reason per candidate,
labelled points, the arena plotted (not the host's peak RSS), flags for noisy timing, and a
margin within the test set's noise said as such."""

from __future__ import annotations

import re

import pytest

from edgeslim import config
from edgeslim.report import selection_for
from edgeslim.report.columns import device_line
from edgeslim.report.html import render_html
from edgeslim.report.markdown import render_markdown
from tests.experiments import experiment_dict
from tests.report.plots import axis_title, figures

N = 359  # digits' test split


def rec(name: str, correct: int, storage: float = 40.0, arena: float | None = 60.0, **extra):
    record = {
        "name": name,
        "status": "ok",
        "runtime": "tflite-micro",
        "accuracy": correct / N,
        "latency_p95_ms": 0.5,
        "storage_kb": storage,
        "peak_memory_mb": 0.7,
        "activation_memory_kb": (arena or 150.0) / 2,
        "macs": 100_000,
        "measured_with": {"runtime": "tflite-micro", "test_samples": N},
        **extra,
    }
    if arena is not None:
        record["tensor_arena_kb"] = arena
    return record


def mcu(**changes):
    raw = experiment_dict("mcu", candidates=["int8-static"], device="mcu-nrf52840", budget={})
    del raw["objectives"]  # the task's defaults: accuracy, latency, storage, peak memory
    raw.update(changes)
    return config.parse(raw)


RECORDS = [
    rec("baseline", 350, storage=200, arena=141.5),  # the arena rules it out
    rec("big", 349, storage=600),  # the storage rules it out
    # measured where no arena is reported: held to the graph's activation memory (150)
    {**rec("onnx-fat", 348, arena=None), "runtime": "onnxruntime", "activation_memory_kb": 150},
    rec("weight-int4", 347),  # the pick
    rec("channels-50-kd-int8", 345, storage=20, arena=30, timing_noisy="cv 0.41 > 0.25"),
    rec("tiny", 250, storage=10, arena=10),  # far behind: more than noise
    {"name": "broken", "status": "failed", "stage": "export", "error": "boom"},
]


@pytest.fixture(scope="module")
def report():
    experiment = mcu()
    selection = selection_for(RECORDS, experiment)
    html = render_html(RECORDS, selection, experiment)
    markdown = render_markdown(RECORDS, selection, experiment)
    return selection, html, markdown


def rows(html: str) -> dict[str, str]:
    """Candidate name -> its row of the candidates table."""
    body = html.split("<table class='sortable' id='candidates'>")[1].split("</table>")[0]
    return {
        re.search(r"<td>([^<]*)</td>", row)[1]: row
        for row in re.findall(r"<tr class='[^']*'>.*?</tr>", body)
    }


def candidate_lines(markdown: str) -> list[str]:
    """The rows of the Markdown's candidates table (not the per-runtime one)."""
    section = markdown.split("## Candidates")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_the_summary_names_the_arena_and_the_runner_ups_with_their_figures(report):
    selection, html, _ = report
    assert selection.recommended["name"] == "weight-int4"
    summary = selection.summary()
    first, figures_line, goal, *rest = summary.splitlines()
    assert first == "recommended: weight-int4"
    assert (
        "tensor_arena_kb 60 (<= 128)" in figures_line and "storage_kb 40 (<= 512)" in figures_line
    )
    assert "peak_memory_mb" not in summary  # the host's process, not the device's memory
    assert goal == "  chosen to maximise accuracy under storage_kb <= 512, tensor_arena_kb <= 128"
    assert rest[0] == "runner-ups:"
    assert rest[1].startswith("  channels-50-kd-int8 [timing noisy: cv 0.41 > 0.25]: accuracy")
    assert "tensor_arena_kb 30" in rest[1] and rest[1].endswith(
        "2 of 359 test samples behind on accuracy (within noise)"
    )
    assert rest[2].startswith("  tiny: ") and rest[2].endswith(
        "97 of 359 test samples behind on accuracy (more than noise)"
    )
    assert rest[3] == (
        "weight-int4's lead in accuracy over channels-50-kd-int8 (2 of 359) is within the 95% "
        "confidence interval of the difference (Newcombe's score method): channels-50-kd-int8 "
        "is as good a pick"
    )
    verdict = html.split('id="recommendation"><pre>')[1].split("</pre>")[0]
    assert "tensor_arena_kb 60 (&lt;= 128)" in verdict and "as good a pick" in verdict


def test_a_big_margin_is_not_called_noise():
    records = [rec("weight-int4", 347), rec("tiny", 250, storage=10, arena=10)]
    summary = selection_for(records, mcu()).summary()
    assert "97 of 359 test samples behind on accuracy (more than noise)" in summary
    assert "as good a pick" not in summary and "confidence interval" not in summary


def test_nothing_is_said_of_noise_for_a_metric_that_is_not_a_proportion():
    records = [rec("a", 347), rec("b", 345, storage=20)]
    for r in records:
        del r["measured_with"]["test_samples"]  # no sample count: nothing to say
    summary = selection_for(records, mcu()).summary()
    assert "noise" not in summary and "samples" not in summary


def test_each_candidate_says_why_it_is_not_the_pick(report):
    _, html, markdown = report
    listed = html.split("<ul id='why-not'>")[1].split("</ul>")[0]
    why = dict(re.findall(r"<li><b>([^<]*)</b>(?: <span[^>]*>[^<]*</span>)?: ([^<]*)</li>", listed))
    assert "weight-int4" not in why  # the pick is not listed among the others
    assert why["baseline"] == "misses the budget: tensor_arena_kb 141.5 &gt; 128 (11% over)"
    assert why["big"] == "misses the budget: storage_kb 600.0 &gt; 512 (17% over)"
    assert why["onnx-fat"] == (
        "misses the budget: tensor_arena_kb (from activation_memory_kb) 150.0 &gt; 128 (17% over)"
    )
    assert why["channels-50-kd-int8"] == (
        "runner-up; accuracy 0.9610 vs 0.9666 (weight-int4): 2 of 359 test samples behind on "
        "accuracy (within noise), as good a pick"
    )
    assert why["tiny"].endswith("97 of 359 test samples behind on accuracy (more than noise)")
    assert why["broken"] == "failed at export: boom"
    table = rows(html)
    assert "recommended" in table["weight-int4"]
    assert "tensor_arena_kb 141.5 &gt; 128" in table["baseline"]
    lines = {line.split(" | ")[0]: line for line in candidate_lines(markdown)}
    assert "misses the budget: storage_kb 600.0 > 512 (17% over)" in lines["| big"]
    assert " | recommended | " in lines["| ★ weight-int4"]
    # per runtime, a record with no arena shows the activation memory the bound holds it to
    assert "| onnx-fat | – | ◆ 0.9694 · 0.5 ms · 40 KB · 150 KB activations |" in markdown


def test_the_budgets_columns_lead_the_table(report):
    _, html, markdown = report
    head = html.split("id='candidates'><thead><tr>")[1].split("</tr>")[0]
    texts = [re.sub(r"<[^>]+>", "", th) for th in re.findall(r"<th.*?</th>", head)]
    names = [re.sub(r" \([^)]*\) [↑↓]$", "", text) for text in texts]
    assert names[:7] == [
        "candidate",
        "why (not)",
        "accuracy",  # the optimised objective
        "storage_kb",  # the budget's bounds
        "tensor_arena_kb",
        "latency_p95_ms",  # the other objectives
        "Pareto rank",
    ]
    assert names[-2:] == ["peak_memory_mb", "recipe"]  # the host's figure, last
    assert "title='budget: tensor_arena_kb &lt;= 128'" in head
    header = candidate_lines(markdown)[0]
    assert header.split(" | ")[:7] == [
        "| candidate",
        "why (not)",
        "accuracy",
        "storage_kb",
        "tensor_arena_kb",
        "latency_p95_ms",
        "rank",
    ]


def test_points_are_labelled_and_the_arena_is_plotted_not_the_hosts_memory(report):
    _, html, _ = report
    plots = figures(html)
    trade_offs = {k: v for k, v in plots.items() if k.startswith("pareto-")}
    assert len(trade_offs) == 3
    axes = [axis_title(layout, "xaxis") for _, layout in trade_offs.values()]
    assert [a.split(" (")[0] for a in axes] == ["storage_kb", "tensor_arena_kb", "latency_p95_ms"]
    assert all(
        axis_title(layout, "yaxis").startswith("accuracy") for _, layout in trade_offs.values()
    )
    assert not any("peak_memory_mb" in a for a in axes)
    for traces, _ in trade_offs.values():
        points = [t for t in traces if "markers" in t.get("mode", "")]
        assert all(t["mode"] == "markers+text" for t in points)
        labels = [name for t in points for name in t["text"]]
        assert sorted(labels) == sorted(r["name"] for r in RECORDS if r["status"] == "ok")
    arena_traces, _ = trade_offs["pareto-1"]
    fallback = next(t for t in arena_traces if "onnx-fat" in t.get("text", []))
    at = fallback["text"].index("onnx-fat")
    assert fallback["x"][at] == 150  # held to the graph's activation memory, as the budget is
    assert "tensor_arena_kb from activation_memory_kb" in fallback["customdata"][at]
    dimensions = [d["label"] for d in plots["parallel"][0][0]["dimensions"]]
    assert not any(d.startswith("peak_memory_mb") for d in dimensions)


def test_noisy_timing_is_flagged_next_to_its_candidate_only(report):
    _, html, markdown = report
    for name, row in rows(html).items():
        if name == "channels-50-kd-int8":
            assert "<span class='noisy'>⚠ timing noisy: cv 0.41 &gt; 0.25</span>" in row
        else:
            assert "noisy" not in row, name
    table = candidate_lines(markdown)
    flagged = [line for line in table if "channels-50-kd-int8" in line.split(" | ")[0]]
    assert flagged and flagged[0].startswith(
        "| ✓ channels-50-kd-int8 ⚠ timing noisy: cv 0.41 > 0.25 |"
    )
    assert not any("noisy" in line for line in table if line not in flagged)


def test_the_slowdown_is_said_only_where_a_time_bound_was_scaled():
    assert "slowdown" not in device_line(mcu())  # no latency bound: nothing was divided
    assert "divided by its slowdown 8" in device_line(mcu(device="cortex-a53"))
    same = device_line(mcu(device="phone-cpu"))
    assert "slowdown" not in same and "latency bounds hold as written (as fast as this host" in same
