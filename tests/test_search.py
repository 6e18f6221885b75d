"""``edgeslim search``: embedded and PostgreSQL storages, restarts, dead workers, bad input.

The PostgreSQL test uses ``EDGESLIM_TEST_POSTGRES`` (a URL; ``.ci/run`` starts a throw-away
server and sets it) or, where PostgreSQL is installed, starts its own with ``.ci/postgres``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from edgeslim import config
from edgeslim.errors import ConfigError
from edgeslim.results import RunFolder
from edgeslim.search import STALE, open_storage, run_search, sync, work
from edgeslim.select import dominates
from tests.ci import in_ci
from tests.experiments import MEASURE, reuse_baseline

ROOT = Path(__file__).resolve().parents[1]


def search_experiment(
    name: str, trials: int = 12, budget: dict | None = None, **search
) -> config.Experiment:
    return config.parse(
        {
            "name": name,
            "model": "small-cnn",
            "data": "digits",
            "train": {"epochs": 6},
            "measure": MEASURE,
            "budget": budget or {"accuracy": ">= 0.9", "storage_kb": "<= 60"},
            "objectives": ["accuracy", "storage_kb"],
            "search": {
                "space": {
                    "sparsity": [0.0, 0.9],
                    "structured_ratio": [0.0, 0.5],
                    "quantize": ["none", "int8-static", "fp16"],
                    "finetune_epochs": 1,
                },
                "trials": trials,
                "population": 4,
                **search,
            },
        }
    )


def quiet(_: str) -> None:
    pass


def search_command(experiment: config.Experiment, folder: Path, runs: Path) -> list[str]:
    """`edgeslim search FILE.yaml --runs RUNS` as a user types it, the file written first."""
    spec = folder / "search.yaml"
    spec.write_text(yaml.safe_dump(experiment.to_dict()))
    return [sys.executable, "-m", "edgeslim.cli", "search", str(spec), "--runs", str(runs)]


@pytest.mark.slow
def test_embedded_search_gives_a_fitting_front_and_a_restart_adds_trials(first_run, tmp_path):
    experiment = search_experiment("embedded")
    reuse_baseline(first_run, RunFolder(tmp_path, "embedded"))
    outcome = run_search(experiment, str(tmp_path), say=quiet, show_progress=False)
    trials = [r for r in outcome.records if "trial" in r]
    assert len(trials) == 12
    assert (outcome.folder.path / "search.db").is_file()  # embedded: nothing to start
    selection = outcome.selection
    objectives = selection.objectives
    front = [
        r
        for r in selection.fitting
        if not any(dominates(o, r, objectives) for o in selection.fitting)
    ]
    assert front, "no trial fits the budget"
    for record in front:
        assert selection.budget.fits(record)
        assert not any(dominates(other, record, objectives) for other in selection.measured)
    assert selection.recommended in front
    # the budget reached the sampler as Optuna constraints
    assert all("constraints" in r for r in trials if r["status"] == "ok")

    again = run_search(experiment, str(tmp_path), trials=3, say=quiet, show_progress=False)
    numbers = sorted(r["trial"] for r in again.records if "trial" in r)
    assert numbers == list(range(15))  # the same study, three more trials
    storage = open_storage(
        f"sqlite:///{outcome.folder.path / 'search.db'}", experiment.config.search
    )
    study = optuna.load_study(study_name="embedded", storage=storage)
    assert len(study.trials) == 15
    # the sampler was told the validation figure, never the test figure it reports
    by_number = {r["trial"]: r for r in again.records if "trial" in r}
    told = [(t.values[0], by_number[t.number]) for t in study.trials if t.values]
    assert told and all(value == record["val_accuracy"] for value, record in told)


@pytest.mark.slow
def test_a_killed_worker_leaves_its_trial_failed_and_the_study_goes_on(first_run, tmp_path):
    experiment = search_experiment("killed", trials=4, heartbeat_s=1, grace_s=2)
    folder = RunFolder(tmp_path, "killed")
    reuse_baseline(first_run, folder)
    run_search(experiment, str(tmp_path), trials=0, say=quiet, show_progress=False)
    url = f"sqlite:///{folder.path / 'search.db'}"
    storage = open_storage(url, experiment.config.search)
    study = optuna.load_study(study_name="killed", storage=storage)
    study.set_user_attr("until", 4)
    command = [sys.executable, "-m", "edgeslim.cli", "worker", "--storage", url]
    worker = subprocess.Popen(
        [*command, "--study", "killed", "--runs", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(t.state == TrialState.RUNNING for t in study.get_trials()):
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        # Optuna fails only trials that have sent a heartbeat: let the first one land
        time.sleep(1.5)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    (lost,) = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    time.sleep(3)  # past the grace period: the next worker fails it before its first trial
    work(experiment, url, str(tmp_path), until=4, say=quiet)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[lost.number] == TrialState.FAIL
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 3  # the study went on
    sync(study, folder)
    record = folder.latest()[f"trial-{lost.number:04d}"]
    assert record["status"] == "failed" and record["error"] == STALE


@pytest.fixture
def postgres_url(tmp_path_factory):
    url = os.environ.get("EDGESLIM_TEST_POSTGRES")
    if url:
        yield url
        return
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        if in_ci():
            pytest.fail("CI must install PostgreSQL (see .ci/run)")
        pytest.skip("PostgreSQL is not installed")
    data = Path(f"/tmp/edgeslim-pg-{os.getpid()}")
    port = str(20000 + os.getpid() % 20000)
    started = subprocess.run(
        [str(ROOT / ".ci/postgres"), "start", str(data), port], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip()
    finally:  # stopped even when the test fails
        subprocess.run([str(ROOT / ".ci/postgres"), "stop", str(data)], check=False)


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(first_run, tmp_path, postgres_url):
    name = f"shared-{os.getpid()}-{int(time.time())}"
    experiment = search_experiment(name, trials=6)
    reuse_baseline(first_run, RunFolder(tmp_path, name))
    outcome = run_search(
        experiment, str(tmp_path), storage=postgres_url, workers=2, say=quiet, show_progress=False
    )
    trials = [r for r in outcome.records if "trial" in r]
    numbers = [r["trial"] for r in trials]
    assert sorted(numbers) == list(range(6))  # every trial once, none duplicated
    assert len({r["worker"] for r in trials}) == 2  # both workers contributed
    storage = open_storage(postgres_url, experiment.config.search)
    study = optuna.load_study(study_name=name, storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    assert len(finished) == 6


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://edgeslim@127.0.0.1:1/edgeslim",  # nothing listens: refused at once
        "postgresql://edgeslim@10.255.255.1:5432/edgeslim",  # nothing answers: timed out
    ],
)
def test_an_unreachable_storage_fails_clearly_within_seconds(url):
    experiment = search_experiment("unreachable")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="cannot reach the search storage"):
        open_storage(url, experiment.config.search)
    assert time.monotonic() - start < 15


def test_bad_search_settings_are_refused():
    with pytest.raises(ConfigError, match="nothing varies"):
        config.parse(
            {"name": "x", "model": "small-cnn", "search": {"space": {"quantize": ["fp16"]}}}
        )
    with pytest.raises(ConfigError, match="budget.latency: unknown metric"):
        config.parse(
            {
                "name": "x",
                "model": "small-cnn",
                "budget": {"latency": 1},
                "search": {"space": {"sparsity": [0, 0.5]}},
            }
        )
    with pytest.raises(ConfigError, match="expected sqlite"):
        open_storage("mysql://x/y", search_experiment("x").config.search)
    with pytest.raises(ConfigError, match="no search: section"):
        run_search(config.parse({"name": "x", "model": "small-cnn"}), say=quiet)


@pytest.mark.slow
def test_the_search_command_runs_as_a_user_types_it(first_run, tmp_path):
    """`edgeslim search FILE.yaml --trials 2` in a subprocess, the way the README gives it. Two
    trials fine-tuned one epoch each may miss 0.9 on the 180 validation samples (exit 3, nothing
    fits): the bound here is one they meet, so exit 0 says the command ran through."""
    budget = {"accuracy": ">= 0.5", "storage_kb": "<= 60"}
    experiment = search_experiment("cli-search", trials=2, budget=budget)
    reuse_baseline(first_run, RunFolder(tmp_path / "runs", "cli-search"))
    out = subprocess.run(
        search_command(experiment, tmp_path, tmp_path / "runs"),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-2000:])
    assert "[trial 2/2]" in out.stdout and "markdown report:" in out.stdout
    assert "recommended: trial-" in out.stdout  # the baseline's 95 KB breaks the storage bound
    assert (tmp_path / "runs" / "cli-search" / "report.html").is_file()


CHEAP_SPACE = {"sparsity": [0.0, 0.9], "quantize": ["none", "fp16"], "finetune_epochs": 0}


@pytest.mark.slow
def test_a_rerun_adds_new_settings_and_never_replays_earlier_ones(first_run, tmp_path):
    """`edgeslim search FILE --trials 3` twice: six trials, six different settings (the seeded
    sampler used to be rebuilt from the same seed and propose trials 0-2 again)."""
    experiment = search_experiment("rerun", trials=3, space=CHEAP_SPACE)
    folder = reuse_baseline(first_run, RunFolder(tmp_path / "runs", "rerun"))
    command = [*search_command(experiment, tmp_path, tmp_path / "runs"), "--trials", "3"]
    for _ in range(2):
        out = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "Traceback" not in out.stderr and "[W " not in out.stderr
    storage = open_storage(f"sqlite:///{folder.path / 'search.db'}", experiment.config.search)
    trials = optuna.load_study(study_name="rerun", storage=storage).trials
    settings = [tuple(sorted(t.params.items())) for t in trials]
    assert len(trials) == 6 and len(set(settings)) == 6, settings


@pytest.mark.slow
def test_settings_already_tried_are_not_built_again(first_run, tmp_path):
    """Two choices, three trials: at least one repeats; it is recorded as a duplicate of the
    first trial with its settings, and built and measured once only."""
    space = {"quantize": ["none", "fp16"], "finetune_epochs": 0}
    experiment = search_experiment("dupes", trials=3, space=space, sampler="random")
    reuse_baseline(first_run, RunFolder(tmp_path, "dupes"))
    said: list[str] = []
    outcome = run_search(experiment, str(tmp_path), say=said.append, show_progress=False)
    trials = sorted((r for r in outcome.records if "trial" in r), key=lambda r: r["trial"])
    duplicates = [r for r in trials if r["status"] == "duplicate"]
    assert duplicates and len(trials) == 3
    for record in duplicates:
        (source,) = [r for r in trials if r["name"] == record["duplicate_of"]]
        assert source["trial"] < record["trial"] and source["params"] == record["params"]
        assert source["status"] == "ok"
    built = [line for line in said if "building" in line and "trial-" in line]
    assert len(built) == len(trials) - len(duplicates)
    assert outcome.selection.recommended["name"] not in {r["name"] for r in duplicates}


@pytest.mark.slow
def test_a_failed_trial_is_one_line_without_optunas_traceback(first_run, tmp_path, capfd):
    experiment = search_experiment("fails", trials=2, space=CHEAP_SPACE)
    experiment = config.parse(
        {**experiment.to_dict(), "measure": {**MEASURE, "memory_limit_mb": 1}}
    )  # nothing runs in 1 MB: every trial fails to fit
    reuse_baseline(first_run, RunFolder(tmp_path, "fails"))
    said: list[str] = []
    run_search(experiment, str(tmp_path), say=said.append, show_progress=False)
    trial_lines = [line for line in said if line.startswith("[trial ") and "building" not in line]
    assert len(trial_lines) == 2 and all("1 MB" in line for line in trial_lines), trial_lines
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Trial 0 failed" not in err


@pytest.mark.slow
def test_ctrl_c_during_a_trial_stops_the_search_in_one_line_and_a_rerun_goes_on(
    first_run, tmp_path
):
    """Ctrl-C mid-build, to the whole process group as a terminal sends it: the clean message
    (no Optuna traceback), exit 130; the rerun finishes the study."""
    experiment = search_experiment("ctrl-c", trials=3, space=CHEAP_SPACE)
    folder = reuse_baseline(first_run, RunFolder(tmp_path / "runs", "ctrl-c"))
    command = search_command(experiment, tmp_path, folder.root)
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in proc.stdout:
        if "[trial 1/3]" in line and "building" in line:
            break
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines() == [
        "interrupted: finished trials are kept in the study; run again to go on"
    ], err[-3000:]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    storage = open_storage(f"sqlite:///{folder.path / 'search.db'}", experiment.config.search)
    states = [t.state for t in optuna.load_study(study_name="ctrl-c", storage=storage).trials]
    assert states.count(TrialState.COMPLETE) >= 3, states


def test_a_study_holding_trials_without_validation_figures_keeps_searching_on_test():
    """A study resumed across the change to validation: its old trials told the sampler their
    test figure, so every trial does, as ``es.select`` then chooses over them all on test; a
    study of new trials (or none yet) searches on validation."""
    from edgeslim.select import searched_on, validation_choice

    new = {"accuracy": 0.90, "val_accuracy": 0.88, "storage_kb": 20.0}
    old = {"accuracy": 0.93, "storage_kb": 20.0}
    failed = {"status": "failed", "error": "boom"}
    metrics = ["accuracy", "storage_kb", "accuracy"]
    assert searched_on([], metrics) == {"accuracy": "val_accuracy", "storage_kb": "storage_kb"}
    assert searched_on([new, failed], metrics)["accuracy"] == "val_accuracy"
    assert searched_on([new, old], metrics)["accuracy"] == "accuracy"
    assert "accuracy" not in validation_choice([new, old], metrics)[0]  # the same rule


def test_constraint_values_are_the_signed_relative_excess_of_each_bound():
    """<= 0 inside a bound, > 0 outside, in the bound's own scale; unmeasured is infeasible."""
    from edgeslim.budget import Budget
    from edgeslim.search import constraint_values

    budget = Budget(accuracy=">= 0.9", latency_p95_ms="<= 2", storage_kb=50)
    inside = {"accuracy": 0.95, "latency_p95_ms": 1.0, "storage_kb": 50.0}
    assert constraint_values(inside, budget) == pytest.approx([-0.05 / 0.9, -0.5, 0.0])
    outside = {"accuracy": 0.81, "latency_p95_ms": 3.0, "storage_kb": 75.0}
    assert constraint_values(outside, budget) == pytest.approx([0.1, 0.5, 0.5])
    assert constraint_values({"accuracy": 0.95}, budget)[1:] == [1.0, 1.0]


