"""Image (or feature) classification: one label per sample, one score per class out."""

from __future__ import annotations

import numpy as np

from edgeslim.errors import DataError
from edgeslim.tasks import register_task
from edgeslim.tasks.base import Task


def top1(outputs: np.ndarray) -> np.ndarray:
    if outputs.ndim != 2:
        raise ValueError(f"expected (batch, classes) outputs, got shape {outputs.shape}")
    return outputs.argmax(axis=1)


@register_task
class Classification(Task):
    name = "classification"
    quality = "accuracy"
    agreement_name = "top1_agreement"

    def check_output(self, shape, where) -> None:
        classes = shape[-1] if shape else None
        wanted = self.spec.num_classes
        if len(shape) not in (0, 2) or (isinstance(classes, int) and classes != wanted):
            raise DataError(
                f"{where}: the model outputs shape {tuple(shape)} but "
                f"{self.spec.name or 'the data'} has {wanted} classes; a classifier must output "
                f"(batch, {wanted})"
            )

    def loss(self, label_smoothing: float = 0.0):
        import torch.nn.functional as F  # torch

        def cross_entropy(logits, targets, _teacher=None):
            return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

        return cross_entropy

    def distill_loss(self, temperature: float, alpha: float):
        """alpha * T^2 * KL(teacher / T || student / T) + (1 - alpha) * cross-entropy."""
        import torch.nn.functional as F  # torch

        def loss(logits, targets, teacher_logits):
            hard = F.cross_entropy(logits, targets)
            soft = F.kl_div(
                F.log_softmax(logits / temperature, dim=1),
                F.softmax(teacher_logits / temperature, dim=1),
                reduction="batchmean",
            )
            return alpha * soft * temperature**2 + (1 - alpha) * hard

        return loss

    def augment(self, x, y, shift, flip, generator):
        from edgeslim.tasks.augment import move_images, random_moves  # torch: training only

        moves = random_moves(len(x), shift, flip, generator)
        return move_images(x, shift, *moves), y

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float((top1(outputs) == targets).mean())

    def agreement(self, got: np.ndarray, expected: np.ndarray) -> float:
        # any (batch, scores, ...) output: a block exported alone (tests, hints) agrees per row
        return float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
