"""NaN and infinity are never figures: they never fit a bound, never rank, never win a search
trial's constraints, and the worker, the record and the report say where they came from."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import edgeslim as es
from edgeslim.budget import Budget
from edgeslim.errors import ConfigError
from edgeslim.measure import worker
from edgeslim.measure.registry import FAMILIES, METRICS, Family, Metric
from edgeslim.measure.settings import MeasureSettings
from edgeslim.results import RunFolder
from edgeslim.search import constraint_values
from edgeslim.select import select
from tests.measure.helpers import conv_linear, export, random_data

NAN, INF = float("nan"), float("inf")


def rec(name: str, accuracy: float, latency: float, storage: float = 10.0) -> dict:
    return {"name": name, "accuracy": accuracy, "latency_p95_ms": latency, "storage_kb": storage}


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_a_non_finite_figure_never_fits_never_ranks_and_never_wins(bad):
    budget = es.Budget(accuracy=0.95, latency_p95_ms=1, storage_kb=20)
    honest = rec("honest", 0.96, 0.5)
    for crafted in (
        rec("crafted", bad, 0.1),
        rec("crafted", 0.99, bad),
        rec("crafted", 1, 0.1, bad),
    ):
        assert not budget.fits(crafted)
        broken = budget.violations(crafted)
        assert len(broken) == 1 and math.isinf(broken[0].relative)
        assert "not a finite number" in str(broken[0])
        chosen = select([crafted, honest], budget, objectives=["accuracy", "latency_p95_ms",
                                                               "storage_kb"])  # fmt: skip
        assert chosen.recommended["name"] == "honest"
        assert "crafted" not in chosen.ranks
        assert [r["name"] for r in chosen.unmeasured] == ["crafted"]
        alone = select([crafted], budget, objectives=["accuracy", "latency_p95_ms"])
        assert alone.recommended is None


def test_a_non_finite_figure_breaks_every_search_constraint_it_touches():
    budget = Budget(accuracy=0.9, latency_p95_ms=1)
    assert constraint_values(rec("t", NAN, 0.5), budget) == [1.0, pytest.approx(-0.5)]
    assert constraint_values(rec("t", 0.95, INF), budget)[1] == 1.0
    assert constraint_values(rec("t", 0.95, -INF), budget)[1] == 1.0  # would read "far inside"


@pytest.mark.parametrize("bound", [NAN, INF, "<= 1e999", ">= nan"])
def test_a_bound_must_be_a_finite_number(bound):
    with pytest.raises(ConfigError, match="latency_p95_ms"):
        es.Budget(latency_p95_ms=bound)


def fake_family(name: str, stage: str, value: float):
    family = Family(name, stage, (Metric(name, "ms", "lower", "a test figure"),),
                    lambda *_: {name: value}, order=99)  # fmt: skip
    return family


def test_the_worker_leaves_a_non_finite_figure_out_and_says_so(tmp_path, monkeypatch, capsys):
    data = random_data((1, 4, 4))
    model = export(conv_linear(), data, tmp_path / "m.onnx")
    monkeypatch.setitem(FAMILIES, "nan-test", fake_family("nan_test_ms", "runtime", NAN))
    monkeypatch.setitem(METRICS, "nan_test_ms", FAMILIES["nan-test"].metrics[0])
    np.savez(tmp_path / "data.npz", x=data.test.x, y=data.test.y)
    settings = MeasureSettings(runs=20, min_runs=10, pin_cores=False).to_dict()
    request = {"model": str(model), "data": str(tmp_path / "data.npz"), "settings": settings,
               "spec": data.spec.to_dict(), "result": str(tmp_path / "result.json")}  # fmt: skip
    (tmp_path / "request.json").write_text(json.dumps(request))
    assert worker.main(str(tmp_path / "request.json")) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert "nan_test_ms" not in result["metrics"] and "latency_p50_ms" in result["metrics"]
    assert result["not_finite"] == {"nan_test_ms": "nan"}
    assert "nan_test_ms came out nan" in capsys.readouterr().err


def test_the_record_and_the_report_flag_a_non_finite_figure(tmp_path, monkeypatch):
    data = random_data((1, 4, 4))
    model = export(conv_linear(), data, tmp_path / "m.onnx")
    monkeypatch.setitem(FAMILIES, "inf-test", fake_family("inf_test_ms", "graph", INF))
    monkeypatch.setitem(METRICS, "inf_test_ms", FAMILIES["inf-test"].metrics[0])
    record = es.measure(model, data, MeasureSettings(runs=20, min_runs=10))
    assert "inf_test_ms" not in record and record["not_finite"] == {"inf_test_ms": "inf"}


def test_a_crafted_nan_record_is_flagged_in_the_report_and_not_recommended(first_run, tmp_path):
    _, outcome, _ = first_run
    folder = RunFolder(tmp_path, outcome.folder.name)
    folder.create()
    for record in outcome.folder.read():
        folder.append(record)
    for name in ("experiment.json",):
        (folder.path / name).write_bytes((outcome.folder.path / name).read_bytes())
    winner = outcome.selection.recommended
    folder.append({**winner, "accuracy": NAN})  # a valid checksum over a NaN accuracy
    selection, paths = es.report(folder.path)
    assert selection.recommended is None  # it was the only candidate inside the budget
    assert winner["name"] in [r["name"] for r in selection.unmeasured]
    page = paths["html"].read_text()
    assert (
        "Figures that are not numbers" in page and f"<b>{winner['name']}</b>: accuracy nan" in page
    )
    assert f"**{winner['name']}**: accuracy nan" in paths["markdown"].read_text()
    # the same on the validation figure, the one the choice reads
    folder.append({**winner, "val_accuracy": NAN})
    selection, paths = es.report(folder.path)
    assert selection.recommended is None and selection.chosen_on == {"accuracy": "val_accuracy"}
    assert f"**{winner['name']}**: val_accuracy nan" in paths["markdown"].read_text()
