"""``edgeslim run``: the whole road on digits, resume, kills, failing and non-fitting candidates."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import edgeslim as es
import edgeslim.experiment as experiment_module
from edgeslim import config
from edgeslim.errors import DiskFullError, RunLockedError
from edgeslim.experiment import Runner, at, digest, file_digest
from edgeslim.results import RunFolder
from edgeslim.version import __version__
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


def test_a_run_chooses_on_validation_and_reports_the_test_figures_beside_them(first_run):
    """The budget's accuracy bound, the objectives and the pick read the validation split; the
    test split's accuracy is in every record and the report, and chose nothing."""
    _, outcome, _ = first_run
    selection = outcome.selection
    assert selection.chosen_on == {"accuracy": "val_accuracy"}
    assert selection.primary.metric == "val_accuracy"
    assert "val_accuracy >= 0.9" in selection.budget.describe()
    for record in outcome.records:
        if record["status"] == "ok":
            assert 0 < record["val_accuracy"] <= 1 and 0 < record["accuracy"] <= 1
            assert record["measured_with"]["val_samples"] == 180
    best = selection.recommended
    markdown = outcome.reports["markdown"].read_text()
    assert (
        f"chosen on val_accuracy {best['val_accuracy']:.4f} (validation split); reported: "
        f"accuracy {best['accuracy']:.4f} on the test split"
    ) in markdown
    assert "chosen on the validation split (180 samples, carved from the 1,797 digits" in markdown
    assert "val_accuracy" in outcome.reports["html"].read_text()


def test_an_old_run_without_validation_figures_still_reports_and_resumes(first_run, tmp_path):
    """Records written before validation figures existed: the report and a resumed run choose
    on the test split as they did, and say so, rather than fail or mix the splits."""
    _, first, _ = first_run
    copy = RunFolder(tmp_path, first.folder.name)
    shutil.copytree(first.folder.path, copy.path)
    copy.results.unlink()
    for record in first.folder.read():  # appended again: each line with a valid checksum
        record = {k: v for k, v in record.items() if not k.startswith("val_")}
        how = record.get("measured_with") or {}
        for key in ("val_samples", "validation"):
            how.pop(key, None)
        copy.append(record)
    selection, paths = es.report(copy.path)
    assert selection.chosen_on == {} and selection.primary.metric == "accuracy"
    assert selection.recommended["name"] == first.selection.recommended["name"]
    note = "records have no val_accuracy (measured before edgeslim measured the validation split)"
    markdown = paths["markdown"].read_text()
    assert note in markdown
    assert "chosen on the test split: measured before edgeslim measured the validation" in markdown
    again = es.run(
        config.parse(experiment_dict()), tmp_path, say=lambda _: None, show_progress=False
    )
    assert again.redone == []  # nothing is rebuilt for want of a validation figure
    assert note in again.selection.summary()


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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.usefixtures("ctrl_c_interrupts")
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


# --- the resume path: what decides that a record is kept or its candidate redone ------------
# Unit tests, no training: scripts/mutation scores Runner.done, spec_hash, baseline_key, digest,
# file_digest and at on this class alone.


def resume_runner(tmp_path, retry_failed: bool = False, **changes):
    """A runner on the shared experiment (``changes`` applied), its data and baseline key set
    by hand instead of by ``prepare`` (which would train)."""
    experiment = config.parse(experiment_dict(**changes))
    folder = RunFolder(tmp_path, "t")
    runner = Runner(experiment, folder, lambda _: None, False, retry_failed=retry_failed)
    runner.data = SimpleNamespace(source="digits from scikit-learn")
    runner.key = "0123456789abcdef"
    return runner


