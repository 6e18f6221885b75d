"""mAP, precision/recall and decoding on hand-made cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from edgeslim.tasks import boxes as B


def targets(*per_image: list[list[float]]) -> np.ndarray:
    from edgeslim.data.detection import pad_boxes

    return pad_boxes([np.asarray(b, dtype=np.float32).reshape(-1, 5) for b in per_image])


def found(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)


TRUTH = targets([[0, 10, 10, 20, 20], [1, 30, 30, 50, 40]], [[1, 5, 5, 15, 25]])


def test_perfect_predictions_score_one():
    detections = [
        found([10, 10, 20, 20, 0.9, 0], [30, 30, 50, 40, 0.8, 1]),
        found([5, 5, 15, 25, 0.7, 1]),
    ]
    assert B.coco_map(detections, TRUTH, 2) == pytest.approx({"map50": 1.0, "map": 1.0})
    assert B.precision_recall(detections, TRUTH, 0.3) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("shift", "map50", "map_"),
    [
        (2, 1.0, 0.4),  # IoU 80/120 = 0.667: counted at thresholds 0.50, 0.55, 0.60, 0.65
        (1, 1.0, 0.7),  # IoU 90/110 = 0.818: 0.50 .. 0.80, seven of ten
        (5, 0.0, 0.0),  # IoU 50/150 = 0.333: never
    ],
)
def test_shifted_boxes_score_by_their_iou(shift, map50, map_):
    truth = targets([[0, 10, 10, 20, 20]])
    detections = [found([10 + shift, 10, 20 + shift, 20, 0.9, 0])]
    assert B.coco_map(detections, truth, 1) == pytest.approx({"map50": map50, "map": map_})


def test_wrong_class_and_duplicates_are_false_positives():
    truth = targets([[0, 10, 10, 20, 20]])
    detections = [
        found([10, 10, 20, 20, 0.9, 0], [10, 10, 20, 20, 0.8, 0], [10, 10, 20, 20, 0.7, 1])
    ]
    precision, recall = B.precision_recall(detections, truth, 0.5)
    assert (precision, recall) == (pytest.approx(1 / 3), 1.0)
    assert B.precision_recall(detections, truth, 0.95) == (1.0, 0.0)  # nothing found, none matched


def test_nothing_found_scores_zero():
    assert B.coco_map([found(), found()], TRUTH, 2) == {"map50": 0.0, "map": 0.0}


def heatmap_for(boxes: list[list[float]], classes: int, size: int, stride: int) -> np.ndarray:
    """The CenterNet output that encodes ``boxes`` exactly (logit +10 at centres, -10 else)."""
    grid = size // stride
    out = np.zeros((1, classes + 4, grid, grid), dtype=np.float32)
    out[0, :classes] = -10
    for cls, x1, y1, x2, y2 in boxes:
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        ix, iy = int(cx), int(cy)
        out[0, int(cls), iy, ix] = 10
        out[0, classes:, iy, ix] = [
            cx - ix,
            cy - iy,
            np.log((x2 - x1) / stride),
            np.log((y2 - y1) / stride),
        ]
    return out


def test_decode_recovers_the_encoded_boxes():
    boxes = [[0, 8, 8, 24, 30], [2, 40, 20, 60, 36]]
    out = heatmap_for(boxes, classes=3, size=64, stride=4)
    (got,) = B.decode(out, 3, (64, 64))
    assert len(got) == 2
    order = np.argsort(got[:, 5])
    np.testing.assert_allclose(got[order, :4], np.asarray(boxes)[:, 1:], atol=1e-3)
    assert got[order, 5].tolist() == [0, 2] and (got[:, 4] > 0.99).all()


def test_centroid_outputs_get_the_typical_box():
    out = np.full((1, 2, 8, 8), -10, dtype=np.float32)
    out[0, 1, 3, 5] = 10  # cell (x 5, y 3) at stride 8: centre (44, 28)
    (got,) = B.decode(out, 2, (64, 64), typical_box=(10, 20))
    np.testing.assert_allclose(got[0], [39, 18, 49, 38, got[0, 4], 1], atol=1e-4)


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [30, 30, 40, 40]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 0, 1, 0])
    assert sorted(B.nms(boxes, scores, labels, 0.5).tolist()) == [0, 2, 3]


def test_layout_is_read_from_the_channels():
    assert B.layout(14, 10) == "boxes" and B.layout(10, 10) == "centroids"
    with pytest.raises(ValueError, match="classes \\+ 4"):
        B.layout(12, 10)


def test_agreement_counts_shared_objects_per_image_over_the_larger_count():
    """Hand-worked: image 1, two boxes each side, one the same (IoU 1, same class), one moved
    off (IoU 0): 1/2. Image 2: the same box with another class: 0/1. Image 3: nothing on either
    side: 1. Image 4: one box against none: 0/1. Mean (0.5 + 0 + 1 + 0) / 4 = 0.375; boxes under
    the score threshold do not count."""
    a = [
        found([0, 0, 10, 10, 0.9, 0], [20, 20, 30, 30, 0.9, 1]),
        found([0, 0, 10, 10, 0.9, 0]),
        found([0, 0, 10, 10, 0.1, 0]),  # under the threshold: as if absent
        found([0, 0, 10, 10, 0.9, 2]),
    ]
    b = [
        found([0, 0, 10, 10, 0.8, 0], [50, 50, 60, 60, 0.8, 1]),
        found([0, 0, 10, 10, 0.8, 1]),
        found(),
        found(),
    ]
    assert B.agreement(a, b, threshold=0.3) == pytest.approx(0.375)
    assert B.agreement(a, a, threshold=0.3) == 1.0
