"""Named recipes shipped with edgeslim: the classic edge pipelines, ready to compare."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, list[dict[str, Any]]] = {
    "int8-static": [{"quantize": {"kind": "static-int8"}}],
    "int8-dynamic": [{"quantize": {"kind": "dynamic-int8"}}],
    "fp16": [{"quantize": {"kind": "fp16"}}],
    "weight-int4": [{"quantize": {"kind": "weight-int4"}}],
    "qat-int8": [{"qat": {"epochs": 3}}],
    "qat-int4": [{"qat": {"bits": 4, "epochs": 3}}],
    "prune-80-int8": [
        {"prune": {"kind": "unstructured", "sparsity": 0.8}},
        {"finetune": {"epochs": 3}},
        {"quantize": {"kind": "static-int8"}},
    ],
    "channels-50-kd-int8": [
        {"prune": {"kind": "structured", "ratio": 0.5}},
        {"distill": {"epochs": 5}},
        {"quantize": {"kind": "static-int8"}},
    ],
    # Han et al. 2016: prune, retrain, share weights (trained k-means), entropy-code. Here: AGP
    # to 95% (2 epochs a step), 8 epochs of fine-tuning, 16 shared values a layer fine-tuned 3
    # epochs; the entropy coding is storage_coded_kb. On Fashion-MNIST's LeNet-5: 48.5x smaller
    # than the FP32 file, 0.88 pt less accurate (bench/compression_ratio.py; docs/benchmarks.md).
    "deep-compression": [
        {
            "prune": {
                "kind": "unstructured",
                "sparsity": 0.95,
                "schedule": "agp",
                "epochs_per_step": 2,
            }
        },
        {"finetune": {"epochs": 8}},
        {"cluster": {"clusters": 16, "epochs": 3}},
    ],
}
