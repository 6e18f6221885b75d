"""``compress(base, data, recipes)``: run ordered technique steps, one Candidate per recipe.

Torch-stage steps change the PyTorch model; at the first ONNX-stage step the model is exported
(and checked against PyTorch), and from then on steps transform the ONNX file. Every recipe is
validated, against the base model too, before any work starts, so a typo in the fifth recipe
does not cost the first four their training time.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from edgeslim.candidate import Candidate, step_label
from edgeslim.compact import compact
from edgeslim.compress.presets import PRESETS
from edgeslim.compress.registry import StepContext, Technique, resolve
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError, EdgeslimError, kind_of, short, yaml_path
from edgeslim.export import export
from edgeslim.runtimes import onnx_outputs
from edgeslim.tasks import task_of
from edgeslim.train import training_device

Recipe = list[dict[str, Any]]
AGREEMENT_SAMPLES = 512


def recipe_name(recipe: Recipe) -> str:
    """A readable default name, e.g. ``prune-structured-0.5+finetune-3``."""
    return "+".join(step_label(step) for step in recipe) or "identity"


def unique(names: list[str]) -> list[str]:
    """Number repeated names (``finetune-3``, ``finetune-3-2``) so no two share a file."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return result


def expand(recipe: Recipe | str, where: str) -> Recipe:
    if isinstance(recipe, str):
        if recipe not in PRESETS:
            raise ConfigError(f"{where}: unknown preset {recipe!r}; presets: {sorted(PRESETS)}")
        return copy.deepcopy(PRESETS[recipe])
    if not isinstance(recipe, list):
        raise ConfigError(
            f"{where}: a recipe is a list of steps or a preset name, got {kind_of(recipe)}"
        )
    for i, step in enumerate(recipe):
        check_step(step, f"{where}[{i}]")
    return recipe


def check_step(step: Any, where: str) -> None:
    """A step's shape, before anything reads it: ``{technique: {setting: value, ...}}``."""
    example = "e.g. {prune: {kind: structured, ratio: 0.5}}"
    if not isinstance(step, dict):
        raise ConfigError(
            f"{where}: a step is a mapping with one key, {example}; got {kind_of(step)}"
        )
    if len(step) != 1:
        keys = ", ".join(short(key, 30) for key in list(step)[:4])
        raise ConfigError(
            f"{where}: a step is a mapping with one key (the technique), {example}; got "
            f"{len(step)} keys: {keys}{', ...' if len(step) > 4 else ''}"
        )
    ((key, settings),) = step.items()
    here = yaml_path(where, (key,))
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(
            f"{here}: expected a mapping of settings ({example}), got {kind_of(settings)}"
            + (f" {short(settings, 40)}" if isinstance(settings, str | int | float) else "")
        )
    kind = (settings or {}).get("kind")
    if isinstance(kind, dict | list):
        raise ConfigError(f"{here}.kind: expected the name of a kind, got {kind_of(kind)}")


def validate(
    base: Candidate, recipe: Recipe, data: Dataset, where: str
) -> list[tuple[Technique, BaseModel]]:
    steps = [resolve(step, f"{where}[{i}]") for i, step in enumerate(recipe)]
    onnx_step = qat_step = None
    for i, (tech, settings) in enumerate(steps):
        here = f"{where}[{i}]"
        if tech.stage == "onnx":
            if qat_step is not None:
                raise ConfigError(
                    f"{here}: {tech.name} after qat ({where}[{qat_step}]) would "
                    "quantize twice; QAT already exports a quantized model"
                )
            onnx_step = onnx_step if onnx_step is not None else i
        elif onnx_step is not None:
            raise ConfigError(
                f"{here}: {tech.name} changes the PyTorch model, but {where}[{onnx_step}] "
                f"({steps[onnx_step][0].name}) already works on the exported ONNX file; "
                "put PyTorch steps (prune, finetune, distill, qat) before ONNX steps (quantize)"
            )
        elif qat_step is not None and tech.name != "finetune":
            raise ConfigError(
                f"{here}: {tech.name} after qat would undo its quantization; "
                "only finetune may follow qat"
            )
        if tech.name == "qat":
            qat_step = i
        if tech.stage == "torch" and base.model is None:
            raise ConfigError(
                f"{here}: {tech.name} needs a PyTorch model; the base candidate "
                "has only an exported file"
            )
        if tech.check is not None and base.model is not None:
            try:
                tech.check(base.model, settings, data)
            except EdgeslimError as exc:
                if str(exc).startswith(where):
                    raise
                raise type(exc)(f"{here}: {exc}") from exc
    return steps


