"""What the benchmarks share: data with a fallback, cached baselines, settings, tables."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import edgeslim as es

CACHE = Path(__file__).parent / ".cache"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# --quick checks that the sections run and write their tables; its figures are not results.
# 12k training samples: with 6k, one epoch left a model whose per-tensor INT8 form agreed with
# it on under 90% of the answers, which measuring refuses
QUICK_TRAIN = 12000
QUICK_EVAL = 2000  # validation and test samples


def load_data(quick: bool) -> tuple[es.data.Dataset, str]:
    """Fashion-MNIST when installed (with --quick, a 12k-sample training subset and 2k-sample
    validation and test subsets), else digits."""
    if not FASHION.is_dir():
        print("Fashion-MNIST not installed; falling back to digits", file=sys.stderr)
        return es.data.load("digits"), "digits"
    data = es.data.load(f"fashion-mnist:{FASHION}")
    if not quick:
        return data, "fashion-mnist"
    data = replace(
        data,
        train=head(data.train, QUICK_TRAIN),
        val=head(data.val, QUICK_EVAL),
        test=head(data.test, QUICK_EVAL),
    )
    subsets = f"{QUICK_TRAIN // 1000}k train, {QUICK_EVAL // 1000}k validation and test subsets"
    return data, f"fashion-mnist ({subsets})"


def head(split: es.data.Split, samples: int) -> es.data.Split:
    return es.data.Split(split.x[:samples], split.y[:samples])


def baseline(
    name: str,
    data: es.data.Dataset,
    label: str,
    epochs: int,
    training: dict[str, Any] | None = None,
    **options: Any,
) -> es.Candidate:
    """Train once per (model, options, data, epochs, training settings) and cache the weights
    under bench/.cache; ``training`` goes to ``es.train`` (e.g. ``{"shift": 2}``)."""
    training = training or {}
    key = f"{name}|{sorted(options.items())}|{label}|{epochs}|{len(data.train)}"
    if not options:  # keep the keys of caches written before options existed
        key = f"{name}|{label}|{epochs}|{len(data.train)}"
    if training:
        key += f"|{sorted(training.items())}"
    path = CACHE / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    model = es.models.build(name, data.spec, **options)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return es.Candidate(
            "dense",
            recipe=({"train": {"epochs": epochs, **training, "cached": True}},),
            model=model.eval(),
        )
    candidate = es.train(model, data, epochs=epochs, name="dense", **training)
    CACHE.mkdir(exist_ok=True)
    partial = path.with_suffix(".part")
    torch.save(candidate.model.state_dict(), partial)
    partial.replace(path)
    return candidate


def baseline_label(name: str, epochs: int, training: dict[str, Any] | None = None) -> str:
    """How a cached baseline was trained, for tables: ``resnet8 (20 epochs, shift 2 + flip)``."""
    training = training or {}
    moves = [f"shift {training['shift']}"] if training.get("shift") else []
    moves += ["flip"] if training.get("flip") else []
    return f"{name} ({epochs} epochs" + (", " + " + ".join(moves) if moves else "") + ")"


def measure_settings(quick: bool) -> es.MeasureSettings:
    """The default (1,000 batch-1 runs, at most 5 s) or, with --quick, a short loop."""
    if not quick:
        return es.MeasureSettings()
    return es.MeasureSettings(
        runs=200, min_runs=50, max_seconds=1.0, batch_sizes=(1,), throughput_seconds=0.1
    )


@dataclass
class Bench:
    """One benchmark session: the data, the training budget and the measuring settings."""

    quick: bool
    data: es.data.Dataset
    label: str
    epochs: int  # baseline training
    finetune: int  # fine-tuning after pruning, and distillation, in every compared method
    settings: es.MeasureSettings

    @classmethod
    def create(cls, quick: bool) -> Bench:
        data, label = load_data(quick)
        epochs, finetune = (1, 1) if quick else (6, 2)
        return cls(quick, data, label, epochs, finetune, measure_settings(quick))

    def baseline(
        self,
        name: str,
        epochs: int | None = None,
        training: dict[str, Any] | None = None,
        **options: Any,
    ) -> es.Candidate:
        """The cached baseline: ``epochs`` defaults to the session's."""
        return baseline(name, self.data, self.label, epochs or self.epochs, training, **options)

    def measure(self, target: Any) -> dict[str, Any]:
        return es.measure(target, self.data, self.settings)


def model_label(name: str, options: dict[str, Any]) -> str:
    return name + "".join(f" {k} {v}" for k, v in options.items())


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        parts = [f"### {self.title}", ""]
        if self.note:
            parts += [self.note, ""]
        parts.append(markdown_table(self.headers, self.rows))
        return "\n".join(parts)


@dataclass
class Speed:
    """One measured model for the physical-limit table: its work and its median latency."""

    model: str
    form: str
    runtime: str
    macs: int
    p50_ms: float


@dataclass
class Section:
    tables: list[Table]
    speeds: list[Speed] = field(default_factory=list)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_section(section: Section) -> None:
    for table in section.tables:
        print("\n" + table.markdown())


def run_alone(run: Callable[..., Section], doc: str, model: str | None = None) -> None:
    """A section's own command line: ``--quick``, and ``--model`` where the section takes one."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    if model is not None:
        parser.add_argument("--model", default=model)
    args = parser.parse_args()
    bench = Bench.create(args.quick)
    print_section(run(bench, args.model) if model is not None else run(bench))
