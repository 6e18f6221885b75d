"""A real microcontroller run (``device: mcu-nrf52840``, TFLite Micro) on digits: the report
plots the tensor arena the budget bounds, not the host's peak RSS, and its summary names the
arena and no slowdown (the profile has no latency bound to divide)."""

from __future__ import annotations

import html as htmllib

import pytest

import edgeslim as es
from edgeslim import config
from edgeslim.errors import MissingRuntimeError
from edgeslim.runtimes import RUNTIMES
from tests.ci import missing
from tests.experiments import experiment_dict
from tests.report.plots import axis_title, figures

pytestmark = pytest.mark.slow  # each test here takes over 4 s on 2 cores


@pytest.fixture(scope="module")
def mcu_run(tmp_path_factory):
    try:
        RUNTIMES["tflite-micro"].check_available()
    except MissingRuntimeError:
        missing("tflite-micro is not installed (pip install 'edgeslim[tflite-micro]')")
    raw = experiment_dict(
        "mcu",
        model="tests.report.models:narrow_cnn",  # small-cnn at a quarter width
        train={"epochs": 2},
        candidates=["int8-static"],
        device="mcu-nrf52840",
        budget={},
    )
    del raw["objectives"]  # the task's defaults, peak memory among them, as a user gets them
    runs = tmp_path_factory.mktemp("mcu-runs")
    return es.run(config.parse(raw), runs, say=lambda _: None, show_progress=False)


def test_the_mcu_report_plots_the_arena_and_its_summary_names_it(mcu_run):
    records = {r["name"]: r for r in mcu_run.records}
    assert set(records) == {"baseline", "int8-static"}
    assert all(r["status"] == "ok" and "tensor_arena_kb" in r for r in records.values()), records
    page = mcu_run.reports["html"].read_text()
    plots = {k: layout for k, (_, layout) in figures(page).items() if k.startswith("pareto-")}
    axes = {axis_title(layout, "xaxis").split(" (")[0] for layout in plots.values()}
    assert "tensor_arena_kb" in axes and "storage_kb" in axes
    assert "peak_memory_mb" not in axes  # the host process's RSS says nothing of the board
    verdict = htmllib.unescape(page.split('id="recommendation"><pre>')[1].split("</pre>")[0])
    assert "tensor_arena_kb" in verdict and "(<= 128)" in verdict
    assert "slowdown" not in page  # no latency bound, so nothing was divided by one
    markdown = mcu_run.reports["markdown"].read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| candidate"))
    # the figure chosen on (validation) first, the test figure reported beside it
    assert header.startswith(
        "| candidate | why (not) | val_accuracy | accuracy | storage_kb | tensor_arena_kb |"
    )