@pytest.mark.slow
def test_trials_measured_on_another_host_are_remeasured_here(first_run, tmp_path, monkeypatch):
    """remeasure_front: a fitting trial recorded by another host is built and measured again
    on this one; the other host's timings are kept aside, and trials from here are left alone."""
    from edgeslim import search

    space = {"quantize": ["fp16", "int8-static"], "finetune_epochs": 0}  # both fit the budget
    experiment = search_experiment("remeasure", trials=2, space=space, remeasure_front=False)
    reuse_baseline(first_run, RunFolder(tmp_path, "remeasure"))
    run_search(experiment, str(tmp_path), say=quiet, show_progress=False)
    folder = RunFolder(tmp_path, "remeasure")
    records = [r for r in folder.current(experiment.names) if "trial" in r]
    foreign = next(r for r in records if r["status"] == "ok")
    folder.append({**foreign, "host": "elsewhere", "latency_p95_ms": 123.0})
    runner = search.Runner(experiment, folder, quiet, False, retry_failed=False)
    runner.prepare()
    said: list[str] = []
    redone = search.remeasure_front(runner, experiment, said.append)
    assert redone == [foreign["name"]]
    fresh = folder.latest()[foreign["name"]]
    assert fresh["remeasured_from"] == "elsewhere" and fresh["host"] != "elsewhere"
    assert fresh["measured_elsewhere"]["latency_p95_ms"] == 123.0
    assert fresh["latency_p95_ms"] < 10
    assert said == [f"{foreign['name']}: measured on elsewhere; re-measuring on {fresh['host']}"]


