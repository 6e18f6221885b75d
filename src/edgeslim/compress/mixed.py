"""Mixed precision: each layer's weights at the bit-width it tolerates (INT4, INT8, FP16 or
FP32), chosen from measured sensitivity under a size or an accuracy budget.

The idea of AIMET's automatic mixed precision and of HAWQ, measured rather than estimated:
1. every layer starts at the widest width offered;
2. for each layer and each narrower width, the validation accuracy of the model with only that
   layer narrowed is measured on ONNX Runtime (the sensitivity table);
3. narrowing moves are taken in order of accuracy lost per byte saved, each one checked on the
   whole model: with ``weight_kb``, until the conv/linear weights fit it (the budget is a
   ConfigError when even the narrowest widths do not fit, so the moves always get there);
   without it, every move whose
   measured drop from FP32 stays within ``max_drop``.
Weights are stored per output channel (INT8/INT4 behind DequantizeLinear, FP16 behind a Cast),
activations stay FP32: the weight-only form every runtime here runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeslim.compress import layers as L
from edgeslim.compress.quantize import stored_weights, weight_only
from edgeslim.compress.registry import technique
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError
from edgeslim.progress import progress_bar
from edgeslim.runtimes import onnx_outputs
from edgeslim.tasks import task_of

Width = Literal[4, 8, 16, 32]


class MixedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bits: list[Width] = Field(
        [4, 8], description="weight widths to choose from (32: FP32)", validate_default=True
    )
    weight_kb: float | None = Field(None, gt=0, description="size budget of conv/linear weights")
    max_drop: float = Field(0.01, ge=0, le=1, description="validation accuracy drop allowed")
    samples: int = Field(2000, ge=1, description="validation samples each check uses")

    @field_validator("bits")
    @classmethod
    def distinct(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one width")
        return sorted(set(value), reverse=True)


def out_of_reach(weights: int, s: MixedSettings) -> None:
    narrowest = weights * min(s.bits) / 8 / 1024
    if s.weight_kb is not None and narrowest > s.weight_kb:
        raise ConfigError(
            f"quantize.mixed.weight_kb: {s.weight_kb} KB is out of reach; every layer at "
            f"{min(s.bits)} bits takes {narrowest:.1f} KB"
        )


def check(model, s: MixedSettings, data: Dataset) -> None:
    """Before any work: the size budget against the model's conv/linear weights."""
    out_of_reach(sum(m.weight.numel() for m in L.weighted_layers(model).values()), s)


def weight_bytes(sizes: dict[str, int], widths: dict[str, int]) -> float:
    """Bytes of the weights at these widths (INT4 packs two a byte; scales not counted)."""
    return sum(sizes[name] * widths[name] / 8 for name in sizes)


class Checker:
    """The task's validation score (accuracy, mAP@0.5) of the source model with some layers'
    widths changed, on ORT."""

    def __init__(self, source: Path, data: Dataset, samples: int, folder: Path) -> None:
        self.source, self.folder = source, folder
        self.x, self.y = data.val.x[:samples], data.val.y[:samples]
        self.task = task_of(data.spec)
        self.runs = 0

    def accuracy(self, widths: dict[str, int], target: Path | None = None) -> float:
        path = target or self.folder / f"check{self.runs}.onnx"
        self.runs += 1
        weight_only(self.source, path, widths)
        return self.task.score(onnx_outputs(path, self.x), self.y)


@technique("quantize.mixed", MixedSettings, stage="onnx", check=check)
def mixed(source: Path, target: Path, data: Dataset, s: MixedSettings) -> dict:
    model = onnx.load(str(source))
    layers = stored_weights(model)
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer if t.name in layers}
    if not sizes:
        raise ConfigError("quantize.mixed: the model has no conv/linear weights to narrow")
    out_of_reach(sum(sizes.values()), s)
    with tempfile.TemporaryDirectory(prefix="edgeslim-mixed-") as tmp:
        check = Checker(source, data, s.samples, Path(tmp))
        fp32 = check.accuracy({})
        widths = dict.fromkeys(sizes, s.bits[0])
        start = check.accuracy(widths)
        table: dict[str, dict[int, float]] = {}
        with progress_bar(
            "mixed precision: sensitivity", total=len(sizes) * (len(s.bits) - 1)
        ) as bar:
            for name in sizes:
                table[name] = {s.bits[0]: start}
                for width in s.bits[1:]:
                    table[name][width] = check.accuracy({**widths, name: width})
                    bar.advance(f"{name} at {width} bits")
        moves = sorted(
            (
                (start - table[name][width]) / (sizes[name] * (s.bits[0] - width) / 8),
                name,
                width,
            )
            for name in sizes
            for width in s.bits[1:]
        )
        accuracy = start
        for _, name, width in moves:
            if width >= widths[name]:
                continue  # already at least this narrow
            if s.weight_kb is not None and weight_bytes(sizes, widths) / 1024 <= s.weight_kb:
                break
            trial = {**widths, name: width}
            got = check.accuracy(trial)
            if s.weight_kb is None and fp32 - got > s.max_drop:
                continue
            widths, accuracy = trial, got
        check.accuracy(widths, target)
    return {
        "layer_bits": widths,
        "weight_kb": round(weight_bytes(sizes, widths) / 1024, 3),
        "val_accuracy": {"fp32": round(fp32, 4), "mixed": round(accuracy, 4)},
        "sensitivity": {n: {str(w): round(a, 4) for w, a in t.items()} for n, t in table.items()},
        "checks": check.runs,
    }
