"""LeNet-5 (LeCun et al. 1998), padded so that small inputs such as 8x8 digits fit."""

from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.models.registry import channels, image_shape, register_model


@register_model("lenet5")
def lenet5(spec: DataSpec, width: float = 1.0) -> nn.Module:
    c, h, w = image_shape(spec, "lenet5")
    c1, c2 = channels(6, width), channels(16, width)
    flat = c2 * (h // 4) * (w // 4)
    if flat == 0:
        raise ValueError(f"lenet5 needs inputs of at least 4x4, got {h}x{w}")
    return nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, channels(120, width)),
        nn.ReLU(inplace=True),
        nn.Linear(channels(120, width), channels(84, width)),
        nn.ReLU(inplace=True),
        nn.Linear(channels(84, width), spec.num_classes),
    )
