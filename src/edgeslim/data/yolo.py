"""YOLO txt folders: ``DIR/images/NAME.png`` with ``DIR/labels/NAME.txt`` lines
``class cx cy w h`` (fractions of the image), class names in ``DIR/classes.txt`` (one per
line) or ``DIR/data.yaml`` (``names:``). An image without a label file has no objects (YOLO's
convention); a label file without its image is an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset
from edgeslim.data.detection import check_box, read_images, split_files
from edgeslim.data.imagefolder import IMAGE_SUFFIXES
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError


def class_names(root: Path) -> tuple[str, ...]:
    listed = root / "classes.txt"
    if listed.is_file():
        return tuple(line.strip() for line in listed.read_text().splitlines() if line.strip())
    described = root / "data.yaml"
    if described.is_file():
        import yaml

        names = (yaml.safe_load(described.read_text()) or {}).get("names")
        if isinstance(names, dict):  # {0: person, 1: car}
            names = [names[k] for k in sorted(names)]
        if isinstance(names, list) and names:
            return tuple(str(n) for n in names)
        raise DataError(f"{described}: expected names: [class, ...] or {{0: class, ...}}")
    raise DataError(f"{root}: no classes.txt or data.yaml naming the classes")


def read_labels(path: Path, width: int, height: int, classes: int) -> np.ndarray:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) != 5:
            raise DataError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
        try:
            cls, cx, cy, w, h = (float(v) for v in fields)
        except ValueError as exc:
            raise DataError(f"{where}: not numbers: {line.strip()!r}") from exc
        if not all(0 <= v <= 1 for v in (cx, cy, w, h)):
            raise DataError(
                f"{where}: cx cy w h must be fractions of the image (0..1), got {fields[1:]}"
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
