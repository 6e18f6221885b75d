"""Detectors that fit edge budgets; their output follows ``edgeslim.tasks.boxes``.

- ``centernet``: a ResNet-8 backbone to stride 4 and a CenterNet head (Zhou et al. 2019):
  class heatmaps, centre offset and log box size per cell, one 1x1 convolution at the end.
- ``fomo``: centroids only, after Edge Impulse's FOMO for microcontrollers: a MobileNet-v1
  style trunk cut at stride 8 and a 1x1 head giving one heatmap per class.

The head's last convolution is the model's last layer, so structured pruning keeps its output
channels (they are the classes and box terms) as it keeps a classifier's.
"""

import math

from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ModelLoadError
from edgeslim.models.mobilenet import separable
from edgeslim.models.registry import channels, image_shape, register_model
from edgeslim.models.resnet import BasicBlock
from edgeslim.models.small_cnn import conv_bn_relu

PRIOR = 0.1  # initial object probability of every cell (the heatmap bias, as in CenterNet)


def detection_shape(spec: DataSpec, model: str) -> tuple[int, int, int]:
    if spec.task != "detection":
        raise ModelLoadError(
            f"{model} is a detector; the data is for {spec.task} (use detection data such as "
            "scenes, coco:FILE.json or yolo:DIR)"
        )
    c, h, w = image_shape(spec, model)
    if h % 8 or w % 8:
        raise ModelLoadError(f"{model} needs images whose sides are multiples of 8, got {h}x{w}")
    return c, h, w


def heatmap_head(c_in: int, outputs: int, classes: int) -> nn.Conv2d:
    head = nn.Conv2d(c_in, outputs, 1)
    nn.init.constant_(head.bias[:classes], -math.log((1 - PRIOR) / PRIOR))
    nn.init.zeros_(head.bias[classes:])
    return head


@register_model("centernet", task="detection")
def centernet(spec: DataSpec, width: float = 1.0) -> nn.Module:
    """CenterNet head on a ResNet-8 backbone, stride 4: class heatmaps, offsets, box sizes."""
    c, _, _ = detection_shape(spec, "centernet")
    c1, c2, c3 = channels(16, width), channels(32, width), channels(64, width)
    classes = spec.num_classes
    return nn.Sequential(
        conv_bn_relu(c, c1, 3, 1),
        BasicBlock(c1, c2, 2),
        BasicBlock(c2, c3, 2),
        conv_bn_relu(c3, c3, 3, 1),
        heatmap_head(c3, classes + 4, classes),
    )


@register_model("fomo", task="detection")
def fomo(spec: DataSpec, width: float = 1.0) -> nn.Module:
    """FOMO-style centroids at stride 8 on a depthwise-separable trunk (microcontrollers)."""
    c, _, _ = detection_shape(spec, "fomo")
    c1, c2, c3 = channels(16, width), channels(32, width), channels(64, width)
    classes = spec.num_classes
    return nn.Sequential(
        conv_bn_relu(c, c1, 3, 2),
        separable(c1, c2, 2),
        separable(c2, c3, 2),
        separable(c3, c3, 1),
        conv_bn_relu(c3, channels(32, width), 1),
        heatmap_head(channels(32, width), classes, classes),
    )
