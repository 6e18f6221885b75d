"""Orchestration: experiment -> baseline -> candidates -> measure -> select -> report.

Every candidate's record is appended to ``results.jsonl`` the moment it is measured (or fails),
so stopping a run loses at most the candidate in progress; running again skips every candidate
whose record matches its current recipe and measurement settings (its ``spec_hash``).

Two things stop a run instead of becoming a candidate's ``failed`` record, since they are not the
candidate's fault and a rerun must redo it: Ctrl-C (``KeyboardInterrupt``, checked again at safe
points in case a library swallowed it, see ``interrupts``) and a disk that fills up
(``DiskFullError``, one line naming the file). Either way the unfinished candidate's files are
removed and every finished record is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from edgeslim import interrupts
from edgeslim.boards import Board
from edgeslim.boards.probe import check_ready
from edgeslim.candidate import Candidate
from edgeslim.compress.registry import StepContext
from edgeslim.config import Experiment
from edgeslim.data import load
from edgeslim.errors import ConfigError, DiskFullError, DoesNotFit, EdgeslimError
from edgeslim.export import export
from edgeslim.files import TRY_AGAIN, as_disk_full, no_room, write_atomic, writing
from edgeslim.measure import measure
from edgeslim.measure.probe import LatencyProbe
from edgeslim.models import ZOO, load_model
from edgeslim.models.loading import load_weights, source_file
from edgeslim.progress import spinner
from edgeslim.recipes import run_recipe, validate
from edgeslim.report import write_reports
from edgeslim.results import RunFolder
from edgeslim.runtimes import runtime as engine
from edgeslim.select import Selection
from edgeslim.tasks import task_of
from edgeslim.train import TrainingStopped, train
from edgeslim.version import __version__

Say = Callable[[str], None]


@dataclass
class RunOutcome:
    folder: RunFolder
    records: list[dict[str, Any]]
    selection: Selection
    reports: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds, this session
    redone: list[str] = field(default_factory=list)  # candidates built in this session

    @property
    def failed(self) -> list[str]:
        """The records (candidates, or search trials) whose build or measurement failed."""
        return [str(r["name"]) for r in self.records if r.get("status") == "failed"]


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """Records hold plain JSON: numpy scalars become numbers, paths and tuples plain values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


