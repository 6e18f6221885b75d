"""A small real experiment on digits, shared by the run, resume and report tests."""

from __future__ import annotations

import shutil

from edgeslim.results import RunFolder

MEASURE = {
    "runs": 60,
    "min_runs": 20,
    "warmup_runs": 5,
    "max_seconds": 0.5,
    "batch_sizes": [1, 16],
    "throughput_seconds": 0.05,
    "timeout_s": 120,
}


def experiment_dict(name: str = "t", **changes) -> dict:
    return {
        "name": name,
        "model": "small-cnn",
        "data": "digits",
        "train": {"epochs": 6},
        "candidates": [
            "int8-static",
            {
                "name": "sparse",
                "recipe": [
                    {"prune": {"kind": "unstructured"}},
                    {"finetune": {"epochs": 1}},
                ],
                "grid": {"prune.sparsity": [0.5, 0.9]},
            },
            # out of reach: fails while building, after validation
            {
                "name": "impossible",
                "recipe": [{"prune": {"kind": "structured", "macs_reduction": 500}}],
            },
        ],
        "measure": MEASURE,
        "budget": {"accuracy": ">= 0.9", "storage_kb": "<= 50"},
        "objectives": ["accuracy", "latency_p95_ms", "storage_kb"],
        **changes,
    }


def reuse_baseline(first_run, folder: RunFolder) -> RunFolder:
    """The shared run trained the same baseline (same model, data, training): copy its cached
    weights into ``folder`` so the test does not train it again."""
    folder.create()
    for cached in first_run[1].folder.path.glob("baseline-*.pt"):
        shutil.copy(cached, folder.path)
    return folder
