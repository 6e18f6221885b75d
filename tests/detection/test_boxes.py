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


# --- more hand-worked cases: edges, ties, thresholds, the clips that keep figures finite -------


def test_sigmoid_on_known_logits_and_far_out_stays_positive_and_finite():
    assert B.sigmoid(np.array([0.0, np.log(3), -np.log(3)])) == pytest.approx([0.5, 0.75, 0.25])
    with np.errstate(over="raise"):  # clipped at -60 first: exp(60) does not overflow
        far = B.sigmoid(np.array([-1000.0, 1000.0]))
    assert far[0] == pytest.approx(1 / (1 + np.exp(60)), rel=1e-9, abs=0)  # 8.76e-27
    assert far[1] == 1.0


def test_peaks_are_3x3_maxima_at_or_above_the_floor_including_at_the_edges():
    logits = np.full((2, 4, 5), -5.0)
    logits[0, 0, 2] = 0.0  # exactly the floor: kept
    logits[0, 3, 0], logits[0, 3, 4] = 4.0, 9.0  # corners of the last row, apart: both peaks
    logits[0, 2, 2], logits[0, 3, 2] = 5.0, 9.0  # the bottom one wins: the top one is not a peak
    logits[0, 0, 4], logits[0, 1, 4] = 1.0, 2.0  # last column, a taller one under it
    logits[1, 0, 0], logits[1, 1, 0] = 7.0, 3.0  # first row beats the one below it
    logits[1, 1, 3], logits[1, 1, 4] = 3.0, 6.0  # in a row: the right one (last column) wins
    logits[1, 2, 1], logits[1, 3, 2] = 2.0, 2.5  # diagonal neighbours: only the taller
    logits[1, 3, 0] = 8.0  # far from (0, 0) in the same column: both stay peaks
    found = sorted(zip(*(a.tolist() for a in B.peaks(logits, 0.0)), strict=True))
    assert found == [
        (0, 0, 2),
        (0, 1, 4),
        (0, 3, 0),
        (0, 3, 2),
        (0, 3, 4),
        (1, 0, 0),
        (1, 1, 4),
        (1, 3, 0),
        (1, 3, 2),
    ]
    assert [len(a) for a in B.peaks(logits, 10.0)] == [0, 0, 0]


def test_nms_keeps_boxes_whose_iou_is_exactly_the_threshold_and_suppresses_a_pair():
    half = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], float)  # IoU 50 / 100 = 0.5 exactly
    assert B.nms(half, np.array([0.9, 0.8]), np.array([0, 0]), 0.5).tolist() == [0, 1]
    pair = np.array([[0, 0, 10, 10], [1, 0, 10, 10]], float)  # IoU 0.9
    assert B.nms(pair, np.array([0.6, 0.8]), np.array([0, 0]), 0.5).tolist() == [1]


def test_nms_keeps_the_suppression_of_earlier_winners():
    """A (0.9) suppresses C (0.7); D (0.8) lies apart and must not lift it."""
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 10, 10]], float)
    labels = np.zeros(3, int)
    assert B.nms(boxes, np.array([0.9, 0.8, 0.7]), labels, 0.5).tolist() == [0, 1]


def test_nms_orders_tied_scores_by_their_input_order():
    """20 boxes apart, scores 0.5, 0.9, 0.5, 0.9, ...: the 0.9s in order, then the 0.5s."""
    boxes = np.array([[20 * i, 0, 20 * i + 10, 10] for i in range(20)], float)
    scores = np.array([0.5, 0.9] * 10)
    kept = B.nms(boxes, scores, np.zeros(20, int), 0.5).tolist()
    assert kept == [*range(1, 20, 2), *range(0, 20, 2)]


def centroids_in_a_row(logits: list[float]) -> np.ndarray:
    """A centroid map one row high, a peak every other cell (logits given), -10 between."""
    out = np.full((1, 1, 1, 2 * len(logits)), -10.0, dtype=np.float32)
    out[0, 0, 0, ::2] = logits
    return out


