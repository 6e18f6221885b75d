"""Compression techniques, each registered by name (see ``registry``); ``edgeslim.recipes``
runs them in order."""

from edgeslim.compress import (  # noqa: F401  (registration)
    cluster,
    distill,
    finetune,
    mixed,
    qat,
    quantize,
    semistructured,
    structured,
    unstructured,
)
from edgeslim.compress.presets import PRESETS
from edgeslim.compress.registry import TECHNIQUES, resolve, technique
from edgeslim.compress.sensitivity import DEFAULT_RATIOS, Sensitivity
from edgeslim.errors import ConfigError

__all__ = [
    "PRESETS",
    "TECHNIQUES",
    "Sensitivity",
    "layer_sensitivity",
    "resolve",
    "technique",
]


def sensitivity_sweep(kind: str, ratios: tuple[float, ...]):
    """The sweep function for ``kind``, after checking the arguments (before any training)."""
    sweeps = {
        "unstructured": unstructured.layer_sensitivity,
        "structured": structured.layer_sensitivity,
    }
    if kind not in sweeps:
        raise ConfigError(f"sensitivity kind must be one of {sorted(sweeps)}, got {kind!r}")
    if not ratios or not all(0 < r < 1 for r in ratios):
        raise ConfigError(f"sensitivity ratios must lie in (0, 1), got {list(ratios)}")
    return sweeps[kind]


def layer_sensitivity(
    model,
    data,
    kind: str = "unstructured",
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    show_progress: bool = True,
) -> Sensitivity:
    """Per-layer sensitivity table for ``kind`` ("unstructured" or "structured") pruning."""
    sweep = sensitivity_sweep(kind, tuple(ratios))
    return sweep(model, data, ratios=tuple(ratios), show_progress=show_progress)
