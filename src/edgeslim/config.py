"""The experiment file: one place where user input is validated, with the YAML path of every
mistake (``candidates[2].recipe[0].prune.sparsity: ...``) and what was expected.

```yaml
name: digits-demo
task: classification              # or detection (the data must be detection data)
model: small-cnn                  # zoo name, package.module:function, or a model file
data: digits
train: {epochs: 15}
candidates:
  - int8-static                   # a preset
  - name: sparse                  # a recipe, here expanded over a grid
    recipe: [{prune: {kind: unstructured}}, {finetune: {epochs: 2}}]
    grid: {prune.sparsity: [0.5, 0.7, 0.9]}
measure: {threads: 1, runs: 300}
device: cortex-a53                # a named profile's budget and emulation, or a board over SSH
budget: {storage_kb: "<= 100"}    # ... with these bounds on top
objectives: [accuracy, latency_p95_ms, storage_kb]   # the first is the one to optimise
```
"""

from __future__ import annotations

import copy
import itertools
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeslim.boards import calibration, find_board
from edgeslim.boards.board import BoardConfig
from edgeslim.budget import Budget, known_metrics
from edgeslim.compress.presets import PRESETS
from edgeslim.compress.registry import TECHNIQUES, resolve
from edgeslim.data.registry import absolute, with_folder
from edgeslim.devices import DEVICES
from edgeslim.errors import (
    ConfigError,
    EdgeslimError,
    describe_validation,
    kind_of,
    short,
    yaml_path,
)
from edgeslim.measure.settings import MeasureSettings
from edgeslim.models.loading import check_reference, is_there, locate
from edgeslim.names import check_name, did_you_mean
from edgeslim.recipes import expand, recipe_name
from edgeslim.runtimes import check_runtime, runtime
from edgeslim.select import objectives_for
from edgeslim.tasks import TASKS, check_task_name
from edgeslim.yamlfiles import load_file

if TYPE_CHECKING:
    from edgeslim.devices import DeviceProfile

MAX_CANDIDATES = 1_000  # candidates of an experiment once grids are expanded


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainConfig(Strict):
    epochs: int = Field(15, ge=0)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    patience: int | None = Field(5, ge=1)
    seed: int = 0
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    shift: int = Field(0, ge=0, description="random shift of training images, in pixels")
    flip: bool = Field(False, description="random left-right flips (where classes allow it)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where training and fine-tuning run; auto: a GPU if torch sees one"
    )


