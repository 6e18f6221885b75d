"""Multi-objective search over compression settings, with Optuna's samplers and storages.

A trial turns sampled settings into a recipe (``suggest``), builds and measures it like any
candidate, and reports the objectives and, as Optuna constraints, how far it is from the budget
(so infeasible trials steer the sampler). The study lives in an Optuna storage: an SQLite file in
the run folder by default (embedded, nothing to start), or a PostgreSQL URL that many workers on
many machines share. Heartbeats mark a trial whose worker died as failed, so it neither blocks
the study nor is lost. Every trial also becomes a record in the coordinator's run folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from edgeslim import interrupts
from edgeslim.budget import Bound, Budget
from edgeslim.config import Experiment, SearchConfig, SpaceConfig, parse
from edgeslim.errors import ConfigError
from edgeslim.experiment import Runner, describe, jsonable
from edgeslim.fidelity import Watch, quality_bound, seen
from edgeslim.figures import VALIDATION, is_figure
from edgeslim.files import writing
from edgeslim.models import ZOO
from edgeslim.recipes import validate
from edgeslim.results import RunFolder
from edgeslim.select import objectives_for, searched_on, select
from edgeslim.tasks import task_of
from edgeslim.train import TrainingStopped, watching

if TYPE_CHECKING:
    import optuna

    from edgeslim.experiment import RunOutcome

Say = Callable[[str], None]
TRIAL_NAME = "trial-{:04d}"
# the space's names (as the presets) -> the quantize step's kinds
QUANTIZE_KINDS = {
    "int8-static": "static-int8",
    "int8-dynamic": "dynamic-int8",
    "fp16": "fp16",
    "weight-int8": "weight-int8",
    "weight-int4": "weight-int4",
    "weight-mixed": "mixed",  # INT4/INT8 per layer, within quantize.mixed's default max_drop
}
QAT_BITS = {"qat-int8": 8, "qat-int4": 4}  # trained for the width, distilling when the trial does
# every percentile of a model's latency is at least its p50, so a p50 over any of these bounds
# breaks it: what a trial's predicted p50 is held to
PERCENTILES = ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms")
# how far under its target a latency-targeted model may land (the allocation's grid of ratios,
# the host's drift between timings): a prediction rules a trial out only past this margin
LANDS_BELOW = 0.15
SPEED_KEPT = ("finetune", "distill")  # steps that train the same layers, never resize them
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)  # a trial that did not fit was measured too
STALE = "worker stopped sending heartbeats (killed or lost) in the middle of this trial"
# sampler: auto. Below AUTO_LARGE_FROM trials, the sampler bench/search.py measured best against
# random sampling at 20 and 40 trials; from there, NSGA-II (Optuna's guidance for 100+ trials,
# not measured here: no benchmark spends that many)
AUTO_SMALL = "gp"  # digits, 5 seeds: median hypervolume 5.48 at 20 trials, random 4.52 (TPE 4.64)
AUTO_LARGE_FROM = 100


class TrialFailed(Exception):
    """The trial's candidate failed or did not fit; its record says why."""


