"""Data source name -> loader. A source string is ``scheme`` or ``scheme:argument``.

A source that names a file or folder (``imagefolder:shapes``) is read from an absolute path: a
relative one is taken from the experiment file's folder (``with_folder``), else from the current
folder, so the same experiment reads the same data from wherever it is run, and every message
names the absolute path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgeslim.data.bundle import Dataset
from edgeslim.errors import DataError

Loader = Callable[..., Dataset]
SOURCES: dict[str, Loader] = {}
# the sources whose argument is a path, and what comes before the path in the argument
# (``scenes:fashion-mnist:DIR``); an empty path keeps the source's own default
PATH_AFTER = {
    "imagefolder": "",
    "npz": "",
    "coco": "",
    "yolo": "",
    "fashion-mnist": "",
    "scenes": "fashion-mnist:",
}


def absolute(path: str | Path, folder: str | Path | None = None) -> Path:
    """``path`` made absolute: a relative path is taken from ``folder`` (an experiment file's
    folder), else from the current folder; ``~`` is expanded, symbolic links are kept."""
    try:
        path = Path(path).expanduser()
    except RuntimeError:  # ~name of no known user: taken as written
        path = Path(path)
    if not path.is_absolute():
        path = Path(folder if folder is not None else Path.cwd()) / path
    return Path(os.path.abspath(path))


def with_folder(source: str, folder: str | Path | None = None) -> str:
    """``source`` with its path (if it names one) made absolute against ``folder``:
    ``imagefolder:shapes`` -> ``imagefolder:/home/me/proj/shapes``."""
    scheme, colon, arg = source.partition(":")
    prefix = PATH_AFTER.get(scheme)
    if prefix is None or not arg.startswith(prefix) or not arg[len(prefix) :]:
        return source
    return f"{scheme}{colon}{prefix}{absolute(arg[len(prefix) :], folder)}"


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
    """Load a data source such as ``digits``, ``fashion-mnist:DIR`` or ``npz:FILE`` (a relative
    path from the current folder)."""
    source = with_folder(source)
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
