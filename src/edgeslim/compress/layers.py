"""What every weight-pruning technique shares: finding layers, and keeping zeros zero."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from edgeslim.errors import ConfigError

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weighted_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear layers by qualified name, in definition (roughly execution) order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHTED)}


def check_layer_names(model: nn.Module, names: Iterable[str], where: str) -> None:
    layers = weighted_layers(model)
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ConfigError(
            f"{where}: no conv/linear layer named {', '.join(map(repr, unknown))}; "
            f"the model has {', '.join(layers)}"
        )


def select_layers(
    model: nn.Module, skip: Iterable[str], skip_first: bool, skip_last: bool
) -> dict[str, nn.Module]:
    """The layers a technique may touch: all weighted layers less the skipped ones."""
    layers = weighted_layers(model)
    names = list(layers)
    skipped = set(skip)
    if skip_first and names:
        skipped.add(names[0])
    if skip_last and names:
        skipped.add(names[-1])
    return {n: m for n, m in layers.items() if n not in skipped}


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Masks of the weights that are exactly zero now, for layers that have any."""
    masks = {}
    for name, layer in weighted_layers(model).items():
        keep = layer.weight.detach() != 0
        if not bool(keep.all()):
            masks[name] = keep
    return masks


def mask_keeper(model: nn.Module) -> Callable[[nn.Module], None]:
    """An ``after_step`` hook that re-zeroes pruned weights after every optimiser step."""
    masks = zero_masks(model)
    layers = weighted_layers(model)

    @torch.no_grad()
    def keep(_: nn.Module) -> None:
        for name, mask in masks.items():
            weight = layers[name].weight
            if mask.device != weight.device:  # training on a GPU: move the mask once
                masks[name] = mask = mask.to(weight.device)
            weight.mul_(mask)

    return keep


def sparsity(layers: dict[str, nn.Module]) -> float:
    total = sum(m.weight.numel() for m in layers.values())
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    return zeros / total if total else 0.0
