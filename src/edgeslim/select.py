"""Choosing: non-dominated sorting over the objectives, the budget as hard constraints, and one
recommendation with its runner-ups (or, when nothing fits, the nearest misses and what broke).

Works on plain records (``{"name": ..., metric: value, ...}``) so it can be tested with
hand-made fronts and rerun on a ``results.jsonl`` without any model in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeslim.budget import FALLBACK, Budget, Violation, known_metrics, validation_twin
from edgeslim.errors import ConfigError
from edgeslim.figures import is_figure, reported_twin
from edgeslim.tasks import TASKS

Record = Mapping[str, Any]
# memory: the part of the measured peak the model is responsible for (the rest is the runtime's
# own); a microcontroller's budget swaps it for its arena (``device_objectives``)
DEFAULT_OBJECTIVES = ("accuracy", "latency_p95_ms", "storage_kb", "model_memory_kb")


@dataclass(frozen=True)
class Objective:
    metric: str
    better: str  # "higher" | "lower"

    def value(self, record: Record) -> float | None:
        """The record's figure, or the fallback its bound checks (the graph's activation
        memory for the arena, off TFLite Micro); None when it has neither."""
        return figure(record, self.metric)[0]

    def key(self, record: Record) -> float:
        """Smaller is better, whatever the metric's direction."""
        value = self.value(record)
        if value is None:
            raise KeyError(self.metric)
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
    # a quality metric asked for -> the validation figure chosen on in its place
    chosen_on: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a reader of the choice must know

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
        """The recommendation, a few short lines for terminals and report headers: the winner's
        figures on what the device bounds and the objectives rank, the goal, each runner-up
        with its figures, and which runner-ups trail by no more than the test set's noise."""
        goal = f"{'max' if self.primary.better == 'higher' else 'min'}imise {self.primary.metric}"
        budget = ", ".join(self.budget.describe()) or "no budget"
        if self.recommended is not None:
            best = self.recommended
            lines = [
                f"recommended: {best['name']}{flag(best)}",
                f"  {figures_text(best, self.objectives, self.budget, bounds=True)}",
                f"  chosen to {goal} under {budget}",
            ]
            if self.runner_ups:
                lines.append("runner-ups:")
            close = []
            for other in self.runner_ups:
                text = figures_text(other, self.objectives, self.budget)
                gap = margin(best, other, self.primary.metric)
                if gap is not None:
                    text += f"; {gap.text()}"
                    if gap.within:
                        close.append((other["name"], gap))
                lines.append(f"  {other['name']}{flag(other)}: {text}")
            if close:
                leads = ", ".join(f"{name} ({gap.behind} of {gap.samples})" for name, gap in close)
                lines.append(
                    f"{best['name']}'s lead in {self.primary.metric} over {leads} is within the "
                    f"95% confidence interval of the difference ({METHOD}): "
                    + (f"{close[0][0]} is" if len(close) == 1 else "each is")
                    + " as good a pick"
                )
            lines.extend(self.split_gaps())
            return "\n".join([*lines, *self.noted()])
        if not self.misses:
            return "\n".join(
                [f"nothing measured to recommend ({goal} under {budget})", *self.noted()]
            )
        lines = [f"nothing fits {budget}; nearest misses:"]
        for miss in self.misses:
            lines.append(f"  {miss.record['name']}: " + "; ".join(map(str, miss.violations)))
        return "\n".join([*lines, *self.noted()])

    def split_gaps(self) -> list[str]:
        """For the recommendation: each figure chosen on (validation) beside the one reported
        for it (test), and how far apart they are."""
        best = self.recommended
        lines = []
        for reported, chosen in self.chosen_on.items():
            val, test = (best or {}).get(chosen), (best or {}).get(reported)
            if is_figure(val) and is_figure(test):
                lines.append(
                    f"chosen on {chosen} {val:.4f} (validation split); reported: {reported} "
                    f"{test:.4f} on the test split, {abs(test - val) * 100:.2f} points "
                    f"{'below' if test < val else 'above'}; never chosen on"
                )
        return lines

    def noted(self) -> list[str]:
        return [f"note: {note}" for note in self.notes]


# a bound on the device's own memory (TFLite Micro's arena) makes the measuring process's peak
# RSS, and the model's share of it, figures of this host, not of the device: they are left out
# of what a device report leads with, and an objective on them ranks on the bound's metric
HOST_FIGURES = {"tensor_arena_kb": ("peak_memory_mb", "model_memory_kb")}


def device_objectives(names: Sequence[str], budget: Budget) -> list[str]:
    """``names`` with each figure of this host that the budget's bounds make meaningless for
    the device replaced, once, by the bound's own metric: under an arena bound, memory ranks on
    the arena (the activation estimate where the runtime reports none), not on the host's
    process."""
    bounded = budget.metrics
    host_only = host_figures(budget)
    device_of = {
        host: device
        for device, hosts in HOST_FIGURES.items()
        if device in bounded
        for host in hosts
    }
    return list(dict.fromkeys(device_of[n] if n in host_only else n for n in names))


