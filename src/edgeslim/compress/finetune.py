"""Fine-tuning after compression: zeros stay zero, and an optional L1 penalty on ReLU
outputs makes activations sparser (the "sparsely active" knob).

With batch norm before each ReLU, a plain L1 penalty is partly met by shrinking BN's scale:
activations get smaller without becoming zero. By default the penalty is therefore L1 divided
by L2 (the Hoyer measure, as in DeepHoyer, Yang et al. 2020), which rescaling cannot lower.
Measured on digits (small-cnn, 5 epochs, lr 3e-3): activation sparsity 0.366 without penalty,
0.417 with plain L1 at 0.5, 0.484 with the normalised penalty at 2.0 (accuracy 0.994).
``activation_l1_normalized: false`` gives plain L1.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from edgeslim.compress import layers as L
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset
from edgeslim.train import FitResult, fit


class FinetuneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(3, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    activation_l1: float = Field(0.0, ge=0, description="weight of the ReLU-output L1 penalty")
    activation_l1_normalized: bool = Field(True, description="divide L1 by L2 (Hoyer measure)")
    keep_sparsity: bool = True
    seed: int = 0


def hoyer_density(a: torch.Tensor) -> torch.Tensor:
    """(sum |a|)^2 / (n sum a^2): 1 when all entries are equal, 1/n when one is non-zero."""
    return a.abs().sum() ** 2 / (a.numel() * a.pow(2).sum() + 1e-12)


class ActivationL1:
    """Collects ReLU outputs during training forwards and returns their weighted penalty."""

    def __init__(self, model: nn.Module, weight: float, normalized: bool = True) -> None:
        self.weight, self.outputs = weight, []
        self.term = hoyer_density if normalized else (lambda a: a.abs().mean())
        self.handles = [
            m.register_forward_hook(self.keep) for m in model.modules() if isinstance(m, nn.ReLU)
        ]

    def keep(self, module: nn.Module, _inputs, output: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():
            self.outputs.append(output)

    def __call__(self, _model: nn.Module, _x: torch.Tensor) -> torch.Tensor:
        penalty = self.weight * sum(self.term(a) for a in self.outputs)
        self.outputs.clear()
        return penalty

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def tune(
    model: nn.Module,
    data: Dataset,
    ctx: StepContext,
    *,
    epochs: int,
    desc: str,
    lr: float = 1e-3,
    keep_sparsity: bool = True,
    **options,
) -> FitResult:
    """Fine-tuning as every compression step does it: a fixed number of epochs (no early
    stop), the last epoch kept (not the most accurate one a penalty shaped least), and
    pruned weights kept at zero."""
    return fit(
        model,
        data,
        epochs=epochs,
        lr=lr,
        patience=None,
        restore_best=False,
        after_step=L.mask_keeper(model) if keep_sparsity else None,
        desc=desc,
        show_progress=ctx.show_progress,
        device=ctx.device,
        **options,
    )


@technique("finetune", FinetuneSettings)
def apply(model: nn.Module, data: Dataset, s: FinetuneSettings, ctx: StepContext) -> dict:
    penalty = None
    if s.activation_l1 > 0:
        penalty = ActivationL1(model, s.activation_l1, s.activation_l1_normalized)
    try:
        result = tune(
            model,
            data,
            ctx,
            epochs=s.epochs,
            lr=s.lr,
            desc="finetune",
            keep_sparsity=s.keep_sparsity,
            batch_size=s.batch_size,
            seed=s.seed,
            regularizer=penalty,
        )
    finally:
        if penalty is not None:
            penalty.remove()
    return result.summary()