def test_clustering_is_a_search_dimension():
    from edgeslim.compress import resolve
    from edgeslim.search import suggest

    space = config.SpaceConfig(sparsity=[0.5, 0.9], clusters=[0, 16, 64], finetune_epochs=1)
    assert "clusters" in space.dimensions()
    fixed = {"distill": False, "sparsity": 0.8, "quantize": "none"}
    recipe = suggest(optuna.trial.FixedTrial({**fixed, "clusters": 16}), space, None)
    assert recipe[-1] == {"cluster": {"clusters": 16, "epochs": 1}}
    resolve(recipe[-1])  # a step the pipeline accepts
    plain = suggest(optuna.trial.FixedTrial({**fixed, "clusters": 0}), space, None)
    assert not any("cluster" in step for step in plain)
    with pytest.raises(ConfigError, match="clusters: 0 .none. or 2 to 256"):
        config.parse({"name": "x", "model": "small-cnn", "search": {"space": {"clusters": [0, 1]}}})


def test_mixed_precision_is_a_search_choice():
    from edgeslim.compress import resolve
    from edgeslim.search import suggest

    space = config.SpaceConfig(sparsity=[0.5, 0.9], quantize=["none", "weight-mixed"])
    trial = optuna.trial.FixedTrial({"distill": False, "sparsity": 0.6, "quantize": "weight-mixed"})
    step = suggest(trial, space, None)[-1]
    assert step == {"quantize": {"kind": "mixed"}}
    resolve(step)


