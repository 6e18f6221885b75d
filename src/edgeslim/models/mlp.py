"""A plain multi-layer perceptron, for feature vectors or flattened images."""

import math

from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.models.registry import channels, register_model


@register_model("mlp")
def mlp(spec: DataSpec, width: float = 1.0, hidden: tuple[int, ...] = (128, 64)) -> nn.Module:
    features = math.prod(spec.input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for size in hidden:
        layers += [nn.Linear(features, channels(size, width)), nn.ReLU(inplace=True)]
        features = channels(size, width)
    layers.append(nn.Linear(features, spec.num_classes))
    return nn.Sequential(*layers)