def device_metrics(objectives: Sequence[Objective], budget: Budget) -> list[str]:
    """The metrics that matter for the device, in the order a reader wants them: the primary
    objective, the metrics the budget bounds, then the other objectives (less any figure of
    this host that a bound on the device's own makes meaningless)."""
    bounded = budget.metrics
    host_only = host_figures(budget)
    ordered = [objectives[0].metric, *bounded, *(o.metric for o in objectives[1:])]
    known = known_metrics()
    # a figure chosen on (validation) is followed by the one reported for it (test)
    paired = [m for name in ordered for m in (name, reported_twin(name)) if m in known]
    return [m for m in dict.fromkeys(paired) if m not in host_only]


def host_figures(budget: Budget) -> set[str]:
    """Figures of this host that the budget's bounds make meaningless for the device (the
    process's peak RSS when the arena is bounded), unless the budget bounds them too."""
    bounded = budget.metrics
    return {m for b in bounded for m in HOST_FIGURES.get(b, ()) if m not in bounded}


def figure(record: Record, metric: str) -> tuple[float | None, str]:
    """``record``'s figure for ``metric`` and the metric it came from: the bound's fallback
    (the graph's activation memory for the arena) where the runtime reports no exact figure,
    as the budget checks it; (None, metric) when there is none."""
    for name in (metric, FALLBACK.get(metric)):
        if name is not None and is_figure(record.get(name)):
            return float(record[name]), name
    return None, metric


def figures_text(
    record: Record, objectives: Sequence[Objective], budget: Budget, bounds: bool = False
) -> str:
    """``accuracy 0.9666, storage_kb 30.1 (<= 512), tensor_arena_kb 20.5 (<= 128)``: the
    record's figures on ``device_metrics``, each bound after its metric when ``bounds``."""
    parts = []
    for metric in device_metrics(objectives, budget):
        value, source = figure(record, metric)
        if value is None:
            continue
        text = f"{metric} {value:.4g}" + (f" (from {source})" if source != metric else "")
        limits = [f"{b.op} {b.value:g}" for b in budget.bounds if b.metric == metric]
        if bounds and limits:
            text += f" ({', '.join(limits)})"
        parts.append(text)
    return ", ".join(parts)


def flag(record: Record) -> str:
    """`` [timing noisy: cv 0.41 > 0.25]`` when the host was noisy while timing, else ``""``."""
    noisy = record.get("timing_noisy")
    return f" [timing noisy: {noisy}]" if noisy else ""


