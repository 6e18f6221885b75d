"""Arrays from a ``.npz`` file: ``x`` and ``y``, or explicit ``x_train``/``y_train``/... splits."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset, build, carved, random_splits
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError


@register_source("npz")
def load_npz(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    path = Path(arg)
    if not arg or not path.is_file():
        raise DataError(f"{path}: npz file not found (use npz:PATH)")
    try:
        with np.load(path, allow_pickle=False) as archive:  # never unpickle object arrays
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable npz file of numeric arrays ({exc})") from exc
    num_classes = int(arrays.pop("num_classes")) if "num_classes" in arrays else None
    origin = str(path)
    validation = "given in the file (x_val, y_val)"
    if "x_train" in arrays:
        split_arrays = {}
        for split in ("train", "val", "test"):
            if f"x_{split}" in arrays:
                if f"y_{split}" not in arrays:
                    raise DataError(f"{path}: has x_{split} but no y_{split}")
                split_arrays[split] = (arrays[f"x_{split}"], arrays[f"y_{split}"])
        if "test" not in split_arrays:
            raise DataError(f"{path}: has x_train but no x_test/y_test")
        if "val" not in split_arrays:  # carve validation from train, deterministically
            x, y = split_arrays["train"]
            idx = random_splits(len(y), seed, {"val": val_fraction}, origin=origin)
            split_arrays["train"] = (x[idx["train"]], y[idx["train"]])
            split_arrays["val"] = (x[idx["val"]], y[idx["val"]])
            validation = carved(val_fraction, seed, "the file's x_train")
    elif "x" in arrays and "y" in arrays:
        x, y = arrays["x"], arrays["y"]
        if len(x) != len(y):
            raise DataError(f"{path}: x has {len(x)} samples but y has {len(y)} labels")
        idx = random_splits(
            len(y), seed, {"test": test_fraction, "val": val_fraction}, origin=origin
        )
        split_arrays = {split: (x[i], y[i]) for split, i in idx.items()}
        validation = carved(val_fraction, seed, "the file's x")
    else:
        raise DataError(
            f"{path}: expected arrays 'x' and 'y' (or x_train/y_train/x_test/y_test), "
            f"found {sorted(arrays) or 'none'}"
        )
    return build(
        split_arrays,
        origin=origin,
        name=path.stem,
        source=f"npz:{path}",
        seed=seed,
        num_classes=num_classes,
        validation=validation,
    )