def test_qat_is_a_search_choice_that_distills_with_the_trial():
    from edgeslim.compress import resolve
    from edgeslim.search import suggest

    space = config.SpaceConfig(
        structured_ratio=[0.2, 0.5],
        distill=[False, True],
        quantize=["int8-static", "qat-int8", "qat-int4"],
    )
    for quantize, bits in (("qat-int4", 4), ("qat-int8", 8)):
        for distill in (True, False):
            fixed = {"distill": distill, "structured_ratio": 0.3, "quantize": quantize}
            recipe = suggest(optuna.trial.FixedTrial(fixed), space, None)
            assert recipe[-1] == {"qat": {"bits": bits, "epochs": 2, "distill": distill}}
            assert [next(iter(s)) for s in recipe] == [
                "prune",
                "distill" if distill else "finetune",
                "qat",
            ]
            resolve(recipe[-1])


# --- constraints and resuming: unit tests on hand-made studies and records, nothing trained ---
# scripts/mutation scores constraint_values, sampler_seed, sampler_for, directions, load_study,
# same_settings, trial_record, sync and remeasure_front on this class alone.

Q = {"quantize": optuna.distributions.CategoricalDistribution(["a", "b", "c"])}


def made(state: TrialState, quantize: str = "a", **attrs) -> optuna.trial.FrozenTrial:
    values = [0.9, 40.0] if state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(
        state=state, params={"quantize": quantize}, distributions=Q, values=values, user_attrs=attrs
    )


def two_objectives() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"])


