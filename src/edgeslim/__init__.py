"""edgeslim: find the best compressed model for an edge device, measured where it will run.

Public names load lazily: ``import edgeslim`` stays cheap and torch-free, which the measuring
worker process relies on.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Candidate": "edgeslim.candidate",
    "train": "edgeslim.train",
    "evaluate": "edgeslim.train",
    "export": "edgeslim.export",
    "measure": "edgeslim.measure.api",
    "MeasureSettings": "edgeslim.measure.settings",
}
_MODULES = {"data", "models", "errors"}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"edgeslim.{name}")
    raise AttributeError(f"module 'edgeslim' has no attribute {name!r}")
