"""Fit, evaluate and fine-tune, deterministically, with early stopping on the validation split.

Later techniques plug in through two hooks rather than copies of this loop:
``loss(logits, targets, teacher_logits)`` (distillation) and ``regularizer(model, x)``.

What a serious training run has is here too: random shifts and horizontal flips of image
batches (``shift``, ``flip``; a flip only where the classes allow it, which is the user's call:
a flipped shoe is a shoe, a flipped 2 is not), one-cycle or cosine learning rates, label
smoothing, and a GPU when there is one (``device: auto``; everything after training, export and
measurement, stays on the CPU).
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from edgeslim.candidate import Candidate
from edgeslim.data.bundle import Dataset, DataSpec, Split
from edgeslim.errors import ConfigError
from edgeslim.progress import progress_bar
from edgeslim.tasks import task_of
from edgeslim.tasks.augment import move_images, random_moves

LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
Regularizer = Callable[[nn.Module, torch.Tensor], torch.Tensor]
Schedule = Literal["onecycle", "cosine", "constant"]
DeviceSetting = Literal["auto", "cpu", "cuda"]
# what sees each trained epoch's validation score: (desc, epoch, epochs, score); it may raise
# TrainingStopped to end the training
EpochWatcher = Callable[[str, int, int, float], None]
WATCHER: ContextVar[EpochWatcher | None] = ContextVar("epoch_watcher", default=None)


class TrainingStopped(Exception):
    """Raised by an epoch watcher: the training it watched need not go on (a search trial
    whose fine-tune shows it cannot reach the budget). Not a failure of the candidate."""


@contextlib.contextmanager
def watching(watcher: EpochWatcher) -> Iterator[None]:
    """Every ``fit`` inside the block, however deep in a recipe, reports each epoch's
    validation score to ``watcher``: the search's multi-fidelity rule reads a trial's
    fine-tune as it goes without each technique passing a callback along."""
    token = WATCHER.set(watcher)
    try:
        yield
    finally:
        WATCHER.reset(token)


def training_device(setting: str) -> torch.device:
    """``auto``: the GPU where torch sees one, else the CPU."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device: expected auto, cpu or cuda, got {setting!r}")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device: cuda was asked for, but torch sees no GPU (torch.cuda.is_available() is "
            "False: no GPU, or a CPU-only torch); use auto to fall back to the CPU"
        )
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(setting)


