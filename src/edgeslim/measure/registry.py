"""Metric name -> unit, direction and the function that measures it.

A *family* is one function that yields a few metrics from the same work (p50/p90/p99 come
from one set of timings). Families run in one of two places:
- ``graph``: on the host, from the ONNX graph (no runtime needed);
- ``runtime``: in the isolated worker, on ONNX Runtime, with numpy only.
Adding a metric means adding one decorated function in one module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["higher", "lower", ""]  # "" marks a detail (per-layer tables), not an objective


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Better
    description: str


@dataclass(frozen=True)
class Family:
    name: str
    stage: Literal["graph", "runtime"]
    metrics: tuple[Metric, ...]
    fn: Callable[..., dict[str, Any]]
    order: int  # runtime families run in this order; peak memory must run first
    task: str | None = None  # measured for this task's data only (None: for every task)


# runtime families ordered below this run before the worker checks that the model loads and
# runs (peak memory must see the process before any session exists)
CHECK_ORDER = 5

METRICS: dict[str, Metric] = {}
FAMILIES: dict[str, Family] = {}


def family(
    name: str,
    stage: Literal["graph", "runtime"],
    metrics: list[tuple[str, str, Better, str]],
    order: int = 100,
    task: str | None = None,
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Register ``fn`` as the producer of ``metrics`` ((name, unit, better, description)...)."""

    def add(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        declared = tuple(Metric(*m) for m in metrics)
        for metric in declared:
            METRICS[metric.name] = metric
        FAMILIES[name] = Family(name, stage, declared, fn, order, task)
        return fn

    return add


def families(stage: str, task: str | None = None) -> list[Family]:
    """A stage's families in order; with ``task``, those that apply to it."""
    chosen = [f for f in FAMILIES.values() if f.stage == stage and f.task in (None, task or f.task)]
    return sorted(chosen, key=lambda f: f.order)


def objectives() -> dict[str, Metric]:
    """The metrics a budget or a Pareto front may name (details excluded)."""
    return {name: m for name, m in METRICS.items() if m.better}
