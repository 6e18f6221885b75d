"""Tasks: what a model's targets and outputs mean. ``classification`` and ``detection``.

A task gives everything downstream that depends on it: the output shape a model must have,
the training and distillation losses, augmentation that moves targets with pixels, the
validation score, how closely two models' outputs agree, and the metrics measured on the
runtime. Shared code asks ``task_of(spec)`` and never branches on a task's name; a new task
is one module registered here. Importing this package imports numpy only (the measuring
worker uses it); the losses import torch when they are built.
"""

from __future__ import annotations

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ConfigError
from edgeslim.tasks.base import Task

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def task_of(spec: DataSpec) -> Task:
    """The task of data described by ``spec``."""
    if spec.task not in TASKS:
        raise ConfigError(f"unknown task {spec.task!r}; tasks: {', '.join(sorted(TASKS))}")
    return TASKS[spec.task](spec)


def check_task_name(name: str) -> str:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(sorted(TASKS))}")
    return name


from edgeslim.tasks import classification, detection  # noqa: E402,F401  (registration)

__all__ = ["TASKS", "Task", "check_task_name", "register_task", "task_of"]
