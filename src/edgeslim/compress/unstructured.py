"""Unstructured magnitude pruning: zero the smallest weights, globally or per layer.

``sparsity`` is the fraction of *all* conv/linear weights that end up zero (what the
``weight_sparsity`` metric reports), so skipped layers make the others prune harder.
``schedule: agp`` follows Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - t/n)^3, with
fine-tuning after each of the n steps; zeros stay zero while fine-tuning.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from edgeslim.compress import layers as L
from edgeslim.compress import sensitivity as S
from edgeslim.compress.finetune import tune
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError

Ratio = Annotated[float, Field(ge=0, lt=1)]


class UnstructuredSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sparsity: Ratio = Field(description="fraction of all conv/linear weights that end up zero")
    scope: Literal["global", "layer"] = "global"
    skip: list[str] = []
    skip_first: bool = True
    skip_last: bool = True
    schedule: Literal["oneshot", "agp"] = "oneshot"
    steps: int = Field(4, ge=1, description="AGP pruning steps")
    epochs_per_step: int = Field(1, ge=0, description="fine-tuning epochs after each AGP step")
    ratios: Literal["auto"] | dict[str, Ratio] | None = None
    tolerance: float = Field(0.01, ge=0, le=1, description="accuracy drop per layer for auto")


def check(model: nn.Module, s: UnstructuredSettings, data: Dataset) -> None:
    L.check_layer_names(model, s.skip, "prune.skip")
    if isinstance(s.ratios, dict):
        L.check_layer_names(model, s.ratios, "prune.ratios")


@torch.no_grad()
def prune_smallest(weights: list[torch.Tensor], count: int) -> None:
    """Zero exactly ``count`` of the smallest-magnitude entries across ``weights``."""
    if count <= 0:
        return
    flat = torch.cat([w.abs().flatten() for w in weights])
    order = torch.argsort(flat, stable=True)[:count]
    mask = torch.ones_like(flat, dtype=torch.bool)
    mask[order] = False
    start = 0
    for w in weights:
        w.mul_(mask[start : start + w.numel()].view_as(w))
        start += w.numel()


def prune_layers(layers: dict[str, nn.Module], ratios: dict[str, float]) -> None:
    for name, ratio in ratios.items():
        weight = layers[name].weight
        prune_smallest([weight.data], round(ratio * weight.numel()))


def prunable_target(model: nn.Module, chosen: dict[str, nn.Module], sparsity: float) -> float:
    """The sparsity the chosen layers need so the whole model reaches ``sparsity``."""
    everything = L.weighted_layers(model)
    total = sum(m.weight.numel() for m in everything.values())
    fixed_zeros = sum(int((m.weight == 0).sum()) for n, m in everything.items() if n not in chosen)
    chosen_total = sum(m.weight.numel() for m in chosen.values())
    needed = (sparsity * total - fixed_zeros) / chosen_total if chosen_total else 1.0
    if needed >= 1:
        raise ConfigError(
            f"prune.sparsity {sparsity} is out of reach with layers "
            f"{sorted(set(everything) - set(chosen))} left dense; skip fewer layers"
        )
    return max(0.0, needed)


def prune_to(model: nn.Module, chosen: dict[str, nn.Module], target: float, scope: str) -> None:
    """Bring the chosen layers to ``target`` sparsity (already-zero weights stay zero)."""
    if scope == "global":
        total = sum(m.weight.numel() for m in chosen.values())
        prune_smallest([m.weight.data for m in chosen.values()], round(target * total))
    else:
        prune_layers(chosen, dict.fromkeys(chosen, target))


def layer_sensitivity(
    model: nn.Module,
    data: Dataset,
    chosen: dict[str, nn.Module] | None = None,
    ratios: tuple[float, ...] = S.DEFAULT_RATIOS,
    show_progress: bool = True,
) -> S.Sensitivity:
    """Validation accuracy with each layer alone magnitude-pruned at each ratio."""
    chosen = chosen if chosen is not None else L.weighted_layers(model)
    originals = {n: m.weight.detach().clone() for n, m in chosen.items()}

    def prune_one(net: nn.Module, layer: str, ratio: float) -> nn.Module:
        prune_layers(chosen, {layer: ratio})
        return net

    def restore() -> None:
        with torch.no_grad():
            for name, weight in originals.items():
                chosen[name].weight.copy_(weight)

    return S.sweep(
        model,
        data,
        list(chosen),
        prune_one,
        "unstructured",
        ratios=ratios,
        restore=restore,
        show_progress=show_progress,
    )


def auto_ratios(
    model: nn.Module,
    data: Dataset,
    chosen: dict[str, nn.Module],
    target: float,
    tolerance: float,
    show_progress: bool,
) -> tuple[dict[str, float], S.Sensitivity]:
    table = layer_sensitivity(model, data, chosen, show_progress=show_progress)
    sizes = {n: m.weight.numel() for n, m in chosen.items()}
    total = sum(sizes.values())

    def achieved(ratios: dict[str, float]) -> float:
        return sum(round(r * sizes[n]) for n, r in ratios.items()) / total

    return S.allocate(table, achieved, target, tolerance, max_ratio=0.99), table


@technique("prune.unstructured", UnstructuredSettings, check=check)
def apply(model: nn.Module, data: Dataset, s: UnstructuredSettings, ctx: StepContext) -> dict:
    if isinstance(s.ratios, dict):
        chosen = {n: m for n, m in L.weighted_layers(model).items() if n in s.ratios}
    else:
        chosen = L.select_layers(model, s.skip, s.skip_first, s.skip_last)
    target = prunable_target(model, chosen, s.sparsity) if not isinstance(s.ratios, dict) else 0
    info: dict = {}
    if s.ratios == "auto":
        ratios, table = auto_ratios(model, data, chosen, target, s.tolerance, ctx.show_progress)
        info["sensitivity"] = table.to_rows()
    elif isinstance(s.ratios, dict):
        ratios = dict(s.ratios)
    else:
        ratios = None
    steps = s.steps if s.schedule == "agp" else 1
    start = L.sparsity(chosen)
    for t in range(1, steps + 1):
        fraction = 1 - (1 - t / steps) ** 3  # AGP's cubic ramp; 1.0 at the last step
        if ratios is not None:
            prune_layers(chosen, {n: start + (r - start) * fraction for n, r in ratios.items()})
        else:
            prune_to(model, chosen, start + (target - start) * fraction, s.scope)
        if s.schedule == "agp" and s.epochs_per_step:
            tune(model, data, ctx, epochs=s.epochs_per_step, desc=f"agp step {t}/{steps}")
    everything = L.weighted_layers(model)
    info.update(
        {
            "sparsity_reached": round(L.sparsity(everything), 4),
            "pruned_layers": {n: round(L.sparsity({n: m}), 4) for n, m in chosen.items()},
        }
    )
    return info
