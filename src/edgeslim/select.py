"""Choosing: non-dominated sorting over the objectives, the budget as hard constraints, and one
recommendation with its runner-ups (or, when nothing fits, the nearest misses and what broke).

Works on plain records (``{"name": ..., metric: value, ...}``) so it can be tested with
hand-made fronts and rerun on a ``results.jsonl`` without any model in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeslim.budget import Budget, Violation, known_metrics
from edgeslim.errors import ConfigError
from edgeslim.figures import is_figure

Record = Mapping[str, Any]
DEFAULT_OBJECTIVES = ("accuracy", "latency_p95_ms", "storage_kb", "peak_memory_mb")


@dataclass(frozen=True)
class Objective:
    metric: str
    better: str  # "higher" | "lower"

    def key(self, record: Record) -> float:
        """Smaller is better, whatever the metric's direction."""
        value = float(record[self.metric])
        return -value if self.better == "higher" else value


def objectives_for(names: Sequence[str]) -> tuple[Objective, ...]:
    metrics = known_metrics()
    unknown = [n for n in names if n not in metrics]
    if unknown or not names:
        raise ConfigError(
            f"objectives: unknown {unknown or 'empty list'}; "
            f"choose from {', '.join(sorted(metrics))}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives: each metric once, got {list(names)}")
    return tuple(Objective(n, metrics[n].better) for n in names)


def default_objectives(records: Sequence[Record]) -> list[str]:
    """The default objectives of the task whose quality metric the records hold (a
    classifier's when none does), those the records measure."""
    from edgeslim.tasks import TASKS

    present = {key for r in records for key in r}
    defaults = next(
        (t.default_objectives() for t in TASKS.values() if t.quality in present),
        list(DEFAULT_OBJECTIVES),
    )
    return [n for n in defaults if n in present] or defaults[:1]


def dominates(a: Record, b: Record, objectives: Sequence[Objective]) -> bool:
    """``a`` is no worse than ``b`` on every objective and better on at least one."""
    ka = [o.key(a) for o in objectives]
    kb = [o.key(b) for o in objectives]
    return all(x <= y for x, y in zip(ka, kb, strict=True)) and ka != kb


def pareto_ranks(records: Sequence[Record], objectives: Sequence[Objective]) -> list[int]:
    """Non-dominated sorting: rank 1 is the front, rank 2 the front once rank 1 is removed..."""
    ranks = [0] * len(records)
    remaining = set(range(len(records)))
    rank = 0
    while remaining:
        rank += 1
        front = {
            i
            for i in remaining
            if not any(dominates(records[j], records[i], objectives) for j in remaining if j != i)
        }
        for i in front:
            ranks[i] = rank
        remaining -= front
    return ranks


@dataclass(frozen=True)
class Miss:
    record: Record
    violations: tuple[Violation, ...]

    @property
    def distance(self) -> float:
        """Summed relative excess over the broken bounds: the nearest miss has the least."""
        return sum(v.relative for v in self.violations)


@dataclass
class Selection:
    objectives: tuple[Objective, ...]
    budget: Budget
    measured: list[Record]  # records with every objective measured
    ranks: dict[str, int]  # Pareto rank of each measured record, by name
    fitting: list[Record]  # measured records that meet the budget, best first
    recommended: Record | None
    runner_ups: list[Record]
    misses: list[Miss] = field(default_factory=list)  # nearest first, when nothing fits
    unmeasured: list[Record] = field(default_factory=list)  # failed, or an objective missing

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    @property
    def front(self) -> list[Record]:
        return [r for r in self.measured if self.ranks[r["name"]] == 1]

    def fits(self, record: Record) -> bool:
        return self.budget.fits(record)

    def is_fitting(self, record: Record) -> bool:
        """Measured on every objective and within the budget."""
        return any(r["name"] == record.get("name") for r in self.fitting)

    def summary(self) -> str:
        """The recommendation in one paragraph, for terminals and report headers."""
        goal = f"{'max' if self.primary.better == 'higher' else 'min'}imise {self.primary.metric}"
        budget = ", ".join(self.budget.describe()) or "no budget"
        if self.recommended is not None:
            best = self.recommended
            shown = ", ".join(f"{o.metric} {best[o.metric]:.4g}" for o in self.objectives)
            text = f"recommended: {best['name']} ({shown}); {goal} under {budget}"
            if self.runner_ups:
                text += "; runner-ups: " + ", ".join(r["name"] for r in self.runner_ups)
            return text
        if not self.misses:
            return f"nothing measured to recommend ({goal} under {budget})"
        lines = [f"nothing fits {budget}; nearest misses:"]
        for miss in self.misses:
            lines.append(f"  {miss.record['name']}: " + "; ".join(map(str, miss.violations)))
        return "\n".join(lines)