class Runner:
    """One session of work on a run folder (held under its lock)."""

    def __init__(
        self,
        experiment: Experiment,
        folder: RunFolder,
        say: Say,
        show_progress: bool,
        retry_failed: bool,
    ) -> None:
        self.experiment = experiment
        self.config = experiment.config
        self.folder = folder
        self.say = say
        self.show_progress = show_progress
        self.retry_failed = retry_failed
        self.settings = experiment.measure_settings()
        self.timings: dict[str, float] = {}
        self.board = None  # measured on this host, unless the experiment names a board
        if experiment.on_board:
            self.board = Board(experiment.board, say=say)

    def timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    # --- the baseline -------------------------------------------------------------------
    def baseline_key(self) -> str:
        weights = self.config.weights
        model = self.config.model
        source = source_file(model)  # a model file, or the file of the function that builds it
        return digest(
            {
                "model": model,
                "model_file": file_digest(source) if source is not None else None,
                "weights": file_digest(weights) if weights else None,
                "data": self.data.source,
                # where it trains is not what it learns: a GPU run reuses a CPU run's baseline
                "train": self.config.train.model_dump(exclude={"device"}),
                "edgeslim": __version__,
            }
        )

    def load(self):  # -> nn.Module | Path
        """The model as the experiment names it, built from the training seed (a zoo model or
        a user's function alike: the same seed, the same starting weights)."""
        seed = self.config.train.seed
        return load_model(self.config.model, self.data.spec, self.config.weights, seed=seed)

    def baseline(self, model):  # -> Candidate

        if isinstance(model, Path):
            return Candidate("baseline", recipe=({"load": {"file": str(model)}},), artifact=model)
        if self.config.weights is not None or not self.trainable():
            return Candidate(
                "baseline", recipe=({"load": {"model": self.config.model}},), model=model.eval()
            )
        cache = self.folder.path / f"baseline-{self.key}.pt"
        train_settings = self.config.train.model_dump()
        if cache.exists():
            load_weights(model, cache)
            self.say(f"baseline: trained weights reused from {cache.name}")
            step = {"train": {**train_settings, "cached": cache.name}}
            return Candidate("baseline", recipe=(step,), model=model.eval())
        self.say(f"baseline: training {self.config.model} for {self.config.train.epochs} epochs")
        candidate = train(model, self.data, show_progress=self.show_progress, **train_settings)
        interrupts.check()
        # serialized here, written by write_atomic: workers may race for the file, and a full
        # disk is a DiskFullError naming the bytes needed (torch's own writer only says
        # "unexpected pos"), with no partial file left behind
        buffer = io.BytesIO()
        torch.save(candidate.model.state_dict(), buffer)
        write_atomic(cache, buffer.getvalue())
        return candidate

    def trainable(self) -> bool:
        return self.config.model in ZOO or (
            ":" in self.config.model and not Path(self.config.model).exists()
        )

    # --- candidates ---------------------------------------------------------------------
    def spec_hash(self, recipe: list[dict[str, Any]], runtime: str) -> str:
        settings = replace(self.settings, runtime=runtime)
        spec = {"recipe": recipe, "baseline": self.key, "measure": settings.to_dict()}
        if self.board:  # a board's figures are not this host's
            spec["board"] = self.board.name
        return digest(spec)

    def done(self, name: str, spec: str, previous: dict[str, dict[str, Any]]) -> bool:
        record = previous.get(name)
        if record is None or record.get("spec_hash") != spec:
            return False
        return record.get("status") != "failed" or not self.retry_failed

    def measure_and_record(
        self, candidate, name: str, runtime: str, spec: str, started: float
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": name,
            "candidate": candidate.name,
            "runtime": runtime,
            "spec_hash": spec,
        }
        measure_start = time.perf_counter()
        settings = replace(self.settings, runtime=runtime)
        try:
            metrics = self.timed(
                "measure", lambda: measure(candidate, self.data, settings, board=self.board)
            )
            status = "does-not-fit" if metrics.get("does_not_fit") else "ok"
            record.update(status=status, **metrics)
        except DoesNotFit as exc:
            record.update(status="does-not-fit", does_not_fit=str(exc))
        record["recipe"] = list(candidate.recipe)
        record["artifact"] = (
            str(Path(candidate.artifact).relative_to(self.folder.path))
            if candidate.artifact and Path(candidate.artifact).is_relative_to(self.folder.path)
            else str(candidate.artifact)
        )
        record["seconds"] = {
            "build": round(measure_start - started, 3),
            "measure": round(time.perf_counter() - measure_start, 3),
        }
        return jsonable(record)

    def build(self, base, name: str, plan: list) -> Any:  # -> Candidate

        ctx = StepContext(
            base=base,
            show_progress=self.show_progress,
            device=self.config.train.device,
            probe=self.probe(),
            say=self.say,
        )
        return self.timed(
            "build",
            lambda: run_recipe(
                base.replace(name=name), self.data, plan, self.folder.artifacts, ctx
            ),
        )

    def discard(self, name: str, runtime: str | None = None) -> None:
        """Remove what an unfinished build of ``name`` (or its conversion for ``runtime``) left
        in ``artifacts/``: step files and temporary files. Its final ``NAME.onnx`` is only ever
        replaced whole, so an earlier, finished one stays."""
        own = re.escape(name)
        if runtime is None:
            pattern = rf"{own}\.step\d+\.onnx(\.data.*)?|\.{own}\..*\.(compact|part)"
        else:
            pattern = rf"{own}\.{re.escape(runtime)}\..+"
        matcher = re.compile(pattern)
        for path in self.folder.artifacts.glob("*"):
            if matcher.fullmatch(path.name):
                with contextlib.suppress(OSError):
                    path.unlink()

    def stop_for(self, exc: Exception, name: str, runtime: str | None = None) -> None:
        """Raise what must stop the run rather than fail one candidate: Ctrl-C that a library
        turned into another error or swallowed, and a full disk."""
        if isinstance(exc, DiskFullError):  # said already, by the write that failed
            self.discard(name, runtime)
            raise exc
        if no_room(exc):
            self.discard(name, runtime)  # first, so the space it held counts as free
            during = f"building {name}" if runtime is None else f"measuring {name} on {runtime}"
            raise as_disk_full(exc, self.folder.artifacts, during=during) from exc
        interrupts.check()

    def failure(
        self, name: str, runtime: str, spec: str, recipe: list, stage: str, exc: BaseException
    ) -> dict[str, Any]:
        expected = isinstance(exc, EdgeslimError)
        return {
            "name": self.experiment.record_name(name, runtime),
            "candidate": name,
            "runtime": runtime,
            "spec_hash": spec,
            "recipe": recipe,
            "status": "failed",
            "stage": stage,
            "error": f"{type(exc).__name__}: {exc}",
            **({} if expected else {"traceback": traceback.format_exc(limit=8)}),
        }

    def prepare(self) -> None:
        """Data and the baseline (trained once, then cached in the run folder)."""
        self.data = self.timed("data", lambda: load(self.config.data))
        if self.data.spec.task != self.config.task:
            raise ConfigError(
                f"data {self.config.data} is {self.data.spec.task} data but the experiment "
                f"says task: {self.config.task}; set task: {self.data.spec.task}"
            )
        examples = task_of(self.data.spec).examples(self.data)
        if examples is not None:  # what the report draws its predictions on
            write_atomic(self.folder.path / "examples.json", json.dumps(examples))
        self.key = self.baseline_key()
        model = self.timed("baseline", self.load)
        self.plans = self.validate(model)
        self.base = self.timed("baseline", lambda: self.baseline(model))

    def validate(self, model) -> dict[str, list]:
        """Every recipe checked against the model before the baseline trains (its structure,
        a distillation's teacher and student), so a mistake costs no training time."""

        if isinstance(model, Path):
            start = Candidate("baseline", artifact=model)
        else:
            start = Candidate("baseline", model=model)
        return {
            name: validate(start, recipe, self.data, f"candidate {name}")
            for name, recipe in self.experiment.recipes.items()
        }

    def evaluate(
        self,
        name: str,
        recipe: list[dict[str, Any]],
        plan: list | None,
        label: str,
        runtimes: list[str],
    ) -> Iterator[dict[str, Any]]:
        """Build one candidate, then measure it on each runtime; any failure becomes a
        ``failed`` record (a build failure, one for each runtime)."""
        started = time.perf_counter()
        interrupts.check()
        try:
            if plan is None:  # the baseline itself
                candidate = self.base
                if candidate.artifact is None:
                    candidate = self.timed(
                        "build", lambda: export(self.base, self.data, self.folder.artifacts)
                    )
            else:
                self.say(f"{label}: building ({' -> '.join(next(iter(s)) for s in recipe)})")
                candidate = self.build(self.base, name, plan)
        except (KeyboardInterrupt, SystemExit, TrainingStopped):  # stopped, not failed
            self.discard(name)
            raise
        except Exception as exc:  # one candidate failing must not stop the others
            self.discard(name)
            self.stop_for(exc, name)
            for runtime in runtimes:
                spec = self.spec_hash(recipe, runtime)
                yield jsonable(self.failure(name, runtime, spec, recipe, "build", exc))
            return
        for runtime in runtimes:
            interrupts.check()  # after the build, before each measurement
            spec = self.spec_hash(recipe, runtime)
            record_name = self.experiment.record_name(name, runtime)
            where = f" on {runtime}" if len(self.experiment.runtimes) > 1 else ""
            try:
                with spinner(f"{label}: measuring{where} in a fresh process", self.show_progress):
                    record = self.measure_and_record(candidate, record_name, runtime, spec, started)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                self.stop_for(exc, name, runtime)
                record = jsonable(self.failure(name, runtime, spec, recipe, "measure", exc))
            yield record  # after the spinner: the caller writes and reports it
            started = time.perf_counter()

    @property
    def runtime(self) -> str:
        return self.experiment.runtimes[0]

    def probe(self) -> LatencyProbe:
        """Times models on the experiment's first runtime, here or on its board: the latency
        tables of latency targets, and a search trial's predicted latency."""
        return LatencyProbe(self.data, replace(self.settings, runtime=self.runtime), self.board)

    def evaluate_one(
        self, name: str, recipe: list[dict[str, Any]], plan: list | None, label: str
    ) -> dict[str, Any]:
        """Build and measure on the experiment's one runtime (a search trial)."""
        return next(self.evaluate(name, recipe, plan, label, [self.runtime]))

    def run(self) -> RunOutcome:
        write_atomic(
            self.folder.path / "experiment.json", json.dumps(self.experiment.to_dict(), indent=2)
        )
        for runtime in self.experiment.runtimes:  # a missing runtime fails before any work
            engine(runtime).check_available()
        if self.board:  # so does a board that cannot be reached or lacks a runtime
            for facts in check_ready(self.board):
                self.say(
                    f"board {self.board.name} ({facts['ssh']}): {facts['host']}, {facts['cpu']}, "
                    f"{facts['cores']} cores, Python {facts['python']}"
                )
        self.prepare()  # every recipe is checked against the model before any work starts
        plans = self.plans
        previous = self.folder.latest()
        redone = []
        work = [
            ("baseline", [], None),
            *((n, r, plans[n]) for n, r in self.experiment.recipes.items()),
        ]
        for number, (name, recipe, plan) in enumerate(work, start=1):
            interrupts.check()
            label = f"[{number}/{len(work)}] {name}"
            pending = []
            for runtime in self.experiment.runtimes:
                record_name = self.experiment.record_name(name, runtime)
                if self.done(record_name, self.spec_hash(recipe, runtime), previous):
                    kept = previous[record_name]["status"]
                    self.say(f"{label}: already {kept}{at(record_name, name)}, kept")
                else:
                    pending.append(runtime)
            if not pending:
                continue
            for record in self.evaluate(name, recipe, plan, label, pending):
                self.folder.append(record)
                redone.append(record["name"])
                self.say(f"{label}: {describe(record)}{at(record['name'], name)}")
        return self.finish(redone)

    def finish(self, redone: list[str]) -> RunOutcome:
        kept = self.folder.current(self.experiment.names)
        selection, reports = self.timed(
            "report", lambda: write_reports(self.folder, kept, self.experiment)
        )
        write_atomic(self.folder.path / "timings.json", json.dumps(self.timings, indent=2))
        return RunOutcome(self.folder, kept, selection, reports, dict(self.timings), redone)


