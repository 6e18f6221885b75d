"""Recipe step name -> technique. How a new technique plugs in:

1. write ``apply(candidate, data, settings) -> Candidate`` and a pydantic ``Settings`` model
   (``extra="forbid"``, bounds as Field constraints), in one module under ``compress/``;
2. decorate it with ``@technique("name", Settings, stage=...)``. A ``torch`` step is
   ``apply(model, data, settings, ctx) -> info`` and changes ``model`` in place; an ``onnx`` step
   is ``apply(source, target, data, settings) -> info`` and writes ``target``. A step that needs
   the model to check its settings (layer names, say) also gives ``check(model, settings, data)``.

Steps look like ``{"prune": {"kind": "structured", "ratio": 0.5}}``. Where techniques are
registered as ``step.kind`` (``prune.structured``, ``quantize.static-int8``), the ``kind``
setting picks one, so each kind keeps its own settings and module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from edgeslim.errors import ConfigError, describe_validation

Stage = Literal["torch", "onnx"]


@dataclass(frozen=True)
class StepContext:
    """What a torch-stage step may know beyond its model: the recipe's starting candidate
    (the default distillation teacher), whether to draw progress bars, where to train, and
    what times a model on the target runtime (for a latency target)."""

    base: Any = None  # Candidate
    show_progress: bool = True
    device: str = "auto"  # train.device: auto, cpu or cuda
    probe: Any = None  # compress.latency_table.Probe: a measure.probe.LatencyProbe
    say: Callable[[str], None] = print


@dataclass(frozen=True)
class Technique:
    name: str
    stage: Stage
    settings: type[BaseModel]
    apply: Callable[..., Any]
    check: Callable[..., None] | None = None  # model-dependent validation, before any work


TECHNIQUES: dict[str, Technique] = {}


def technique(
    name: str,
    settings: type[BaseModel],
    stage: Stage = "torch",
    check: Callable[..., None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def add(apply: Callable[..., Any]) -> Callable[..., Any]:
        TECHNIQUES[name] = Technique(name, stage, settings, apply, check)
        return apply

    return add


def resolve(step: dict[str, Any], where: str = "step") -> tuple[Technique, BaseModel]:
    """Turn one recipe step into its technique and validated settings (or a ConfigError)."""
    if not isinstance(step, dict) or len(step) != 1:
        raise ConfigError(
            f"{where}: a step is a mapping with one key, e.g. "
            "{'prune': {'kind': 'structured', 'ratio': 0.5}}; got {step!r}"
        )
    ((key, raw),) = step.items()
    raw = dict(raw or {})
    name = key
    kinds = sorted(t.split(".", 1)[1] for t in TECHNIQUES if t.startswith(f"{key}."))
    if kinds:
        kind = raw.pop("kind", None)
        name = f"{key}.{kind}"
        if kind not in kinds:
            raise ConfigError(f"{where}.{key}.kind: expected one of {kinds}, got {kind!r}")
    if name not in TECHNIQUES:
        known = sorted({t.split(".")[0] for t in TECHNIQUES})
        raise ConfigError(f"{where}: unknown step {key!r}; expected one of {known}")
    tech = TECHNIQUES[name]
    try:
        settings = tech.settings(**raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc, f"{where}.{key}")) from exc
    return tech, settings
