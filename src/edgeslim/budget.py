"""A device budget: bounds on metrics (``latency_p95_ms <= 2``) that a candidate must meet.

Bounds name metrics of the registry, so a typo fails when the budget is written, not after an
hour of compression. A number alone takes the metric's own direction (``<=`` for lower-is-better
metrics, ``>=`` for higher-is-better ones); a string states it (``"<= 2"``, ``">= 0.9"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import edgeslim.measure.api  # noqa: F401  (registers every metric family)
from edgeslim.errors import ConfigError
from edgeslim.figures import VALIDATION, is_figure, is_nonfinite
from edgeslim.measure.registry import objectives

Op = Literal["<=", ">="]
# a bound on an exact figure that only some runtimes report holds a record without it to the
# graph estimate of the same thing (the tensor arena of TFLite Micro; elsewhere, the peak of live
# activations), so one microcontroller budget serves every runtime
FALLBACK = {"tensor_arena_kb": "activation_memory_kb"}
BOUND = re.compile(r"^\s*(<=|>=)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


def known_metrics() -> dict[str, Any]:
    return objectives()


def validation_twin(metric: str) -> str | None:
    """``val_accuracy`` for ``accuracy``: the figure on the validation split that a choice on
    ``metric`` reads, where the metric has one."""
    twin = VALIDATION + metric
    return twin if twin in known_metrics() else None


@dataclass(frozen=True)
class Bound:
    metric: str
    op: Op
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def overshoot(self, measured: float) -> float:
        """Signed distance of a figure past the bound: positive outside, negative inside."""
        return measured - self.value if self.op == "<=" else self.value - measured

    def excess(self, measured: float) -> float:
        """How far ``measured`` is on the wrong side of the bound (0 when it fits); a NaN or
        infinite figure is infinitely far, whatever the bound's direction."""
        if not is_figure(measured):
            return float("inf")
        return max(0.0, self.overshoot(measured))

    def relative(self, distance: float) -> float:
        """A distance as a fraction of the bound, so different units can be ranked together."""
        return distance / max(abs(self.value), 1e-12)

    def relative_excess(self, measured: float) -> float:
        return self.relative(self.excess(measured))


@dataclass(frozen=True)
class Violation:
    bound: Bound
    # None: the metric was not measured, so the bound cannot be checked; NaN or infinity: it
    # was measured and came out as no figure at all
    measured: float | None

    @property
    def relative(self) -> float:
        return float("inf") if self.measured is None else self.bound.relative_excess(self.measured)

    def __str__(self) -> str:
        if self.measured is None:
            return f"{self.bound} (not measured)"
        if not is_figure(self.measured):
            return f"{self.bound}: measured {self.measured}, not a finite number"
        return (
            f"{self.bound}: measured {self.measured:.4g}, "
            f"off by {self.bound.excess(self.measured):.4g} ({self.relative:.0%})"
        )


def parse_bound(metric: str, spec: float | int | str, where: str = "budget") -> Bound:
    metrics = known_metrics()
    if metric not in metrics:
        raise ConfigError(
            f"{where}.{metric}: unknown metric; a budget may bound {', '.join(sorted(metrics))}"
        )
    if isinstance(spec, bool):
        raise ConfigError(f"{where}.{metric}: expected a number or '<= N' / '>= N', got {spec!r}")
    if isinstance(spec, (int, float)) and not is_figure(spec):
        raise ConfigError(f"{where}.{metric}: a bound must be a finite number, got {spec!r}")
    if isinstance(spec, (int, float)):
        op: Op = "<=" if metrics[metric].better == "lower" else ">="
        return Bound(metric, op, float(spec))
    match = BOUND.fullmatch(str(spec))
    if match is None:
        raise ConfigError(f"{where}.{metric}: expected a number or '<= N' / '>= N', got {spec!r}")
    value = float(match.group(2))
    if not is_figure(value):  # "<= 1e999"
        raise ConfigError(f"{where}.{metric}: a bound must be a finite number, got {spec!r}")
    return Bound(metric, match.group(1), value)  # type: ignore[arg-type]


class Budget:
    """``Budget(latency_p95_ms=5, storage_kb=200, accuracy=">= 0.9")``."""

    def __init__(self, bounds: Iterable[Bound] = (), **limits: float | str) -> None:
        self.bounds: tuple[Bound, ...] = (
            *bounds,
            *(parse_bound(metric, spec) for metric, spec in limits.items()),
        )

    @classmethod
    def parse(cls, mapping: Mapping[str, float | str] | None, where: str = "budget") -> Budget:
        return cls(parse_bound(m, s, where) for m, s in (mapping or {}).items())

    def merged(self, other: Budget) -> Budget:
        """This budget with ``other``'s bounds replacing those on the same metric and op."""
        replaced = {(b.metric, b.op) for b in other.bounds}
        return Budget(
            (*(b for b in self.bounds if (b.metric, b.op) not in replaced), *other.bounds)
        )

    def renamed(self, names: Mapping[str, str]) -> Budget:
        """The same bounds, on ``names[metric]`` where given (a quality bound on its
        validation twin, which is what a choice checks)."""
        return Budget(Bound(names.get(b.metric, b.metric), b.op, b.value) for b in self.bounds)

    def on_host(self, slowdown: float) -> Budget:
        """A device's bounds for figures measured on a host ``slowdown`` times faster: time
        bounds shrink by it and rate bounds grow by it; memory and storage hold anywhere."""
        if slowdown == 1:
            return self
        units = known_metrics()
        scaled = []
        for bound in self.bounds:
            unit = units[bound.metric].unit
            factor = 1 / slowdown if unit == "ms" else slowdown if unit.endswith("/s") else 1
            scaled.append(Bound(bound.metric, bound.op, round(bound.value * factor, 6)))
        return Budget(scaled)

    def violations(self, record: Mapping[str, Any]) -> list[Violation]:
        broken = []
        for bound in self.bounds:
            value = record.get(bound.metric)
            if value is None and bound.metric in FALLBACK:
                value = record.get(FALLBACK[bound.metric])
            if is_nonfinite(value):
                broken.append(Violation(bound, float(value)))
            elif not is_figure(value):
                broken.append(Violation(bound, None))
            elif bound.excess(float(value)) > 0:
                broken.append(Violation(bound, float(value)))
        return broken

    def fits(self, record: Mapping[str, Any]) -> bool:
        return not self.violations(record)

    @property
    def metrics(self) -> list[str]:
        """The metrics bounded, in order, each once (a range bounds one metric twice)."""
        return list(dict.fromkeys(b.metric for b in self.bounds))

    def describe(self) -> list[str]:
        return [str(b) for b in self.bounds]

    def __bool__(self) -> bool:
        return bool(self.bounds)

    def __repr__(self) -> str:
        return f"Budget({', '.join(map(str, self.bounds))})"
