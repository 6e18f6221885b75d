"""Latency tables and latency-targeted structured pruning, on ONNX Runtime, on digits.

A small CNN four times as wide as the zoo's (64-128-256 channels: a few tenths of a ms, so a
p50 is not lost in the timer's noise) is the model; the tables go to a temporary cache folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

import edgeslim as es
from edgeslim.compress import latency_table as LT
from edgeslim.compress import structured as ST
from edgeslim.compress import targeted
from edgeslim.errors import ConfigError
from edgeslim.measure import LatencyProbe, MeasureSettings
from edgeslim.train import evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wide(digits):
    torch.manual_seed(0)
    model = es.models.build("small-cnn", digits.spec, width=4.0)
    return es.train(model, digits, epochs=8, show_progress=False)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


class Counting:
    """A real probe that counts the models it timed."""

    def __init__(self, probe):
        self.probe, self.timed = probe, 0
        self.runtime = probe.runtime

    def key(self):
        return self.probe.key()

    def __call__(self, models):
        self.timed += len(models)
        return self.probe(models)


def table_of(model, digits, probe, variants=16, folder=None):
    s = ST.StructuredSettings(ratio=0.5, round_to=8)
    return LT.build(
        model,
        digits,
        ST.prunable_names(model, s),
        lambda r: ST.pruned_copy(model, digits, s, r),
        probe,
        {"round_to": 8},
        variants=variants,
        folder=folder,
        show_progress=False,
    )


def test_the_predictor_follows_the_widths_of_variants_it_was_not_fitted_to(wide, digits):
    probe = LatencyProbe(digits)
    table, _ = table_of(wide.model, digits, probe, variants=32)
    assert table.complete and len(table.samples) == 33  # the baseline and 32 variants
    s = ST.StructuredSettings(ratio=0.5, round_to=8)
    names = ST.prunable_names(wide.model, s)
    rng = np.random.default_rng(7)  # not the table's seed: other variants
    plans = [{n: float(rng.uniform(0, 0.8)) for n in names} for _ in range(6)]
    models = [ST.pruned_copy(wide.model, digits, s, plan) for plan in plans]
    base_now, *timed = probe([wide.model, *models])
    measured = [t.p50_ms for t in timed]
    # this host's speed wanders by 20-30% over minutes: predictions are brought to the moment
    # by the baseline timed beside the variants, as latency-targeted pruning does
    drift = base_now.p50_ms / table.baseline_ms
    example = ST.example_input(digits)
    predicted = [table.predictor.predict(LT.layer_work(m, example)) * drift for m in models]
    errors = np.abs(np.array(predicted) / np.array(measured) - 1)
    # the widths order the variants as the runtime does: a CI host put these six in the very
    # order predicted while its scale was 37% off (median), so the order is what is asserted
    # tightly; a predictor that ignores the widths (its fixed part alone) orders them by chance
    order = np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(measured)))
    assert order[0, 1] >= 0.8, (predicted, measured)
    # on digits (0.03-0.2 ms) two minutes apart hosts have put them 5-40% apart
    assert np.median(errors) <= 0.5, (predicted, measured)
    # k-fold, over the table's own: 0.15 once in a full suite on this host (0.1518), so the same
    # bound as above; a predictor blind to the widths is off by half
    assert table.summary()["held_out_median_error"] <= 0.30


def test_a_latency_target_is_met_on_the_runtime_and_recorded(wide, digits):
    probe = LatencyProbe(digits)
    recipe = [{"prune": {"kind": "structured", "target": {"latency": 0.6}, "epochs_per_step": 2}}]
    [pruned] = es.compress(wide, digits, [recipe], probe=probe, show_progress=False)
    result = pruned.step("prune")["result"]
    said = result["latency"]
    assert said["target_ms"] == pytest.approx(0.6 * said["table"]["baseline_ms"], rel=1e-3)
    assert {"predicted_ms", "measured_ms", "predictor_error", "round_to"} <= set(said)
    # a fraction is judged against the baseline timed beside the pruned model
    assert said["measured_speedup"] >= 1 / (0.6 * 1.1)
    # measured again, independently: a CI host put it at 0.66 of the baseline here (0.6 asked),
    # so the bound allows that host's noise; not pruning at all would be 1.0
    base_now, now = probe([wide.model, pruned.model])
    assert now.p50_ms / base_now.p50_ms <= 0.6 * 1.25
    assert result["macs_reduction"] > 1.3  # the model did get smaller
    kept = evaluate(pruned.model, digits.test, digits.spec)
    assert kept >= evaluate(wide.model, digits.test, digits.spec) - 0.05


class SlowSpellOnce(Counting):
    """A real probe, but the first pruned model it times measures twice as slow (a slow spell
    of the host that fell on it alone)."""

    spelled = False

    def __call__(self, models):
        timed = super().__call__(models)
        if len(models) == 2 and not self.spelled:  # the baseline beside the first pruned model
            self.spelled = True
            timed[1] = dataclasses.replace(timed[1], p50_ms=timed[1].p50_ms * 2)
        return timed


def test_a_target_missed_by_a_slow_spell_is_not_paid_for_with_accuracy(wide, digits):
    """The first measurement misses by a slow spell, so the next goal is far tighter; the
    model that then lands far under the target is relaxed again, and the least pruned model
    that met the target is the one kept."""
    probe = SlowSpellOnce(LatencyProbe(digits))
    recipe = [{"prune": {"kind": "structured", "target": {"latency": 0.7}, "epochs_per_step": 1}}]
    [pruned] = es.compress(wide, digits, [recipe], probe=probe, show_progress=False)
    said = pruned.step("prune")["result"]["latency"]
    rounds, target = said["rounds"], said["target_ms"]
    assert rounds[0]["reached_ms"] > target * 1.05  # the slow spell: missed
    met = [r for r in rounds if r["reached_ms"] <= target * 1.05]
    kept = max(met, key=lambda r: r["reached_ms"])
    assert said["measured_ms"] == kept["measured_ms"]
    # tightened by the miss alone, the second round would have been kept at about half the
    # target; relaxed, the kept model is pruned about as much as the target asks
    assert kept["reached_ms"] >= 0.75 * target, rounds


def test_tables_are_kept_per_runtime_version_device_and_threads(wide, digits, tmp_path):
    one = Counting(LatencyProbe(digits))
    table, path = table_of(wide.model, digits, one, variants=8)
    assert one.timed == 1 + 8
    again = Counting(LatencyProbe(digits))
    cached, same = table_of(wide.model, digits, again, variants=8)
    assert same == path and again.timed == 1  # the baseline only: it says who answers
    assert cached.samples == table.samples
    two = Counting(LatencyProbe(digits, MeasureSettings(threads=2)))
    _, other = table_of(wide.model, digits, two, variants=8)
    assert other != path and two.timed == 1 + 8 and "threads=2" in two.key()
    assert table.key.startswith(f"onnxruntime|{onnxruntime.__version__}|")


def test_a_damaged_table_is_rebuilt_and_a_partial_one_resumed(wide, digits, capsys):
    probe = Counting(LatencyProbe(digits))
    _, path = table_of(wide.model, digits, probe, variants=16)
    raw = json.loads(path.read_text())
    raw["complete"], raw["predictor"] = False, None
    raw["samples"] = raw["samples"][: 1 + LT.BATCH]  # as an interrupted build leaves it
    path.write_text(json.dumps(raw))
    resumed = Counting(LatencyProbe(digits))
    table, _ = table_of(wide.model, digits, resumed, variants=16)
    assert resumed.timed == 1 + (16 - LT.BATCH) and table.complete
    path.write_text(path.read_text()[:200])  # cut short
    rebuilt = Counting(LatencyProbe(digits))
    said = []
    s = ST.StructuredSettings(ratio=0.5, round_to=8)
    LT.build(
        wide.model,
        digits,
        ST.prunable_names(wide.model, s),
        lambda r: ST.pruned_copy(wide.model, digits, s, r),
        rebuilt,
        {"round_to": 8},
        variants=16,
        show_progress=False,
        say=said.append,
    )
    assert rebuilt.timed == 1 + 16
    assert "damaged" in said[0] and str(path) in said[0]


def test_a_target_below_the_fixed_cost_names_the_smallest_latency_measured(wide, digits):
    probe = LatencyProbe(digits)
    table, _ = table_of(wide.model, digits, probe, variants=8)
    with pytest.raises(ConfigError, match=r"smallest latency measured .* is \d"):
        LT.check_reachable(table.predictor.fixed_ms * 0.5, table)
    recipe = [{"prune": {"kind": "structured", "target": {"latency_p50_ms": 1e-4}, "round_to": 8}}]
    with pytest.raises(ConfigError, match="below what no pruning removes"):
        es.compress(wide, digits, [recipe], probe=probe, show_progress=False)


def test_out_of_reach_with_the_favoured_multiple_tries_a_finer_one(wide, digits, monkeypatch):
    """The runtime's favoured multiple may leave small layers whole: when the target is out of
    reach with it, the next finer multiple is tried (and said in the record)."""
    real, refused = LT.check_reachable, []

    def once_out_of_reach(target_ms, table):
        if not refused:
            refused.append(target_ms)
            raise LT.OutOfReach("prune.target: out of reach (first multiple)")
        real(target_ms, table)

    monkeypatch.setattr(LT, "check_reachable", once_out_of_reach)
    recipe = [{"prune": {"kind": "structured", "target": {"latency": 0.7}, "epochs_per_step": 1}}]
    [pruned] = es.compress(wide, digits, [recipe], probe=LatencyProbe(digits), show_progress=False)
    said = pruned.step("prune")["result"]["latency"]
    [given_up] = said["round_to_out_of_reach"]
    assert said["round_to"] == given_up // 2


def test_widths_that_cannot_narrow_further_are_measured_once(wide, digits, monkeypatch, capsys):
    """Once the allocation stops moving (every layer pruned as far as allowed: here, a knapsack
    held at one fixed allocation), asking for less gives the widths already measured; the
    rounds end there instead of timing the same model again, and the target is out of reach."""
    held = {}

    def stuck(drops, savings, needed_ms):
        held.setdefault("ratios", {layer: float(targeted.GRID[1]) for layer in drops})
        return held["ratios"]

    monkeypatch.setattr(targeted, "allocate", stuck)
    step = {"kind": "structured", "target": {"latency": 0.3}, "round_to": 8, "epochs_per_step": 1}
    with pytest.raises(LT.OutOfReach, match=r"out of reach .* closest measured was"):
        es.compress(wide, digits, [[{"prune": step}]], probe=LatencyProbe(digits))
    said = capsys.readouterr().out
    assert said.count("asking for less") == 1, said  # ROUNDS (5) before
    assert "gives widths already measured; no further rounds" in said


def test_bad_latency_targets_are_config_errors(wide, digits):
    target = {"prune": {"kind": "structured", "target": {"latency": 0.5}}}
    with pytest.raises(ConfigError, match="measured on a runtime"):
        es.compress(wide, digits, [[target]], show_progress=False)  # no probe
    both = {"prune": {"kind": "structured", "target": {"latency": 0.5}, "ratio": 0.3}}
    with pytest.raises(ConfigError, match="latency target or a ratio"):
        es.compress(wide, digits, [[both]], show_progress=False)
    neither = {"prune": {"kind": "structured", "target": {}}}
    with pytest.raises(ConfigError, match="exactly one of latency_p50_ms or latency"):
        es.compress(wide, digits, [[neither]], show_progress=False)


def test_a_file_the_runtime_refuses_is_named_and_the_others_still_timed(wide, digits, tmp_path):
    probe = LatencyProbe(digits)
    good = probe.artifact(wide.model, 0, tmp_path)
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    timed = probe.time_files([good, bad], tmp_path)
    assert timed[0].p50_ms > 0 and timed[1].p50_ms is None
    assert "broken.onnx" in timed[1].error or "Load model" in timed[1].error


def test_profile_prints_where_the_time_goes_and_writes_the_table(tmp_path):
    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", "profile", "small-cnn", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "predictor:" in done.stdout and "within 10% held out" in done.stdout
    assert "(fixed: per call, layers kept whole)" in done.stdout
    table = json.loads(out.read_text())
    assert table["complete"] and table["summary"]["variants"] == len(table["samples"])


def wide_small_cnn(spec):
    """The experiment's model: the zoo's small CNN, four times as wide."""
    return es.models.build("small-cnn", spec, width=4.0)


def test_an_experiment_prunes_to_a_latency_target_on_its_runtime_and_reports_it(tmp_path):
    from edgeslim import config
    from edgeslim.report.latency import latency_rows
    from tests.experiments import experiment_dict

    exp = experiment_dict(
        "latency",
        model="tests.compress.test_latency_target:wide_small_cnn",
        train={"epochs": 4},
        candidates=[
            {
                "name": "fast",
                "recipe": [
                    {"prune": {"kind": "structured", "target": {"latency": 0.6}}},
                    {"finetune": {"epochs": 1}},
                ],
            }
        ],
    )
    said: list[str] = []
    outcome = es.run(config.parse(exp), tmp_path, say=said.append, show_progress=False)
    [record] = [r for r in outcome.records if r["name"] == "fast"]
    assert record["status"] == "ok", record.get("error")
    latency = record["recipe"][1]["prune"]["result"]["latency"]
    assert latency["runtime"] == "onnxruntime" and latency["measured_speedup"] >= 1 / 0.6 / 1.1
    [row] = latency_rows(outcome.records)
    assert row[0] == "fast" and row[2] == f"{latency['target_ms']:.4g}"
    report = outcome.reports["markdown"].read_text()
    assert "## Latency targets: predicted against measured" in report
    html = outcome.reports["html"].read_text()
    assert "latency-layers" in html and "predicted ms per layer" in html