def compress(
    base: Candidate,
    data: Dataset,
    recipes: list[Recipe | str],
    *,
    names: list[str] | None = None,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
    device: str = "auto",
    probe: Any = None,
) -> list[Candidate]:
    """Apply each recipe (a list of steps or a preset name) to ``base``; export to ``out_dir``
    (a new temporary folder when not given). Training steps run on ``device`` (``auto``: a GPU
    where torch sees one). A latency target (``prune.target``) is measured with ``probe``
    (``edgeslim.measure.LatencyProbe``: the runtime, threads and board to time on)."""
    if names is not None and len(names) != len(recipes):
        raise ConfigError(f"{len(names)} names for {len(recipes)} recipes")
    expanded = [expand(r, f"recipes[{i}]") for i, r in enumerate(recipes)]
    plans = [validate(base, r, data, f"recipes[{i}]") for i, r in enumerate(expanded)]
    if names is None:
        names = unique(
            [
                r if isinstance(r, str) else recipe_name(e)
                for r, e in zip(recipes, expanded, strict=True)
            ]
        )
    elif len(set(names)) != len(names):
        raise ConfigError(f"candidate names must be unique (each names a file): {names}")
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="edgeslim-"))
    training_device(device)  # a bad value or a missing GPU fails here, before any work
    ctx = StepContext(base=base, show_progress=show_progress, device=device, probe=probe)
    return [
        run_recipe(base.replace(name=name), data, plan, out, ctx)
        for name, plan in zip(names, plans, strict=True)
    ]


def run_recipe(
    candidate: Candidate, data: Dataset, plan: list, out: Path, ctx: StepContext
) -> Candidate:
    for i, (tech, settings) in enumerate(plan):
        if tech.stage == "torch":
            candidate = run_torch_step(candidate, data, tech, settings, ctx)
            continue
        if candidate.artifact is None:  # torch steps clear it: export what they produced
            candidate = export(candidate, data, out)
        candidate = run_onnx_step(
            candidate, data, tech, settings, out / f"{candidate.name}.step{i}.onnx"
        )
    if candidate.artifact is None:
        candidate = export(candidate, data, out)
    final = out / f"{candidate.name}.onnx"
    if candidate.artifact != final:
        os.replace(candidate.artifact, final)
        candidate = candidate.replace(artifact=final)
    return candidate


def step_record(tech: Technique, settings: BaseModel, info: dict) -> dict:
    key, _, kind = tech.name.partition(".")
    return {key: {**({"kind": kind} if kind else {}), **settings.model_dump(), "result": info}}


def run_torch_step(
    candidate: Candidate, data: Dataset, tech: Technique, settings: BaseModel, ctx: StepContext
) -> Candidate:
    model = copy.deepcopy(candidate.model)  # earlier candidates keep their own model
    info = tech.apply(model, data, settings, ctx) or {}
    swapped = info.pop("model", None)  # a step may replace the model (a distilled student)
    return candidate.with_step(
        step_record(tech, settings, info), model=(swapped or model).eval(), artifact=None
    )


def run_onnx_step(
    candidate: Candidate, data: Dataset, tech: Technique, settings: BaseModel, target: Path
) -> Candidate:
    source = Path(candidate.artifact)
    info = tech.apply(source, target, data, settings) or {}
    info["names_stripped_bytes"] = compact(target)  # the agreement below checks the result
    x = data.test.x[:AGREEMENT_SAMPLES]
    before, after = onnx_outputs(source, x), onnx_outputs(target, x)
    task = task_of(data.spec)
    info[task.agreement_name] = task.agreement(after, before)
    info["max_abs_diff"] = float(np.abs(before - after.astype(np.float32)).max())
    return candidate.with_step(step_record(tech, settings, info), artifact=target)
