"""``compress(base, data, recipes)``: run ordered technique steps, one Candidate per recipe.

Every recipe is validated, against the base model too, before any work starts, so a typo in
the fifth recipe does not cost the first four their training time.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edgeslim.candidate import Candidate
from edgeslim.compress.registry import Technique, resolve
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError

Recipe = list[dict[str, Any]]


def recipe_name(recipe: Recipe) -> str:
    """A readable default name, e.g. ``prune-structured-0.5+finetune-3``."""
    parts = []
    for step in recipe:
        ((key, settings),) = step.items()
        settings = settings or {}
        label = "-".join(
            str(v)
            for k, v in settings.items()
            if k in ("kind", "sparsity", "ratio", "macs_reduction", "n", "m", "epochs")
        )
        parts.append(f"{key}-{label}" if label else key)
    return "+".join(parts) or "identity"


def validate(base: Candidate, recipe: Recipe, where: str) -> list[tuple[Technique, BaseModel]]:
    if not isinstance(recipe, list):
        raise ConfigError(f"{where}: a recipe is a list of steps, got {type(recipe).__name__}")
    steps = [resolve(step, f"{where}[{i}]") for i, step in enumerate(recipe)]
    for i, (tech, settings) in enumerate(steps):
        if tech.stage == "torch" and base.model is None:
            raise ConfigError(
                f"{where}[{i}]: {tech.name} needs a PyTorch model; the base "
                "candidate has only an exported file"
            )
        if tech.check is not None and base.model is not None:
            tech.check(base.model, settings)
    return steps


def compress(
    base: Candidate,
    data: Dataset,
    recipes: list[Recipe],
    *,
    names: list[str] | None = None,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
) -> list[Candidate]:
    """Apply each recipe to a copy of ``base``; export to ``out_dir`` when one is given."""
    if names is not None and len(names) != len(recipes):
        raise ConfigError(f"{len(names)} names for {len(recipes)} recipes")
    plans = [validate(base, recipe, f"recipes[{i}]") for i, recipe in enumerate(recipes)]
    names = names or [recipe_name(r) for r in recipes]
    candidates = []
    for name, plan in zip(names, plans, strict=True):
        candidate = base.replace(name=name)
        for tech, settings in plan:
            candidate = run_step(candidate, data, tech, settings, show_progress)
        if out_dir is not None and candidate.artifact is None:
            from edgeslim.export import export

            candidate = export(candidate, data, out_dir)
        candidates.append(candidate)
    return candidates


def run_step(
    candidate: Candidate, data: Dataset, tech: Technique, settings: BaseModel, show_progress: bool
) -> Candidate:
    model = copy.deepcopy(candidate.model)  # earlier candidates keep their own model
    info = tech.apply(model, data, settings, show_progress=show_progress)
    key = tech.name.split(".")[0]
    step = {
        key: {
            **({"kind": tech.name.split(".", 1)[1]} if "." in tech.name else {}),
            **settings.model_dump(),
            "result": info,
        }
    }
    return candidate.with_step(step, model=model.eval())
