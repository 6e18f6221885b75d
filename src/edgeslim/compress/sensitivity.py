"""Per-layer sensitivity: prune one layer at a time at several ratios and evaluate.

The table says which layers tolerate pruning; ``allocate`` turns it into per-layer ratios that
reach a model-level target while pruning the tolerant layers hardest (``ratios: auto``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from edgeslim.data.bundle import Dataset
from edgeslim.progress import progress_bar
from edgeslim.train import evaluate

DEFAULT_RATIOS = (0.25, 0.5, 0.75, 0.9)

# prune_one(model, layer_name, ratio) -> an evaluable model (a pruned copy or the model itself);
# undo(model) puts the original back when the pruning was done in place.
PruneOne = Callable[[nn.Module, str, float], nn.Module]


@dataclass
class Sensitivity:
    kind: str
    baseline_accuracy: float
    ratios: tuple[float, ...]
    accuracy: dict[str, dict[float, float]] = field(default_factory=dict)  # layer -> ratio -> acc
    params: dict[str, int] = field(default_factory=dict)

    def drop(self, layer: str, ratio: float) -> float:
        return self.baseline_accuracy - self.accuracy[layer][ratio]

    def tolerated(self, layer: str, tolerance: float) -> float:
        """The largest swept ratio whose accuracy drop stays within ``tolerance``."""
        ok = [r for r in self.ratios if self.drop(layer, r) <= tolerance]
        return max(ok) if ok else min(self.ratios) / 2

    def to_rows(self) -> list[dict]:
        return [
            {
                "layer": layer,
                "params": self.params[layer],
                **{f"acc@{r:g}": acc for r, acc in by_ratio.items()},
            }
            for layer, by_ratio in self.accuracy.items()
        ]


def sweep(
    model: nn.Module,
    data: Dataset,
    layers: list[str],
    prune_one: PruneOne,
    kind: str,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    restore: Callable[[], None] | None = None,
    show_progress: bool = True,
) -> Sensitivity:
    """Accuracy on the validation split with each layer alone pruned at each ratio."""
    modules = dict(model.named_modules())
    result = Sensitivity(kind, evaluate(model, data.val, data.spec), tuple(ratios))
    with progress_bar(
        f"sensitivity ({kind})", total=len(layers) * len(ratios), enabled=show_progress
    ) as bar:
        for layer in layers:
            result.params[layer] = modules[layer].weight.numel()
            result.accuracy[layer] = {}
            for ratio in ratios:
                pruned = prune_one(model, layer, ratio)
                result.accuracy[layer][ratio] = evaluate(pruned, data.val, data.spec)
                if restore is not None:
                    restore()
                bar.advance(layer)
    return result


def allocate(
    sensitivity: Sensitivity,
    achieved: Callable[[dict[str, float]], float],
    target: float,
    tolerance: float,
    max_ratio: float = 0.95,
) -> dict[str, float]:
    """Per-layer ratios proportional to each layer's tolerance, scaled until ``achieved``
    (a function of the ratios, e.g. the resulting sparsity or MACs reduction) meets ``target``.
    """
    base = {layer: sensitivity.tolerated(layer, tolerance) for layer in sensitivity.accuracy}

    def ratios_for(scale: float) -> dict[str, float]:
        return {layer: min(max_ratio, r * scale) for layer, r in base.items()}

    low, high = 0.0, 1.0
    while achieved(ratios_for(high)) < target and high < 64:
        low, high = high, high * 2
    for _ in range(30):  # bisection on the common scale
        mid = (low + high) / 2
        low, high = (mid, high) if achieved(ratios_for(mid)) < target else (low, mid)
    return ratios_for(high)
