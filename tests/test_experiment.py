"""``edgeslim run``: the whole road on digits, resume, kills, failing and non-fitting candidates."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

import edgeslim as es
from edgeslim import config
from edgeslim.errors import DiskFullError, RunLockedError
from edgeslim.results import RunFolder
from tests.experiments import MEASURE, experiment_dict, reuse_baseline


def lines(folder: RunFolder) -> list[dict]:
    return [json.loads(line) for line in folder.results.read_text().splitlines()]


def test_a_run_measures_every_candidate_and_recommends_one_that_fits(first_run):
    _, outcome, _ = first_run
    records = {r["name"]: r for r in outcome.records}
    assert list(records) == [
        "baseline",
        "int8-static",
        "sparse-sparsity-0.5",
        "sparse-sparsity-0.9",
        "impossible",
    ]
    assert len(lines(outcome.folder)) == 5  # one line per candidate, appended as measured
    for name in ("baseline", "int8-static", "sparse-sparsity-0.5", "sparse-sparsity-0.9"):
        record = records[name]
        assert record["status"] == "ok", record
        assert (outcome.folder.path / record["artifact"]).is_file()
        assert record["measured_with"]["runtime"] == "onnxruntime"
        assert record["spec_hash"] and record["seconds"]["measure"] > 0
    failed = records["impossible"]
    assert failed["status"] == "failed" and failed["stage"] == "build"
    assert "out of reach" in failed["error"]
    assert failed["recipe"] == [{"prune": {"kind": "structured", "macs_reduction": 500}}]
    # what each technique bought, as measured
    base = records["baseline"]
    assert records["int8-static"]["storage_kb"] < base["storage_kb"] / 2.5
    assert records["sparse-sparsity-0.9"]["weight_sparsity"] > 0.85
    assert (
        records["sparse-sparsity-0.9"]["storage_compressed_kb"] < base["storage_compressed_kb"] / 3
    )
    best = outcome.selection.recommended
    assert best is not None and best["storage_kb"] <= 50 and best["accuracy"] >= 0.9
    assert best["name"] == "int8-static"  # the only one under 50 KB that keeps accuracy
    for path in outcome.reports.values():
        assert path.is_file() and path.stat().st_size > 0
    markdown = outcome.reports["markdown"].read_text()
    assert "★ int8-static" in markdown and "impossible" in markdown
    assert set(json.loads((outcome.folder.path / "timings.json").read_text())) >= {
        "baseline",
        "build",
        "measure",
        "report",
    }


def test_a_rerun_resumes_and_redoes_nothing(first_run):
    runs, first, _ = first_run
    before = first.folder.results.read_bytes()
    said: list[str] = []
    again = es.run(config.parse(experiment_dict()), runs, say=said.append, show_progress=False)
    assert again.redone == []
    assert first.folder.results.read_bytes() == before
    assert any("trained weights reused" in line for line in said)
    assert again.selection.recommended["name"] == first.selection.recommended["name"]


def test_a_changed_candidate_is_redone_and_the_others_kept(first_run, tmp_path):
    _, first, _ = first_run
    copy = tmp_path / "t"
    shutil.copytree(first.folder.path, copy)
    changed = experiment_dict()
    changed["candidates"][1]["grid"]["prune.sparsity"] = [0.5, 0.7]
    outcome = es.run(config.parse(changed), tmp_path, say=lambda _: None, show_progress=False)
    assert outcome.redone == ["sparse-sparsity-0.7"]
    names = [r["name"] for r in outcome.records]
    assert "sparse-sparsity-0.9" not in names  # no longer in the experiment: not reported
    assert outcome.records[names.index("sparse-sparsity-0.7")]["weight_sparsity"] > 0.65


def test_a_recipe_changed_under_the_same_name_is_redone(first_run, tmp_path):
    """The spec hash, not the name, says whether a record still answers the experiment: the
    same name with another calibration is measured again, the rest is reused."""
    _, first, _ = first_run
    shutil.copytree(first.folder.path, tmp_path / "t")
    changed = experiment_dict()
    changed["candidates"][0] = {
        "name": "int8-static",
        "recipe": [{"quantize": {"kind": "static-int8", "calibration_method": "entropy"}}],
    }
    outcome = es.run(config.parse(changed), tmp_path, say=lambda _: None, show_progress=False)
    assert outcome.redone == ["int8-static"]
    (record,) = [r for r in outcome.records if r["name"] == "int8-static"]
    old = next(r for r in first.records if r["name"] == "int8-static")
    assert record["spec_hash"] != old["spec_hash"]
    (step,) = [s["quantize"] for s in record["recipe"] if "quantize" in s]
    assert step["calibration_method"] == "entropy"


def test_report_rebuilds_from_the_records_alone(first_run):
    _, outcome, _ = first_run
    outcome.reports["html"].unlink()
    selection, paths = es.report(outcome.folder.path)
    assert paths["html"].is_file()
    assert selection.recommended["name"] == outcome.selection.recommended["name"]


def test_a_second_run_on_the_same_folder_is_refused(first_run):
    runs, outcome, _ = first_run
    with outcome.folder.lock(), pytest.raises(RunLockedError, match="in use"):
        es.run(config.parse(experiment_dict()), runs, say=lambda _: None, show_progress=False)


def test_a_model_over_the_memory_cap_is_recorded_as_not_fitting(first_run, tmp_path):
    small = experiment_dict("capped", candidates=[], measure={**MEASURE, "memory_limit_mb": 1})
    reuse_baseline(first_run, RunFolder(tmp_path, "capped"))
    outcome = es.run(config.parse(small), tmp_path, say=lambda _: None, show_progress=False)
    (record,) = outcome.records
    assert record["status"] == "does-not-fit"
    assert "1 MB" in record["does_not_fit"]
    assert outcome.selection.recommended is None


def start_run(exp_file: Path, runs: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgeslim.cli", "run", str(exp_file), "--runs", str(runs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # as in a terminal: Ctrl-C interrupts (a background job would inherit SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_records(results: Path, count: int, proc: subprocess.Popen, limit_s: float = 240):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail(f"no {count} records within {limit_s} s")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killing_a_run_halfway_loses_nothing_and_the_rerun_completes_it(first_run, tmp_path, sig):
    exp = experiment_dict("killed")
    exp["candidates"] = exp["candidates"][:2]  # baseline, int8, two sparse: four records
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(exp))
    folder = reuse_baseline(first_run, RunFolder(tmp_path / "runs", "killed"))
    proc = start_run(exp_file, folder.root)
    wait_for_records(folder.results, 2, proc)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) != 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = folder.read()
    assert 2 <= len(kept) < 4
    proc = start_run(exp_file, folder.root)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final = folder.read()
    names = [r["name"] for r in final]
    assert sorted(names) == sorted(set(names))  # every candidate exactly once
    assert set(names) == {"baseline", "int8-static", "sparse-sparsity-0.5", "sparse-sparsity-0.9"}
    assert final[: len(kept)] == kept  # the records written before the kill are untouched
    assert all(r["status"] == "ok" for r in final)


def interrupted_build(name: str, step_file: bool = False):
    """A build of ``name`` that leaves a step file and then fails as ``fail()`` says."""
    from edgeslim.experiment import Runner

    real = Runner.build

    def build(self, base, candidate, plan, fail):
        if candidate != name:
            return real(self, base, candidate, plan)
        (self.folder.artifacts / f"{candidate}.step0.onnx").write_bytes(b"half a model")
        fail()

    return lambda fail: lambda self, base, candidate, plan: build(self, base, candidate, plan, fail)


def test_ctrl_c_that_a_library_turns_into_its_own_error_stops_the_run(
    first_run, tmp_path, monkeypatch
):
    """torch.export reports Ctrl-C in the middle of an export as 'Failed to export the model':
    recorded as the candidate's failure, it would be skipped on every rerun (and the exporter,
    left half way, failed every later candidate too)."""
    from edgeslim.experiment import Runner

    def ctrl_c_reported_as_a_failure():
        try:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, while the library works
        except KeyboardInterrupt:
            raise RuntimeError("Failed to export the model with torch.export") from None

    folder = reuse_baseline(first_run, RunFolder(tmp_path, "wrapped"))
    build = interrupted_build("int8-static")(ctrl_c_reported_as_a_failure)
    monkeypatch.setattr(Runner, "build", build)
    exp = config.parse(experiment_dict("wrapped", candidates=["int8-static", "fp16"]))
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        es.run(exp, tmp_path, say=lambda _: None, show_progress=False)
    assert signal.getsignal(signal.SIGINT) is before  # the run's handler is gone again
    assert [r["name"] for r in folder.read()] == ["baseline"]  # no failed int8-static record
    assert list(folder.artifacts.glob("int8-static*")) == []  # nor its half-built file
    monkeypatch.undo()
    outcome = es.run(exp, tmp_path, say=lambda _: None, show_progress=False)
    assert outcome.redone == ["int8-static", "fp16"]  # the baseline is kept
    assert all(r["status"] == "ok" for r in outcome.records)


def test_a_full_disk_while_building_stops_the_run_in_one_line(first_run, tmp_path, monkeypatch):
    from edgeslim.experiment import Runner

    def disk_full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what onnx.save raises

    folder = reuse_baseline(first_run, RunFolder(tmp_path, "full"))
    monkeypatch.setattr(Runner, "build", interrupted_build("fp16")(disk_full))
    exp = config.parse(experiment_dict("full", candidates=["int8-static", "fp16"]))
    with pytest.raises(DiskFullError) as caught:
        es.run(exp, tmp_path, say=lambda _: None, show_progress=False)
    message = str(caught.value)
    assert message.startswith(f"disk full at {folder.artifacts} while building fp16 (")
    assert message.endswith(f"every finished candidate is kept in {folder.results}")
    assert "\n" not in message
    assert [r["name"] for r in folder.read()] == ["baseline", "int8-static"]  # fp16: not failed
    assert list(folder.artifacts.glob("fp16*")) == []