def test_decode_ranks_ties_in_reading_order_and_keeps_the_best_max_detections():
    out = centroids_in_a_row([10.0, 5.0] * 10)  # 20 peaks on a 40-cell row, stride 8
    (got,) = B.decode(out, 1, (8, 320), typical_box=(4, 4))
    x1 = got[:, 0].tolist()
    # peaks at cells 0, 2, 4, ...: centre 8 * cell + 4, box 4 wide; logit 10 before logit 5
    assert x1 == [8 * c + 2 for c in (*range(0, 40, 4), *range(2, 40, 4))]
    assert got.dtype == np.float32
    (best,) = B.decode(out, 1, (8, 320), typical_box=(4, 4), max_detections=3)
    assert best[:, 0].tolist() == [2.0, 34.0, 66.0]  # cells 0, 4 and 8: the first 10s


def test_decode_keeps_scores_from_min_score_up_only():
    """min_score 0.01 is the logit log(0.01 / 0.99) = -4.595; -4.60 (0.00995) is under it."""
    out = np.full((1, 1, 3, 5), -20.0, dtype=np.float32)
    out[0, 0, 1, 1], out[0, 0, 1, 3] = -4.60, -4.59
    (got,) = B.decode(out, 1, (6, 10))
    assert got[:, 4] == pytest.approx([1 / (1 + np.exp(4.59))], rel=1e-5)


def test_decode_on_a_wide_input_uses_each_axis_s_stride():
    """Input 32 x 64 on an 8 x 8 grid: 4 pixels a row, 8 a column. A box at cell (x 3, y 5),
    offset (0.5, 0.5), 2 x 2 cells: centre (28, 22), 16 x 8 pixels."""
    out = np.zeros((1, 5, 8, 8), dtype=np.float32)
    out[0, 0] = -10
    out[0, :, 5, 3] = [10, 0.5, 0.5, np.log(2), np.log(2)]
    (got,) = B.decode(out, 1, (32, 64))
    np.testing.assert_allclose(got[0, :4], [20, 18, 36, 26], atol=1e-4)


def test_decode_clips_boxes_to_the_image_on_every_side():
    """Input 32 high, 64 wide, 8 x 8 cells. One box past the top-left corner, one past the
    bottom-right, one wholly below the image (offset 10 rows down): each side is cut at the
    image's own edge (x at 64, y at 32)."""
    out = np.zeros((1, 5, 8, 8), dtype=np.float32)
    out[0, 0] = -10
    out[0, :, 0, 0] = [10, 0.5, 0.5, np.log(4), np.log(4)]  # centre (4, 2), 32 x 16 pixels
    out[0, :, 7, 7] = [9, 0.5, 0.5, np.log(4), np.log(4)]  # centre (60, 30)
    out[0, :, 3, 3] = [8, 0.5, 10.0, 0.0, 0.0]  # centre (28, 54): one cell, 8 x 4 pixels
    (got,) = B.decode(out, 1, (32, 64))
    np.testing.assert_allclose(
        got[:, :4], [[0, 0, 20, 10], [44, 22, 64, 32], [24, 32, 32, 32]], atol=1e-4
    )


@pytest.mark.parametrize(
    ("log_size", "cells", "at"),
    [
        (8.5, np.exp(8), 2000),  # mid-way along 4000 one-pixel cells: 2981 wide, not 4915
        (-9.0, np.exp(-8), 0),  # near 0, where float32 resolves 3.4e-4 pixels
    ],
)
def test_decode_holds_box_sizes_to_e_to_the_8_cells_either_way(log_size, cells, at):
    """The log of a box's size is held to [-8, 8] before exp."""
    wide = np.zeros((1, 5, 1, 4000), dtype=np.float32)  # one row of 4000 one-pixel cells
    wide[0, 0] = -10
    wide[0, :, 0, at] = [10, 0.5, 0.5, log_size, 0.0]
    (got,) = B.decode(wide, 1, (1, 4000))
    assert got[0, 2] - got[0, 0] == pytest.approx(cells, rel=1e-3)
    tall = np.zeros((1, 5, 4000, 1), dtype=np.float32)
    tall[0, 0] = -10
    tall[0, :, at, 0] = [10, 0.5, 0.5, 0.0, log_size]
    (got,) = B.decode(tall, 1, (4000, 1))
    assert got[0, 3] - got[0, 1] == pytest.approx(cells, rel=1e-3)


