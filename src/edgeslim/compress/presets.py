"""Named recipes shipped with edgeslim: the classic edge pipelines, ready to compare."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, list[dict[str, Any]]] = {
    "int8-static": [{"quantize": {"kind": "static-int8"}}],
    "int8-dynamic": [{"quantize": {"kind": "dynamic-int8"}}],
    "fp16": [{"quantize": {"kind": "fp16"}}],
    "weight-int4": [{"quantize": {"kind": "weight-int4"}}],
    "qat-int8": [{"qat": {"epochs": 3}}],
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
    # Han et al. 2016: prune, retrain, quantize, entropy-code. Here: AGP to 90%, fine-tune,
    # INT4 weights; the entropy coding is the gzip behind storage_compressed_kb.
    "deep-compression": [
        {"prune": {"kind": "unstructured", "sparsity": 0.9, "schedule": "agp"}},
        {"finetune": {"epochs": 3}},
        {"quantize": {"kind": "weight-int4"}},
    ],
}
