"""Quantization-aware training: fake-quantize in PyTorch, export a QDQ graph ORT runs as INT8.

Batch norm is folded into the convolutions first (``torch.fx``), so what is trained is what is
deployed. Every conv/linear then sees INT8 weights (symmetric, per output channel, scale from
the current weights) and UINT8 inputs and outputs (affine, ranges observed as a moving average
of min/max during training and frozen at export). Gradients pass the rounding straight through
(the STE built into ``torch.fake_quantize_*``). The exporter writes each fake-quant as a
QuantizeLinear/DequantizeLinear pair; ``edgeslim.export`` stores the weights as INT8.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from edgeslim.compress import layers as L
from edgeslim.compress.finetune import tune
from edgeslim.compress.quantize import resolve_reduce_range
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset


class QATSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(3, ge=0)
    lr: float = Field(5e-4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="moving average of observed ranges")
    reduce_range: bool | Literal["auto"] = Field(
        "auto", description="7-bit weights, as static-int8 uses on CPUs without VNNI"
    )
    seed: int = 0


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
    """A conv or linear layer with fake-quantized input, weight and output."""

    def __init__(self, layer: nn.Module, momentum: float, weight_max: int = 127) -> None:
        super().__init__()
        self.layer, self.weight_max = layer, weight_max
        self.inputs = ActivationFakeQuant(momentum)
        self.outputs = ActivationFakeQuant(momentum)
        channels = layer.weight.shape[0]
        self.register_buffer("weight_scale", torch.ones(channels))
        self.register_buffer("weight_zero", torch.zeros(channels, dtype=torch.int32))
        self.update_weight_scale()

    @torch.no_grad()
    def update_weight_scale(self) -> None:
        weight = self.layer.weight
        amax = weight.abs().amax(dim=tuple(range(1, weight.dim())))
        self.weight_scale.copy_((amax / self.weight_max).clamp(min=1e-8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update_weight_scale()
        x = self.inputs(x)
        weight = torch.fake_quantize_per_channel_affine(
            self.layer.weight, self.weight_scale, self.weight_zero, 0, -128, 127
        )
        if isinstance(self.layer, nn.Linear):
            y = nn.functional.linear(x, weight, self.layer.bias)
        else:
            y = self.layer._conv_forward(x, weight, self.layer.bias)
        return self.outputs(y)


def prepare(model: nn.Module, momentum: float, weight_max: int = 127) -> nn.Module:
    """BN folded, every conv/linear wrapped; marked for the TorchScript exporter."""
    from torch.fx.experimental.optimization import fuse

    fused = fuse(model.eval())
    for name, layer in L.weighted_layers(fused).items():
        parent_name, _, child = name.rpartition(".")
        parent = fused.get_submodule(parent_name) if parent_name else fused
        setattr(parent, child, QuantLayer(layer, momentum, weight_max))
    fused.exports_with_torchscript = True  # dynamo cannot export fake-quant ops
    return fused


@technique("qat", QATSettings)
def apply(model: nn.Module, data: Dataset, s: QATSettings, ctx: StepContext) -> dict:
    reduce_range = resolve_reduce_range(s.reduce_range)
    quantized = prepare(model, s.momentum, 63 if reduce_range else 127)
    with torch.no_grad():  # one pass to initialise the observers before training
        quantized.train()(torch.from_numpy(data.train.x[:256]))
    result = tune(quantized, data, ctx, epochs=s.epochs, lr=s.lr, seed=s.seed, desc="qat")
    return {
        **result.summary(),
        "model": quantized,
        "quantized_layers": len(L.weighted_layers(model)),
    }
