"""Measurement engine: ``measure(model, data)`` -> {metric name: value}.

Kept import-light: the worker process imports this package and must not pull in torch or
onnx, so the public names load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METRICS", "LatencyProbe", "MeasureSettings", "measure"]


def __getattr__(name: str) -> Any:
    if name == "measure":
        from edgeslim.measure.api import measure

        return measure
    if name == "LatencyProbe":
        from edgeslim.measure.probe import LatencyProbe

        return LatencyProbe
    if name == "MeasureSettings":
        from edgeslim.measure.settings import MeasureSettings

        return MeasureSettings
    if name == "METRICS":
        from edgeslim.measure import api  # noqa: F401  (registers every family)
        from edgeslim.measure.registry import METRICS

        return METRICS
    raise AttributeError(f"module 'edgeslim.measure' has no attribute {name!r}")