def suggest(trial: optuna.Trial, space: SpaceConfig, student_model: str | None) -> list[dict]:
    """Sampled settings -> an ordered recipe: student, channels, weights, fine-tune, shared
    weights, quantize."""
    recipe: list[dict[str, Any]] = []
    epochs = space.finetune_epochs

    def ranged(name: str) -> float | None:
        bounds = getattr(space, name)
        if bounds is None:
            return None
        return bounds[0] if bounds[0] == bounds[1] else trial.suggest_float(name, *bounds)

    width = ranged("student_width") if student_model else None
    distill = trial.suggest_categorical("distill", list(dict.fromkeys(space.distill)))
    temperature = ranged("temperature") if distill else None
    if width is not None:
        student = {"model": student_model, "width": round(width, 4)}
        recipe.append({"distill": {"epochs": max(epochs, 1), "student": student}})
    ratio = ranged("structured_ratio")
    if ratio is not None and ratio >= 0.01:
        recipe.append({"prune": {"kind": "structured", "ratio": round(ratio, 4)}})
    fraction = ranged("latency_fraction")  # widths chosen by measured latency on the runtime
    if fraction is not None and fraction <= 0.99:
        target = {"latency": round(fraction, 4)}
        recipe.append({"prune": {"kind": "structured", "target": target}})
    sparsity = ranged("sparsity")
    if sparsity is not None and sparsity >= 0.01:
        recipe.append({"prune": {"kind": "unstructured", "sparsity": round(sparsity, 4)}})
    pruned = any("prune" in step for step in recipe)
    if pruned and epochs:
        if distill:
            softening = {} if temperature is None else {"temperature": round(temperature, 3)}
            recipe.append({"distill": {"epochs": epochs, **softening}})
        else:
            recipe.append({"finetune": {"epochs": epochs}})
    choices = list(dict.fromkeys(space.clusters))
    clusters = choices[0] if len(choices) == 1 else trial.suggest_categorical("clusters", choices)
    if clusters:
        recipe.append({"cluster": {"clusters": clusters, "epochs": epochs}})
    quantize = trial.suggest_categorical("quantize", list(dict.fromkeys(space.quantize)))
    if quantize in QAT_BITS:
        qat = {"bits": QAT_BITS[quantize], "epochs": max(epochs, 1), "distill": bool(distill)}
        recipe.append({"qat": qat})
    elif quantize != "none":
        recipe.append({"quantize": {"kind": QUANTIZE_KINDS[quantize]}})
    return recipe


def constraint_values(record: dict[str, Any], budget: Budget) -> list[float]:
    """One value per bound, <= 0 when it holds: the signed excess relative to the bound."""
    values = []
    for bound in budget.bounds:
        measured = record.get(bound.metric)
        if not is_figure(measured):  # not measured, NaN or infinite: infeasible
            values.append(1.0)
            continue
        values.append(bound.relative(bound.overshoot(measured)))
    return values


def latency_fraction(recipe: list[dict[str, Any]]) -> float | None:
    """The fraction of the baseline's p50 a trial will run at, known before it is built when its
    recipe prunes to a latency fraction and nothing else in it changes the speed (fine-tuning,
    distilling into the same model); None when the recipe does more than that."""
    fraction = None
    for step in recipe:
        [(kind, settings)] = step.items()
        target = (settings.get("target") or {}) if kind == "prune" else {}
        if target.get("latency") is not None:
            fraction = float(target["latency"])
        elif kind not in SPEED_KEPT or "student" in settings:
            return None
    return fraction


def latency_bounds(budget: Budget) -> list[Bound]:
    """The budget's upper bounds on a latency percentile: those a predicted p50 can break."""
    return [b for b in budget.bounds if b.metric in PERCENTILES and b.op == "<="]


def predicted_misses(predicted_p50_ms: float, budget: Budget) -> list[str]:
    """The latency bounds a model of this p50 breaks even landing LANDS_BELOW under it."""
    lands = predicted_p50_ms * (1 - LANDS_BELOW)
    return [str(bound) for bound in latency_bounds(budget) if lands > bound.value]


def sampler_seed(search: SearchConfig, trials_so_far: int, salt: int = 0) -> int:
    """The file's seed mixed with how many trials the study already holds: a rerun (or a
    worker joining later) continues the sequence instead of replaying it from the start,
    and the same file run the same way still gives the same trials. ``salt`` tells apart
    workers that join at the same moment."""
    return int(np.random.SeedSequence([search.seed, trials_so_far, salt]).generate_state(1)[0])


def sampler_name(search: SearchConfig, trials: int) -> str:
    """The sampler a study of ``trials`` trials runs: the file's, or for ``auto`` the one the
    benchmark measured best at that budget (Optuna's own guidance for the rest: NSGA-II once
    a study has generations to evolve)."""
    if search.sampler != "auto":
        return search.sampler
    return AUTO_SMALL if trials < AUTO_LARGE_FROM else "nsga2"


def sampler_for(
    search: SearchConfig, seed: int | None = None, trials: int | None = None
) -> optuna.samplers.BaseSampler:
    """Seeded samplers; all but random read the budget from each trial's constraints
    (``Trial.set_constraint``). ``trials``: the study's size, which ``auto`` picks for."""
    seed = search.seed if seed is None else seed
    name = sampler_name(search, search.trials if trials is None else trials)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=search.population, seed=seed)
    if name == "tpe":  # the space is conditional (temperature only when distilling): grouped
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}:***@{tail}"


