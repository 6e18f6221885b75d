"""Detection data: images with boxes, checked once for every source (COCO, YOLO, scenes).

Targets travel as one padded array per split, ``(images, K, 5)`` float32 rows
``[class, x1, y1, x2, y2]`` in input pixels with unused rows marked by class -1, so batches
are sliced like classification labels and the measuring worker reads them from one ``.npz``.
"""

from __future__ import annotations

import reprlib
from pathlib import Path

import numpy as np

from edgeslim.data.bundle import (
    SPLITS,
    Dataset,
    DataSpec,
    Split,
    as_images,
    carved,
    random_splits,
    standardise,
)
from edgeslim.data.imagefolder import image_mode, read_image
from edgeslim.errors import DataError

EDGE_TOLERANCE = 1.0  # pixels a box may pass the image's edge by (rounding); then clipped
SHOWN_CHARS = 80  # a value from a user's file is cut to this in a message


def shown(value) -> str:
    """``value`` as Python writes it, cut short: a message never grows with a hostile file."""
    text = reprlib.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def reason(exc: BaseException) -> str:
    """A parser's complaint on one short line (YAML's span several, with a caret)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else str(exc)
    return " ".join(text.split())[:160]


def is_file(path: Path) -> bool:
    """``path.is_file()``, False where the system refuses the name (too long, say)."""
    try:
        return path.is_file()
    except OSError:
        return False


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file (a leading BOM allowed); unreadable or not UTF-8 is one DataError."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: the {what} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from exc


def check_box(
    box: tuple[float, float, float, float, float],
    width: int,
    height: int,
    classes: int,
    where: str,
) -> tuple[float, float, float, float, float]:
    """``(class, x1, y1, x2, y2)`` in pixels, within the image and with a known class."""
    cls, x1, y1, x2, y2 = box
    if not all(np.isfinite(v) for v in box):
        raise DataError(f"{where}: the box {list(box)} holds NaN or Inf")
    if cls != int(cls) or not 0 <= cls < classes:
        raise DataError(f"{where}: unknown class id {cls:g} (the classes are 0..{classes - 1})")
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: the box {[x1, y1, x2, y2]} has no area (x2 <= x1 or y2 <= y1)")
    if (
        x1 < -EDGE_TOLERANCE
        or y1 < -EDGE_TOLERANCE
        or x2 > width + EDGE_TOLERANCE
        or y2 > height + EDGE_TOLERANCE
    ):
        raise DataError(
            f"{where}: the box {[round(v, 2) for v in (x1, y1, x2, y2)]} lies outside the "
            f"{width}x{height} image"
        )
    return (
        float(cls),
        max(0.0, x1),
        max(0.0, y1),
        min(float(width), x2),
        min(float(height), y2),
    )


def pad_boxes(boxes: list[np.ndarray]) -> np.ndarray:
    """Per-image ``(n, 5)`` arrays -> one ``(images, K, 5)`` array, padding rows class -1."""
    most = max([len(b) for b in boxes] + [1])
    padded = np.zeros((len(boxes), most, 5), dtype=np.float32)
    padded[:, :, 0] = -1
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
    return padded


def build_detection(
    arrays: dict[str, tuple[np.ndarray, list[np.ndarray]]],
    *,
    origin: str,
    name: str,
    source: str,
    seed: int,
    class_names: tuple[str, ...],
    notes: dict | None = None,
) -> Dataset:
    """Images (N, C, H, W) or (N, H, W) in [0, 1] and their boxes per split -> a Dataset.

    Loaders check each box where they can name its file (``check_box``); this checks what holds
    across the splits (one image size, boxes inside it, known classes, some boxes to learn).
    """
    classes = len(class_names)
    if classes < 1:
        raise DataError(f"{origin}: no classes")
    images, targets = {}, {}
    for split in SPLITS:
        if split not in arrays:
            raise DataError(f"{origin}: the {split} split is missing")
        x, boxes = arrays[split]
        x = as_images(np.asarray(x, dtype=np.float32))
        if len(x) == 0:
            raise DataError(f"{origin}: the {split} split has no images")
        if len(x) != len(boxes):
            raise DataError(f"{origin} ({split} split): {len(x)} images but {len(boxes)} box lists")
        height, width = x.shape[2:]
        for i, b in enumerate(boxes):
            for row in np.asarray(b, dtype=np.float64).reshape(-1, 5):
                check_box(tuple(row), width, height, classes, f"{origin} ({split} image {i})")
        images[split], targets[split] = x, pad_boxes([np.asarray(b).reshape(-1, 5) for b in boxes])
    shapes = {split: x.shape[1:] for split, x in images.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{origin}: splits have different image shapes {shapes}")
    train_boxes = targets["train"][targets["train"][:, :, 0] >= 0]
    if len(train_boxes) == 0:
        raise DataError(f"{origin}: the train split has no boxes to learn from")
    normalised, mean, std = standardise(images)
    sizes = train_boxes[:, 3:5] - train_boxes[:, 1:3]
    spec = DataSpec(
        input_shape=tuple(int(d) for d in images["train"].shape[1:]),
        num_classes=classes,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        name=name,
        class_names=class_names,
        task="detection",
        typical_box=tuple(float(v) for v in np.median(sizes, axis=0)),
    )
    splits = {s: Split(normalised[s], targets[s]) for s in SPLITS}
    return Dataset(spec=spec, source=source, seed=seed, notes=notes or {}, **splits)


def read_images(paths: list, origin: str) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1], all of one size and colour mode (that of the first); a
    missing or unreadable file is an error that names it."""
    if not paths:
        raise DataError(f"{origin}: no images")
    for path in paths:
        if not is_file(path):
            raise DataError(f"{path}: image file not found (named by {origin})")
    mode = image_mode(paths[0])
    images = []
    for path in paths:
        pixels = read_image(path, mode)
        if images and pixels.shape != images[0].shape:
            raise DataError(
                f"{path}: image is {pixels.shape[2]}x{pixels.shape[1]} but earlier images are "
                f"{images[0].shape[2]}x{images[0].shape[1]}; resize all images (and their "
                "boxes) to one size"
            )
        images.append(pixels)
    return np.stack(images)


def split_files(
    x: np.ndarray,
    boxes: list[np.ndarray],
    class_names: tuple[str, ...],
    *,
    origin: str,
    source: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> Dataset:
    """Labelled images from files -> deterministic train/val/test splits -> a Dataset."""
    fractions = {"test": test_fraction, "val": val_fraction}
    idx = random_splits(len(x), seed, fractions, origin=origin)
    arrays = {split: (x[i], [boxes[j] for j in i]) for split, i in idx.items()}
    name = source.partition(":")[2].rstrip("/").rpartition("/")[2] or source
    return build_detection(
        arrays,
        origin=origin,
        name=name,
        source=source,
        seed=seed,
        class_names=class_names,
        notes={"validation": carved(val_fraction, seed, "the labelled images")},
    )


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), x1 y1 x2 y2."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
