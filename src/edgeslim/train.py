"""Fit, evaluate and fine-tune, deterministically, with early stopping on the validation split.

Later techniques plug in through two hooks rather than copies of this loop:
``loss(logits, targets, teacher_logits)`` (distillation) and ``regularizer(model, x)``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.candidate import Candidate
from edgeslim.data.bundle import Dataset, Split
from edgeslim.errors import ConfigError
from edgeslim.progress import progress_bar

LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
Regularizer = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, _teacher=None) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class FitResult:
    model: nn.Module
    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits for ``x`` in eval mode; the caller's train/eval state is restored."""
    was_training = model.training
    model.eval()
    try:
        out = [model(torch.from_numpy(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, split: Split) -> float:
    """Top-1 accuracy on a split."""
    return float((predict(model, split.x).argmax(axis=1) == split.y).mean())


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 64,
    weight_decay: float = 1e-4,
    patience: int | None = 5,
    seed: int = 0,
    teacher: nn.Module | None = None,
    loss: LossFn = cross_entropy,
    regularizer: Regularizer | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    restore_best: bool = True,
    extra_parameters: Iterable[nn.Parameter] = (),
    desc: str = "train",
    show_progress: bool = True,
) -> FitResult:
    """Train ``model`` in place and leave it holding its best-validation weights.

    ``restore_best=False`` keeps the last epoch instead: right for fine-tuning with a penalty,
    where the most accurate epoch is often the one the penalty has shaped least.
    ``teacher`` (frozen, eval mode) makes its logits the third argument of ``loss``;
    ``after_step`` runs after every optimiser step (e.g. to re-apply a sparsity mask).
    """
    if epochs < 0:
        raise ConfigError(f"epochs must be >= 0, got {epochs}")
    if lr <= 0 or batch_size < 1:
        raise ConfigError(
            f"lr must be > 0 and batch_size >= 1 (got lr={lr}, batch_size={batch_size})"
        )
    generator = seed_everything(seed)
    x_train = torch.from_numpy(data.train.x)
    y_train = torch.from_numpy(data.train.y)
    parameters = [*model.parameters(), *extra_parameters]  # e.g. distillation hint adapters
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-len(y_train) // batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch)
    )
    if teacher is not None:
        teacher.eval()
    # Only trained epochs compete: a fine-tune that merely ties its starting point must still
    # return the fine-tuned weights (they carry the penalty or mask it was asked for).
    best_acc = evaluate(model, data.val) if epochs == 0 else -1.0
    best_state, best_epoch, history = copy.deepcopy(model.state_dict()), 0, []
    with progress_bar(desc, total=epochs, enabled=show_progress) as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(y_train), generator=generator)
            total_loss = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                xb, yb = x_train[idx], y_train[idx]
                teacher_logits = None
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(xb)
                batch_loss = loss(model(xb), yb, teacher_logits)
                if regularizer is not None:
                    batch_loss = batch_loss + regularizer(model, xb)
                optimizer.zero_grad(set_to_none=True)
                batch_loss.backward()
                optimizer.step()
                scheduler.step()
                if after_step is not None:
                    after_step(model)
                total_loss += float(batch_loss.detach()) * len(idx)
            val_acc = evaluate(model, data.val)
            history.append(
                {"epoch": epoch, "loss": total_loss / len(order), "val_accuracy": val_acc}
            )
            if val_acc > best_acc:
                best_acc, best_epoch = val_acc, epoch
                best_state = copy.deepcopy(model.state_dict())
            bar.advance(
                f"loss {total_loss / len(order):.3f}  val {val_acc:.3f}  best {best_acc:.3f}"
            )
            if patience is not None and epoch - best_epoch >= patience:
                break
    if restore_best:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, best_acc, best_epoch, len(history), history)


def train(
    model: nn.Module, data: Dataset, *, epochs: int = 10, name: str = "baseline", **options
) -> Candidate:
    """Train a baseline and return it as the first Candidate of a run."""
    result = fit(model, data, epochs=epochs, desc=f"train {name}", **options)
    step = {
        "train": {
            "epochs": epochs,
            "epochs_run": result.epochs_run,
            "best_val_accuracy": round(result.best_val_accuracy, 4),
        }
    }
    return Candidate(name=name, recipe=(step,), model=result.model)