def open_storage(url: str, search: SearchConfig) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats; an unreachable URL fails within seconds."""

    if url.startswith(("postgresql", "postgres")):
        engine = {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}
    elif url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 60}}
    else:
        raise ConfigError(
            f"storage {redact(url)}: expected sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
        )
    try:
        with warnings_quiet():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=search.heartbeat_s,
                grace_period=search.grace_s or 3 * search.heartbeat_s,
            )
    except ImportError as exc:
        raise ConfigError(
            f"storage {redact(url)}: the database driver is missing; "
            "pip install 'edgeslim[postgres]' (psycopg)"
        ) from exc
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"cannot reach the search storage {redact(url)}: {reason}") from exc


@contextlib.contextmanager
def warnings_quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental.*")
        yield


def directions(experiment: Experiment) -> list[str]:
    return [
        "maximize" if o.better == "higher" else "minimize"
        for o in objectives_for(experiment.config.objectives)
    ]


def student_model(experiment: Experiment) -> str | None:
    return experiment.config.model if experiment.config.model in ZOO else None


def where() -> dict[str, str]:
    """Which host and worker process ran a trial (every trial record says so)."""
    return {"host": socket.gethostname(), "worker": f"{socket.gethostname()}:{os.getpid()}"}


class Trials:
    """The objective a worker runs: one trial = one candidate built, measured and recorded."""

    def __init__(
        self, experiment: Experiment, runner: Runner, until: int, names: dict[str, str]
    ) -> None:
        self.done = 0  # trials this worker finished
        self.experiment = experiment
        # the figure each objective and bound reads (a quality metric's validation twin)
        self.names = names
        self.budget = experiment.budget.renamed(names)
        self.search: SearchConfig = experiment.config.search  # type: ignore[assignment]
        self.runner = runner
        self.until = until
        self.student = student_model(experiment)
        self.baseline_ms: float | None = None  # its p50 on the runtime, timed once when needed

    def __call__(self, trial: optuna.Trial) -> list[float]:
        if trial.number >= self.until:  # another worker already started the last one
            trial.study.stop()
            raise optuna.TrialPruned("the study has its trials")
        recipe = suggest(trial, self.search.space, self.student)
        name = TRIAL_NAME.format(trial.number)
        label = f"[trial {trial.number + 1}/{self.until}] {name}"
        earlier = same_settings(trial)
        if earlier is not None:  # nothing new to learn: say so, and build nothing
            source = TRIAL_NAME.format(earlier)
            duplicate = {"name": name, "trial": trial.number, "params": trial.params}
            duplicate.update(requested=recipe, status="duplicate", duplicate_of=source, **where())
            trial.set_user_attr("record", duplicate)
            self.runner.say(f"{label}: the same settings as {source}; not built again")
            raise optuna.TrialPruned(f"the same settings as {source}")
        try:  # a measurement that a prediction shows wasted is not made
            record = self.predicted_out_of_budget(name, recipe) or self.built(
                trial, name, recipe, label
            )
        except (KeyboardInterrupt, SystemExit):
            stopped(trial)
            raise
        record.update(
            trial=trial.number,
            params=trial.params,
            requested=recipe,
            **where(),
        )
        if record["status"] == "ok":  # infeasible trials steer NSGA-II / TPE away
            values = constraint_values(record, self.budget)
            for bound, value in zip(self.budget.bounds, values, strict=True):
                trial.set_constraint(str(bound), value)
            record["constraints"] = values
        trial.set_user_attr("record", record)
        self.done += 1
        self.runner.say(f"{label}: {describe(record)}")
        if record["status"] != "ok":
            raise TrialFailed(record.get("error") or record.get("does_not_fit"))
        return [record.get(self.names[m]) for m in self.experiment.config.objectives]

    def built(
        self, trial: optuna.Trial, name: str, recipe: list[dict], label: str
    ) -> dict[str, Any]:
        """The trial's candidate built and measured, or a failed record for a sampled
        combination the model cannot take."""
        try:
            plan = validate(self.runner.base, recipe, self.runner.data, name)
        except ConfigError as exc:
            return self.runner.failure(name, self.runner.runtime, "", recipe, "validate", exc)
        watch = self.watch(trial)
        if watch is None:
            return self.runner.evaluate_one(name, recipe, plan, label)
        try:
            with watching(watch):
                return self.runner.evaluate_one(name, recipe, plan, label)
        except TrainingStopped:
            return self.unbuilt(name, recipe, watch.reason(), stopped_early=watch.stopped)
        finally:
            if watch.curves:  # what later trials' rule learns from
                trial.set_user_attr("curves", watch.curves)

    def watch(self, trial: optuna.Trial) -> Watch | None:
        """Multi-fidelity (``stop_early``): the rule that ends this trial's training once it
        cannot reach the budget's bound on validation quality, knowing what the finished
        trials gained; None when off or when the budget bounds no validation quality."""
        if not self.search.stop_early:
            return None
        metric = VALIDATION + task_of(self.runner.data.spec).quality
        bound = quality_bound(self.budget, metric)
        if bound is None:
            return None
        finished = trial.study.get_trials(deepcopy=False, states=FINISHED)
        earlier = [taught for t in finished if (taught := seen(t.user_attrs, metric))]
        return Watch(bound, earlier)

    def predicted_out_of_budget(self, name: str, recipe: list[dict]) -> dict[str, Any] | None:
        """A does-not-fit record, built and measured nothing, for a trial pruned to a latency
        fraction that cannot meet the budget's latency bounds; None for any other trial."""
        fraction = latency_fraction(recipe)
        if fraction is None or not latency_bounds(self.experiment.budget):
            return None  # not predictable, or no latency bound to break
        baseline = self.baseline_p50_ms()
        if baseline is None:
            return None
        predicted = fraction * baseline
        missed = predicted_misses(predicted, self.experiment.budget)
        if not missed:
            return None
        reason = (
            f"predicted, not measured: a p50 of {predicted:.4g} ms ({fraction:g} x the "
            f"baseline's {baseline:.4g} ms on {self.runner.runtime}) breaks {', '.join(missed)} "
            f"even {LANDS_BELOW:.0%} under its target"
        )
        return self.unbuilt(
            name,
            recipe,
            reason,
            predicted={
                "latency_p50_ms": round(predicted, 5),
                "baseline_p50_ms": round(baseline, 5),
                "fraction": fraction,
            },
        )

    def unbuilt(self, name: str, recipe: list[dict], reason: str, **said: Any) -> dict[str, Any]:
        """The does-not-fit record of a trial ruled out before it was measured."""
        runtime = self.runner.runtime
        return {
            "name": self.experiment.record_name(name, runtime),
            "candidate": name,
            "runtime": runtime,
            "spec_hash": "",
            "recipe": recipe,
            "status": "does-not-fit",
            "does_not_fit": reason,
            **said,
        }

    def baseline_p50_ms(self) -> float | None:
        """The baseline's p50 on the runtime (here or on the board), timed once per worker;
        None, said once, when it cannot be timed (the trials are then built and measured)."""
        if self.baseline_ms is None:
            [timed] = self.runner.probe()([self.runner.base.model])
            if timed.p50_ms is None:
                self.runner.say(
                    f"no latency predictions: the baseline was not timed ({timed.error})"
                )
                self.baseline_ms = float("nan")
            else:
                self.baseline_ms = timed.p50_ms
        return self.baseline_ms if is_figure(self.baseline_ms) else None


