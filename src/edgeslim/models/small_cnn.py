"""A small three-convolution CNN: the default baseline for the demo and tests."""

from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.models.registry import channels, image_shape, register_model


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_model("small-cnn")
def small_cnn(spec: DataSpec, width: float = 1.0) -> nn.Module:
    c, _, _ = image_shape(spec, "small-cnn")
    c1, c2, c3 = channels(16, width), channels(32, width), channels(64, width)
    return nn.Sequential(
        conv_bn_relu(c, c1),
        conv_bn_relu(c1, c2),
        nn.MaxPool2d(2),
        conv_bn_relu(c2, c3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c3, spec.num_classes),
    )
