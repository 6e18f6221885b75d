"""Class-per-folder images (``root/<class>/<image>``), read with Pillow."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset, build, carved, random_splits
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


@contextmanager
def pillow_errors(path: Path) -> Iterator[None]:
    """Whatever Pillow raises on ``path`` (not an image, truncated, too many pixels) becomes one
    DataError naming the file. An image over Pillow's pixel limit is refused, never decoded."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(
                f"{path}: refused as a possible decompression bomb ({exc}); resize the image"
            ) from exc
        except UnidentifiedImageError as exc:  # empty, text, or a format Pillow lacks
            raise DataError(f"{path}: not a readable image (no image format Pillow knows)") from exc
        except Exception as exc:  # Pillow's decoders raise many types on hostile bytes
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise DataError(f"{path}: not a readable image ({text[:160]})") from exc


def image_mode(path: Path) -> str:
    """``L`` for a grey image, else ``RGB``: the mode every image of a set is read in."""
    from PIL import Image  # Pillow: the worker imports edgeslim.data without it

    with pillow_errors(path), Image.open(path) as image:
        return "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"


def read_image(path: Path, mode: str) -> np.ndarray:
    from PIL import Image  # Pillow: the worker imports edgeslim.data without it

    with pillow_errors(path), Image.open(path) as image:
        pixels = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


@register_source("imagefolder")
def load_imagefolder(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    root = Path(arg)
    if not arg or not root.is_dir():
        raise DataError(f"{root}: image folder not found (use imagefolder:DIR)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"{root}: expected one sub-folder per class, found {len(classes)}")
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((root / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    mode = image_mode(files[0][0])
    images, labels, shape = [], [], None
    for path, label in files:
        pixels = read_image(path, mode)
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise DataError(
                f"{path}: image is {pixels.shape[2]}x{pixels.shape[1]} but earlier images are "
                f"{shape[2]}x{shape[1]}; resize all images to one size"
            )
        images.append(pixels)
        labels.append(label)
    x, y = np.stack(images), np.asarray(labels)
    idx = random_splits(
        len(y), seed, {"test": test_fraction, "val": val_fraction}, origin=str(root)
    )
    arrays = {split: (x[i], y[i]) for split, i in idx.items()}
    return build(
        arrays,
        origin=str(root),
        name=root.name,
        source=f"imagefolder:{root}",
        seed=seed,
        num_classes=len(classes),
        class_names=tuple(classes),
        validation=carved(val_fraction, seed, "the folder's images"),
    )