def stopped(trial: optuna.Trial) -> None:
    """Mark a trial that Ctrl-C (or a worker's SIGTERM) stopped: like a run's interrupted
    candidate it leaves no record, where a trial whose worker died is a failed one."""
    with contextlib.suppress(Exception):  # the interrupt matters, not a storage hiccup
        trial.set_user_attr("stopped", True)


def same_settings(trial: optuna.Trial) -> int | None:
    """The number of an earlier trial (finished, failed or running) with this one's settings."""
    states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
    for other in trial.study.get_trials(deepcopy=False, states=states):
        if other.number < trial.number and other.params == trial.params:
            return other.number
    return None


def load_study(
    storage, experiment: Experiment, search: SearchConfig, salt: int = 0, adding: int | None = None
) -> optuna.Study:
    """The experiment's study, its sampler seeded from the trials it already holds and chosen
    for the trials it will hold. ``adding``: trials to add, which sets the study's target
    (``until``) for every worker; else the study's own target, else the file's trials more."""
    # each trial says its own outcome in one line (``say``); Optuna's warnings would repeat a
    # failed trial, or an interrupt, with a whole traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        storage=storage,
        study_name=experiment.config.name,
        directions=directions(experiment),
        load_if_exists=True,
    )
    held = len(study.trials)
    if adding is not None:
        study.set_user_attr("until", held + adding)
    until = int(study.user_attrs.get("until", 0)) or held + search.trials
    study.sampler = sampler_for(search, sampler_seed(search, held, salt), until)
    return study


