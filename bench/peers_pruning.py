"""Structured pruning side by side at the same MACs reduction and the same fine-tuning epochs:
edgeslim's best (per-layer ratios from a sensitivity sweep, distillation fine-tuning) against
Torch-Pruning's plain recipe (one ratio for every layer, L1 magnitude, cross-entropy).

    python bench/peers_pruning.py [--quick]

Both fine-tune with the same loop (edgeslim's trainer: same optimiser, learning rate and
batches) for the same epochs, so what differs is what each method prunes and what it learns from.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import torch

import edgeslim as es
import peers
from common import Bench, Section, Speed, Table, run_alone

HEADERS = [
    "model",
    "method",
    "MACs",
    "MACs reduction",
    "accuracy",
    "Δ accuracy",
    "p50 ms",
    "speed-up",
    "storage KB",
]


def edgeslim_recipes(reduction: float, epochs: int) -> dict[str, list[dict[str, Any]]]:
    """edgeslim's two answers: ratios from the sensitivity sweep, and uniform ratios with
    channel counts kept to multiples of 8 (what this CPU's kernels run fastest); both
    distilled from the dense model."""
    prune = {"kind": "structured", "macs_reduction": reduction}
    return {
        f"edgeslim sensitivity ratios + KD, MACs / {reduction:g}": [
            {"prune": {**prune, "ratios": "auto"}},
            {"distill": {"epochs": epochs}},
        ],
        f"edgeslim round_to 8 + KD, MACs / {reduction:g}": [
            {"prune": {**prune, "round_to": 8}},
            {"distill": {"epochs": epochs}},
        ],
    }


def torch_pruning_plain(
    bench: Bench, base: es.Candidate, reduction: float, folder: str
) -> es.Candidate:
    example = torch.from_numpy(bench.data.train.x[:1])
    pruned = peers.torch_pruning_plain(base.model, example, reduction)
    start = es.Candidate(
        "torch-pruning", recipe=({"torch_pruning": {"l1": reduction}},), model=pruned
    )
    (tuned,) = es.compress(
        start, bench.data, [[{"finetune": {"epochs": bench.finetune}}]], out_dir=folder
    )
    return tuned


def run(bench: Bench, model: str = "resnet8") -> Section:
    reductions = [2.0] if bench.quick else [2.0, 3.0]
    table = Table(
        "Structured pruning: edgeslim against Torch-Pruning's plain recipe",
        HEADERS,
        note=(
            f"{bench.label}; {model} trained {bench.epochs} epochs, every pruned model "
            f"fine-tuned {bench.finetune} epochs; ONNX Runtime, batch 1, 1 thread. edgeslim: "
            "`macs_reduction` with `ratios: auto` (sensitivity sweep) or with `round_to: 8`, "
            "then distillation from the dense model; Torch-Pruning: `MagnitudePruner`, "
            "`MagnitudeImportance(p=1)`, uniform ratio, stepped to the MACs target, "
            "cross-entropy fine-tuning."
        ),
    )
    speeds = []
    base = bench.baseline(model)
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as tmp:
        dense = bench.measure(es.export(base, bench.data, tmp))
        rows: list[tuple[str, dict]] = [("dense", dense)]
        for reduction in reductions:
            ours = edgeslim_recipes(reduction, bench.finetune)
            built = es.compress(
                base,
                bench.data,
                list(ours.values()),
                names=[f"ours-{i}" for i in range(len(ours))],
                out_dir=tmp,
            )
            rows += [(name, bench.measure(c)) for name, c in zip(ours, built, strict=True)]
            theirs = torch_pruning_plain(bench, base, reduction, tmp)
            rows.append((f"Torch-Pruning plain, MACs / {reduction:g}", bench.measure(theirs)))
    for method, record in rows:
        table.rows.append(
            [
                model,
                method,
                f"{record['macs']:,}",
                f"{dense['macs'] / record['macs']:.2f}x",
                f"{record['accuracy']:.4f}",
                f"{record['accuracy'] - dense['accuracy']:+.4f}",
                f"{record['latency_p50_ms']:.4f}",
                f"{dense['latency_p50_ms'] / record['latency_p50_ms']:.2f}x",
                f"{record['storage_kb']:.1f}",
            ]
        )
        speeds.append(
            Speed(model, method, "ONNX Runtime", record["macs"], record["latency_p50_ms"])
        )
    return Section([table], speeds)


if __name__ == "__main__":
    run_alone(run, __doc__, model="resnet8")