def test_centroids_without_a_typical_box_get_one_cell():
    out = np.full((1, 1, 4, 4), -10.0, dtype=np.float32)
    out[0, 0, 1, 2] = 10  # stride (8, 16) on a 32 x 64 input: centre (40, 12)
    (got,) = B.decode(out, 1, (32, 64))
    np.testing.assert_allclose(got[0, :4], [32, 8, 48, 16], atol=1e-4)


def test_a_match_at_exactly_the_iou_threshold_counts():
    truth = targets([[0, 0, 0, 10, 10]])
    half = [found([0, 0, 10, 5, 0.5, 0])]  # IoU 0.5 exactly, score exactly the threshold
    assert B.precision_recall(half, truth, threshold=0.5) == (1.0, 1.0)
    assert B.agreement(half, [truths(truth)], threshold=0.5) == 1.0


def truths(t: np.ndarray) -> np.ndarray:
    """One image's truth rows as detections (score 1)."""
    rows = t[0][t[0][:, 0] >= 0]
    return np.concatenate([rows[:, 1:5], np.ones((len(rows), 1)), rows[:, :1]], axis=1)


def test_precision_recall_use_the_iou_given_and_count_no_truth_as_full_recall():
    truth = targets([[0, 0, 0, 10, 10]])
    shifted = [found([4, 0, 14, 10, 0.9, 0])]  # IoU 60 / 140 = 0.43
    assert B.precision_recall(shifted, truth, 0.5) == (0.0, 0.0)
    assert B.precision_recall(shifted, truth, 0.5, iou=0.4) == (1.0, 1.0)
    nothing_true = targets([[-1, 0, 0, 0, 0]])
    assert B.precision_recall(shifted, nothing_true, 0.5) == (0.0, 1.0)
    assert B.precision_recall([found()], nothing_true, 0.5) == (1.0, 1.0)


def test_one_list_per_image_or_a_value_error():
    two_images = [found([0, 0, 10, 10, 0.9, 0]), found()]
    with pytest.raises(ValueError):
        B.precision_recall(two_images[:1], TRUTH, 0.5)
    with pytest.raises(ValueError):
        B.agreement(two_images, two_images[:1], threshold=0.5)


def test_agreement_counts_boxes_at_the_threshold_on_both_sides():
    a = [found([0, 0, 10, 10, 0.3, 0])]
    b = [found([0, 0, 10, 10, 0.9, 0])]
    assert B.agreement(a, b, threshold=0.3) == 1.0
    assert B.agreement(b, a, threshold=0.3) == 1.0


def test_coco_map_ranks_detections_by_their_score_not_their_order():
    """A miss (0.3) listed before the hit (0.9): ranked by score, AP is 1; taken in the order
    given (or ranked by class), the first is a false positive and AP at 0.5 falls to 0.5."""
    truth = targets([[0, 10, 10, 20, 20]])
    detections = [found([40, 40, 50, 50, 0.3, 0], [10, 10, 20, 20, 0.9, 0])]
    assert B.coco_map(detections, truth, 1) == pytest.approx({"map50": 1.0, "map": 1.0})


def test_coco_map_reads_areas_as_width_times_height_within_coco_s_all_range():
    """COCO counts truth boxes of area 0 to 1e10 ('all'). A 1e4 x 1e4 box far from the origin
    (area 1e8) counts; a 2e5 x 1e5 box (area 2e10) is ignored, which leaves nothing to find."""
    far = [[0, 1e6, 1e6, 1e6 + 1e4, 1e6 + 1e4]]
    hit = [found([1e6, 1e6, 1e6 + 1e4, 1e6 + 1e4, 0.9, 0])]
    assert B.coco_map(hit, targets(far), 1) == pytest.approx({"map50": 1.0, "map": 1.0})
    huge = [[0, 0, 0, 2e5, 1e5]]
    assert B.coco_map([found([0, 0, 2e5, 1e5, 0.9, 0])], targets(huge), 1) == {
        "map50": 0.0,
        "map": 0.0,
    }


def test_coco_map_prints_nothing(capsys):
    detections = [found([10, 10, 20, 20, 0.9, 0], [30, 30, 50, 40, 0.8, 1]), found()]
    B.coco_map(detections, TRUTH, 2)
    assert capsys.readouterr().out == ""
