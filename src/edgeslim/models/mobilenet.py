"""Depthwise-separable nets: MobileNet-v1 (MLPerf Tiny VWW) and DS-CNN (MLPerf Tiny KWS)."""

from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.models.registry import channels, image_shape, register_model, stride_for
from edgeslim.models.small_cnn import conv_bn_relu

# (output channels, stride) of MobileNet-v1's 13 depthwise-separable blocks (Howard et al. 2017)
MOBILENET_V1_BLOCKS = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
]


def separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        conv_bn_relu(c_in, c_in, 3, stride, groups=c_in), conv_bn_relu(c_in, c_out, 1)
    )


@register_model("mobilenet-v1")
def mobilenet_v1(spec: DataSpec, width: float = 0.25) -> nn.Module:
    c, h, _ = image_shape(spec, "mobilenet-v1")
    stride = stride_for(h, 2)
    c_in, size = channels(32, width), h // stride
    layers: list[nn.Module] = [conv_bn_relu(c, c_in, 3, stride)]
    for base, wanted in MOBILENET_V1_BLOCKS:
        stride = stride_for(size, wanted)
        layers.append(separable(c_in, channels(base, width), stride))
        c_in, size = channels(base, width), size // stride
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, spec.num_classes)]
    return nn.Sequential(*layers)


@register_model("ds-cnn")
def ds_cnn(spec: DataSpec, width: float = 1.0, blocks: int = 4) -> nn.Module:
    """DS-CNN (Zhang et al. 2017, MLPerf Tiny KWS): one strided conv, then separable blocks."""
    c, h, _ = image_shape(spec, "ds-cnn")
    c_mid = channels(64, width)
    layers: list[nn.Module] = [conv_bn_relu(c, c_mid, 3, stride_for(h, 2))]
    layers += [separable(c_mid, c_mid, 1) for _ in range(blocks)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_mid, spec.num_classes)]
    return nn.Sequential(*layers)