def augment_batch(
    x: torch.Tensor, shift: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Each image moved by up to ``shift`` pixels each way (edges repeated), and mirrored left
    to right with probability 1/2 when ``flip``."""
    return move_images(x, shift, *random_moves(len(x), shift, flip, generator))


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, lr: float, steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    raise ConfigError(f"schedule: expected onecycle, cosine or constant, got {schedule!r}")


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class FitResult:
    model: nn.Module
    best_val: float  # the task's validation score (accuracy; mAP@0.5 for detection)
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    metric: str = "accuracy"

    def summary(self) -> dict[str, float]:
        """What a recipe step records: ``{"best_val_accuracy": 0.97}`` (or ``best_val_map50``)."""
        return {f"best_val_{self.metric}": round(self.best_val, 4)}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits for ``x`` in eval mode, on the model's device; the caller's train/eval state is
    restored."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        out = [
            model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu()
            for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, split: Split, spec: DataSpec | None = None) -> float:
    """The task's validation score on a split: top-1 accuracy (``spec`` None or a
    classifier's), mAP@0.5 for a detector."""
    task = task_of(spec or DataSpec(split.x.shape[1:], 0))
    return task.score(predict(model, split.x), split.y)


TEACHER_CACHE_BYTES = 256 * 2**20  # teacher outputs kept for the whole train split up to this


def teacher_outputs(
    teacher: nn.Module | None, data: Dataset, per_batch: bool
) -> torch.Tensor | None:
    """The frozen teacher's outputs on every training sample, computed once: a teacher does
    not change, so without augmentation (or feature hints, which read its layers each batch)
    running it on every batch of every epoch repeats the same work."""
    if teacher is None or per_batch:
        return None
    with torch.no_grad():
        device = next((p.device for p in teacher.parameters()), torch.device("cpu"))
        one = teacher(torch.from_numpy(data.train.x[:1]).to(device))
    if one.numel() * 4 * len(data.train.x) > TEACHER_CACHE_BYTES:
        return None
    return torch.from_numpy(predict(teacher, data.train.x))


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
    loss: LossFn | None = None,
    regularizer: Regularizer | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    restore_best: bool = True,
    extra_parameters: Iterable[nn.Parameter] = (),
    schedule: Schedule = "onecycle",
    label_smoothing: float = 0.0,
    shift: int = 0,
    flip: bool = False,
    device: DeviceSetting = "auto",
    desc: str = "train",
    show_progress: bool = True,
) -> FitResult:
    """Train ``model`` in place and leave it holding its best-validation weights.

    ``loss`` defaults to the task's (cross-entropy for a classifier).
    ``restore_best=False`` keeps the last epoch instead: right for fine-tuning with a penalty,
    where the most accurate epoch is often the one the penalty has shaped least.
    ``teacher`` (frozen, eval mode) makes its logits the third argument of ``loss``;
    ``after_step`` runs after every optimiser step (e.g. to re-apply a sparsity mask).
    The model (and ``teacher``) train on ``device`` and come back on the CPU.
    """
    if epochs < 0:
        raise ConfigError(f"epochs must be >= 0, got {epochs}")
    if lr <= 0 or batch_size < 1:
        raise ConfigError(
            f"lr must be > 0 and batch_size >= 1 (got lr={lr}, batch_size={batch_size})"
        )
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if (shift or flip) and data.train.x.ndim != 4:
        raise ConfigError(
            f"shift and flip move images (N, C, H, W); these samples are {data.train.x.shape[1:]}"
        )
    if shift < 0:
        raise ConfigError(f"shift must be >= 0 pixels, got {shift}")
    task = task_of(data.spec)
    if label_smoothing and loss is not None:
        raise ConfigError("label_smoothing applies to the task's own loss only")
    if loss is None:
        loss = task.loss(label_smoothing)
    on = training_device(device)
    generator = seed_everything(seed)
    x_train = torch.from_numpy(data.train.x)
    y_train = torch.from_numpy(data.train.y)
    extra_parameters = list(extra_parameters)
    model.to(on)
    for parameter in extra_parameters:  # e.g. distillation hint adapters
        parameter.data = parameter.data.to(on)
    parameters = [*model.parameters(), *extra_parameters]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-len(y_train) // batch_size))
    scheduler = make_scheduler(optimizer, schedule, lr, max(1, epochs * steps_per_epoch))
    if teacher is not None:
        teacher.eval().to(on)
    taught = teacher_outputs(teacher, data, shift or flip or regularizer is not None)
    # Only trained epochs compete: a fine-tune that merely ties its starting point must still
    # return the fine-tuned weights (they carry the penalty or mask it was asked for).
    best_acc = evaluate(model, data.val, data.spec) if epochs == 0 else -1.0
    best_state, best_epoch, history = copy.deepcopy(model.state_dict()), 0, []
    with progress_bar(desc, total=epochs, enabled=show_progress, unit="epoch") as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(y_train), generator=generator)
            total_loss = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                xb, yb = x_train[idx], y_train[idx]
                if shift or flip:
                    xb, yb = task.augment(xb, yb, shift, flip, generator)
                xb, yb = xb.to(on), yb.to(on)
                teacher_logits = None
                if taught is not None:
                    teacher_logits = taught[idx].to(on)
                elif teacher is not None:
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
            val_acc = evaluate(model, data.val, data.spec)
            history.append(
                {"epoch": epoch, "loss": total_loss / len(order), f"val_{task.quality}": val_acc}
            )
            if val_acc > best_acc:
                best_acc, best_epoch = val_acc, epoch
                best_state = copy.deepcopy(model.state_dict())
            stop = patience is not None and epoch - best_epoch >= patience
            bar.advance(
                f"loss {total_loss / len(order):.4f}, val_{task.quality} {val_acc:.4f} "
                f"(best {best_acc:.4f} at epoch {best_epoch})"
                + (f", stops early: no better for {patience} epoch(s)" if stop else ""),
                last=stop,
            )
            if (watcher := WATCHER.get()) is not None:
                watcher(desc, epoch, epochs, val_acc)
            if stop:
                break
    if restore_best:
        model.load_state_dict(best_state)
    model.eval().cpu()
    if teacher is not None:
        teacher.cpu()
    for parameter in extra_parameters:
        parameter.data = parameter.data.cpu()
    return FitResult(model, best_acc, best_epoch, len(history), history, task.quality)


def train(
    model: nn.Module, data: Dataset, *, epochs: int = 10, name: str = "baseline", **options
) -> Candidate:
    """Train a baseline and return it as the first Candidate of a run."""
    result = fit(model, data, epochs=epochs, desc=f"train {name}", **options)
    step = {"train": {"epochs": epochs, "epochs_run": result.epochs_run, **result.summary()}}
    return Candidate(name=name, recipe=(step,), model=result.model)
