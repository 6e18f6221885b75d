"""Boxes from a detector's output, and how good they are. numpy only (and pycocotools for mAP):
this runs in the measuring worker, on a board too, and is timed there as part of end-to-end
latency.

A detector's output is one tensor laid out on a grid ``stride`` pixels apart:
- ``boxes`` (CenterNet-style): ``(batch, classes + 4, H / stride, W / stride)``: one heatmap
  logit per class, then the centre's offset within its cell (x, y, in cells) and the log of the
  box's width and height (in cells);
- ``centroids`` (FOMO-style): ``(batch, classes, H / stride, W / stride)``: heatmap logits
  only; a found centroid gets a box of the data's typical size (FOMO reports centroids, and
  mAP needs boxes: the typical size makes its boxes comparable, and says so in the record).

Targets are ``(images, K, 5)`` float32 rows ``[class, x1, y1, x2, y2]`` in input pixels, with
unused rows marked by class -1.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from edgeslim.data.detection import iou_matrix

MAX_DETECTIONS = 100  # per image, as COCO's evaluation counts them
MIN_SCORE = 0.01  # kept for mAP (the ranking matters, so low-scoring boxes count too)
NMS_IOU = 0.5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def layout(channels: int, classes: int) -> str:
    """``boxes`` or ``centroids``, from the output's channel count."""
    if channels == classes + 4:
        return "boxes"
    if channels == classes:
        return "centroids"
    raise ValueError(
        f"a detector outputs (batch, classes + 4, h, w) or (batch, classes, h, w); "
        f"got {channels} channels for {classes} classes"
    )