class TestConstraintsAndResume:
    def test_constraints_are_signed_relative_excesses_and_no_figure_is_infeasible(self):
        from edgeslim.budget import Budget
        from edgeslim.search import constraint_values

        budget = Budget(accuracy=">= 0.8", storage_kb=40, latency_p95_ms=">= -2")
        # 0.9 is 0.1 over 0.8 (-1/8); 50 KB is 10 over 40 (1/4); -3 ms is 1 under -2 (1/2)
        got = constraint_values({"accuracy": 0.9, "storage_kb": 50, "latency_p95_ms": -3}, budget)
        assert got == pytest.approx([-0.125, 0.25, 0.5])
        assert constraint_values(
            {"accuracy": 0.6, "storage_kb": 30, "latency_p95_ms": 0}, budget
        ) == (pytest.approx([0.25, -0.25, -1.0]))
        for missing in (None, float("nan"), float("inf"), True, "0.9"):
            assert constraint_values({"accuracy": missing}, budget) == [1.0, 1.0, 1.0]
        # a bound of 0 divides by 1e-12: 2 KB over it is 2e12 bounds over
        assert constraint_values({"storage_kb": 2.0}, Budget(storage_kb=0)) == [pytest.approx(2e12)]
        assert constraint_values({"storage_kb": 2.0}, Budget()) == []

    def test_the_sampler_seed_mixes_the_file_s_seed_the_trials_so_far_and_the_salt(self):
        """The first word of NumPy's SeedSequence([seed, trials, salt]) (stable across NumPy
        versions by design): the values below were read off NumPy once."""
        from edgeslim.search import sampler_seed

        search = search_experiment("seed").config.search
        assert search.seed == 0
        assert sampler_seed(search, 0) == 2968811710
        assert sampler_seed(search, 3) == 2613022947
        assert sampler_seed(search, 0, salt=1) == 3831201730
        assert sampler_seed(search.model_copy(update={"seed": 7}), 0) == 2083679832
        assert isinstance(sampler_seed(search, 0), int)

    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            ("nsga2", optuna.samplers.NSGAIISampler),
            ("tpe", optuna.samplers.TPESampler),
            ("gp", optuna.samplers.GPSampler),
            ("random", optuna.samplers.RandomSampler),
            ("auto", optuna.samplers.GPSampler),  # the file's 12 trials
        ],
    )
    def test_each_sampler_is_seeded_by_the_seed_given_or_the_file_s(self, name, kind):
        from edgeslim.search import sampler_for

        search = search_experiment("s", sampler=name, seed=5, population=6).config.search

        def first(sampler) -> str:
            study = optuna.create_study(sampler=sampler)
            return study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).params["x"]

        assert type(sampler_for(search)) is kind
        assert first(sampler_for(search)) == first(sampler_for(search, seed=5))
        assert first(sampler_for(search, seed=6)) != first(sampler_for(search, seed=5))
        if name == "nsga2":
            assert sampler_for(search)._population_size == 6

    def test_auto_picks_the_sampler_for_the_trials_the_study_will_hold(self):
        """Below 100 trials the sampler the benchmark measured best at 20 and 40 (GP); from
        100 on, NSGA-II. A study's size is what it runs until: a rerun that takes a 20-trial
        study to 120 evolves generations; a named sampler is never swapped."""
        from edgeslim.search import AUTO_SMALL, load_study, sampler_for, sampler_name

        experiment = search_experiment("sized")
        search = experiment.config.search
        assert search.sampler == "auto"  # the default
        assert (sampler_name(search, 20), sampler_name(search, 99)) == (AUTO_SMALL, AUTO_SMALL)
        assert sampler_name(search, 100) == "nsga2" and AUTO_SMALL != "nsga2"
        assert type(sampler_for(search, 1, 120)) is optuna.samplers.NSGAIISampler
        named = search.model_copy(update={"sampler": "random"})
        assert sampler_name(named, 500) == "random"
        storage = optuna.storages.InMemoryStorage()
        study = load_study(storage, experiment, search, adding=150)
        assert study.user_attrs["until"] == 150  # the target every worker reads
        assert type(study.sampler) is optuna.samplers.NSGAIISampler
        study.set_user_attr("until", 30)  # a worker joining reads the study's own target
        assert type(load_study(storage, experiment, search).sampler) is optuna.samplers.GPSampler

    def test_a_study_is_named_after_the_experiment_and_faces_its_objectives(self):
        from edgeslim.search import directions, load_study

        experiment = search_experiment("facing")  # accuracy up, storage down
        assert directions(experiment) == ["maximize", "minimize"]
        optuna.logging.set_verbosity(optuna.logging.INFO)
        study = load_study(optuna.storages.InMemoryStorage(), experiment, experiment.config.search)
        assert study.study_name == "facing"
        assert study.directions == [
            optuna.study.StudyDirection.MAXIMIZE,
            optuna.study.StudyDirection.MINIMIZE,
        ]
        assert optuna.logging.get_verbosity() == optuna.logging.ERROR

    def test_a_reloaded_study_continues_its_sequence_instead_of_replaying_it(self):
        from edgeslim.search import load_study

        experiment = search_experiment("again", sampler="random")
        search = experiment.config.search
        x = {"x": optuna.distributions.FloatDistribution(0, 1)}
        storage = optuna.storages.InMemoryStorage()
        study = load_study(storage, experiment, search)
        first = study.ask(x)
        study.tell(first, [0.9, 40.0])
        again = load_study(storage, experiment, search)
        assert [t.number for t in again.trials] == [0]  # the same study, loaded
        second = again.ask(x).params["x"]
        assert second != first.params["x"]
        # the same file run the same way: the same first trial; a salted worker: another
        assert load_study(optuna.storages.InMemoryStorage(), experiment, search).ask(x).params == (
            first.params
        )
        salted = load_study(optuna.storages.InMemoryStorage(), experiment, search, salt=1)
        assert salted.ask(x).params != first.params
        # two trials in: neither the first nor the second value again
        study = load_study(storage, experiment, search)
        study.tell(study.trials[1].number, [0.9, 40.0])
        third = load_study(storage, experiment, search).ask(x).params["x"]
        assert third not in (first.params["x"], second)

    def test_the_same_settings_point_at_the_earliest_earlier_trial_that_holds_them(self):
        from edgeslim.search import same_settings

        study = two_objectives()

        def asked(quantize: str) -> optuna.Trial:
            study.enqueue_trial({"quantize": quantize})
            return study.ask(Q)

        t0 = asked("c")  # running
        study.add_trial(made(TrialState.COMPLETE, "a"))  # 1
        study.add_trial(made(TrialState.PRUNED, "b"))  # 2: pruned (a duplicate) never counts
        study.add_trial(made(TrialState.FAIL, "b"))  # 3
        t4, t5, t6 = asked("b"), asked("c"), asked("a")
        study.add_trial(made(TrialState.COMPLETE, "a"))  # 7
        assert (same_settings(t4), same_settings(t5), same_settings(t6)) == (3, 0, 1)
        assert same_settings(t0) is None  # itself and later trials do not count
        t8 = asked("b")
        study.tell(t4, state=TrialState.PRUNED)
        assert same_settings(t8) == 3

    def test_a_trial_s_record_or_a_failed_one_for_a_worker_that_died(self):
        from edgeslim.search import trial_record

        kept = {"name": "trial-0002", "status": "ok"}
        assert trial_record(made(TrialState.COMPLETE, record=kept)) == kept
        assert trial_record(made(TrialState.FAIL, record=kept)) == kept
        dead = made(TrialState.FAIL, "b")
        dead.number = 12
        assert trial_record(dead) == {
            "name": "trial-0012",
            "trial": 12,
            "params": {"quantize": "b"},
            "status": "failed",
            "stage": "worker",
            "error": STALE,
        }
        assert trial_record(made(TrialState.FAIL, stopped=True)) is None  # Ctrl-C: no record
        assert trial_record(made(TrialState.FAIL, stopped=False)) is not None
        assert trial_record(made(TrialState.COMPLETE)) is None
        assert trial_record(made(TrialState.PRUNED)) is None

    def test_sync_appends_each_finished_trial_once_as_plain_json(self, tmp_path):
        import numpy as np

        study = two_objectives()
        record = {"name": "trial-0000", "trial": 0, "status": "ok", "accuracy": np.float32(0.5)}
        study.add_trial(made(TrialState.COMPLETE, record=record))
        study.add_trial(made(TrialState.FAIL, "b"))  # its worker died: a failed record
        study.add_trial(made(TrialState.FAIL, "c", stopped=True))  # Ctrl-C: none
        study.add_trial(made(TrialState.COMPLETE, "c", record={"name": "trial-0003"}))
        folder = RunFolder(tmp_path, "s")
        folder.append({"name": "trial-0003", "status": "ok", "host": "elsewhere"})
        assert sync(study, folder) == 2
        read = folder.read()
        assert [r["name"] for r in read] == ["trial-0003", "trial-0000", "trial-0001"]
        assert read[1]["accuracy"] == 0.5 and type(read[1]["accuracy"]) is float
        assert read[2]["status"] == "failed" and read[2]["error"] == STALE
        assert read[0]["host"] == "elsewhere"  # a trial already there is not written again
        assert sync(study, folder) == 0 and len(folder.read()) == 3

    def test_only_fitting_trials_from_another_host_are_remeasured_here(self, tmp_path, monkeypatch):
        """Fitting (accuracy >= 0.9, storage <= 60 KB): trials 0 and 4 from elsewhere, 1 from
        here, 2 with no host, and the baseline (not a trial); trial 3 from elsewhere does not
        fit. Only 0 and 4 are built again, best first."""
        from types import SimpleNamespace

        from edgeslim import search

        experiment = search_experiment("front")
        folder = RunFolder(tmp_path, "front")

        def trial(number: int, accuracy: float, **extra) -> dict:
            step = [{"quantize": {"kind": "fp16"}}]
            return {
                "name": f"trial-{number:04d}",
                "trial": number,
                "status": "ok",
                "accuracy": accuracy,
                "storage_kb": 40.0,
                "requested": step,
                **extra,
            }

        elsewhere = {"latency_p95_ms": 9.0, "latency_p50_ms": 8.0, "throughput": 100.0}
        for record in [
            {"name": "baseline", "status": "ok", "accuracy": 0.99, "storage_kb": 50, "host": "x"},
            trial(0, 0.97, host="elsewhere", params={"quantize": "fp16"}, **elsewhere),
            trial(1, 0.98, host="here"),
            trial(2, 0.98),
            trial(3, 0.5, host="elsewhere"),
            trial(4, 0.96, host="far", storage_kb=30.0, energy_mj=2.0),
        ]:
            folder.append(record)
        validated, evaluated = [], []

        def validate(base, recipe, data, name):
            validated.append((base, recipe, data, name))
            return f"plan of {name}"

        def evaluate_one(name, recipe, plan, label):
            evaluated.append((name, recipe, plan, label))
            return {"name": name, "status": "ok", "accuracy": 0.9, "latency_p95_ms": 2.0}

        monkeypatch.setattr(search, "validate", validate)
        monkeypatch.setattr(search.socket, "gethostname", lambda: "here")
        runner = SimpleNamespace(folder=folder, base="BASE", data="DATA", evaluate_one=evaluate_one)
        said: list[str] = []
        assert search.remeasure_front(runner, experiment, said.append) == [
            "trial-0000",
            "trial-0004",
        ]
        assert said == [
            "trial-0000: measured on elsewhere; re-measuring on here",
            "trial-0004: measured on far; re-measuring on here",
        ]
        step = [{"quantize": {"kind": "fp16"}}]
        assert validated == [("BASE", step, "DATA", f"trial-000{n}") for n in (0, 4)]
        assert evaluated == [
            (f"trial-000{n}", step, f"plan of trial-000{n}", f"trial-000{n}") for n in (0, 4)
        ]
        latest = folder.latest()
        fresh = {k: v for k, v in latest["trial-0000"].items() if k != "checksum"}
        assert fresh == {
            "name": "trial-0000",
            "status": "ok",
            "accuracy": 0.9,
            "latency_p95_ms": 2.0,
            "trial": 0,
            "params": {"quantize": "fp16"},
            "requested": step,
            "host": "here",
            "remeasured_from": "elsewhere",
            "measured_elsewhere": elsewhere,
        }
        assert latest["trial-0004"]["params"] == {}  # none recorded
        assert latest["trial-0004"]["measured_elsewhere"] == {}  # no timings there
        assert latest["trial-0004"]["remeasured_from"] == "far"
        assert len(folder.read()) == 8  # two records added, nothing else


