"""Zoo name -> builder. A builder takes the data spec and explicit keyword options."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ModelLoadError

Builder = Callable[..., nn.Module]
ZOO: dict[str, Builder] = {}
TASK_OF: dict[str, str] = {}  # zoo name -> the task its outputs are for


def register_model(name: str, task: str = "classification") -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        ZOO[name] = builder
        TASK_OF[name] = task
        return builder

    return add


def models_for(task: str) -> list[str]:
    """The zoo's models for one task, by name."""
    return sorted(name for name in ZOO if TASK_OF[name] == task)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a model's construction from ``seed``: torch's, numpy's and Python's random state are
    seeded for the block and given back afterwards, so the caller's own random state is left as
    it was. Every model, the zoo's or a user's function, is built under it."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def build(name: str, spec: DataSpec, seed: int = 0, **options: Any) -> nn.Module:
    """Build zoo model ``name`` for inputs and classes described by ``spec``.

    Initial weights come from ``seed`` (the caller's random state is left as it was), so the
    same name, spec and seed always give the same starting point.
    """
    if name not in ZOO:
        raise ModelLoadError(
            f"unknown zoo model {name!r}; expected one of: {', '.join(sorted(ZOO))}"
        )
    try:
        with seeded(seed):
            return ZOO[name](spec, **options)
    except TypeError as exc:
        raise ModelLoadError(f"zoo model {name!r}: bad options {options} ({exc})") from exc


def channels(base: int, width: float) -> int:
    """Scale a channel count by a width multiplier, never below 1."""
    return max(1, round(base * width))


def image_shape(spec: DataSpec, model: str) -> tuple[int, int, int]:
    if len(spec.input_shape) != 3:
        raise ModelLoadError(
            f"{model} needs image inputs (C, H, W); data has shape {spec.input_shape} (try 'mlp')"
        )
    return spec.input_shape  # type: ignore[return-value]


def stride_for(size: int, wanted: int) -> int:
    """Downsample only while the feature map is big enough, so 8x8 digits still work."""
    return wanted if size >= 2 * wanted else 1