class CandidateConfig(Strict):
    name: str | None = None
    preset: str | None = None
    recipe: list[dict[str, Any]] | None = None
    grid: dict[str, list[Any]] = Field(
        {}, description="'step.setting': [values]; one candidate per combination"
    )

    _check_name = field_validator("name")(lambda v: v if v is None else check_name(v))

    @model_validator(mode="before")
    @classmethod
    def preset_shorthand(cls, value: Any) -> Any:
        return {"preset": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def one_source(self) -> CandidateConfig:
        if (self.preset is None) == (self.recipe is None):
            raise ValueError("give either a preset name or a recipe (a list of steps)")
        for key, values in self.grid.items():
            where = yaml_path("grid", (key,))
            if not key.partition(".")[2]:
                raise ValueError(
                    f"grid key {short(key)} must be 'step.setting', e.g. prune.sparsity"
                )
            if not values:
                raise ValueError(f"{where}: give at least one value")
            for value in values:
                if isinstance(value, dict | list):  # its text would name the candidate
                    raise ValueError(
                        f"{where}: each value is a number, a word or true/false (it becomes "
                        f"part of the candidate's name), got {kind_of(value)}"
                    )
        return self


class MeasureConfig(Strict):
    runtime: str = "onnxruntime"
    where: Literal["device", "host"] = Field(
        "device", description="a board's experiment measures on the board, or on this host"
    )
    threads: int = Field(1, ge=1)
    cores: list[int] = Field([], description="CPU ids to pin the measuring process to")
    memory_limit_mb: float | None = Field(None, gt=0)
    runs: int = Field(1000, ge=1)
    min_runs: int = Field(100, ge=1)
    warmup_runs: int = Field(20, ge=0)
    max_seconds: float = Field(5.0, gt=0)
    batch_sizes: list[int] = Field([1, 8, 32, 128], min_length=1)
    throughput_seconds: float = Field(0.5, gt=0)
    timeout_s: float = Field(600.0, gt=0)

    _check_runtime = field_validator("runtime")(check_runtime)


QUANTIZE_CHOICES = (
    "none",
    "int8-static",
    "int8-dynamic",
    "fp16",
    "weight-int8",
    "weight-int4",
    "weight-mixed",
    "qat-int8",
    "qat-int4",
)


class SpaceConfig(Strict):
    """What a search may choose; a range is ``[low, high]``, a choice a list."""

    structured_ratio: tuple[float, float] | None = None
    latency_fraction: tuple[float, float] | None = Field(
        None,
        description="structured pruning to this fraction of the baseline's measured p50 on the "
        "runtime (prune target latency), instead of a channel ratio",
    )
    sparsity: tuple[float, float] | None = None
    quantize: list[Literal[QUANTIZE_CHOICES]] = ["none"]  # type: ignore[valid-type]
    distill: list[bool] = [False]
    temperature: tuple[float, float] | None = Field(
        None, description="distillation's temperature range; default: the task's (4, or 1)"
    )
    student_width: tuple[float, float] | None = None
    clusters: list[int] = Field([0], description="shared values a layer keeps; 0: no clustering")
    finetune_epochs: int = Field(2, ge=0)

    @model_validator(mode="after")
    def ranges(self) -> SpaceConfig:
        bounds = {
            "structured_ratio": (0.0, 0.95),
            "latency_fraction": (0.05, 1.0),
            "sparsity": (0.0, 0.99),
            "temperature": (0.1, 100.0),
            "student_width": (0.05, 4.0),
        }
        for name, (lowest, highest) in bounds.items():
            value = getattr(self, name)
            if value is not None and not lowest <= value[0] <= value[1] <= highest:
                raise ValueError(
                    f"{name}: [low, high] with {lowest} <= low <= high <= {highest}, "
                    f"got {list(value)}"
                )
        if not self.quantize or not self.distill or not self.clusters:
            raise ValueError("quantize, distill and clusters each need at least one choice")
        if self.structured_ratio is not None and self.latency_fraction is not None:
            raise ValueError("structured_ratio or latency_fraction: both prune channels")
        if any(c != 0 and not 2 <= c <= 256 for c in self.clusters):
            raise ValueError(f"clusters: 0 (none) or 2 to 256 each, got {self.clusters}")
        return self

    def dimensions(self) -> list[str]:
        """The settings that actually vary: a search over none of them is no search."""
        varying = [
            name
            for name in (
                "structured_ratio",
                "latency_fraction",
                "sparsity",
                "temperature",
                "student_width",
            )
            if getattr(self, name) is not None and getattr(self, name)[0] < getattr(self, name)[1]
        ]
        varying += [
            name
            for name in ("quantize", "distill", "clusters")
            if len(set(getattr(self, name))) > 1
        ]
        if "temperature" in varying and True not in self.distill:
            varying.remove("temperature")
        return varying


class SearchConfig(Strict):
    space: SpaceConfig
    trials: int = Field(20, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    sampler: Literal["auto", "tpe", "gp", "nsga2", "random"] = Field(
        "auto",
        description="auto: picked for the number of trials (bench/search.py measures the pick)",
    )
    population: int = Field(8, ge=2, description="NSGA-II population size")
    seed: int = 0
    heartbeat_s: int = Field(10, ge=1, description="a running trial reports this often ...")
    grace_s: int | None = Field(None, ge=1, description="... and is failed after this silence")
    remeasure_front: bool = True
    stop_early: bool = Field(
        True,
        description="multi-fidelity: a trial whose training shows, after an epoch, that it "
        "cannot reach the budget's bound on validation accuracy (or mAP) stops there",
    )

    @model_validator(mode="after")
    def something_to_search(self) -> SearchConfig:
        if not self.space.dimensions():
            raise ValueError(
                "space: nothing varies; give at least one range (structured_ratio, "
                "latency_fraction, sparsity, temperature, student_width) or a choice of two or "
                "more (quantize, distill)"
            )
        return self


class ExperimentConfig(Strict):
    name: str
    task: str = Field(
        "classification", description="what the model does: classification or detection"
    )
    model: str = Field(
        description="a zoo name, module:function, file.py:function or a model file (relative "
        "paths and modules are found beside this file first)"
    )
    weights: str | None = Field(None, description="a state dict for the model")
    data: str = Field("digits", description="a data source; a relative path is from this file")
    train: TrainConfig = TrainConfig()
    candidates: list[CandidateConfig] = Field([], description="presets, recipes or grids")
    measure: MeasureConfig = MeasureConfig()
    runtimes: list[str] = Field(
        [],
        description="measure every candidate on each (default: measure.runtime, else the "
        "device profile's runtimes, else onnxruntime)",
    )
    device: str | BoardConfig | None = Field(
        None, description="a built-in profile, a board of the devices file, or a board's settings"
    )
    budget: dict[str, float | str] = {}
    objectives: list[str] | None = Field(
        None, description="default: the task's quality, p95 latency, storage, peak memory"
    )
    search: SearchConfig | None = None

    _check_name = field_validator("name")(check_name)

    @field_validator("task")
    @classmethod
    def known_task(cls, value: str) -> str:
        return check_task_name(value)

    @model_validator(mode="after")
    def task_objectives(self) -> ExperimentConfig:
        if self.objectives is None:
            self.objectives = TASKS[self.task].default_objectives()
        return self

    @field_validator("runtimes")
    @classmethod
    def known_runtimes(cls, value: list[str]) -> list[str]:
        for name in value:
            check_runtime(name)
        if len(set(value)) != len(value):
            raise ValueError(f"each runtime once, got {value}")
        return value


class Experiment:
    """A validated experiment: the config plus what it expands to (named recipes, budget)."""

    def __init__(self, config: ExperimentConfig, source: Path | None = None) -> None:
        self.config = config
        self.source = source
        # the experiment file's folder: its relative paths, and the first place a model's
        # module is looked for (none given: the current folder)
        self.folder = absolute(source).parent if source is not None else None
        with_paths(config, self.folder)
        self.board, profile = resolve_device(config.device)
        self.device = profile
        measure = config.measure.model_dump()
        given = config.measure.model_fields_set
        for key, value in (profile.measure if profile else {}).items():
            if key not in given:  # the file's own measure settings win over the profile's
                measure[key] = value
        self.measure = measure
        self.on_board = self.board is not None and config.measure.where == "device"
        if config.measure.where == "host" and self.board is None and "where" in given:
            raise ConfigError("measure.where: host is for a board's experiment (device: BOARD)")
        self.slowdown = None if self.on_board else host_slowdown(self.board, profile)
        device_budget = (
            Budget.parse(profile.budget, f"device {profile.name}") if profile else Budget()
        )
        if self.board:
            device_budget = device_budget.merged(
                Budget.parse(self.board.budget, f"device {self.board.name}.budget")
            )
        if self.slowdown:
            device_budget = device_budget.on_host(self.slowdown["value"])
        check_metrics(config)
        self.budget = device_budget.merged(Budget.parse(config.budget))

        objectives_for(config.objectives)  # unknown names fail here, with the list of known ones
        self.recipes = expand_candidates(config.candidates)
        if config.runtimes:
            self.runtimes = list(config.runtimes)
        elif "runtime" in given:
            self.runtimes = [measure["runtime"]]
        elif self.board:
            self.runtimes = list(self.board.runtimes)
        elif profile and profile.runtimes:
            self.runtimes = list(profile.runtimes)
        else:
            self.runtimes = [measure["runtime"]]
        self.check_runtimes()

    def check_runtimes(self) -> None:
        """Every candidate's steps must be expressible on every runtime: a ConfigError now,
        not a failure halfway through the run."""
        if self.on_board:
            missing = [name for name in self.runtimes if name not in self.board.runtimes]
            if missing:
                raise ConfigError(
                    f"runtimes: board {self.board.name} has {self.board.runtimes}, not "
                    f"{missing}; install them there and list them in its runtimes"
                )
        for name in self.runtimes:
            engine = runtime(name, "runtimes")
            for candidate, recipe in self.recipes.items():
                engine.check_recipe(recipe, f"candidate {candidate}")

    def check_references(self) -> None:
        """Every model the experiment names (its model and weights, a distillation's teacher
        and student) is found and imports, before any data is read or model trained. Builds
        nothing: a recipe is checked against the model itself before the baseline trains."""

        def check(kind: str, value: str, where: str) -> str:
            if kind == "file" and not is_there(Path(value), "is_file"):
                raise ConfigError(f"{where}: no such file: {value}")
            if kind == "model":
                check_reference(value, where, self.folder)
            return value

        check("model", self.config.model, "model")
        if self.config.weights is not None:
            check("file", self.config.weights, "weights")
        for name, recipe in self.recipes.items():
            for j, step in enumerate(recipe):
                visit_step(step, check, f"candidate {name}[{j}]")

    def record_name(self, candidate: str, runtime: str) -> str:
        """One record per candidate and runtime: ``int8@litert`` when there are several."""
        return candidate if len(self.runtimes) == 1 else f"{candidate}@{runtime}"

    @property
    def names(self) -> set[str]:
        """The records this experiment asks for: each candidate (the baseline included) on
        each runtime."""
        return {self.record_name(c, r) for c in ("baseline", *self.recipes) for r in self.runtimes}

    def to_dict(self) -> dict[str, Any]:
        """What the user wrote, validated: re-parsing it gives the same experiment."""
        written = self.config.model_dump(mode="json", exclude_unset=True)
        if self.board is not None:  # a board's settings, not its name: the file stands alone
            written["device"] = self.board.model_dump(mode="json", exclude_defaults=True)
        return written

    def measure_settings(self):  # -> MeasureSettings; imported lazily (keeps config light)

        settings = dict(self.measure)
        del settings["where"]  # the experiment's choice of machine, not how to measure
        settings["min_runs"] = min(settings["min_runs"], settings["runs"])
        settings["batch_sizes"] = tuple(settings["batch_sizes"])
        settings["cores"] = tuple(settings["cores"])
        return MeasureSettings(**settings)


def check_metrics(config: ExperimentConfig) -> None:
    """Budget and objective names are metrics: a near miss is named (``arena_kb`` ->
    ``tensor_arena_kb``)."""
    metrics = known_metrics()
    for metric in config.budget:
        if metric not in metrics:
            raise ConfigError(
                f"budget.{metric}: unknown metric{did_you_mean(metric, metrics)}; a budget may "
                f"bound {', '.join(sorted(metrics))}"
            )
    unknown = [metric for metric in config.objectives or [] if metric not in metrics]
    if unknown:
        raise ConfigError(
            f"objectives: unknown {unknown}{did_you_mean(unknown[0], metrics)}; choose from "
            f"{', '.join(sorted(metrics))}"
        )


def with_paths(config: ExperimentConfig, folder: Path | None) -> None:
    """The experiment's paths and model references made independent of the current folder:
    a relative path is taken from the experiment file's ``folder``; a model's module found
    beside it (or in the current folder) becomes its file (``/abs/mynet.py:build``)."""

    def relocate(kind: str, value: str, _where: str) -> str:
        return (
            str(absolute(value, folder)) if kind in ("file", "weights") else locate(value, folder)
        )

    for name in ("model", "weights", "data"):
        value = getattr(config, name)
        if value is None:
            continue
        moved = with_folder(value, folder) if name == "data" else relocate(name, value, name)
        if moved != value:  # assigned only when it changes: what the user left unset stays so
            setattr(config, name, moved)
    for i, candidate in enumerate(config.candidates):
        if candidate.recipe is None:
            continue
        where = f"candidates[{i}]"
        candidate.recipe = [
            visit_step(step, relocate, f"{where}.recipe[{j}]")
            for j, step in enumerate(candidate.recipe)
        ]
        for key, values in candidate.grid.items():  # a grid may set a reference: distill.teacher
            step_name, _, setting = key.partition(".")
            settings = next(
                (s[step_name] for s in candidate.recipe if isinstance(s, dict) and step_name in s),
                None,
            )
            if isinstance(settings, dict | None):
                candidate.grid[key] = [
                    visit_step(
                        {step_name: {**(settings or {}), setting: value}},
                        relocate,
                        f"{where}.grid.{key}",
                    )[step_name][setting]
                    for value in values
                ]


Visit = Callable[[str, str, str], str]


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The settings models an annotation holds (``Student | None`` -> ``[Student]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


def visit_settings(model: type[BaseModel], raw: Any, visit: Visit, where: str) -> Any:
    """``raw`` settings of ``model`` with each reference (a setting marked
    ``json_schema_extra={"reference": "model" | "file"}``) replaced by ``visit(kind, value,
    where)``; words the setting allows (``teacher: base``) are left alone."""
    if not isinstance(raw, dict):
        return raw
    result = dict(raw)
    for name, value in raw.items():
        field = model.model_fields.get(name) if isinstance(name, str) else None
        if field is None:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        kind = extra.get("reference")
        if isinstance(kind, str) and isinstance(value, str):
            if value not in extra.get("words", ()):
                result[name] = visit(kind, value, f"{where}.{name}")
        elif isinstance(value, dict) and (inner := models_in(field.annotation)):
            result[name] = visit_settings(inner[0], value, visit, f"{where}.{name}")
    return result


def visit_step(step: Any, visit: Visit, where: str) -> Any:
    """One recipe step with its references visited (see ``visit_settings``)."""
    if not isinstance(step, dict) or len(step) != 1:
        return step  # its shape is refused, with the reason, when it is expanded
    ((key, raw),) = step.items()
    kind = raw.get("kind") if isinstance(raw, dict) else None
    tech = TECHNIQUES.get(f"{key}.{kind}") or TECHNIQUES.get(key)
    if tech is None or not isinstance(raw, dict):
        return step
    return {key: visit_settings(tech.settings, raw, visit, f"{where}.{key}")}


def unknown_keys(error: ValidationError, model: type[BaseModel], where: str = "") -> dict[str, str]:
    """For each setting ``error`` refuses as unknown, by its YAML path, a near miss among the
    settings allowed there, or the same name one level down (``epochs`` -> ``train.epochs``)."""
    hints = {}
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        if item["type"] != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
            continue
        members = [model]
        for part in loc[:-1]:
            if isinstance(part, int):
                continue
            named = [m for m in members if m.__name__ == part]  # a union member, by its name
            fields = [m.model_fields[part] for m in members if part in m.model_fields]
            members = named or (models_in(fields[0].annotation) if fields else [])
        if len(members) != 1:
            continue
        allowed = members[0].model_fields
        hint = did_you_mean(loc[-1], allowed)
        if not hint:
            below = [
                f"{name}.{loc[-1]}"
                for name, field in allowed.items()
                for inner in models_in(field.annotation)[:1]
                if loc[-1] in inner.model_fields
            ]
            hint = f" (did you mean {below[0]!r}?)" if below else ""
        if hint:
            hints[yaml_path(where, loc)] = hint
    return hints


def with_hints(
    message: str, error: ValidationError, model: type[BaseModel], where: str = ""
) -> str:
    """``describe_validation``'s message with a "did you mean" after each unknown setting."""
    for path, hint in unknown_keys(error, model, where).items():
        refused = f"{path}: Extra inputs are not permitted"
        message = message.replace(refused, refused + hint, 1)
    return message


def check_step_name(step: Any, where: str) -> None:
    """A misspelt technique, kind or setting is named with its near miss; the rest of a step's
    checks are the technique registry's."""
    if not isinstance(step, dict) or len(step) != 1:
        return
    ((key, raw),) = step.items()
    steps = {t.split(".")[0] for t in TECHNIQUES}
    if key not in steps:
        raise ConfigError(
            f"{where}: unknown step {short(key)}{did_you_mean(key, steps)}; expected one of "
            f"{sorted(steps)}"
        )
    kinds = sorted(t.split(".", 1)[1] for t in TECHNIQUES if t.startswith(f"{key}."))
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kinds and isinstance(kind, str) and kind not in kinds:
        raise ConfigError(
            f"{where}.{key}.kind: expected one of {kinds}, got {kind!r}{did_you_mean(kind, kinds)}"
        )


def resolve_step(step: Any, where: str) -> Any:
    """The technique registry's ``resolve``, with a near miss named for an unknown setting."""
    check_step_name(step, where)
    try:
        return resolve(step, where)
    except ConfigError as exc:
        cause = exc.__cause__
        if not isinstance(cause, ValidationError):
            raise
        ((key, _),) = step.items()
        settings = [t.settings for t in TECHNIQUES.values() if t.settings.__name__ == cause.title]
        if not settings:
            raise
        raise ConfigError(with_hints(str(exc), cause, settings[0], f"{where}.{key}")) from cause


def resolve_device(
    device: str | BoardConfig | None,
) -> tuple[BoardConfig | None, DeviceProfile | None]:
    """A built-in profile's name, a board's name (the devices file) or a board's settings; a
    board may name a profile for its budget and emulation settings."""
    if device is None:
        return None, None
    if isinstance(device, str) and device in DEVICES:
        return None, DEVICES[device]
    board = find_board(device) if isinstance(device, str) else device
    profile = DEVICES.get(board.profile) if board.profile else None
    if board.profile and profile is None:
        raise ConfigError(
            f"device {board.name}.profile: unknown profile {short(board.profile)}; profiles: "
            f"{sorted(DEVICES)}"
        )
    return board, profile


def host_slowdown(
    board: BoardConfig | None, profile: DeviceProfile | None
) -> dict[str, Any] | None:
    """How much slower the device is than this host, for a device's latency bounds on figures
    measured here: a board's measured calibration, else its profile's assumption."""
    if board is not None:
        measured = calibration(board.name)
        if measured:
            return {
                "value": measured["slowdown"],
                "source": f"measured by edgeslim devices calibrate {board.name} on "
                f"{measured['calibrated_at'][:10]} with {', '.join(measured['models'])}",
            }
    if profile is not None:
        return {"value": profile.slowdown, "source": f"assumed by the profile {profile.name}"}
    if board is not None and board.budget:
        raise ConfigError(
            f"device {board.name}: measured on this host, its budget needs its slowdown: run "
            f"`edgeslim devices calibrate {board.name}`, or give it a profile"
        )
    return None


def set_in_recipe(recipe: list[dict], key: str, value: Any, where: str) -> None:
    step_name, _, setting = key.partition(".")
    for step in recipe:
        if step_name in step:
            step[step_name] = {**(step[step_name] or {}), setting: value}
            return
    raise ConfigError(
        f"{where}: the recipe has no {short(step_name)} step to set {short(setting)} on"
    )


def grid_label(key: str, value: Any) -> str:
    return f"{key.partition('.')[2]}-{value}"


def expand_candidates(candidates: list[CandidateConfig]) -> dict[str, list[dict[str, Any]]]:
    """Name -> recipe for every candidate, grids expanded, each step validated."""

    count = sum(math.prod(len(values) for values in c.grid.values()) for c in candidates)
    if count > MAX_CANDIDATES:
        raise ConfigError(
            f"candidates: the grids make {count:,} candidates; at most {MAX_CANDIDATES:,} per "
            "experiment (each one is built and measured), so give fewer values"
        )
    recipes: dict[str, list[dict[str, Any]]] = {}
    for i, cand in enumerate(candidates):
        where = f"candidates[{i}]"
        if cand.preset is not None and cand.preset not in PRESETS:
            hint = did_you_mean(cand.preset, PRESETS)
            raise ConfigError(
                f"{where}.preset: unknown preset {cand.preset!r}{hint}; presets: {sorted(PRESETS)}"
            )
        if cand.recipe is not None:
            for j, step in enumerate(cand.recipe):
                check_step_name(step, f"{where}.recipe[{j}]")
        if cand.preset is not None:
            base = expand(cand.preset, f"{where}.preset")
        else:
            base = expand(cand.recipe, f"{where}.recipe")
        base_name = cand.name or cand.preset or recipe_name(base)
        keys = list(cand.grid)
        for values in itertools.product(*(cand.grid[k] for k in keys)):
            recipe = copy.deepcopy(base)
            labels = [base_name]
            for key, value in zip(keys, values, strict=True):
                set_in_recipe(recipe, key, value, f"{where}.grid.{key}")
                labels.append(grid_label(key, value))
            name = "-".join(labels)
            try:
                check_name(name)
            except ValueError as exc:
                raise ConfigError(f"{where}: candidate name {exc}") from exc
            if name in recipes or name == "baseline":
                raise ConfigError(
                    f"{where}: a candidate named {name!r} already exists; give this one a name"
                )
            steps_where = f"{where}.recipe" if cand.recipe is not None else f"{where}.preset"
            for j, step in enumerate(recipe):
                resolve_step(step, f"{steps_where}[{j}]")
            recipes[name] = recipe
    return recipes


def parse(raw: Any, source: Path | None = None) -> Experiment:
    prefix = f"{source}: " if source else ""
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        message = with_hints(describe_validation(exc), exc, ExperimentConfig)
        raise ConfigError(prefix + message) from exc
    try:
        return Experiment(config, source)
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from exc


def load(path: str | Path) -> Experiment:
    """Read and validate an experiment file (safe YAML: no tags that build objects); its
    relative paths are taken from its folder, and every model it names must be found."""
    path = absolute(path)
    raw = load_file(path, "experiment file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top (name:, model:, ...)")
    experiment = parse(raw, path)
    try:
        experiment.check_references()
    except EdgeslimError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return experiment