def work(
    experiment: Experiment,
    storage_url: str,
    runs_dir: str,
    *,
    until: int | None = None,
    say: Say = print,
    show_progress: bool = False,
    timeout_s: float | None = None,
    record_here: bool = False,
    runner: Runner | None = None,
    study: optuna.Study | None = None,
) -> int:
    """Run trials of the study until it has ``until`` (default: the study's own target);
    returns how many this worker finished. The coordinator passes its own runner and study."""
    search: SearchConfig = experiment.config.search  # type: ignore[assignment]
    if study is None:  # a worker: salted, so workers that join together do not sample alike
        study = load_study(open_storage(storage_url, search), experiment, search, os.getpid())
    until = until if until is not None else int(study.user_attrs.get("until", 0))
    folder = RunFolder(runs_dir, experiment.config.name)
    folder.create()
    if runner is None:
        runner = Runner(experiment, folder, say, show_progress, retry_failed=False)
        runner.prepare()
    before = len(study.trials)
    if until <= before:
        return 0
    held = [r for r in map(trial_record, study.get_trials(deepcopy=False)) if r is not None]
    metrics = [*experiment.config.objectives, *experiment.budget.metrics]
    trials = Trials(experiment, runner, until, searched_on(held, metrics))
    # the coordinator's own trials reach its run folder the moment they finish
    callbacks = [lambda study, _trial: sync(study, folder)] if record_here else []
    with warnings_quiet():
        study.optimize(
            trials,
            catch=(TrialFailed,),
            timeout=timeout_s if timeout_s is not None else search.timeout_s,
            n_trials=until - before,
            callbacks=callbacks,
        )
    return trials.done


def join_study(storage_url: str, study_name: str, runs_dir: str, say: Say = print) -> int:
    """``edgeslim worker``: the experiment comes from the study, written there by ``search``."""
    with warnings_quiet():
        probe = open_storage(storage_url, SearchConfig(space=SpaceConfig(sparsity=(0.0, 0.5))))
    try:
        summary = optuna.load_study(study_name=study_name, storage=probe)
    except KeyError as exc:
        raise ConfigError(f"no study named {study_name!r} in {redact(storage_url)}") from exc
    raw = summary.user_attrs.get("experiment")
    if raw is None:
        raise ConfigError(f"study {study_name!r} was not created by edgeslim search")
    return work(parse(raw), storage_url, runs_dir, say=say)


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The record of a finished trial; a stale (heartbeat-failed) one gets a failed record."""
    record = trial.user_attrs.get("record")
    if record is not None:
        return record
    if trial.state == TrialState.FAIL and not trial.user_attrs.get("stopped"):
        return {
            "name": TRIAL_NAME.format(trial.number),
            "trial": trial.number,
            "params": trial.params,
            "status": "failed",
            "stage": "worker",
            "error": STALE,
        }
    return None


def sync(study: optuna.Study, folder: RunFolder) -> int:
    """Append every finished trial not yet in the run folder; returns how many."""
    present = folder.latest()
    added = 0
    for trial in study.get_trials(deepcopy=False):
        record = trial_record(trial)
        if record is not None and record["name"] not in present:
            folder.append(jsonable(record))
            added += 1
    return added


def remeasure_front(runner: Runner, experiment: Experiment, say: Say) -> list[str]:
    """Re-build and re-measure here every fitting front trial measured on another host, so
    the final front never mixes machines silently; the other host's numbers are kept aside."""

    here = socket.gethostname()
    records = runner.folder.current(experiment.names)
    chosen = select(records, experiment.budget, objectives=experiment.config.objectives)
    redone = []
    for record in chosen.fitting:
        host = record.get("host")
        if "trial" not in record or host in (None, here):
            continue
        say(f"{record['name']}: measured on {host}; re-measuring on {here}")
        recipe = record["requested"]
        plan = validate(runner.base, recipe, runner.data, record["name"])
        fresh = runner.evaluate_one(record["name"], recipe, plan, record["name"])
        elsewhere = {k: v for k, v in record.items() if k.startswith(("latency_", "throughput"))}
        fresh.update(
            trial=record["trial"],
            params=record.get("params", {}),
            requested=recipe,
            host=here,
            remeasured_from=host,
            measured_elsewhere=elsewhere,
        )
        runner.folder.append(fresh)
        redone.append(record["name"])
    return redone