def at(record_name: str, candidate: str) -> str:
    """`` on litert`` for a record that is one of several runtimes' (``int8@litert``)."""
    return f" on {record_name.partition('@')[2]}" if record_name != candidate else ""


def describe(record: dict[str, Any]) -> str:
    if record["status"] == "failed":
        return f"FAILED in {record['stage']}: {record['error']}"
    if record["status"] == "does-not-fit":
        return f"does not fit: {record['does_not_fit']}"
    shown = [
        ("accuracy", "accuracy {:.4f}"),
        ("val_accuracy", "val_accuracy {:.4f}"),
        ("map50", "mAP@0.5 {:.4f}"),
        ("val_map50", "val mAP@0.5 {:.4f}"),
        ("latency_p95_ms", "{:.3f} ms p95"),
        ("latency_e2e_p95_ms", "{:.3f} ms p95 end to end"),
        ("storage_kb", "{:.1f} KB"),
    ]
    return ", ".join(fmt.format(record[k]) for k, fmt in shown if k in record)


def run(
    experiment: Experiment,
    runs_dir: str | Path = "runs",
    *,
    say: Say = print,
    show_progress: bool = True,
    retry_failed: bool = False,
) -> RunOutcome:
    """Build, measure and rank every candidate of ``experiment`` in ``runs_dir/NAME``."""
    folder = RunFolder(runs_dir, experiment.config.name)
    experiment.check_references()  # a model that is not there fails before the folder is made
    try:
        with writing(folder.path), folder.lock(), interrupts.handled():
            if not experiment.recipes:
                say("no candidates given: measuring the baseline only")
            return Runner(experiment, folder, say, show_progress, retry_failed).run()
    except DiskFullError as exc:  # one line: what ran out, and that nothing finished is lost
        raise DiskFullError(
            f"{str(exc).removesuffix(TRY_AGAIN)}; free some space and run the same command "
            f"again: every finished candidate is kept in {folder.results}"
        ) from exc.__cause__
