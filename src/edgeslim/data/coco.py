"""COCO JSON: ``coco:FILE.json`` with ``images`` (id, file_name), ``annotations`` (image_id,
category_id, bbox [x, y, width, height] in pixels) and ``categories`` (id, name); image files
are found beside the JSON file or in its ``images/`` folder. Category ids may be any integers:
they are numbered 0.. in the order of ``categories``. Crowd annotations are skipped."""

from __future__ import annotations

import json
import math
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
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError

LONGEST_FILE_NAME = 1000  # characters; longer is no file a system can open


def is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite JSON number (true and false are not numbers; 1e999 and 10**400 are not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_file_name(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= LONGEST_FILE_NAME and "\0" not in value


# What each key must hold, and how to say so: one table checks every value read from the file.
EXPECTED = {
    "id": (is_id, "an integer"),
    "image_id": (is_id, "an integer (an image's id)"),
    "category_id": (is_id, "an integer (a category's id)"),
    "file_name": (is_file_name, f"a file name (a string of 1 to {LONGEST_FILE_NAME} characters)"),
    "name": (lambda v: isinstance(v, str), "a string"),
    "width": (lambda v: is_id(v) and v > 0, "a positive integer (pixels)"),
    "height": (lambda v: is_id(v) and v > 0, "a positive integer (pixels)"),
    "bbox": (
        lambda v: isinstance(v, list) and len(v) == 4 and all(is_number(n) for n in v),
        "[x, y, width, height]: four finite numbers",
    ),
}


def field(entry: dict, key: str, where: str, *, required: bool = True):
    """``entry[key]`` checked against ``EXPECTED``; None if absent and not required."""
    if key not in entry:
        if required:
            raise DataError(f"{where}: missing {key!r}")
        return None
    value = entry[key]
    check, expected = EXPECTED[key]
    if not check(value):
        raise DataError(f"{where}: {key!r} should be {expected}, got {shown(value)}")
    return value


def entries(doc: dict, key: str, path: Path) -> list[dict]:
    """``doc[key]``: a list of JSON objects."""
    items = doc.get(key)
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list under {key!r}, got {shown(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(f"{path}: {key}[{i}] should be an object {{...}}, got {shown(item)}")
    return items


def unique_id(entry: dict, seen: dict, where: str) -> int:
    """``entry["id"]``, refusing one already ``seen`` (one of the two would be lost)."""
    value = field(entry, "id", where)
    if value in seen:
        raise DataError(f"{where}: id {shown(value)} is used twice")
    return value


def category_names(doc: dict, path: Path) -> dict[int, str]:
    """``{category id: name}`` in the file's order, the order that numbers the classes 0.."""
    names: dict[int, str] = {}
    for i, category in enumerate(entries(doc, "categories", path)):
        where = f"{path}: categories[{i}]"
        category_id = unique_id(category, names, where)
        names[category_id] = field(category, "name", where, required=False) or str(category_id)
    return names


def image_files(doc: dict, path: Path) -> dict[int, Path]:
    """``{image id: its file}`` in the file's order."""
    files: dict[int, Path] = {}
    for i, image in enumerate(entries(doc, "images", path)):
        where = f"{path}: images[{i}]"
        image_id = unique_id(image, files, where)
        for key in ("width", "height"):
            field(image, key, where, required=False)
        files[image_id] = image_path(path.parent, field(image, "file_name", where))
    return files


def read_document(path: Path) -> dict:
    """The JSON object in ``path``; anything else is one DataError naming the file."""
    text = read_text(path, "COCO annotation file")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise DataError(f"{path}: not a readable JSON file ({reason(exc)})") from exc
    if not isinstance(doc, dict):
        raise DataError(
            f'{path}: expected a JSON object {{"images": [...], ...}}, got {shown(doc)}'
        )
    return doc


def image_path(root: Path, name: str) -> Path:
    """Beside the JSON file, else in its images/ folder (a missing file is named as beside)."""
    inside = root / "images" / name
    return inside if is_file(inside) and not is_file(root / name) else root / name


@register_source("coco")
def load_coco(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    path = Path(arg)
    if not arg or not is_file(path):
        raise DataError(f"{path}: COCO annotation file not found (coco:FILE.json)")
    doc = read_document(path)
    annotations = entries(doc, "annotations", path)
    names_by_id = category_names(doc, path)
    categories = {category_id: n for n, category_id in enumerate(names_by_id)}
    names = tuple(names_by_id.values())
    images = image_files(doc, path)
    order = list(images)
    x = read_images([images[i] for i in order], str(path))
    height, width = x.shape[2:]
    boxes: dict = {i: [] for i in order}
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if ann.get("iscrowd"):
            continue
        image_id, category = field(ann, "image_id", where), field(ann, "category_id", where)
        if image_id not in images:
            raise DataError(f"{where}: image_id {shown(image_id)} is not in images")
        if category not in categories:
            raise DataError(
                f"{where}: unknown category_id {shown(category)} "
                f"(categories: {shown(list(categories))})"
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