def test_latency_targeted_pruning_is_a_search_dimension():
    from edgeslim.compress import resolve
    from edgeslim.search import suggest

    space = config.SpaceConfig(latency_fraction=[0.4, 0.9], finetune_epochs=1)
    assert "latency_fraction" in space.dimensions()
    fixed = {"distill": False, "quantize": "none", "latency_fraction": 0.55}
    recipe = suggest(optuna.trial.FixedTrial(fixed), space, None)
    assert recipe[0] == {"prune": {"kind": "structured", "target": {"latency": 0.55}}}
    assert recipe[1] == {"finetune": {"epochs": 1}}
    resolve(recipe[0])  # a step the pipeline accepts
    with pytest.raises(ConfigError, match="structured_ratio or latency_fraction"):
        config.parse(
            {
                "name": "x",
                "model": "small-cnn",
                "search": {"space": {"structured_ratio": [0.1, 0.5], "latency_fraction": [0.4, 1]}},
            }
        )


def test_a_trials_latency_is_known_before_it_is_built_only_when_nothing_else_changes_speed():
    from edgeslim.budget import Budget
    from edgeslim.search import LANDS_BELOW, latency_fraction, predicted_misses

    target = {"prune": {"kind": "structured", "target": {"latency": 0.5}}}
    assert latency_fraction([target, {"finetune": {"epochs": 1}}]) == 0.5
    assert latency_fraction([target, {"distill": {"epochs": 1, "temperature": 4}}]) == 0.5
    assert latency_fraction([{"finetune": {"epochs": 1}}]) is None  # no target: nothing known
    student = {"distill": {"epochs": 1, "student": {"model": "small-cnn", "width": 0.5}}}
    for other in (
        student,  # the fraction is of the student's p50, unknown until it is built
        {"quantize": {"kind": "int8-static"}},
        {"qat": {"bits": 8, "epochs": 1}},
        {"prune": {"kind": "unstructured", "sparsity": 0.5}},  # sparse kernels may run faster
        {"prune": {"kind": "structured", "ratio": 0.3}},
        {"cluster": {"clusters": 16, "epochs": 1}},
    ):
        assert latency_fraction([target, other]) is None, other

    budget = Budget(latency_p95_ms=1.0, storage_kb=10, accuracy=">= 0.9")
    assert predicted_misses(1.0 / (1 - LANDS_BELOW) * 1.01, budget) == ["latency_p95_ms <= 1"]
    assert predicted_misses(1.0 / (1 - LANDS_BELOW) * 0.99, budget) == []  # may land under it
    mean = Budget(storage_kb=10, latency_mean_ms=1)  # a mean may lie below the p50
    assert predicted_misses(100.0, mean) == []