NEIGHBOURS = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def peaks(logits: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class, row, column) of cells at least ``floor`` that are the maximum of their 3x3
    neighbourhood (CenterNet's NMS). Only cells above the floor are compared: on a trained
    detector that is a few cells, which keeps decoding cheap on a small CPU."""
    cls, ys, xs = np.nonzero(logits >= floor)
    if len(cls):
        h, w = logits.shape[1:]
        # clipping an index to the edge lands on the cell itself or a neighbour: the same
        # maximum as padding with -inf, without copying the map
        rows = np.clip(ys[:, None] + NEIGHBOURS[:, 0], 0, h - 1)
        cols = np.clip(xs[:, None] + NEIGHBOURS[:, 1], 0, w - 1)
        top = logits[cls, ys, xs] >= logits[cls[:, None], rows, cols].max(axis=1)
        cls, ys, xs = cls[top], ys[top], xs[top]
    return cls, ys, xs


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy per-class non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    if len(order) < 2:
        return order
    overlap = iou_matrix(boxes[order], boxes[order])
    overlap[labels[order][:, None] != labels[order][None, :]] = 0
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if not suppressed[i]:
            kept.append(i)
            suppressed |= overlap[i] > iou
    return order[np.asarray(kept, dtype=np.int64)]


def decode(
    output: np.ndarray,
    classes: int,
    input_hw: tuple[int, int],
    typical_box: tuple[float, float] = (),
    min_score: float = MIN_SCORE,
    max_detections: int = MAX_DETECTIONS,
) -> list[np.ndarray]:
    """One ``(n, 6)`` array per image: ``[x1, y1, x2, y2, score, class]``, best first."""
    kind = layout(output.shape[1], classes)
    h, w = output.shape[2:]
    stride_y, stride_x = input_hw[0] / h, input_hw[1] / w
    results = []
    floor = float(np.log(min_score / (1 - min_score)))  # the logit of min_score
    for sample in output.astype(np.float32, copy=False):
        cls, ys, xs = peaks(sample[:classes], floor)
        scores = sigmoid(sample[cls, ys, xs])
        top = np.argsort(-scores, kind="stable")[:max_detections]  # CenterNet's top 100
        cls, ys, xs, scores = cls[top], ys[top], xs[top], scores[top]
        if kind == "boxes":
            offset_x, offset_y, log_w, log_h = sample[classes : classes + 4, ys, xs]
            cx, cy = (xs + offset_x) * stride_x, (ys + offset_y) * stride_y
            bw = np.exp(np.clip(log_w, -8, 8)) * stride_x
            bh = np.exp(np.clip(log_h, -8, 8)) * stride_y
        else:
            cx, cy = (xs + 0.5) * stride_x, (ys + 0.5) * stride_y
            bw = np.full(len(xs), typical_box[0] if typical_box else stride_x)
            bh = np.full(len(xs), typical_box[1] if typical_box else stride_y)
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        boxes = np.clip(boxes, 0, [input_hw[1], input_hw[0], input_hw[1], input_hw[0]])
        keep = nms(boxes, scores, cls, NMS_IOU)
        results.append(
            np.concatenate(
                [boxes[keep], scores[keep, None], cls[keep, None].astype(np.float32)], axis=1
            ).astype(np.float32)
        )
    return results


def truths(targets: np.ndarray) -> list[np.ndarray]:
    """One ``(n, 5)`` array ``[class, x1, y1, x2, y2]`` per image, padding rows dropped."""
    return [t[t[:, 0] >= 0] for t in targets]


def match(found: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> int:
    """Greedy one-to-one matches of ``found`` (best first) to ``truth`` of the same class."""
    if len(found) == 0 or len(truth) == 0:
        return 0
    overlap = iou_matrix(found[:, :4], truth[:, 1:5])
    overlap[found[:, 5][:, None] != truth[:, 0][None, :]] = 0
    used = np.zeros(len(truth), dtype=bool)
    matched = 0
    for row in overlap:
        row = np.where(used, 0, row)
        best = int(row.argmax())
        if row[best] >= iou:
            used[best] = True
            matched += 1
    return matched


def precision_recall(
    detections: list[np.ndarray], targets: np.ndarray, threshold: float, iou: float = 0.5
) -> tuple[float, float]:
    """At one score threshold: matched / found and matched / true, over all images."""
    found = matched = true = 0
    for dets, truth in zip(detections, truths(targets), strict=True):
        kept = dets[dets[:, 4] >= threshold]
        found += len(kept)
        true += len(truth)
        matched += match(kept, truth, iou)
    return (matched / found if found else 1.0), (matched / true if true else 1.0)


def agreement(a: list[np.ndarray], b: list[np.ndarray], threshold: float) -> float:
    """How often two detectors find the same objects: per image, boxes matched (IoU >= 0.5,
    same class) over the larger count (1 where both find nothing), averaged."""
    shares = []
    for x, y in zip(a, b, strict=True):
        x, y = x[x[:, 4] >= threshold], y[y[:, 4] >= threshold]
        if not len(x) and not len(y):
            shares.append(1.0)
            continue
        as_truth = np.concatenate([y[:, 5:6], y[:, :4]], axis=1)
        shares.append(match(x, as_truth) / max(len(x), len(y)))
    return float(np.mean(shares))


def coco_map(detections: list[np.ndarray], targets: np.ndarray, classes: int) -> dict[str, float]:
    """mAP@0.5 and mAP@0.5:0.95 by pycocotools' COCOeval (the reference implementation)."""
    from pycocotools.coco import COCO  # pycocotools
    from pycocotools.cocoeval import COCOeval

    images, annotations = [], []
    for i, truth in enumerate(truths(targets)):
        images.append({"id": i})
        for cls, x1, y1, x2, y2 in truth.tolist():
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(cls),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    rows = [
        [i, d[0], d[1], d[2] - d[0], d[3] - d[1], d[4], d[5]]
        for i, dets in enumerate(detections)
        for d in dets.tolist()
    ]
    if not rows or not annotations:
        return {"map50": 0.0, "map": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # COCO narrates every step
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in range(classes)],
        }
        truth.createIndex()
        found = truth.loadRes(np.asarray(rows, dtype=np.float64))
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # stats: [0] mAP@0.5:0.95, [1] mAP@0.5 (all areas, 100 detections); -1 where undefined
    return {
        "map50": max(0.0, float(evaluation.stats[1])),
        "map": max(0.0, float(evaluation.stats[0])),
    }
