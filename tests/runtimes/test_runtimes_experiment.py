"""An experiment over several runtimes: one record per candidate and runtime, each runtime's
quantizer, the report with runtime as a dimension, and the savings a runtime did not show."""

from __future__ import annotations

import pytest

import edgeslim as es
from edgeslim import config
from edgeslim.errors import ConfigError, MissingRuntimeError
from edgeslim.report.runtimes import unshown_savings
from edgeslim.results import RunFolder
from edgeslim.runtimes import RUNTIMES
from tests.ci import missing
from tests.experiments import MEASURE, experiment_dict, reuse_baseline


def two_runtimes(**changes) -> dict:
    wanted = {
        "candidates": ["int8-static"],
        "runtimes": ["onnxruntime", "tflite-micro"],
        "measure": MEASURE,
        "budget": {},
        **changes,
    }
    return experiment_dict("rt", **wanted)


def test_a_step_a_listed_runtime_cannot_express_is_refused_at_parse_time():
    with pytest.raises(ConfigError, match="runtime 'tflite-micro' cannot express .*dynamic-int8"):
        config.parse(two_runtimes(candidates=["int8-dynamic"]))
    with pytest.raises(ConfigError, match=r"runtimes.*unknown runtime 'tvm'"):
        config.parse(two_runtimes(runtimes=["onnxruntime", "tvm"]))


def test_runtimes_come_from_the_file_then_measure_runtime_then_the_device_profile():
    assert config.parse(two_runtimes()).runtimes == ["onnxruntime", "tflite-micro"]
    mcu = experiment_dict("m", candidates=["int8-static"], device="mcu-nrf52840")
    assert config.parse(mcu).runtimes == ["tflite-micro"]
    mcu["measure"] = {"runtime": "openvino"}
    assert config.parse(mcu).runtimes == ["openvino"]
    assert config.parse(experiment_dict("d", candidates=[])).runtimes == ["onnxruntime"]


def test_a_search_over_two_runtimes_is_refused():
    from edgeslim.search import run_search

    searching = two_runtimes(search={"space": {"sparsity": [0.1, 0.5]}, "trials": 2})
    with pytest.raises(ConfigError, match="a search measures its trials on one runtime"):
        run_search(config.parse(searching), "unused")


@pytest.fixture(scope="module")
def two_runtime_run(first_run, tmp_path_factory):
    try:
        RUNTIMES["tflite-micro"].check_available()
    except MissingRuntimeError:
        missing("tflite-micro is not installed (pip install 'edgeslim[tflite-micro]')")
    runs = tmp_path_factory.mktemp("rt-runs")
    reuse_baseline(first_run, RunFolder(runs, "rt"))
    said: list[str] = []
    outcome = es.run(config.parse(two_runtimes()), runs, say=said.append, show_progress=False)
    return runs, outcome, said


@pytest.mark.slow
def test_each_candidate_is_measured_on_each_runtime(two_runtime_run):
    _, outcome, said = two_runtime_run
    records = {r["name"]: r for r in outcome.records}
    assert set(records) == {
        f"{c}@{r}" for c in ("baseline", "int8-static") for r in ("onnxruntime", "tflite-micro")
    }
    assert all(r["status"] == "ok" for r in records.values()), records
    for name, record in records.items():
        assert record["runtime"] == name.partition("@")[2] == record["measured_with"]["runtime"]
    micro = records["int8-static@tflite-micro"]
    assert micro["measured_with"]["conversion"]["quantize"]["recipe"] == "static_wi8_ai8"
    assert micro["tensor_arena_kb"] < records["baseline@tflite-micro"]["tensor_arena_kb"] / 2
    assert "tensor_arena_kb" not in records["int8-static@onnxruntime"]
    assert any(line.endswith("on tflite-micro") for line in said)


@pytest.mark.slow
def test_the_report_shows_every_runtime_and_the_unshown_savings(two_runtime_run):
    _, outcome, _ = two_runtime_run
    markdown = outcome.reports["markdown"].read_text()
    assert "## The same candidate on every runtime" in markdown
    assert "| candidate | onnxruntime | tflite-micro |" in markdown
    assert "KB arena" in markdown and "latency caveat: TFLite Micro" in markdown
    html = outcome.reports["html"].read_text()
    assert "id='runtimes'" in html


@pytest.mark.slow
def test_a_second_run_over_two_runtimes_redoes_nothing(two_runtime_run):
    runs, _, _ = two_runtime_run
    said: list[str] = []
    again = es.run(config.parse(two_runtimes()), runs, say=said.append, show_progress=False)
    assert again.redone == []
    assert sum("kept" in line for line in said) == 4


def test_savings_a_runtime_did_not_show_are_flagged():
    """Pencil and paper: half the MACs at the same latency is flagged; half the MACs at half
    the latency is not; a 4x smaller file with the same arena is flagged; a smaller arena not."""
    baseline = {"name": "baseline", "macs": 100, "latency_p50_ms": 1.0, "storage_kb": 100}
    records = [
        {**baseline, "runtime": "tflite-micro", "tensor_arena_kb": 40, "peak_memory_mb": 1},
        {"name": "slim", "runtime": "tflite-micro", "candidate": "slim", "macs": 50,
         "latency_p50_ms": 0.99, "storage_kb": 25, "tensor_arena_kb": 40, "peak_memory_mb": 0.5},
        {"name": "fast", "runtime": "tflite-micro", "candidate": "fast", "macs": 50,
         "latency_p50_ms": 0.5, "storage_kb": 25, "tensor_arena_kb": 12, "peak_memory_mb": 1},
    ]  # fmt: skip
    flags = unshown_savings(records)
    assert set(flags) == {"slim"}
    assert flags["slim"] == [
        "2.0x fewer MACs but not faster on tflite-micro",
        "4.0x smaller file but no less RAM (tensor_arena_kb) on tflite-micro",
    ]