class TestResume:
    def test_a_digest_is_the_sha256_of_the_sorted_json_cut_to_16_hex(self):

        text = b'{"a": [1, 2], "b": {"c": null, "d": "x"}}'
        assert (
            digest({"b": {"d": "x", "c": None}, "a": (1, 2)})
            == (hashlib.sha256(text).hexdigest()[:16])
        )
        assert digest({"p": Path("/x/y")}) == digest({"p": "/x/y"})  # anything else as text

    def test_a_file_digest_covers_every_byte_of_a_file_larger_than_one_block(self, tmp_path):

        data = bytes(range(256)) * (3 * 4096 + 7)  # 3 MiB and 1792 bytes: four 1 MiB reads
        (tmp_path / "a").write_bytes(data)
        (tmp_path / "b").write_bytes(data[:-1] + b"\x00")  # the last byte differs
        assert file_digest(tmp_path / "a") == hashlib.sha256(data).hexdigest()[:16]
        assert file_digest(str(tmp_path / "b")) != file_digest(tmp_path / "a")

    @pytest.mark.parametrize(
        ("record", "retry_failed", "kept"),
        [
            (None, False, False),  # never measured
            ({"spec_hash": "other", "status": "ok"}, False, False),  # recipe or settings changed
            ({"status": "ok"}, False, False),  # a record without a spec hash answers nothing
            ({"spec_hash": "S", "status": "ok"}, False, True),
            ({"spec_hash": "S", "status": "ok"}, True, True),  # --retry-failed keeps successes
            ({"spec_hash": "S", "status": "does-not-fit"}, True, True),
            ({"spec_hash": "S"}, True, True),
            ({"spec_hash": "S", "status": "failed"}, False, True),  # a failure stands...
            ({"spec_hash": "S", "status": "failed"}, True, False),  # ...until retried
        ],
    )
    def test_a_record_is_kept_when_its_spec_matches_and_it_is_not_a_failure_retried(
        self, tmp_path, record, retry_failed, kept
    ):
        runner = resume_runner(tmp_path, retry_failed=retry_failed)
        previous = {"other": {"spec_hash": "S", "status": "ok"}}
        if record is not None:
            previous["int8"] = record
        assert runner.done("int8", "S", previous) is kept

    def test_the_spec_hash_is_the_digest_of_recipe_baseline_settings_and_board(self, tmp_path):

        runner = resume_runner(tmp_path)
        recipe = [{"quantize": {"kind": "static-int8"}}]
        on_openvino = replace(runner.settings, runtime="openvino").to_dict()
        assert on_openvino["runtime"] == "openvino" and runner.settings.runtime == "onnxruntime"
        spec = {"recipe": recipe, "baseline": "0123456789abcdef", "measure": on_openvino}
        assert runner.spec_hash(recipe, "openvino") == digest(spec)
        runner.board = SimpleNamespace(name="pi-4")
        assert runner.spec_hash(recipe, "openvino") == digest({**spec, "board": "pi-4"})

    def test_anything_that_changes_the_figures_changes_the_spec_hash(self, tmp_path):
        runner = resume_runner(tmp_path)
        recipe = [{"prune": {"kind": "unstructured", "sparsity": 0.5}}]
        first = runner.spec_hash(recipe, "onnxruntime")
        assert first == resume_runner(tmp_path / "again").spec_hash(recipe, "onnxruntime")
        other_recipe = [{"prune": {"kind": "unstructured", "sparsity": 0.6}}]
        changed = {
            "recipe": runner.spec_hash(other_recipe, "onnxruntime"),
            "runtime": runner.spec_hash(recipe, "openvino"),
            "settings": resume_runner(tmp_path, measure={**MEASURE, "runs": 61}).spec_hash(
                recipe, "onnxruntime"
            ),
        }
        runner.key = "fedcba9876543210"  # another baseline
        changed["baseline"] = runner.spec_hash(recipe, "onnxruntime")
        runner.board = SimpleNamespace(name="pi-4")
        changed["board"] = runner.spec_hash(recipe, "onnxruntime")
        runner.board = SimpleNamespace(name="pi-5")
        changed["another board"] = runner.spec_hash(recipe, "onnxruntime")
        assert len({first, *changed.values()}) == 7, changed

    def test_the_baseline_key_is_the_digest_of_what_the_baseline_learns_from(self, tmp_path):
        runner = resume_runner(tmp_path)
        train = {k: v for k, v in runner.config.train.model_dump().items() if k != "device"}
        assert train["epochs"] == 6 and "device" not in train
        assert runner.baseline_key() == digest(
            {
                "model": "small-cnn",
                "model_file": None,  # a zoo model: its code comes with the version
                "weights": None,
                "data": "digits from scikit-learn",
                "train": train,
                "edgeslim": __version__,
            }
        )

    def test_the_baseline_key_follows_the_model_weights_data_training_and_version(
        self, tmp_path, monkeypatch
    ):
        key = resume_runner(tmp_path).baseline_key()
        # where it trains is not what it learns
        on_cpu = resume_runner(tmp_path, train={"epochs": 6, "device": "cpu"})
        assert on_cpu.baseline_key() == key
        longer = resume_runner(tmp_path, train={"epochs": 7})
        other_seed = resume_runner(tmp_path, train={"epochs": 6, "seed": 1})
        other_data = resume_runner(tmp_path)
        other_data.data.source = "digits from elsewhere"
        other_model = resume_runner(tmp_path, model="lenet5")
        keys = {r.baseline_key() for r in (longer, other_seed, other_data, other_model)}
        monkeypatch.setattr(experiment_module, "__version__", "0.0.0-other")
        keys.add(resume_runner(tmp_path).baseline_key())
        assert len(keys | {key}) == 6

    def test_the_baseline_key_reads_the_contents_of_weights_and_model_files(self, tmp_path):
        weights, copy, model = tmp_path / "w.pt", tmp_path / "copy.pt", tmp_path / "m.onnx"
        weights.write_bytes(b"weights, first version")
        copy.write_bytes(b"weights, first version")
        model.write_bytes(b"an onnx model")
        with_weights = resume_runner(tmp_path, weights=str(weights))
        key = with_weights.baseline_key()
        assert key != resume_runner(tmp_path).baseline_key()
        assert resume_runner(tmp_path, weights=str(copy)).baseline_key() == key  # same bytes
        weights.write_bytes(b"weights, retrained")
        assert with_weights.baseline_key() != key
        from_file = resume_runner(tmp_path, model=str(model))
        before = from_file.baseline_key()
        model.write_bytes(b"an onnx model, edited")
        assert from_file.baseline_key() != before

    def test_a_kept_record_names_its_runtime_when_it_is_one_of_several(self):
        assert at("int8@litert", "int8") == " on litert"
        assert at("int8", "int8") == ""
