"""The Candidate: one model variant travelling from baseline to report.

Every stage takes a Candidate and returns a new one (``dataclasses.replace``); none mutates
an earlier one, so a recipe's history is always the ``recipe`` tuple and nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch stays out of processes that only measure
    from torch import nn


# the settings that tell recipes apart, in names and report tables
SHOWN_SETTINGS = ("kind", "sparsity", "ratio", "macs_reduction", "n", "m", "epochs", "width")


def step_label(step: dict[str, Any], sep: str = "-") -> str:
    """``{"prune": {"kind": "nm", "n": 2, "m": 4}}`` -> ``prune-nm-2-4``."""
    ((key, settings),) = step.items()
    settings = dict(settings or {})
    settings.update(
        (k, v) for k, v in (settings.pop("student", None) or {}).items() if k == "width"
    )
    values = [str(v) for k, v in settings.items() if k in SHOWN_SETTINGS and v is not None]
    return sep.join([key, *values])


@dataclass(frozen=True)
class Candidate:
    name: str
    recipe: tuple[dict[str, Any], ...] = ()
    model: nn.Module | None = None  # the torch-stage model, if the candidate still has one
    artifact: Path | None = None  # the exported ONNX file, once exported
    metrics: dict[str, Any] = field(default_factory=dict)

    def with_step(self, step: dict[str, Any], **changes: Any) -> Candidate:
        """A new candidate one recipe step further along."""
        return dataclasses.replace(self, recipe=(*self.recipe, step), **changes)

    def step(self, key: str) -> dict[str, Any]:
        """Settings and results of the last recipe step named ``key`` (e.g. "prune")."""
        for step in reversed(self.recipe):
            if key in step:
                return step[key]
        raise KeyError(f"candidate {self.name!r} has no {key!r} step")

    def replace(self, **changes: Any) -> Candidate:
        return dataclasses.replace(self, **changes)