def start_workers(
    count: int, storage_url: str, folder: RunFolder, runs_dir: str
) -> list[subprocess.Popen]:
    """``count`` local ``edgeslim worker`` processes, each logging to ``worker-N.log``."""
    command = [sys.executable, "-m", "edgeslim.cli", "worker", "--storage", storage_url]
    command += ["--study", folder.name, "--runs", runs_dir]
    # share the cores: K workers each training with every core's worth of OpenMP threads
    # spin against each other (measured: 2 workers on 2 cores ran 4x slower than 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (cores or 1) // count))}
    procs = []
    for number in range(count):
        with open(folder.path / f"worker-{number}.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches them through us, not twice
                )
            )
    return procs


def stop(workers: list[subprocess.Popen]) -> None:
    for proc in workers:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_search(
    experiment: Experiment,
    runs_dir: str = "runs",
    *,
    trials: int | None = None,
    storage: str | None = None,
    workers: int = 1,
    say: Say = print,
    show_progress: bool = True,
) -> RunOutcome:
    """Add ``trials`` trials (default: the file's) to the experiment's study, then report."""
    search = experiment.config.search
    if search is None:
        raise ConfigError("the experiment has no search: section (space, trials, ...)")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if len(experiment.runtimes) > 1:
        raise ConfigError(
            f"runtimes: a search measures its trials on one runtime, got {experiment.runtimes}; "
            "search on one, then `edgeslim run` the front on the others"
        )
    folder = RunFolder(runs_dir, experiment.config.name)
    # Ctrl-C stops the search at the next safe point even when a library swallows it
    with writing(folder.path), folder.lock(), interrupts.handled():
        folder.create()
        url = storage or f"sqlite:///{(folder.path / 'search.db').resolve()}"
        adding = trials if trials is not None else search.trials
        study = load_study(open_storage(url, search), experiment, search, adding=adding)
        until = int(study.user_attrs["until"])
        study.set_user_attr("experiment", experiment.to_dict())
        name = sampler_name(search, until)
        picked = f"{name} (auto, for {until} trials)" if search.sampler == "auto" else name
        say(f"study {study.study_name} in {redact(url)}: {len(study.trials)} trials so far, "
            f"running until {until}, with {workers} worker(s), sampler {picked}")  # fmt: skip
        # the baseline first, so local workers find it cached and it is measured here
        runner = Runner(experiment, folder, say, show_progress, retry_failed=False)
        outcome = runner.run()
        started = time.monotonic()
        if workers == 1:
            work(
                experiment,
                url,
                str(runs_dir),
                until=until,
                say=say,
                show_progress=show_progress,
                record_here=True,
                runner=runner,
                study=study,
            )
        else:
            procs = start_workers(workers, url, folder, str(runs_dir))
            try:
                while any(p.poll() is None for p in procs):
                    time.sleep(2)
                    sync(study, folder)
            finally:
                stop(procs)
            for number, proc in enumerate(procs):
                if proc.returncode != 0:
                    log = folder.path / f"worker-{number}.log"
                    say(f"worker {number} exited with {proc.returncode}; see {log}")
        sync(study, folder)
        if search.remeasure_front:
            remeasure_front(runner, experiment, say)
        outcome = runner.finish(outcome.redone)
        outcome.timings["search"] = time.monotonic() - started
        return outcome
