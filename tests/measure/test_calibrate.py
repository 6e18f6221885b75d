"""``calibrate`` on latencies worked by hand: per-model board/host ratios of p50 latency, their
median as the slowdown, the settings each measurement gets, and what is stored."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeslim.measure import calibrate as C


class Model:
    def __init__(self, name: str) -> None:
        self.name = name
        self.evaluated = False

    def eval(self) -> Model:
        self.evaluated = True
        return self


@pytest.fixture
def bench(monkeypatch):
    """Fakes for data, models, measurement and the calibration file: ``bench.p50`` maps
    (model, where) to the p50 latency the fake measurement reports."""
    state = SimpleNamespace(p50={}, calls=[], loaded=[], built=[], saved=[])

    def load(name):
        state.loaded.append(name)
        return SimpleNamespace(spec=f"spec of {name}")

    def build(name, spec):
        state.built.append((name, spec))
        return Model(name)

    def measure(model, dataset, settings, board=None):
        assert model.evaluated  # latency is measured in eval mode
        assert dataset.spec.startswith("spec of ")  # the data loaded, here and on the board
        where = "here" if board is None else board.name
        state.calls.append((model.name, where, settings))
        cpu = "Host CPU" if board is None else "Board CPU"
        host = "laptop" if board is None else "pi-4"
        return {
            "latency_p50_ms": state.p50[model.name, where],
            "measured_with": {"cpu": cpu, "host": host},
        }

    def save(name, entry):
        state.saved.append((name, dict(entry)))
        return Path("/cache/calibrations.json")

    for name, fake in [("load", load), ("build", build), ("measure", measure)]:
        monkeypatch.setattr(C, name, fake)
    monkeypatch.setattr(C, "save_calibration", save)
    return state


BOARD = SimpleNamespace(name="pi", config=SimpleNamespace(runtimes=["onnxruntime", "openvino"]))


def test_the_slowdown_is_the_median_of_the_per_model_ratios(bench):
    """small-cnn 2 -> 5 ms (2.5x), lenet5 1 -> 4 ms (4x), mobilenet-v1 3 -> 3.3 ms (1.1x),
    resnet8 0.5 -> 1 ms (2x): the median of four is (2 + 2.5) / 2 = 2.25."""
    for name, here, there in [
        ("small-cnn", 2.0, 5.0),
        ("lenet5", 1.0, 4.0),
        ("mobilenet-v1", 3.0, 3.3),
        ("resnet8", 0.5, 1.0),
    ]:
        bench.p50[name, "here"], bench.p50[name, "pi"] = here, there
    said = []
    entry = C.calibrate(BOARD, say=said.append)
    assert entry["slowdown"] == 2.25
    assert entry["models"] == ["small-cnn", "lenet5", "mobilenet-v1", "resnet8"]
    assert {name: m["ratio"] for name, m in entry["per_model"].items()} == {
        "small-cnn": 2.5,
        "lenet5": 4.0,
        "mobilenet-v1": 1.1,
        "resnet8": 2.0,
    }
    assert entry["per_model"]["lenet5"] == {"host_p50_ms": 1.0, "board_p50_ms": 4.0, "ratio": 4.0}
    assert said == [
        "small-cnn: 2.000 ms here, 5.000 ms on pi: 2.50x",
        "lenet5: 1.000 ms here, 4.000 ms on pi: 4.00x",
        "mobilenet-v1: 3.000 ms here, 3.300 ms on pi: 1.10x",
        "resnet8: 0.500 ms here, 1.000 ms on pi: 2.00x",
    ]
    # the defaults: digits, each reference model built for its spec, 300 runs
    assert bench.loaded == ["digits"]
    assert bench.built == [(name, "spec of digits") for name in entry["models"]]
    assert [(model, where) for model, where, _ in bench.calls] == [
        (name, where) for name in entry["models"] for where in ("here", "pi")
    ]
    for _, _, settings in bench.calls:
        assert settings.runtime == "onnxruntime"  # the board's first runtime, on both sides
        assert (settings.threads, settings.runs, settings.min_runs) == (1, 300, 100)
        assert tuple(settings.batch_sizes) == (1,)


def test_an_odd_count_takes_the_middle_ratio_rounded_and_the_entry_is_stored(bench):
    """a 1 -> 3 ms (3x), b 3 -> 10 ms (3.333x), c 0.123456 -> 0.6 ms (4.86x): median 3.333."""
    bench.p50.update(
        {
            ("a", "here"): 1.0,
            ("a", "pi"): 3.0,
            ("b", "here"): 3.0,
            ("b", "pi"): 10.0,
            ("c", "here"): 0.123456,
            ("c", "pi"): 0.6,
        }
    )
    entry = C.calibrate(BOARD, models=("a", "b", "c"), data="mnist", runs=40, say=lambda _: None)
    assert entry["slowdown"] == 3.333
    assert entry["per_model"]["b"]["ratio"] == 3.333
    assert entry["per_model"]["c"] == {"host_p50_ms": 0.1235, "board_p50_ms": 0.6, "ratio": 4.86}
    assert entry["runtime"] == "onnxruntime"
    assert (entry["host_cpu"], entry["board_cpu"], entry["board_host"]) == (
        "Host CPU",
        "Board CPU",
        "pi-4",
    )
    assert entry["file"] == "/cache/calibrations.json"
    assert bench.loaded == ["mnist"]
    # fewer runs than 100: at least that many is all of them
    assert {(s.runs, s.min_runs) for _, _, s in bench.calls} == {(40, 40)}
    ((name, stored),) = bench.saved
    assert name == "pi"
    assert stored == {k: v for k, v in entry.items() if k != "file"}


def test_a_board_faster_than_the_host_has_a_slowdown_under_one(bench):
    bench.p50.update({("a", "here"): 4.0, ("a", "pi"): 1.0})
    entry = C.calibrate(BOARD, models=("a",), say=lambda _: None)
    assert entry["slowdown"] == 0.25 and entry["per_model"]["a"]["ratio"] == 0.25


def test_the_board_s_first_runtime_is_used_and_the_figures_are_rounded(bench):
    """Two models on OpenVINO: 2 -> 2.002 ms (1.001x) and 4 -> 4.016 ms (1.004x). Their
    median, 1.0025, is stored as 1.00249999..., so three decimals give 1.002."""
    bench.p50.update(
        {
            ("a", "here"): 2.0,
            ("a", "pi"): 2.00212345,
            ("b", "here"): 4.0,
            ("b", "pi"): 4.016,
        }
    )
    board = SimpleNamespace(name="pi", config=SimpleNamespace(runtimes=["openvino", "onnxruntime"]))
    entry = C.calibrate(board, models=("a", "b"), say=lambda _: None)
    assert entry["runtime"] == "openvino"
    assert {s.runtime for _, _, s in bench.calls} == {"openvino"}
    assert entry["per_model"]["a"] == {"host_p50_ms": 2.0, "board_p50_ms": 2.0021, "ratio": 1.001}
    assert entry["slowdown"] == 1.002
