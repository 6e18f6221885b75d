"""The Dataset bundle: normalised splits plus the spec a model is built for.

Arrays are numpy only, so the measuring process (which imports no torch) can use them too.
Validation lives here, once, for every source: each loader hands over raw arrays and a label
saying where they came from, and gets back a checked, normalised, deterministically split bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeslim.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataSpec:
    """What a model must accept and produce; recorded with every exported artifact."""

    input_shape: tuple[int, ...]  # one sample, no batch dimension: (C, H, W) or (features,)
    num_classes: int
    mean: tuple[float, ...] = ()  # per channel, subtracted before the model sees the data
    std: tuple[float, ...] = ()
    name: str = ""
    class_names: tuple[str, ...] = ()
    task: str = "classification"  # a name in edgeslim.tasks: what the targets and outputs mean
    typical_box: tuple[float, ...] = ()  # detection: median (width, height) of training boxes

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "mean": list(self.mean),
            "std": list(self.std),
            "name": self.name,
            "task": self.task,
            **({"typical_box": list(self.typical_box)} if self.typical_box else {}),
        }

    @classmethod
    def from_dict(cls, value: dict) -> DataSpec:
        """The inverse of ``to_dict`` (what the measuring worker and an exported file get)."""
        return cls(
            input_shape=tuple(value["input_shape"]),
            num_classes=int(value["num_classes"]),
            mean=tuple(value.get("mean", ())),
            std=tuple(value.get("std", ())),
            name=value.get("name", ""),
            task=value.get("task", "classification"),
            typical_box=tuple(value.get("typical_box", ())),
        )


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, normalised, (N, *input_shape)
    y: np.ndarray  # the task's targets: int64 labels (N,), or boxes (N, K, 5) for detection

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    spec: DataSpec
    train: Split
    val: Split
    test: Split
    source: str = ""
    seed: int = 0
    notes: dict = field(default_factory=dict)

    @property
    def validation(self) -> str:
        """Where the validation split came from, as the loader said (every choice reads it)."""
        return str(self.notes.get("validation") or "as the source gave it")

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)


# fewer validation samples than this cannot rank candidates a point apart (a point of accuracy
# is one sample in a hundred); a choice made on them is flagged, not made silently
FEW_VALIDATION = 100


def carved(fraction: float, seed: int, whole: str) -> str:
    """What a record says of a validation split drawn from ``whole`` (seeded, disjoint)."""
    return f"carved from {whole}: {fraction:.0%} drawn at seed {seed}, disjoint from the others"


def validation_warnings(data: Dataset) -> list[str]:
    """Why the validation split is too weak to rank candidates on: too few samples, or (for a
    classifier) classes it never shows. Empty when it will do."""
    warnings = []
    n = len(data.val)
    if n < FEW_VALIDATION:
        warnings.append(
            f"the validation split has {n} samples, fewer than {FEW_VALIDATION}: too few to "
            "rank candidates a point of accuracy apart; give more data or a larger val_fraction"
        )
    if data.spec.task == "classification":
        missing = sorted(set(range(data.spec.num_classes)) - set(np.unique(data.val.y).tolist()))
        if missing:
            names = data.spec.class_names
            shown = [names[c] if c < len(names) else str(c) for c in missing]
            warnings.append(
                f"the validation split has no sample of class {', '.join(shown)}: a choice "
                "made on it never sees that class"
            )
    return warnings


def check_arrays(x: np.ndarray, y: np.ndarray, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Reject what would silently train or measure garbage; return float32/int64 copies."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2:
        raise DataError(f"{origin}: samples must have shape (N, ...), got {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{origin}: labels must be one-dimensional, got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{origin}: {len(x)} samples but {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{origin}: no samples")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{origin}: samples must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"{origin}: {bad} samples contain NaN or Inf values")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{origin}: labels must be whole numbers (class indices)")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{origin}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{origin}: labels must be >= 0, found {int(y.min())}")
    return x, y


def as_images(x: np.ndarray) -> np.ndarray:
    """(N, H, W) grayscale becomes (N, 1, H, W); other ranks are left as they are."""
    return x[:, None] if x.ndim == 3 else x


def random_splits(
    n: int, seed: int, fractions: dict[str, float], origin: str
) -> dict[str, np.ndarray]:
    """Deterministic index split: the same seed always gives the same index sets.

    ``fractions`` names the held-out splits (e.g. ``{"test": 0.2, "val": 0.1}``); the rest
    is ``train``.
    """
    order = np.random.default_rng(seed).permutation(n)
    parts, start = {}, 0
    for name, fraction in fractions.items():
        count = round(n * fraction)
        parts[name] = order[start : start + count]
        start += count
    parts["train"] = order[start:]
    for name, idx in parts.items():
        if len(idx) == 0:
            raise DataError(
                f"{origin}: {n} samples leave the {name} split empty; "
                "give more samples or change the split fractions"
            )
    return parts


def standardise(
    samples: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every split normalised with the train split's per-channel mean and std (one statistic
    over all features for feature vectors, which keeps the spec small)."""
    x_train = samples["train"]
    if x_train.ndim > 2:
        axes = (0, *range(2, x_train.ndim))
        mean, std = x_train.mean(axis=axes), x_train.std(axis=axes)
    else:
        mean, std = np.array([x_train.mean()]), np.array([x_train.std()])
    std = np.where(std < 1e-8, 1.0, std)
    shape = (1, -1, *([1] * (x_train.ndim - 2))) if x_train.ndim > 2 else (1, 1)
    normalised = {
        split: ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)
        for split, x in samples.items()
    }
    return normalised, mean, std


def build(
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    origin: str,
    name: str,
    source: str,
    seed: int,
    num_classes: int | None = None,
    class_names: tuple[str, ...] = (),
    validation: str = "",
) -> Dataset:
    """Check every split, normalise with the train split's statistics, and bundle;
    ``validation`` says where the validation split came from (see ``carved``)."""
    checked = {}
    for split in SPLITS:
        if split not in arrays:
            raise DataError(f"{origin}: the {split} split is missing")
        x, y = check_arrays(*arrays[split], origin=f"{origin} ({split} split)")
        checked[split] = (as_images(x), y)
    shapes = {split: x.shape[1:] for split, (x, _) in checked.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{origin}: splits have different sample shapes {shapes}")
    if 0 in shapes["train"]:
        raise DataError(f"{origin}: samples of shape {shapes['train']} hold no values")
    seen = max(int(y.max()) for _, y in checked.values()) + 1
    if num_classes is None:
        num_classes = seen
    elif seen > num_classes:
        raise DataError(f"{origin}: label {seen - 1} is out of range for {num_classes} classes")
    if num_classes < 2:
        raise DataError(f"{origin}: need at least 2 classes, found {num_classes}")
    normalised, mean, std = standardise({s: x for s, (x, _) in checked.items()})
    splits = {s: Split(normalised[s], y) for s, (_, y) in checked.items()}
    spec = DataSpec(
        input_shape=tuple(int(d) for d in checked["train"][0].shape[1:]),
        num_classes=int(num_classes),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        name=name,
        class_names=class_names,
    )
    notes = {"validation": validation} if validation else {}
    return Dataset(spec=spec, source=source, seed=seed, notes=notes, **splits)


def calibration_set(data: Dataset, samples: int, seed: int) -> np.ndarray:
    """``samples`` training images drawn at ``seed``, in split order: what a post-training
    quantizer calibrates on (never the validation or test images)."""
    order = np.random.default_rng(seed).permutation(len(data.train))[:samples]
    return data.train.x[np.sort(order)]
