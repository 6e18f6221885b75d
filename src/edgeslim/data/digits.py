"""scikit-learn's bundled 8x8 digits: the built-in default, needs no download."""

from __future__ import annotations

from edgeslim.data.bundle import Dataset, build, carved, random_splits
from edgeslim.data.registry import register_source


@register_source("digits")
def load_digits(arg: str, *, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits as sk_load_digits  # scikit-learn

    bunch = sk_load_digits()
    x = bunch.images.astype("float32") / 16.0  # pixel values are 0..16
    y = bunch.target
    idx = random_splits(len(y), seed, {"test": test_fraction, "val": val_fraction}, origin="digits")
    arrays = {split: (x[i], y[i]) for split, i in idx.items()}
    return build(
        arrays,
        origin="digits",
        name="digits",
        source="digits",
        seed=seed,
        num_classes=10,
        validation=carved(val_fraction, seed, "the 1,797 digits"),
    )
