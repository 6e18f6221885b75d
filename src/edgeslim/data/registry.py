"""Data source name -> loader. A source string is ``scheme`` or ``scheme:argument``."""

from __future__ import annotations

from collections.abc import Callable

from edgeslim.data.bundle import Dataset
from edgeslim.errors import DataError

Loader = Callable[..., Dataset]
SOURCES: dict[str, Loader] = {}


def register_source(scheme: str) -> Callable[[Loader], Loader]:
    def add(loader: Loader) -> Loader:
        SOURCES[scheme] = loader
        return loader

    return add


def load(
    source: str = "digits",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Dataset:
    """Load a data source such as ``digits``, ``fashion-mnist:DIR`` or ``npz:FILE``."""
    scheme, _, arg = source.partition(":")
    if scheme not in SOURCES:
        known = ", ".join(f"{s}" for s in sorted(SOURCES))
        raise DataError(f"unknown data source {source!r}; expected one of: {known}")
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise DataError(f"{label} must be between 0 and 1, got {value}")
    if val_fraction + test_fraction >= 1:
        raise DataError("val_fraction + test_fraction must leave samples for training")
    return SOURCES[scheme](arg, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
