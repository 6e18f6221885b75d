"""The demo experiment: digits, a small CNN, every technique once and the classic combinations,
a budget a tiny board could set. Small enough to finish in a few minutes on two cores."""

from __future__ import annotations

from typing import Any

DEMO: dict[str, Any] = {
    "name": "demo",
    "model": "small-cnn",
    "data": "digits",
    "train": {"epochs": 15},
    "candidates": [
        "int8-static",
        "int8-dynamic",
        "fp16",
        "weight-int4",
        {"name": "qat-int8", "recipe": [{"qat": {"epochs": 3}}]},
        {
            "name": "unstructured",
            "recipe": [
                {"prune": {"kind": "unstructured", "schedule": "oneshot"}},
                {"finetune": {"epochs": 2}},
            ],
            "grid": {"prune.sparsity": [0.5, 0.9]},
        },
        {
            "name": "channels-50-kd",
            "recipe": [
                {"prune": {"kind": "structured", "ratio": 0.5}},
                {"distill": {"epochs": 4}},
            ],
        },
        {
            "name": "nm-2-4",
            "recipe": [{"prune": {"kind": "nm", "n": 2, "m": 4}}, {"finetune": {"epochs": 2}}],
        },
        {
            "name": "student-0.5-kd",
            "recipe": [
                {
                    "distill": {
                        "epochs": 10,
                        "lr": 0.01,
                        "student": {"model": "small-cnn", "width": 0.5},
                    }
                }
            ],
        },
        {
            "name": "sparse-activations",
            "recipe": [{"finetune": {"epochs": 3, "activation_l1": 2.0}}],
        },
        "prune-80-int8",
        "channels-50-kd-int8",
    ],
    "measure": {
        "threads": 1,
        "runs": 300,
        "min_runs": 100,
        "max_seconds": 1.5,
        "batch_sizes": [1, 32],
        "throughput_seconds": 0.3,
    },
    "budget": {"accuracy": ">= 0.95", "latency_p95_ms": "<= 1", "storage_kb": "<= 20"},
    "objectives": ["accuracy", "latency_p95_ms", "storage_kb", "model_memory_kb"],
}

# The runtimes demo: candidates every edge runtime can express, measured on ONNX Runtime (x86
# host), LiteRT (phones, Arm boards) and TFLite Micro (microcontrollers, with its exact arena).
RUNTIMES_DEMO: dict[str, Any] = {
    "name": "demo-runtimes",
    "model": "small-cnn",
    "data": "digits",
    "train": {"epochs": 15},
    "candidates": [
        "int8-static",
        {
            "name": "unstructured-0.9",
            "recipe": [
                {"prune": {"kind": "unstructured", "sparsity": 0.9, "schedule": "oneshot"}},
                {"finetune": {"epochs": 2}},
            ],
        },
        {
            "name": "channels-50-kd",
            "recipe": [
                {"prune": {"kind": "structured", "ratio": 0.5}},
                {"distill": {"epochs": 4}},
            ],
        },
        "channels-50-kd-int8",
    ],
    "runtimes": ["onnxruntime", "litert", "tflite-micro"],
    "measure": DEMO["measure"],
    "budget": {"accuracy": ">= 0.95", "storage_kb": "<= 40", "activation_memory_kb": "<= 8"},
    "objectives": ["accuracy", "latency_p95_ms", "storage_kb", "activation_memory_kb"],
}

# The detection demo (also examples/detection.yaml, which a test keeps equal to this): the seed's
# pedestrian camera in miniature, a detector on the built-in synthetic scenes, chosen by mAP@0.5
# under an end-to-end latency budget.
DETECTION_DEMO: dict[str, Any] = {
    "name": "detection",
    "task": "detection",
    "model": "centernet",
    "data": "scenes",
    "train": {"epochs": 12, "shift": 2},
    "candidates": [
        {
            "name": "structured-50",
            "recipe": [
                {"prune": {"kind": "structured", "ratio": 0.5}},
                {"finetune": {"epochs": 4}},
            ],
        },
        {
            "name": "sparse-80",
            "recipe": [
                {"prune": {"kind": "unstructured", "sparsity": 0.8}},
                {"finetune": {"epochs": 3}},
            ],
        },
        {"name": "int8", "recipe": [{"quantize": {"kind": "static-int8"}}]},
        {
            "name": "pruned-distilled-int8",
            "recipe": [
                {"prune": {"kind": "structured", "ratio": 0.5}},
                {"distill": {"epochs": 4}},
                {"quantize": {"kind": "static-int8"}},
            ],
        },
    ],
    "measure": {"runs": 300, "min_runs": 50},
    "budget": {"latency_e2e_p95_ms": "<= 5", "storage_kb": "<= 200"},
}
