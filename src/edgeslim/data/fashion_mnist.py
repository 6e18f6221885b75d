"""Fashion-MNIST from its four standard IDX files (Debian: dataset-fashion-mnist)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from edgeslim.data.bundle import Dataset, build, carved, random_splits
from edgeslim.data.registry import register_source
from edgeslim.errors import DataError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or plain): magic, dims, then big-endian data."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header promises {dims} ({expected} bytes) but {len(raw) - header} follow"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


@register_source("fashion-mnist")
def load_fashion_mnist(
    arg: str, *, seed: int, val_fraction: float, test_fraction: float
) -> Dataset:
    folder = Path(arg) if arg else DEFAULT_DIR
    if not folder.is_dir():
        raise DataError(
            f"{folder}: Fashion-MNIST folder not found "
            "(install Debian's dataset-fashion-mnist or pass fashion-mnist:DIR)"
        )
    loaded = {}
    for split, (images, labels) in FILES.items():
        x = read_idx(folder / images).astype(np.float32) / 255.0
        y = read_idx(folder / labels)
        if x.ndim != 3 or len(x) != len(y):
            raise DataError(f"{folder / images}: expected (N, 28, 28) images matching the labels")
        loaded[split] = (x, y)
    x_train, y_train = loaded["train"]
    # The official test split stays intact; validation is carved from the training files.
    idx = random_splits(len(y_train), seed, {"val": val_fraction}, origin=str(folder))
    arrays = {
        "train": (x_train[idx["train"]], y_train[idx["train"]]),
        "val": (x_train[idx["val"]], y_train[idx["val"]]),
        "test": loaded["test"],
    }
    return build(
        arrays,
        origin=str(folder),
        name="fashion-mnist",
        source=f"fashion-mnist:{folder}",
        seed=seed,
        num_classes=10,
        class_names=CLASS_NAMES,
        validation=carved(val_fraction, seed, "the training files"),
    )
