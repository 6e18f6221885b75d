"""Datasets: ``load("digits")``, ``load("fashion-mnist:DIR")``, ``load("npz:FILE")``,
``load("imagefolder:DIR")``; detection: ``load("scenes")`` (built in, synthetic),
``load("coco:FILE.json")``, ``load("yolo:DIR")``."""

from edgeslim.data import coco, digits, fashion_mnist, imagefolder, npz, scenes, yolo  # noqa: F401  (registration)
from edgeslim.data.bundle import Dataset, DataSpec, Split
from edgeslim.data.registry import SOURCES, load, register_source

__all__ = ["SOURCES", "DataSpec", "Dataset", "Split", "load", "register_source"]
