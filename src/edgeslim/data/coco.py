"""COCO JSON: ``coco:FILE.json`` with ``images`` (id, file_name), ``annotations`` (image_id,
category_id, bbox [x, y, width, height] in pixels) and ``categories`` (id, name); image files
are found beside the JSON file or in its ``images/`` folder. Category ids may be any integers:
they are numbered 0.. in the order of ``categories``. Crowd annotations are skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset
from edgeslim.data.detection import check_box, read_images, split_files
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError


def image_path(root: Path, name: str) -> Path:
    """Beside the JSON file, else in its images/ folder (a missing file is named as beside)."""
    inside = root / "images" / name
    return inside if inside.is_file() and not (root / name).is_file() else root / name


def field(entry: dict, key: str, where: str):
    if key not in entry:
        raise DataError(f"{where}: missing {key!r}")
    return entry[key]


@register_source("coco")
def load_coco(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    path = Path(arg)
    if not arg or not path.is_file():
        raise DataError(f"{path}: COCO annotation file not found (coco:FILE.json)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{path}: expected a list under {key!r}")
    categories = {}
    for i, cat in enumerate(doc["categories"]):
        categories[field(cat, "id", f"{path}: categories[{i}]")] = len(categories)
    names = tuple(str(c.get("name", c["id"])) for c in doc["categories"])
    images = {}
    for i, image in enumerate(doc["images"]):
        where = f"{path}: images[{i}]"
        images[field(image, "id", where)] = image_path(
            path.parent, field(image, "file_name", where)
        )
    order = list(images)
    x = read_images([images[i] for i in order], str(path))
    height, width = x.shape[2:]
    boxes: dict = {i: [] for i in order}
    for i, ann in enumerate(doc["annotations"]):
        where = f"{path}: annotations[{i}]"
        if ann.get("iscrowd"):
            continue
        image_id, category = field(ann, "image_id", where), field(ann, "category_id", where)
        if image_id not in images:
            raise DataError(f"{where}: image_id {image_id} is not in images")
        if category not in categories:
            raise DataError(
                f"{where}: unknown category_id {category} (categories: {list(categories)})"
            )
        bx, by, bw, bh = (float(v) for v in field(ann, "bbox", where))
        where = f"{where} ({images[image_id].name})"
        box = (categories[category], bx, by, bx + bw, by + bh)
        boxes[image_id].append(check_box(box, width, height, len(names), where))
    per_image = [np.asarray(boxes[i], dtype=np.float32).reshape(-1, 5) for i in order]
    return split_files(
        x,
        per_image,
        names,
        origin=str(path),
        source=f"coco:{path}",
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