# --- is a margin in accuracy more than the test set's noise? -------------------------------

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: two-sided 95%
METHOD = "Newcombe's score method"


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (95% by default).

    Source: E. B. Wilson, "Probable inference, the law of succession, and statistical
    inference", J. Amer. Statist. Assoc. 22 (1927) 209-212; recommended over the normal
    (Wald) interval by Brown, Cai and DasGupta, Statistical Science 16 (2001) 101-133.
    """
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float]:
    """The 95% interval of ``p1 - p2`` for two proportions, by Newcombe's hybrid score method
    (his method 10: built from each proportion's Wilson interval).

    Source: R. G. Newcombe, "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17 (1998) 873-890.
    It treats the two as independent samples. Two models scored on the same test images are
    positively correlated, which makes the true interval narrower: a paired test (McNemar's)
    would be sharper but needs each image's outcome, which records do not keep. So this
    interval errs towards calling a margin noise, never towards calling noise a margin.
    """
    l1, u1 = wilson(p1 * n1, n1)
    l2, u2 = wilson(p2 * n2, n2)
    d = p1 - p2
    return d - ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5, d + (
        (u1 - p1) ** 2 + (p2 - l2) ** 2
    ) ** 0.5


def samples_of(record: Record, metric: str) -> int | None:
    """How many samples ``metric`` is a proportion of: accuracy counts right answers over the
    test split (``val_accuracy`` over the validation split); None for a metric that is not a
    proportion of samples (mAP, precision, latency...), of which nothing is said."""
    how = record.get("measured_with") or {}
    if metric == "accuracy":
        n = how.get("accuracy_samples") or how.get("test_samples")
    elif metric == "val_accuracy":
        n = how.get("val_samples")
    else:
        return None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


@dataclass(frozen=True)
class Margin:
    """How far ``other`` trails the winner on a proportion: in samples, and whether that is
    within the 95% interval of the difference (then ``other`` is as good a pick)."""

    metric: str
    samples: int  # the test set's size
    behind: int  # samples the other got wrong that the winner got right, net
    low: float
    high: float

    @property
    def within(self) -> bool:
        return self.low <= 0

    @property
    def split(self) -> str:
        return "validation" if self.metric.startswith("val_") else "test"

    def text(self) -> str:
        if self.behind == 0:
            return f"same {self.metric} on {self.samples} {self.split} samples"
        words = "within noise" if self.within else "more than noise"
        return (
            f"{self.behind} of {self.samples} {self.split} samples behind on {self.metric} "
            f"({words})"
        )


def margin(best: Record, other: Record, metric: str) -> Margin | None:
    """The winner's lead over ``other`` on ``metric`` when it is a proportion over the same
    number of test samples (None otherwise: nothing is said rather than invented)."""
    n = samples_of(best, metric)
    p1, p2 = best.get(metric), other.get(metric)
    if n is None or samples_of(other, metric) != n or not (is_figure(p1) and is_figure(p2)):
        return None
    if not (0 <= p2 <= p1 <= 1):  # a lead on a proportion
        return None
    low, high = difference_interval(p1, n, p2, n)
    return Margin(metric, n, round((p1 - p2) * n), low, high)


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
    names = device_objectives(
        list(objectives) if objectives else default_objectives(records), budget
    )
    primary = maximize or minimize
    if primary is not None:
        names = [primary, *(n for n in names if n != primary)]
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    swap, notes = validation_choice(ok, [*names, *budget.metrics])
    names = list(dict.fromkeys(swap.get(n, n) for n in names))
    budget = budget.renamed(swap)
    chosen = objectives_for(names)
    if (minimize and chosen[0].better == "higher") or (maximize and chosen[0].better == "lower"):
        raise ConfigError(f"{primary} is {chosen[0].better}-is-better; cannot turn it around")
    seen: set[str] = set()
    for record in records:
        if record.get("name") in seen:
            raise ConfigError(f"two records are named {record.get('name')!r}")
        seen.add(record.get("name"))

    def complete(r: Record) -> bool:  # a NaN or infinite objective never ranks
        return (
            r.get("status", "ok") == "ok"
            and all(o.value(r) is not None for o in chosen)
            # nor does one whose reported test figure is not a number: it would be the pick's
            and all(is_figure(r.get(reported)) for reported in swap)
        )

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
            (on_front + others)[:runner_ups], [], unmeasured, swap, notes,
        )  # fmt: skip
    near = sorted(
        (Miss(r, tuple(budget.violations(r))) for r in measured),
        key=lambda m: (m.distance, order(m.record)),
    )
    return Selection(
        chosen, budget, measured, ranks, [], None, [], near[:misses], unmeasured, swap, notes
    )


def lacking_validation(records: Sequence[Record], metric: str) -> tuple[str | None, int, int]:
    """``metric``'s validation twin, how many records have the metric (NaN counts), and how
    many of those have no twin (measured before edgeslim measured the validation split)."""
    twin = validation_twin(metric)
    having = [r for r in records if twin and (metric in r or metric in r.get("not_finite", {}))]
    lacking = [r for r in having if twin not in r and twin not in r.get("not_finite", {})]
    return twin, len(having), len(lacking)


def validation_choice(
    records: Sequence[Record], metrics: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """Which figures a choice on ``metrics`` reads: each quality metric's validation twin
    (``accuracy`` -> ``val_accuracy``) when every record that has the metric has the twin; the
    test figure, with a note saying so, when some record predates validation figures. The
    notes also carry every warning a record gives about its validation split."""
    swap, notes = {}, []
    for metric in dict.fromkeys(metrics):
        twin, having, lacking = lacking_validation(records, metric)
        if not having:
            continue
        if not lacking:
            swap[metric] = twin
            continue
        notes.append(
            f"chosen on {metric}, the test split's figure: {lacking} of {having} "
            f"records have no {twin} (measured before edgeslim measured the validation split); "
            "measure them again to choose on validation"
        )
    for record in records:
        notes.extend(w for w in record.get("validation_warnings", ()) if w not in notes)
    return swap, notes


def searched_on(records: Sequence[Record], metrics: Sequence[str]) -> dict[str, str]:
    """What a search reports to its sampler for each of ``metrics``, before its new trials are
    measured: the validation twin, unless a record the study already holds has none. Then every
    trial reports the test figure, as ``validation_choice`` will choose over all of them, and
    the sampler never compares figures of two splits."""
    names = {}
    for metric in dict.fromkeys(metrics):
        twin, _, lacking = lacking_validation(records, metric)
        names[metric] = twin if twin and not lacking else metric
    return names


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
            seen = [o.key(r) for r in records if o.value(r) is not None]
            point.append(max(seen, default=0.0) * 1.0001 + 1e-9)
    return point


def hypervolume(
    records: Sequence[Record], objectives: Sequence[Objective], reference: Sequence[float]
) -> float:
    """Volume dominated by ``records`` inside the box up to ``reference`` (larger is better)."""
    # optuna (its exact WFG implementation): loaded by the search and the report only
    from optuna._hypervolume import compute_hypervolume

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
        and all(o.value(r) is not None for o in objectives)
        and budget.fits(r)
    ]
    reference = reference_point(fitting, objectives, budget)
    history, so_far = [], []
    for record in trials:
        if record in fitting:
            so_far.append(record)
        history.append((record["trial"], hypervolume(so_far, objectives, reference)))
    return history