@pytest.mark.slow
def test_a_trial_predicted_out_of_the_latency_budget_is_recorded_as_such_and_not_built(
    first_run, tmp_path
):
    experiment = config.parse(
        {
            **search_experiment("predicted").to_dict(),
            "budget": {"latency_p95_ms": "<= 0.0001", "storage_kb": "<= 60"},
            "search": {
                "space": {"latency_fraction": [0.3, 0.9], "finetune_epochs": 1},
                "trials": 3,
                "sampler": "random",
            },
        }
    )
    folder = reuse_baseline(first_run, RunFolder(tmp_path, "predicted"))
    said: list[str] = []
    outcome = run_search(experiment, str(tmp_path), say=said.append, show_progress=False)
    trials = [r for r in outcome.records if "trial" in r]
    assert len(trials) == 3
    baselines = {r["predicted"]["baseline_p50_ms"] for r in trials}
    assert len(baselines) == 1 and 0 < baselines.pop() < 10  # timed once, on the runtime
    for record in trials:
        predicted = record["predicted"]
        assert record["status"] == "does-not-fit"
        assert record["does_not_fit"].startswith("predicted, not measured")
        assert predicted["fraction"] == pytest.approx(record["params"]["latency_fraction"], 1e-3)
        assert predicted["latency_p50_ms"] == pytest.approx(
            predicted["fraction"] * predicted["baseline_p50_ms"], rel=1e-3
        )
        assert "latency_p50_ms" not in record  # nothing measured
    assert not list(folder.artifacts.glob("trial-*"))  # nothing built
    assert sum("predicted, not measured" in line for line in said) == 3
    report = (folder.path / "report.md").read_text()
    assert "predicted, not measured" in report


