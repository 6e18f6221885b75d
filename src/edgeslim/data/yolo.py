"""YOLO txt folders: ``DIR/images/NAME.png`` with ``DIR/labels/NAME.txt`` lines
``class cx cy w h`` (fractions of the image), class names in ``DIR/classes.txt`` (one per
line) or ``DIR/data.yaml`` (``names:``). An image without a label file has no objects (YOLO's
convention); a label file without its image is an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset
from edgeslim.data.detection import (
    check_box,
    is_file,
    read_images,
    read_text,
    reason,
    shown,
    split_files,
)
from edgeslim.data.imagefolder import IMAGE_SUFFIXES
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError


def listed_names(path: Path) -> tuple[str, ...]:
    """``classes.txt``: one class name a line, blank lines skipped."""
    lines = read_text(path, "class list").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def described_names(path: Path) -> tuple[str, ...]:
    """``data.yaml``'s ``names:``, a list ``[person, car]`` or a map ``{0: person, 1: car}``."""
    import yaml  # PyYAML: the worker imports edgeslim.data without it

    expected = "names: [class, ...] or names: {0: class, ...}"
    try:
        doc = yaml.safe_load(read_text(path, "data.yaml"))
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: lists nested deep
        raise DataError(f"{path}: not readable YAML ({reason(exc)})") from exc
    names = doc.get("names") if isinstance(doc, dict) else doc
    if isinstance(names, dict):
        if {type(k) for k in names} != {int} or set(names) != set(range(len(names))):
            raise DataError(f"{path}: names: keys should be 0, 1, 2..., got {shown(list(names))}")
        names = [names[k] for k in range(len(names))]
    if not isinstance(doc, dict) or not isinstance(names, list) or not names:
        raise DataError(f"{path}: expected {expected}, got {shown(names)}")
    for i, name in enumerate(names):
        if isinstance(name, bool) or not isinstance(name, (str, int, float)):
            raise DataError(
                f"{path}: names[{i}] should be a class name (quote it), got {shown(name)}"
            )
    return tuple(str(n) for n in names)


def class_names(root: Path) -> tuple[str, ...]:
    if is_file(root / "classes.txt"):
        return listed_names(root / "classes.txt")
    if is_file(root / "data.yaml"):
        return described_names(root / "data.yaml")
    raise DataError(f"{root}: no classes.txt or data.yaml naming the classes")


def read_labels(path: Path, width: int, height: int, classes: int) -> np.ndarray:
    rows = []
    for number, line in enumerate(read_text(path, "label file").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) != 5:
            raise DataError(f"{where}: expected 'class cx cy w h', got {shown(line.strip())}")
        try:
            cls, cx, cy, w, h = (float(v) for v in fields)
        except ValueError as exc:
            raise DataError(f"{where}: not numbers: {shown(line.strip())}") from exc
        if not all(0 <= v <= 1 for v in (cx, cy, w, h)):
            raise DataError(
                f"{where}: cx cy w h must be fractions of the image (0..1), got {shown(fields[1:])}"
            )
        box = (
            cls,
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        )
        rows.append(check_box(box, width, height, classes, where))
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


@register_source("yolo")
def load_yolo(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    root = Path(arg)
    if not arg or not (root / "images").is_dir():
        raise DataError(f"{root}: expected a YOLO folder with images/ and labels/ (yolo:DIR)")
    names = class_names(root)
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    labels_dir = root / "labels"
    stems = {p.stem for p in images}
    for label in sorted(labels_dir.glob("*.txt")) if labels_dir.is_dir() else []:
        if label.stem not in stems:
            raise DataError(f"{label}: its image file images/{label.stem}.* is missing")
    x = read_images(images, str(root))
    height, width = x.shape[2:]
    boxes = []
    for image in images:
        label = labels_dir / f"{image.stem}.txt"
        has = label.is_file()
        boxes.append(read_labels(label, width, height, len(names)) if has else np.zeros((0, 5)))
    return split_files(
        x,
        boxes,
        names,
        origin=str(root),
        source=f"yolo:{root}",
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
