"""edgeslim: find the best compressed model for an edge device, measured where it will run.

Public names load lazily: ``import edgeslim`` stays cheap and torch-free, which the measuring
worker process (``edgeslim.measure.worker``) relies on.

Several public functions share their module's name (``es.train`` in ``edgeslim/train.py``,
``es.measure`` in ``edgeslim/measure/``). Importing such a submodule would normally rebind the
package attribute to the module; the package class below keeps the function instead. Reach a
module itself with ``from edgeslim.measure import api`` or ``importlib.import_module``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from edgeslim.version import __version__ as __version__

_EXPORTS = {
    "Candidate": "edgeslim.candidate",
    "train": "edgeslim.train",
    "evaluate": "edgeslim.train",
    "export": "edgeslim.export",
    "measure": "edgeslim.measure.api",
    "compress": "edgeslim.recipes",
    "MeasureSettings": "edgeslim.measure.settings",
    "LatencyProbe": "edgeslim.measure.probe",
    "Budget": "edgeslim.budget",
    "select": "edgeslim.select",
    "run": "edgeslim.experiment",
    "report": "edgeslim.report",
}
_MODULES = {"data", "models", "errors", "config", "boards"}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f"edgeslim.{name}")
    raise AttributeError(f"module 'edgeslim' has no attribute {name!r}")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return  # the public function of the same name wins over its module
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
