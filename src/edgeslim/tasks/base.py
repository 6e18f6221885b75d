"""What every task provides (see ``edgeslim.tasks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeslim.data.bundle import DataSpec

if TYPE_CHECKING:
    import torch

    from edgeslim.data.bundle import Dataset


class Task:
    name: ClassVar[str]
    quality: ClassVar[str]  # the measured metric a selection maximises by default
    agreement_name: ClassVar[str]  # what ``agreement`` measures, as records name it

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec

    latency: ClassVar[str] = "latency_p95_ms"  # the latency a budget of this task means
    temperature: ClassVar[float] = 4.0  # distillation's default softening

    @classmethod
    def default_objectives(cls) -> list[str]:
        """A Pareto front's default objectives: the task's quality, then cost (memory: the
        model's own share of the measured peak; an arena bound swaps it for the arena)."""
        return [cls.quality, cls.latency, "storage_kb", "model_memory_kb"]

    def check_output(self, shape: tuple | list, where: object) -> None:
        """A model whose outputs the task cannot read is refused before it is measured.
        Symbolic sizes (strings) pass; they are checked again on the runtime's output."""
        raise NotImplementedError

    def loss(self, label_smoothing: float = 0.0):  # -> (outputs, targets, teacher) -> loss
        raise NotImplementedError

    def distill_loss(self, temperature: float, alpha: float):
        raise NotImplementedError

    def augment(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        shift: int,
        flip: bool,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random shifts and flips of a batch, with the targets moved to match."""
        raise NotImplementedError

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The validation figure training keeps its best epoch by (higher is better)."""
        raise NotImplementedError

    def agreement(self, got: np.ndarray, expected: np.ndarray) -> float:
        """How often two models' outputs lead to the same answer (1.0: always)."""
        raise NotImplementedError

    def examples(self, data: Dataset) -> dict[str, Any] | None:
        """Test samples a report shows each model's answers on (None: the task shows none)."""
        return None
