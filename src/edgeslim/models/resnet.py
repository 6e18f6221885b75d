"""ResNet-8, the MLPerf Tiny image-classification reference (three residual stacks 16/32/64)."""

import torch
from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.models.registry import channels, image_shape, register_model, stride_for


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:  # MLPerf Tiny uses a 1x1 convolution here
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register_model("resnet8")
def resnet8(spec: DataSpec, width: float = 1.0) -> nn.Module:
    c, h, _ = image_shape(spec, "resnet8")
    widths = [channels(16, width), channels(32, width), channels(64, width)]
    layers: list[nn.Module] = [
        nn.Conv2d(c, widths[0], 3, 1, 1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    ]
    size, c_in = h, widths[0]
    for i, c_out in enumerate(widths):
        stride = 1 if i == 0 else stride_for(size, 2)
        layers.append(BasicBlock(c_in, c_out, stride))
        size, c_in = size // stride, c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, spec.num_classes)]
    return nn.Sequential(*layers)