def select(
    records: Sequence[Record],
    budget: Budget | None = None,
    *,
    maximize: str | None = None,
    minimize: str | None = None,
    objectives: Sequence[str] | None = None,
    runner_ups: int = 3,
    misses: int = 3,
) -> Selection:
    """Rank ``records`` and recommend the best on the primary objective among those that fit.

    The primary objective is ``maximize`` / ``minimize`` (default: the first of ``objectives``,
    default accuracy); ties on it go to the next objectives in order, then to the name. The
    runner-ups are the next fitting records on the Pareto front, then the rest of the fitting
    ones, in the same order.
    """
    if maximize and minimize:
        raise ConfigError("give maximize or minimize, not both")
    budget = budget or Budget()
    # the defaults: those these records measure (hand-made records may lack some)
    names = list(objectives) if objectives else default_objectives(records)
    primary = maximize or minimize
    if primary is not None:
        names = [primary, *(n for n in names if n != primary)]
    chosen = objectives_for(names)
    if (minimize and chosen[0].better == "higher") or (maximize and chosen[0].better == "lower"):
        raise ConfigError(f"{primary} is {chosen[0].better}-is-better; cannot turn it around")
    seen: set[str] = set()
    for record in records:
        if record.get("name") in seen:
            raise ConfigError(f"two records are named {record.get('name')!r}")
        seen.add(record.get("name"))

    def complete(r: Record) -> bool:  # a NaN or infinite objective never ranks
        return r.get("status", "ok") == "ok" and all(is_figure(r.get(o.metric)) for o in chosen)

    measured = [r for r in records if complete(r)]
    unmeasured = [r for r in records if not complete(r)]
    ranks = dict(zip((r["name"] for r in measured), pareto_ranks(measured, chosen), strict=True))

    def order(r: Record) -> tuple:
        return (*(o.key(r) for o in chosen), r["name"])

    fitting = sorted((r for r in measured if budget.fits(r)), key=order)
    if fitting:
        best, rest = fitting[0], fitting[1:]
        # the other trade-offs first: fitting records nothing fitting dominates
        on_front = [r for r in rest if not any(dominates(o, r, chosen) for o in fitting)]
        others = [r for r in rest if r not in on_front]
        return Selection(
            chosen, budget, measured, ranks, fitting, best,
            (on_front + others)[:runner_ups], [], unmeasured,
        )  # fmt: skip
    near = sorted(
        (Miss(r, tuple(budget.violations(r))) for r in measured),
        key=lambda m: (m.distance, order(m.record)),
    )
    return Selection(chosen, budget, measured, ranks, [], None, [], near[:misses], unmeasured)


def reference_point(
    records: Sequence[Record], objectives: Sequence[Objective], budget: Budget | None = None
) -> list[float]:
    """Per objective (as a loss): the budget's bound where it has one, else the worst value
    seen; a front that fits the budget then lies inside the box it spans."""
    bounds = {b.metric: b.value for b in (budget.bounds if budget else ())}
    point = []
    for o in objectives:
        if o.metric in bounds:
            point.append(-bounds[o.metric] if o.better == "higher" else bounds[o.metric])
        else:
            seen = [o.key(r) for r in records if is_figure(r.get(o.metric))]
            point.append(max(seen, default=0.0) * 1.0001 + 1e-9)
    return point


def hypervolume(
    records: Sequence[Record], objectives: Sequence[Objective], reference: Sequence[float]
) -> float:
    """Volume dominated by ``records`` inside the box up to ``reference`` (larger is better)."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume  # optuna's exact WFG implementation

    points = [[o.key(r) for o in objectives] for r in records]
    inside = [p for p in points if all(v < ref for v, ref in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.asarray(inside, float), np.asarray(reference, float)))


def hypervolume_history(
    records: Sequence[Record], objectives: Sequence[Objective], budget: Budget
) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the fitting records among trials up to it), in order."""
    trials = sorted((r for r in records if "trial" in r), key=lambda r: r["trial"])
    fitting = [
        r
        for r in trials
        if r.get("status", "ok") == "ok"
        and all(is_figure(r.get(o.metric)) for o in objectives)
        and budget.fits(r)
    ]
    reference = reference_point(fitting, objectives, budget)
    history, so_far = [], []
    for record in trials:
        if record in fitting:
            so_far.append(record)
        history.append((record["trial"], hypervolume(so_far, objectives, reference)))
    return history
