"""N:M semi-structured sparsity: at most N non-zeros in every M consecutive input weights.

Groups run along the input-channel dimension (for a conv, weights laid out as
(out, kh, kw, in), as sparse tensor cores expect), so 2:4 is the pattern NVIDIA Ampere and
later accelerate. Layers whose input size is not a multiple of M (a 1-channel first conv, a
depthwise conv) cannot hold the pattern and are skipped, and the step reports them.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from edgeslim.compress import layers as L
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset


class NMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(2, ge=1, description="non-zeros kept per group")
    m: int = Field(4, ge=2, description="group size along the input dimension")
    skip: list[str] = []
    skip_first: bool = False
    skip_last: bool = False

    @model_validator(mode="after")
    def n_below_m(self) -> NMSettings:
        if self.n >= self.m:
            raise ValueError(f"N:M needs N < M, got {self.n}:{self.m}")
        return self


def check(model: nn.Module, s: NMSettings, data: Dataset) -> None:
    L.check_layer_names(model, s.skip, "prune.skip")


def grouped(weight: torch.Tensor, m: int) -> torch.Tensor:
    """A (groups, m) view-copy with the input dimension innermost."""
    if weight.dim() > 2:  # conv: (out, in, *k) -> (out, *k, in)
        weight = weight.permute(0, *range(2, weight.dim()), 1)
    return weight.reshape(-1, m)


def ungrouped(groups: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) > 2:
        permuted = (shape[0], *shape[2:], shape[1])
        return groups.reshape(permuted).permute(0, len(shape) - 1, *range(1, len(shape) - 1))
    return groups.reshape(shape)


def pattern_holds(weight: torch.Tensor, n: int, m: int) -> bool:
    """True if every group of M consecutive input weights has at most N non-zeros."""
    return bool(((grouped(weight.detach(), m) != 0).sum(dim=1) <= n).all())


@technique("prune.nm", NMSettings, check=check)
def apply(model: nn.Module, data: Dataset, s: NMSettings, ctx: StepContext) -> dict:
    pruned, skipped = [], {}
    for name, layer in L.select_layers(model, s.skip, s.skip_first, s.skip_last).items():
        weight = layer.weight.data
        fan_in = weight.shape[1]
        if fan_in % s.m:
            skipped[name] = f"input size {fan_in} is not a multiple of {s.m}"
            continue
        groups = grouped(weight, s.m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, groups.abs().topk(s.n, dim=1).indices, True)
        weight.copy_(ungrouped(groups * keep, weight.shape))
        pruned.append(name)
    return {
        "pattern": f"{s.n}:{s.m}",
        "pruned_layers": pruned,
        "skipped_layers": skipped,
        "sparsity_reached": round(L.sparsity(L.weighted_layers(model)), 4),
    }
