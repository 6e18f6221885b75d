"""Latency tables: what each prunable layer of a model costs on one runtime and device.

A table is built from measurements, not from MACs: pruned variants of the model (random
per-layer ratios, and uniform ones) are exported and timed at batch 1 on the runtime by a
probe (``edgeslim.measure.probe.LatencyProbe``: the torch-free worker, here or on a board).
A small linear model is fitted to them with non-negative least squares: a fixed per-call cost,
a cost per MAC for each conv/linear layer (a depthwise 3x3 and a 1x1 conv run at very different
speeds on the same runtime), and a cost per activation element written. Its error is measured
on variants it was not fitted to (k-fold), and kept with the table.

Tables are cached in the user's cache folder per (runtime and version, device, threads,
layer signature); an unreadable or partial file is rebuilt, and a build that is interrupted
resumes from the variants already timed (they are written after each batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from scipy.optimize import nnls
from torch import nn

from edgeslim.compress import layers as L
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError, MeasurementError
from edgeslim.files import write_atomic
from edgeslim.progress import progress_bar

TABLE_VERSION = 1
VARIANTS = 32  # pruned variants timed per table (besides the baseline)
BATCH = 8  # variants per worker: what an interrupted build can lose
MAX_RATIO = 0.85
FOLDS = 4


class OutOfReach(ConfigError):
    """The latency target cannot be met with the widths allowed (a finer multiple may)."""


class Timed(Protocol):
    p50_ms: float | None
    error: str | None


class Probe(Protocol):
    """What times models on the target (``edgeslim.measure.probe.LatencyProbe``)."""

    runtime: str

    def key(self) -> str: ...

    def __call__(self, models: list[nn.Module]) -> list[Timed]: ...


Work = dict[str, list[float]]  # layer -> [MACs, output elements]; "" -> every other op's output


def layer_work(model: nn.Module, example: torch.Tensor) -> Work:
    """Each conv/linear layer's MACs and output elements in one forward pass at batch 1."""
    work: Work = {}
    hooks = []

    def record(name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            out = output.numel()
            if isinstance(module, nn.Linear):
                macs = out * module.in_features
            else:
                kernel = int(np.prod(module.kernel_size))
                macs = out * (module.in_channels // module.groups) * kernel
            previous = work.get(name, [0.0, 0.0])
            work[name] = [previous[0] + macs, previous[1] + out]

        return hook

    for name, module in L.weighted_layers(model).items():
        hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for hook in hooks:
            hook.remove()
    return work


@dataclass
class Predictor:
    """Predicted batch-1 latency: ``fixed_ms`` + sum over layers of MACs x ``ms_per_mac[layer]``
    + output elements x ``ms_per_element``."""

    fixed_ms: float
    ms_per_mac: dict[str, float]
    ms_per_element: float

    def breakdown(self, work: Work) -> dict[str, float]:
        """Predicted ms of each layer (its MACs and what it writes)."""
        return {
            name: macs * self.ms_per_mac.get(name, 0.0) + out * self.ms_per_element
            for name, (macs, out) in work.items()
        }

    def predict(self, work: Work) -> float:
        return self.fixed_ms + sum(self.breakdown(work).values())


def features(work: Work, layers: list[str]) -> np.ndarray:
    macs = [work.get(name, [0.0, 0.0])[0] for name in layers]
    return np.array([1.0, *macs, sum(out for _, out in work.values())])


def fit(works: list[Work], p50s: list[float], layers: list[str]) -> Predictor:
    x = np.stack([features(w, layers) for w in works])
    scale = np.maximum(x.max(axis=0), 1e-12)  # columns of one order: NNLS converges
    coef, _ = nnls(x / scale, np.asarray(p50s), maxiter=50 * x.shape[1])
    coef = coef / scale
    return Predictor(
        float(coef[0]), dict(zip(layers, map(float, coef[1:-1]), strict=True)), float(coef[-1])
    )


def held_out_errors(works: list[Work], p50s: list[float], layers: list[str]) -> list[float]:
    """Relative error of each variant's prediction by a predictor fitted without it (k-fold)."""
    errors = [0.0] * len(works)
    order = list(range(len(works)))
    random.Random(0).shuffle(order)
    for fold in range(FOLDS):
        test = set(order[fold::FOLDS])
        train = [i for i in order if i not in test]
        model = fit([works[i] for i in train], [p50s[i] for i in train], layers)
        for i in test:
            errors[i] = model.predict(works[i]) / p50s[i] - 1
    return errors


@dataclass
class LatencyTable:
    key: str  # runtime and version, device, threads
    signature: str  # the model's layers and the prunable ones
    layers: list[str]
    samples: list[dict] = field(default_factory=list)  # {ratios, work, p50_ms}
    failed: list[dict] = field(default_factory=list)  # {ratios, error}
    predictor: Predictor | None = None
    complete: bool = False

    @property
    def baseline_ms(self) -> float:
        return self.samples[0]["p50_ms"]

    @property
    def smallest_ms(self) -> float:
        return min(sample["p50_ms"] for sample in self.samples)

    def refit(self) -> None:
        self.predictor = fit(
            [s["work"] for s in self.samples], [s["p50_ms"] for s in self.samples], self.layers
        )

    def errors(self) -> list[float]:
        """Held-out relative errors of the predictor, one per variant (k-fold)."""
        return held_out_errors(
            [s["work"] for s in self.samples], [s["p50_ms"] for s in self.samples], self.layers
        )

    def summary(self) -> dict:
        errors = np.abs(self.errors())
        return {
            "key": self.key,
            "variants": len(self.samples),
            "failed": len(self.failed),
            "baseline_ms": round(self.baseline_ms, 5),
            "fixed_ms": round(self.predictor.fixed_ms, 5),
            "held_out_within_10pct": round(float(np.mean(errors <= 0.10)), 3),
            "held_out_median_error": round(float(np.median(errors)), 4),
        }

    def to_dict(self) -> dict:
        return {"version": TABLE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict) -> LatencyTable:
        if raw.get("version") != TABLE_VERSION:
            raise ValueError(f"table version {raw.get('version')}, not {TABLE_VERSION}")
        predictor = Predictor(**raw["predictor"]) if raw.get("predictor") else None
        table = cls(
            raw["key"],
            raw["signature"],
            list(raw["layers"]),
            list(raw["samples"]),
            list(raw["failed"]),
            predictor,
            bool(raw["complete"]),
        )
        for sample in table.samples:  # a truncated or edited file must not pass for a table
            if not (sample["p50_ms"] > 0 and isinstance(sample["work"], dict)):
                raise ValueError("a sample without a positive p50 or its layers' work")
        return table


def signature(model: nn.Module, data: Dataset, prunable: list[str], how: dict) -> str:
    """The layers' kinds and shapes, the input shape, which layers may be pruned and how:
    a table describes exactly this."""
    layers = [
        [name, type(m).__name__, list(m.weight.shape)]
        + [
            list(getattr(m, a, ())) if isinstance(getattr(m, a, ()), tuple) else getattr(m, a)
            for a in ("stride", "padding", "dilation", "groups")
            if hasattr(m, a)
        ]
        for name, m in L.weighted_layers(model).items()
    ]
    text = json.dumps(
        [TABLE_VERSION, layers, list(data.spec.input_shape), prunable, how], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_folder() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "edgeslim" / "latency"


def cache_file(key: str, sig: str, folder: Path | None = None) -> Path:
    name = hashlib.sha256(f"{key}|{sig}".encode()).hexdigest()[:20]
    return (folder or cache_folder()) / f"{name}.json"


def read_cached(path: Path, key: str, sig: str, say: Callable[[str], None]) -> LatencyTable | None:
    """The cached table, or None when there is none; a damaged one is said and rebuilt."""
    if not path.exists():
        return None
    try:
        table = LatencyTable.from_dict(json.loads(path.read_text()))
        if table.key != key or table.signature != sig:
            raise ValueError("it describes another runtime, device or model")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        say(f"latency table {path} is damaged ({exc}); measuring it again")
        return None
    return table


STEPS = (1, 2, 4, 8, 16)  # channel multiples tried for the widths the runtime's kernels favour
STEP_RATIOS = (0.3, 0.6)


def favoured_step(
    pruned_at: Callable[[float, int], nn.Module],
    example: torch.Tensor,
    probe: Probe,
    steps: tuple[int, ...] = STEPS,
) -> tuple[int, dict[int, float]]:
    """The channel multiple that the runtime runs fastest per MAC, found by measurement: the
    model pruned uniformly (``STEP_RATIOS``) with its widths rounded to each of ``steps``, all
    timed. ONNX Runtime's x86 convolutions, for one, fall back to a slower kernel at channel
    counts off a multiple of 8 (resnet8: 6.2 M MACs in 0.245 ms at free widths, 9.4 M in 0.217 ms
    at 16..64). The smallest step within 5% of the best ms per MAC wins."""
    models = [pruned_at(ratio, step) for step in steps for ratio in STEP_RATIOS]
    timed = probe(models)
    per_mac: dict[int, float] = {}
    for index, step in enumerate(steps):
        chunk = range(index * len(STEP_RATIOS), (index + 1) * len(STEP_RATIOS))
        if any(timed[i].p50_ms is None for i in chunk):
            continue
        ms = sum(timed[i].p50_ms for i in chunk)
        macs = sum(sum(m for m, _ in layer_work(models[i], example).values()) for i in chunk)
        per_mac[step] = ms / macs * 1e6
    if not per_mac:
        raise MeasurementError(f"no pruned variant could be timed: {timed[0].error}")
    best = min(per_mac.values())
    return min(s for s, v in per_mac.items() if v <= best * 1.05), per_mac


def sample_ratios(prunable: list[str], count: int, seed: int) -> list[dict[str, float]]:
    """Half uniform (every layer at one ratio), half per-layer ratios drawn at random."""
    rng = random.Random(seed)
    plans = []
    for index in range(count):
        if index % 2 == 0:
            ratio = round(rng.uniform(0.05, MAX_RATIO), 3)
            plans.append(dict.fromkeys(prunable, ratio))
        else:
            plans.append({name: round(rng.uniform(0.0, MAX_RATIO), 3) for name in prunable})
    return plans


def build(
    model: nn.Module,
    data: Dataset,
    prunable: list[str],
    pruned: Callable[[dict[str, float]], nn.Module],
    probe: Probe,
    how: dict,
    *,
    variants: int = VARIANTS,
    seed: int = 0,
    folder: Path | None = None,
    show_progress: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[LatencyTable, Path]:
    """The model's latency table on the probe's runtime and device: from the cache when one
    was built there for this model, else measured (resuming a partial one)."""
    example = torch.from_numpy(data.train.x[:1])
    baseline = probe([model])[0]  # also tells which runtime version and device answer
    if baseline.p50_ms is None:
        raise MeasurementError(f"the runtime cannot run the model: {baseline.error}")
    sig = signature(model, data, prunable, {**how, "variants": variants, "seed": seed})
    path = cache_file(probe.key(), sig, folder)
    table = read_cached(path, probe.key(), sig, say)
    if table is not None and table.complete:
        return table, path
    if table is None:
        table = LatencyTable(probe.key(), sig, list(L.weighted_layers(model)))
        table.samples.append(
            {"ratios": {}, "work": layer_work(model, example), "p50_ms": baseline.p50_ms}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    plans = sample_ratios(prunable, variants, seed)
    done = len(table.samples) - 1 + len(table.failed)
    with progress_bar(
        f"latency table on {probe.runtime}", total=variants, enabled=show_progress
    ) as bar:
        bar.advance("resumed", done)
        for start in range(done, variants, BATCH):
            batch = plans[start : start + BATCH]
            models = [pruned(ratios) for ratios in batch]
            for ratios, twin, timed in zip(batch, models, probe(models), strict=True):
                if timed.p50_ms is None:
                    table.failed.append({"ratios": ratios, "error": timed.error})
                else:
                    table.samples.append(
                        {
                            "ratios": ratios,
                            "work": layer_work(twin, example),
                            "p50_ms": timed.p50_ms,
                        }
                    )
            write_atomic(path, json.dumps(table.to_dict()))  # an interrupted build resumes here
            bar.advance("variants", len(batch))
    if len(table.samples) < len(table.layers) // 2 + 4:
        reasons = sorted({f["error"] for f in table.failed})
        raise MeasurementError(
            f"only {len(table.samples)} of {variants + 1} variants could be timed on "
            f"{probe.runtime}: {'; '.join(reasons)[:300]}"
        )
    table.refit()
    table.complete = True
    write_atomic(path, json.dumps(table.to_dict()))
    return table, path


def check_reachable(target_ms: float, table: LatencyTable) -> None:
    """A target below what no pruning removes (the runtime's per-call cost and the layers kept
    whole: the predictor's fixed part) is a ConfigError naming the smallest latency measured."""
    if target_ms <= table.predictor.fixed_ms:
        raise OutOfReach(
            f"prune.target: {target_ms:.4g} ms is below what no pruning removes on "
            f"{table.key.split('|')[0]} ({table.predictor.fixed_ms:.4g} ms: the runtime's "
            f"per-call cost and the layers kept whole); the smallest latency measured for this "
            f"model is {table.smallest_ms:.4g} ms"
        )