@pytest.mark.slow
def test_a_trial_that_cannot_reach_the_accuracy_bound_stops_training_and_loses_nothing(
    first_run, tmp_path
):
    """Multi-fidelity: the same seeded trials with and without ``stop_early``. Each trial the
    rule stopped is one that, built and measured in full, missed the bound; the fitting trials
    are the same ones."""

    def searched(stop_early: bool) -> dict[int, dict]:
        name = f"stop-{stop_early}"
        experiment = config.parse(
            {
                **search_experiment(name).to_dict(),
                "budget": {"accuracy": ">= 0.9", "storage_kb": "<= 60"},
                "search": {
                    "space": {
                        "sparsity": [0.0, 0.99],
                        "structured_ratio": [0.0, 0.9],
                        "quantize": ["none", "int8-static"],
                        "finetune_epochs": 3,
                    },
                    "trials": 12,  # the 12th is stopped (trial-0011: 0.78 after 2 epochs)
                    "sampler": "random",
                    "stop_early": stop_early,
                },
            }
        )
        reuse_baseline(first_run, RunFolder(tmp_path, name))
        outcome = run_search(experiment, str(tmp_path), say=quiet, show_progress=False)
        return {r["trial"]: r for r in outcome.records if "trial" in r}

    watched, unwatched = searched(True), searched(False)
    assert [r["params"] for r in watched.values()] == [r["params"] for r in unwatched.values()]
    stopped = [n for n, r in watched.items() if "stopped_early" in r]
    assert stopped, "no trial was stopped: the test shows nothing"
    for number in stopped:
        record, said = watched[number], watched[number]["stopped_early"]
        assert record["status"] == "does-not-fit" and "val_accuracy" not in record  # not measured
        assert said["epoch"] < said["epochs"] == 3 and said["from_trials"] >= 3
        assert said["score"] + said["largest_gain"] + 0.01 < 0.9
        assert "cannot reach val_accuracy >= 0.9" in record["does_not_fit"]
        assert unwatched[number]["val_accuracy"] < 0.9  # measured in full, it missed too

    def fitting(records: dict[int, dict]) -> set[int]:
        return {
            n
            for n, r in records.items()
            if r["status"] == "ok" and r["val_accuracy"] >= 0.9 and r["storage_kb"] <= 60
        }

    assert fitting(unwatched) and fitting(watched) == fitting(unwatched)
