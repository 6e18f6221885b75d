"""What counts as a measured figure: a finite real number.

NaN and infinity are never figures. ``max(0.0, nan)`` is 0 and every comparison with NaN is
false, so a NaN accuracy once "fitted" ``accuracy >= 0.95`` and won. Every place that reads a
metric for a choice asks ``is_figure`` first; the worker and the parent take non-finite values
out of the metrics and say so in the record (``not_finite``), and the report flags them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def is_figure(value: Any) -> bool:
    """A finite int or float (a bool is not a figure)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_nonfinite(value: Any) -> bool:
    """A float that is NaN or infinite: a measurement gone wrong, never a figure."""
    return isinstance(value, float) and not math.isfinite(value)


def nonfinite(record: Mapping[str, Any]) -> dict[str, str]:
    """Metric name -> its non-finite value as text (``"nan"``, ``"inf"``), for flags."""
    return {name: str(value) for name, value in record.items() if is_nonfinite(value)}


def without_nonfinite(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The metrics without their non-finite values, and those values as text."""
    dropped = nonfinite(metrics)
    return {k: v for k, v in metrics.items() if k not in dropped}, dropped


# a quality figure measured on the validation split carries this prefix (``val_accuracy``
# beside ``accuracy``): every choice reads it; the figure without it, the test split's, is
# reported and never chosen on
VALIDATION = "val_"


def reported_twin(metric: str) -> str | None:
    """``accuracy`` for ``val_accuracy``: the test figure reported beside a validation one."""
    return metric[len(VALIDATION) :] if metric.startswith(VALIDATION) else None
