"""Quantization-aware training: fake-quantize in PyTorch, export a QDQ graph ORT runs as INT8.

Batch norm is folded into the convolutions first (``torch.fx``), so what is trained is what is
deployed. Every conv/linear then sees INT8 weights (symmetric, per output channel, scale from
the current weights) and UINT8 inputs and outputs (affine, ranges observed as a moving average
of min/max during training and frozen at export). Gradients pass the rounding straight through
(the STE built into ``torch.fake_quantize_*``). The exporter writes each fake-quant as a
QuantizeLinear/DequantizeLinear pair; ``edgeslim.export`` stores the weights as INT8.

``bits: 4`` trains for weight-only INT4 storage (what ``quantize: weight-int4`` writes, half
the bytes of INT8): weights on the same per-channel grid (15 levels, scale max|w| / 7),
activations left in float. At export the layers get their weights on that grid back and the
file stores them as INT4 behind DequantizeLinear, so the runtime computes what was trained.
Post-training INT4 is where this matters: measured on resnet8 / Fashion-MNIST, rounding the
trained weights to INT4 drops test accuracy from 0.9219 to 0.8327. ``activations: false`` with
8 bits trains the same way for ``weight-int8``'s grid.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.fx.experimental.optimization import fuse

from edgeslim.compress import layers as L
from edgeslim.compress.finetune import tune
from edgeslim.compress.quantize import resolve_reduce_range, weight_qmax
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError
from edgeslim.tasks import task_of


class QATSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(3, ge=0)
    lr: float = Field(5e-4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="moving average of observed ranges")
    reduce_range: bool | Literal["auto"] = Field(
        "auto", description="7-bit weights, as static-int8 uses on CPUs without VNNI"
    )
    bits: Literal[8, 4] = Field(8, description="weight width; 4: weight-only, stored as INT4")
    activations: bool | None = Field(
        None, description="fake-quantize activations to UINT8 (default: with 8-bit weights)"
    )
    distill: bool = Field(False, description="learn from the base model's outputs as well")
    shift: int = Field(0, ge=0, description="random shift of training images, in pixels")
    flip: bool = Field(False, description="random left-right flips (where classes allow it)")
    seed: int = 0

    @model_validator(mode="after")
    def weight_only_int4(self) -> QATSettings:
        if self.activations is None:
            self.activations = self.bits == 8
        if self.bits == 4 and self.activations:
            raise ValueError(
                "bits 4 trains weight-only INT4 (activations: false): no runtime here runs "
                "INT4 weights with UINT8 activations"
            )
        return self


class ActivationFakeQuant(nn.Module):
    """UINT8 affine fake quantization with a moving-average min/max observer.

    Training forwards update the range and the stored scale and zero point; eval forwards use
    the stored values untouched, so the export sees constants, not arithmetic.
    """

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        low, high = x.min().clamp(max=0), x.max().clamp(min=0)  # zero stays exact
        if bool(self.seen):
            low, high = (
                self.low.lerp(low, 1 - self.momentum),
                self.high.lerp(high, 1 - self.momentum),
            )
        self.low.copy_(low)
        self.high.copy_(high)
        self.seen.fill_(True)
        self.scale.copy_(((high - low) / 255).clamp(min=1e-8))
        self.zero_point.copy_(torch.clamp(torch.round(-low / self.scale), 0, 255))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.observe(x)
        if not bool(self.seen):
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 255)


class QuantLayer(nn.Module):
    """A conv or linear layer with fake-quantized weight and (optionally) input and output."""

    def __init__(
        self, layer: nn.Module, momentum: float, weight_max: int = 127, activations: bool = True
    ) -> None:
        super().__init__()
        self.layer, self.weight_max = layer, weight_max
        self.inputs = ActivationFakeQuant(momentum) if activations else nn.Identity()
        self.outputs = ActivationFakeQuant(momentum) if activations else nn.Identity()
        channels = layer.weight.shape[0]
        self.register_buffer("weight_scale", torch.ones(channels))
        self.register_buffer("weight_zero", torch.zeros(channels, dtype=torch.int32))
        self.update_weight_scale()

    @torch.no_grad()
    def update_weight_scale(self) -> None:
        weight = self.layer.weight
        amax = weight.abs().amax(dim=tuple(range(1, weight.dim())))
        self.weight_scale.copy_((amax / self.weight_max).clamp(min=1e-8))

    def quantized_weight(self) -> torch.Tensor:
        return torch.fake_quantize_per_channel_affine(
            self.layer.weight, self.weight_scale, self.weight_zero, 0, -128, 127
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update_weight_scale()
        x = self.inputs(x)
        weight = self.quantized_weight()
        if isinstance(self.layer, nn.Linear):
            y = nn.functional.linear(x, weight, self.layer.bias)
        else:
            y = self.layer._conv_forward(x, weight, self.layer.bias)
        return self.outputs(y)


def replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def prepare(
    model: nn.Module, momentum: float, weight_max: int = 127, activations: bool = True
) -> nn.Module:
    """BN folded, every conv/linear wrapped. With activations: marked for the TorchScript
    exporter (dynamo cannot export fake-quant ops); weight-only models export baked."""
    fused = fuse(model.eval())
    for name, layer in L.weighted_layers(fused).items():
        replace(fused, name, QuantLayer(layer, momentum, weight_max, activations))
    fused.exports_with_torchscript = activations
    return fused


def baked(model: nn.Module) -> nn.Module:
    """A copy with each fake-quantized layer back in place, its weights on the grid it trained
    on: what a weight-only file stores, as a model dynamo exports."""
    plain = copy.deepcopy(model).eval()
    for name, module in list(plain.named_modules()):
        if isinstance(module, QuantLayer):
            with torch.no_grad():
                module.update_weight_scale()
                module.layer.weight.copy_(module.quantized_weight())
            replace(plain, name, module.layer)
    return plain


def weight_max(s: QATSettings) -> int:
    """The largest integer weight: weight-only, the grid quantize.weight_only stores (7 at 4
    bits); with activations, 63 where static INT8 would reduce the range."""
    if not s.activations:
        return weight_qmax(s.bits)
    return 63 if resolve_reduce_range(s.reduce_range) else 127


@technique("qat", QATSettings)
def apply(model: nn.Module, data: Dataset, s: QATSettings, ctx: StepContext) -> dict:
    quantized = prepare(model, s.momentum, weight_max(s), bool(s.activations))
    if not s.activations:
        quantized.stored_weight_bits = s.bits  # export stores the trained grid (export.py)
    with torch.no_grad():  # one pass to initialise the observers before training
        quantized.train()(torch.from_numpy(data.train.x[:256]))
    options: dict = {"shift": s.shift, "flip": s.flip}
    if s.distill:
        if ctx.base is None or ctx.base.model is None:
            raise ConfigError("qat.distill needs the base model (a PyTorch candidate)")
        task = task_of(data.spec)
        options |= {"teacher": ctx.base.model, "loss": task.distill_loss(task.temperature, 0.5)}
    result = tune(
        quantized, data, ctx, epochs=s.epochs, lr=s.lr, seed=s.seed, desc="qat", **options
    )
    return {
        **result.summary(),
        "model": quantized,
        "quantized_layers": len(L.weighted_layers(model)),
        "bits": s.bits,
    }
