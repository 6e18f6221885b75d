"""What runtime metric families get inside the worker. Imports numpy and the runtime only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edgeslim.data.bundle import DataSpec
from edgeslim.figures import VALIDATION
from edgeslim.runtimes import Session, fixed_batch, runtime


@dataclass
class RuntimeContext:
    model_path: str
    x: np.ndarray  # test samples, normalised float32
    y: np.ndarray  # the task's targets
    settings: dict  # MeasureSettings as a dict
    # the validation split: quality measured on it too, as what choices read (None: not sent,
    # as for a latency table's variants)
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None
    spec: DataSpec | None = None  # the data's spec (its task); None: a classifier's
    activations_path: str | None = None  # the model with layer inputs exposed as outputs
    activation_names: list[str] | None = field(default_factory=list)  # None: not measurable
    info: dict = field(default_factory=dict)  # how things were measured, filled by families
    loaded: Session | None = None  # the session the worker's first-run check loaded

    def session(self, path: str | None = None) -> Session:
        """The model (or ``path``) loaded on the configured runtime and thread count."""
        return runtime(self.settings["runtime"]).load(
            path or self.model_path, self.settings["threads"]
        )

    def batches(
        self, session: Session, x: np.ndarray, batch_size: int = 256
    ) -> Iterator[tuple[np.ndarray, int]]:
        """(batch, real sample count); a fixed-batch model gets zero padding at the end."""
        fixed = fixed_batch(session)
        size = fixed or batch_size
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            real = len(chunk)
            if fixed and real < fixed:
                pad = np.zeros((fixed - real, *x.shape[1:]), dtype=x.dtype)
                chunk = np.concatenate([chunk, pad])
            yield chunk, real

    def outputs(self, session: Session, x: np.ndarray) -> np.ndarray:
        """The model's first output for every sample of ``x``, batched."""
        name = session.input_name
        return np.concatenate(
            [session.run(None, {name: batch})[0][:real] for batch, real in self.batches(session, x)]
        )

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The splits a quality metric is measured on, by the prefix of its figures: the test
        split (reported) and the validation split when sent (``val_``, chosen on)."""
        splits = {"": (self.x, self.y)}
        if self.val_x is not None and self.val_y is not None:
            splits[VALIDATION] = (self.val_x, self.val_y)
        return splits

    def counted(self, prefix: str, family: str, samples: int) -> None:
        """Say how many samples ``family`` measured on a split of ``splits``: ``val_samples``
        for validation, whichever family measured it (the report reads it), else
        ``{family}_samples``."""
        self.info[f"{prefix}samples" if prefix else f"{family}_samples"] = samples
