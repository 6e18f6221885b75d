"""Built-in detection scenes: real images pasted on a larger canvas. Synthetic, and needs no
download.

``scenes`` (or ``scenes:digits``) places scikit-learn's 8x8 digits, scaled 2-4x, on a 64x64
canvas; ``scenes:fashion-mnist`` (``scenes:fashion-mnist:DIR``) places Fashion-MNIST items,
scaled 0.6-1.2x, on a 96x96 canvas. Each object's box is the tight box of its visible pixels and
its class is the item's label. A tenth of the scenes are empty and a tenth crowded (5-8
objects); the rest hold 1-4. The items of the train, validation and test scenes are disjoint
(no test object was seen in training), and the same seed always gives the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset, carved, random_splits
from edgeslim.data.detection import build_detection, iou_matrix
from edgeslim.data.fashion_mnist import CLASS_NAMES, DEFAULT_DIR, FILES, read_idx
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError

VISIBLE = 0.15  # a pixel belongs to the object's box above this intensity
MAX_OVERLAP = 0.2  # IoU two objects of one scene may share at most


@dataclass(frozen=True)
class Recipe:
    canvas: int
    scenes: int
    scale: tuple[float, float]
    class_names: tuple[str, ...]


def digit_items() -> tuple[np.ndarray, np.ndarray, Recipe]:
    from sklearn.datasets import load_digits  # scikit-learn

    bunch = load_digits()
    names = tuple(str(d) for d in range(10))
    return bunch.images.astype(np.float32) / 16.0, bunch.target, Recipe(64, 1500, (2, 4), names)


def fashion_items(folder: str) -> tuple[np.ndarray, np.ndarray, Recipe]:
    root = Path(folder) if folder else DEFAULT_DIR
    if not root.is_dir():
        raise DataError(
            f"{root}: Fashion-MNIST folder not found (install Debian's dataset-fashion-mnist "
            "or pass scenes:fashion-mnist:DIR)"
        )
    images, labels = FILES["test"]  # 10,000 items are plenty for 3,000 scenes
    x = read_idx(root / images).astype(np.float32) / 255.0
    return x, read_idx(root / labels), Recipe(96, 3000, (0.6, 1.2), CLASS_NAMES)


def resize(item: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image  # Pillow: the worker imports edgeslim.data without it

    size = max(2, round(item.shape[1] * factor)), max(2, round(item.shape[0] * factor))
    return np.asarray(Image.fromarray(item, mode="F").resize(size, Image.BILINEAR))


def overlap(box: np.ndarray, others: list[np.ndarray]) -> float:
    if not others:
        return 0.0
    return float(iou_matrix(box[None, 1:], np.stack(others)[:, 1:]).max())


def scene(
    items: np.ndarray, labels: np.ndarray, recipe: Recipe, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One canvas and its ``(n, 5)`` boxes."""
    size = recipe.canvas
    canvas = rng.uniform(0, 0.08, (size, size)).astype(np.float32)  # sensor-like noise
    kind = rng.random()
    count = 0 if kind < 0.1 else int(rng.integers(5, 9)) if kind > 0.9 else int(rng.integers(1, 5))
    boxes: list[np.ndarray] = []
    for _ in range(count):
        for _attempt in range(20):
            pick = int(rng.integers(len(items)))
            patch = resize(items[pick], rng.uniform(*recipe.scale))
            h, w = patch.shape
            top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            rows, cols = np.nonzero(patch > VISIBLE)
            if not len(rows):
                continue
            box = np.array(
                [
                    labels[pick],
                    left + cols.min(),
                    top + rows.min(),
                    left + cols.max() + 1,
                    top + rows.max() + 1,
                ],
                dtype=np.float32,
            )
            if overlap(box, boxes) > MAX_OVERLAP:
                continue
            region = canvas[top : top + h, left : left + w]
            np.maximum(region, np.clip(patch, 0, 1), out=region)
            boxes.append(box)
            break
    return canvas, np.stack(boxes) if boxes else np.zeros((0, 5), np.float32)


@register_source("scenes")
def load_scenes(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    kind, _, folder = arg.partition(":")
    if kind in ("", "digits"):
        items, labels, recipe = digit_items()
    elif kind == "fashion-mnist":
        items, labels, recipe = fashion_items(folder)
    else:
        raise DataError(
            f"scenes:{arg}: expected scenes, scenes:digits or scenes:fashion-mnist[:DIR]"
        )
    fractions = {"test": test_fraction, "val": val_fraction}
    pools = random_splits(len(labels), seed, fractions, origin=f"scenes:{arg} items")
    counts = {s: round(recipe.scenes * f) for s, f in fractions.items()}
    counts["train"] = recipe.scenes - sum(counts.values())
    arrays = {}
    for number, (split, pool) in enumerate(sorted(pools.items())):
        rng = np.random.default_rng([seed, number])
        made = [scene(items[pool], labels[pool], recipe, rng) for _ in range(counts[split])]
        arrays[split] = (np.stack([m[0] for m in made]), [m[1] for m in made])
    name = f"scenes-{kind or 'digits'}"
    return build_detection(
        arrays,
        origin=f"scenes:{arg}",
        name=name,
        source=f"scenes:{arg}" if arg else "scenes",
        seed=seed,
        class_names=recipe.class_names,
        notes={
            "synthetic": True,
            "canvas": recipe.canvas,
            "items": kind or "digits",
            "validation": carved(val_fraction, seed, "the items the scenes are drawn from"),
        },
    )
