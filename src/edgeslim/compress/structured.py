"""Structured channel pruning with Torch-Pruning's dependency graph.

Removing a channel removes it everywhere it is coupled (the BN after a conv, the next layer's
inputs, both sides of a residual add, a depthwise conv's group), so the result is a smaller
dense model: fewer MACs, a smaller file, and real speed on dense CPU kernels. The final
classifier is never pruned (its outputs are the classes). Attention blocks (``attention.py``)
lose whole heads (``head_ratio``) and/or dimensions within each head (``ratio``), consistently
across q, k, v and the output projection; the block's head count is updated to match.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import torch
import torch_pruning as tp
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from edgeslim.compress import attention as A
from edgeslim.compress import latency_table as LT
from edgeslim.compress import layers as L
from edgeslim.compress import sensitivity as S
from edgeslim.compress import targeted as T
from edgeslim.compress.finetune import tune
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError
from edgeslim.tasks import task_of

Ratio = Annotated[float, Field(gt=0, lt=1)]


class LatencyTarget(BaseModel):
    """Prune until the model's batch-1 p50 on the experiment's runtime meets this."""

    model_config = ConfigDict(extra="forbid")
    latency_p50_ms: float | None = Field(None, gt=0, description="batch-1 p50 in ms")
    latency: float | None = Field(
        None, gt=0, lt=1, description="a fraction of the baseline's measured batch-1 p50"
    )

    @model_validator(mode="after")
    def one_figure(self) -> LatencyTarget:
        if (self.latency_p50_ms is None) == (self.latency is None):
            raise ValueError("give exactly one of latency_p50_ms or latency")
        return self

    def ms(self, baseline_ms: float) -> float:
        return self.latency_p50_ms or self.latency * baseline_ms


class StructuredSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratio: Ratio | None = Field(None, description="fraction of channels removed")
    macs_reduction: float | None = Field(None, gt=1, description="e.g. 2.0 halves the MACs")
    importance: Literal["l1", "l2", "taylor", "bn-scale"] = "l2"
    scope: Literal["uniform", "global"] = "uniform"
    steps: int = Field(1, ge=1, description="pruning steps, fine-tuned in between")
    epochs_per_step: int = Field(0, ge=0)
    ignore: list[str] = []
    round_to: int | None = Field(None, ge=1, description="keep channel counts multiples of this")
    ratios: Literal["auto"] | dict[str, Ratio] | None = None
    tolerance: float = Field(0.02, ge=0, le=1, description="accuracy drop per layer for auto")
    head_ratio: Ratio | None = Field(None, description="fraction of attention heads removed")
    head_dims: bool = Field(True, description="ratio also narrows each attention head")
    num_heads: dict[str, int] = Field(
        {}, description="heads of attention projections edgeslim cannot find by itself"
    )
    target: LatencyTarget | None = Field(
        None, description="a latency to reach on the runtime: per-layer widths chosen for it"
    )

    @model_validator(mode="after")
    def one_target(self) -> StructuredSettings:
        if self.target is not None:
            if self.ratio is not None or self.macs_reduction is not None or self.ratios:
                raise ValueError("give a latency target or a ratio/macs_reduction/ratios, not both")
        elif isinstance(self.ratios, dict):
            if self.ratio is not None or self.macs_reduction is not None:
                raise ValueError("give per-layer ratios or a ratio/macs_reduction, not both")
        elif self.ratio is not None and self.macs_reduction is not None:
            raise ValueError("give exactly one of ratio or macs_reduction")
        elif self.ratio is None and self.macs_reduction is None and self.head_ratio is None:
            raise ValueError("give exactly one of ratio or macs_reduction (or head_ratio)")
        return self


def check(model: nn.Module, s: StructuredSettings, data: Dataset) -> None:
    L.check_layer_names(model, s.ignore, "prune.ignore")
    blocks = A.find_attention(model, s.num_heads)
    A.check_unrecognised(model, blocks, set(s.ignore))
    if s.head_ratio is not None and not blocks:
        raise ConfigError("prune.head_ratio: the model has no attention block to remove heads from")
    for block in blocks if s.head_ratio is not None else ():
        if int(block.heads * (1 - s.head_ratio)) < 1:  # Torch-Pruning keeps int(heads * (1 - r))
            raise ConfigError(
                f"prune.head_ratio: {block.name} has {block.heads} head(s); removing "
                f"{s.head_ratio} of them leaves none (keep it with prune.ignore: "
                f"[{', '.join(block.projections)}], or prune head dimensions with ratio)"
            )
    if isinstance(s.ratios, dict):
        L.check_layer_names(model, s.ratios, "prune.ratios")
        layers = L.weighted_layers(model)
        for name, ratio in s.ratios.items():
            width = layers[name].weight.shape[0]
            if round(width * (1 - ratio)) < 1:
                raise ConfigError(
                    f"prune.ratios.{name}: {ratio} would remove every one of its "
                    f"{width} output channels"
                )


IMPORTANCE = {
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
    "bn-scale": lambda: tp.importance.BNScaleImportance(),
}


def example_input(data: Dataset) -> torch.Tensor:
    return torch.from_numpy(data.train.x[:1])


def macs_of(model: nn.Module, data: Dataset) -> int:
    macs, _ = tp.utils.count_ops_and_params(model, example_input(data))
    return int(macs)


def ignored_modules(model: nn.Module, names: list[str]) -> list[nn.Module]:
    layers = L.weighted_layers(model)
    return [layers[n] for n in names] + [list(layers.values())[-1]]  # the classifier


def make_pruner(
    model: nn.Module,
    data: Dataset,
    s: StructuredSettings,
    ratio: float,
    steps: int,
    ratio_dict: dict[str, float] | None,
) -> tp.pruner.MetaPruner:
    modules = dict(model.named_modules())
    blocks = A.find_attention(model, s.num_heads)
    ignored = ignored_modules(model, s.ignore)
    head_dims = s.head_dims
    if heads_only(s):  # whole heads and nothing else: every other layer keeps its width
        projections = {id(layer) for b in blocks for layer in b.projections.values()}
        ignored += [m for m in L.weighted_layers(model).values() if id(m) not in projections]
        ratio, head_dims = s.head_ratio, False  # Torch-Pruning removes heads only at ratio > 0
    return tp.pruner.MetaPruner(
        model,
        example_input(data),
        importance=IMPORTANCE[s.importance](),
        pruning_ratio=ratio,
        iterative_steps=steps,
        global_pruning=s.scope == "global",
        pruning_ratio_dict={modules[n]: r for n, r in (ratio_dict or {}).items()} or None,
        ignored_layers=ignored,
        round_to=s.round_to,
        num_heads=A.num_heads_map(blocks),
        prune_num_heads=s.head_ratio is not None,
        prune_head_dims=head_dims,
        head_pruning_ratio=s.head_ratio or 0.0,
    )


def heads_only(s: StructuredSettings) -> bool:
    return (
        s.head_ratio is not None and s.ratio is None and s.macs_reduction is None and not s.ratios
    )


def pruner_step(
    pruner: tp.pruner.MetaPruner, model: nn.Module, data: Dataset, s: StructuredSettings
) -> dict[str, dict[str, int]]:
    """One pruning step; attention blocks then get their new head counts, and the model must
    still run. Returns each attention block's heads and head width."""
    if s.importance == "taylor":  # Taylor importance reads weight x gradient of the loss
        model.zero_grad()
        x, y = torch.from_numpy(data.train.x[:256]), torch.from_numpy(data.train.y[:256])
        task_of(data.spec).loss()(model(x), y).backward()
    blocks = A.find_attention(model, s.num_heads)
    try:
        pruner.step()
    except (IndexError, RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(cannot_follow(exc, blocks)) from exc
    finally:
        model.zero_grad(set_to_none=True)
    shapes = {block.name: block.update(pruner.num_heads) for block in blocks}
    check_still_runs(model, data, blocks)
    return shapes


def cannot_follow(exc: Exception, blocks: list[A.AttentionBlock]) -> str:
    said = f"{type(exc).__name__}: {exc}"
    if not blocks:
        return (
            f"prune: Torch-Pruning could not prune this model ({said}); keep the layers it "
            "cannot follow whole with prune.ignore"
        )
    fused = [name for b in blocks for name in b.projections]
    return (
        f"prune: Torch-Pruning could not follow how an attention block splits its projections "
        f"into q, k and v ({said}). It follows one fused projection reshaped to (B, N, 3, heads, "
        "head_dim) and split with .unbind(0) (as timm does), or separate q/k/v Linears; it "
        "does not follow .chunk/.split of the projection's output (einops-style ViTs) or picking "
        "qkv[0], qkv[1], qkv[2]. Rewrite the block that way, or keep the projections whole (the "
        f"MLPs and the embedding are still pruned): prune.ignore: [{', '.join(fused)}]"
    )


def check_still_runs(model: nn.Module, data: Dataset, blocks: list[A.AttentionBlock]) -> None:
    try:
        with torch.no_grad():
            model.eval()(example_input(data))
    except Exception as exc:
        hint = (
            "; an attention block whose forward fixes the width (reshape(B, N, C) with C from "
            "its input, or a head count it does not read from itself) cannot be narrowed: use -1 "
            "in that reshape, or keep its projections whole with prune.ignore ("
            + ", ".join(p for b in blocks for p in b.projections)
            + ")"
            if blocks
            else ""
        )
        raise ConfigError(
            f"prune: the pruned model no longer runs ({type(exc).__name__}: {exc}){hint}"
        ) from exc


def prune_by_ratio(model, data, s, ratio_dict, finetune) -> None:
    ratio = s.ratio or 0.0
    pruner = make_pruner(model, data, s, ratio, s.steps, ratio_dict)
    for step in range(s.steps):
        pruner_step(pruner, model, data, s)
        finetune(step)


def prune_by_macs(model, data, s, finetune, fine_steps: int = 400) -> None:
    """Prune in small increments until MACs fall to base / macs_reduction (in s.steps stages)."""
    base = macs_of(model, data)
    pruner = make_pruner(model, data, s, 0.95, fine_steps, None)
    for stage in range(1, s.steps + 1):
        goal = base / s.macs_reduction ** (stage / s.steps)
        while macs_of(model, data) > goal and pruner.current_step < fine_steps:
            pruner_step(pruner, model, data, s)
        finetune(stage - 1)
    if macs_of(model, data) > base / s.macs_reduction * 1.001:
        raise ConfigError(
            f"prune.macs_reduction {s.macs_reduction} is out of reach for this "
            "model with the classifier and ignored layers kept"
        )


def pruned_copy(
    model: nn.Module, data: Dataset, s: StructuredSettings, ratios: dict[str, float]
) -> nn.Module:
    twin = copy.deepcopy(model)
    pruner_step(make_pruner(twin, data, s, 0.0, 1, ratios), twin, data, s)
    return twin


def prunable_names(model: nn.Module, s: StructuredSettings) -> list[str]:
    ignored = {id(m) for m in ignored_modules(model, s.ignore)}
    return [
        n
        for n, m in L.weighted_layers(model).items()
        if id(m) not in ignored and m.weight.shape[0] > 1
    ]


def layer_sensitivity(
    model: nn.Module,
    data: Dataset,
    s: StructuredSettings | None = None,
    ratios: tuple[float, ...] = S.DEFAULT_RATIOS,
    show_progress: bool = True,
) -> S.Sensitivity:
    """Validation accuracy with each layer's channels alone pruned at each ratio."""
    s = s or StructuredSettings(ratio=0.5)
    return S.sweep(
        model,
        data,
        prunable_names(model, s),
        lambda _m, layer, r: pruned_copy(model, data, s, {layer: r}),
        "structured",
        ratios=ratios,
        show_progress=show_progress,
    )


def auto_ratio_dict(model, data, s, show_progress) -> tuple[dict[str, float], S.Sensitivity]:
    table = layer_sensitivity(model, data, s, show_progress=show_progress)
    base = macs_of(model, data)
    if s.macs_reduction:
        target = s.macs_reduction
    else:  # the MACs reduction a uniform pruning at this ratio would give
        uniform = dict.fromkeys(prunable_names(model, s), s.ratio)
        target = base / macs_of(pruned_copy(model, data, s, uniform), data)

    def achieved(ratios: dict[str, float]) -> float:
        return base / macs_of(pruned_copy(model, data, s, ratios), data)

    ratios = S.allocate(table, achieved, target, s.tolerance, max_ratio=0.9)
    reached = achieved(ratios)
    if reached < target * 0.99:
        raise ConfigError(
            f"prune: per-layer ratios cannot reach a {target:.3g}x MACs reduction on this model "
            f"(at most {reached:.3g}x with these settings"
            + (f", round_to {s.round_to}" if s.round_to else "")
            + ")"
        )
    return ratios, table


def latency_table(
    model: nn.Module,
    data: Dataset,
    s: StructuredSettings,
    probe: LT.Probe,
    show_progress: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[LT.LatencyTable, Path, StructuredSettings, dict]:
    """The model's latency table on the probe's runtime and device (measured, or cached), and
    the settings its variants were pruned with: ``s``, with the channel multiple the runtime
    favours (measured, unless ``s.round_to`` says) and no target. The dict says how the
    multiple was found (ns per MAC at each one tried)."""
    plain = s.model_copy(update={"target": None})
    per_mac: dict = {}
    if plain.round_to is None:
        names = prunable_names(model, plain)
        step, per_mac = LT.favoured_step(
            lambda ratio, to: pruned_copy(
                model, data, plain.model_copy(update={"round_to": to}), dict.fromkeys(names, ratio)
            ),
            example_input(data),
            probe,
        )
        plain = plain.model_copy(update={"round_to": step})
    how = {"importance": s.importance, "scope": s.scope, "round_to": plain.round_to}
    table, path = LT.build(
        model,
        data,
        prunable_names(model, plain),
        lambda ratios: pruned_copy(model, data, plain, ratios),
        probe,
        {**how, "ignore": s.ignore},
        show_progress=show_progress,
        say=say,
    )
    return table, path, plain, per_mac


def latency_ratio_dict(
    model: nn.Module, data: Dataset, s: StructuredSettings, ctx: StepContext
) -> tuple[dict[str, float], dict, int]:
    """Per-layer ratios (and the channel multiple) for ``s.target`` on the probe's runtime: the
    model's latency table, the validation sensitivity sweep, then ``targeted.choose``."""
    if ctx.probe is None:
        raise ConfigError(
            "prune.target: a latency target is measured on a runtime; run the recipe in an "
            "experiment (its runtime, threads and board), or give es.compress a "
            "probe=es.LatencyProbe(data, es.MeasureSettings(runtime=...))"
        )
    finer: list[int] = []  # multiples given up: the target was out of reach with them
    per_mac: dict = {}
    given = s.round_to is not None  # the user's multiple is kept, reachable or not
    while True:
        table, path, plain, measured = latency_table(
            model, data, s, ctx.probe, ctx.show_progress, ctx.say
        )
        per_mac = per_mac or measured
        target_ms = s.target.ms(table.baseline_ms)
        try:
            LT.check_reachable(target_ms, table)
            sensitivity = layer_sensitivity(model, data, plain, show_progress=ctx.show_progress)
            ratios, info = T.choose(
                model,
                example_input(data),
                table,
                sensitivity,
                lambda r, plain=plain: pruned_copy(model, data, plain, r),
                ctx.probe,
                target_ms,
                fraction=s.target.latency is not None,
                say=ctx.say,
            )
            break
        except LT.OutOfReach as exc:
            if given or plain.round_to < 2:
                raise
            ctx.say(f"{exc}; trying widths in multiples of {plain.round_to // 2}")
            finer.append(plain.round_to)
            s = s.model_copy(update={"round_to": plain.round_to // 2})
    if finer:
        info["round_to_out_of_reach"] = finer
    info["table"] = {**table.summary(), "file": str(path)}
    info["ratios"] = {n: round(r, 3) for n, r in ratios.items()}
    info["round_to"] = plain.round_to
    if per_mac:  # how the multiple was found: ns per MAC at each one tried
        info["round_to_measured"] = {str(k): round(v, 4) for k, v in per_mac.items()}
    return ratios, info, plain.round_to


@technique("prune.structured", StructuredSettings, check=check)
def apply(model: nn.Module, data: Dataset, s: StructuredSettings, ctx: StepContext) -> dict:
    base_macs = macs_of(model, data)
    base_params = sum(p.numel() for p in model.parameters())
    info: dict = {}

    def finetune(step: int) -> None:
        if s.epochs_per_step:
            tune(
                model, data, ctx, epochs=s.epochs_per_step, desc=f"prune step {step + 1}/{s.steps}"
            )

    if s.target is not None:
        ratio_dict, info["latency"], step = latency_ratio_dict(model, data, s, ctx)
        plain = s.model_copy(update={"target": None, "ratio": None, "round_to": step})
        prune_by_ratio(model, data, plain, ratio_dict, finetune)
    elif s.ratios == "auto":
        ratio_dict, table = auto_ratio_dict(model, data, s, ctx.show_progress)
        info["sensitivity"] = table.to_rows()
        info["ratios"] = {n: round(r, 3) for n, r in ratio_dict.items()}
        prune_by_ratio(model, data, s.model_copy(update={"ratio": None}), ratio_dict, finetune)
    elif isinstance(s.ratios, dict):
        prune_by_ratio(model, data, s, s.ratios, finetune)
    elif s.macs_reduction:
        prune_by_macs(model, data, s, finetune)
    else:
        prune_by_ratio(model, data, s, None, finetune)
    macs = macs_of(model, data)
    params = sum(p.numel() for p in model.parameters())
    blocks = A.find_attention(model, s.num_heads)
    if blocks:  # heads and head width left in each attention block
        info["attention"] = {block.name: block.shape() for block in blocks}
    info.update(
        {
            "macs_reduction": round(base_macs / macs, 3),
            "params_reduction": round(base_params / params, 3),
        }
    )
    return info
