"""The smallest model edgeslim finds within 1 point of the FP32 baseline's accuracy, and its
storage ratio: the figure Deep Compression (Han et al., ICLR 2016) reports as 39x for LeNet-5
on MNIST (pruning + trained quantization + Huffman coding).

    python bench/compression_ratio.py [--quick] [--model lenet5]

The candidates combine edgeslim's techniques; ``es.select`` picks the one with the smallest
gzip-compressed file (the entropy-coded size Deep Compression's ratio counts) among those that
keep accuracy within 1 point. The raw file ratio is shown next to it.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import Bench, Section, Table, run_alone

CANDIDATES: dict[str, Any] = {  # a preset name or a recipe
    "deep-compression preset (AGP 90%, INT4 weights)": "deep-compression",
    **{
        f"AGP {int(sparsity * 100)}% + 6 epochs, {label}": [
            {"prune": {"kind": "unstructured", "sparsity": sparsity, "schedule": "agp"}},
            {"finetune": {"epochs": 6}},
            {"quantize": {"kind": kind}},
        ]
        for sparsity in (0.9, 0.95)
        for kind, label in (("static-int8", "static INT8"), ("weight-int4", "INT4 weights"))
    },
    "channels 50% + KD, INT4 weights": [
        {"prune": {"kind": "structured", "ratio": 0.5}},
        {"distill": {"epochs": 3}},
        {"quantize": {"kind": "weight-int4"}},
    ],
}
QUICK = ["deep-compression preset (AGP 90%, INT4 weights)", "AGP 95% + 6 epochs, INT4 weights"]
DEEP_COMPRESSION_RATIO = 39  # LeNet-5 on MNIST, Han et al. 2016, Table 1
HEADERS = ["candidate", "accuracy", "Δ accuracy", "storage KB", "ratio", "gzip KB", "gzip ratio"]


def quick_recipe(recipe: Any) -> Any:
    """The same recipe with one fine-tuning epoch per step (for --quick)."""
    if isinstance(recipe, str):
        return recipe
    return [
        {k: {**v, "epochs": 1} if "epochs" in v else v for k, v in step.items()} for step in recipe
    ]


def run(bench: Bench, model: str = "lenet5") -> Section:
    names = QUICK if bench.quick else list(CANDIDATES)
    recipes = [CANDIDATES[n] if not bench.quick else quick_recipe(CANDIDATES[n]) for n in names]
    base = bench.baseline(model)
    with tempfile.TemporaryDirectory(prefix="bench-ratio-") as tmp:
        dense = bench.measure(es.export(base, bench.data, tmp))
        built = es.compress(
            base, bench.data, recipes, names=[f"c{i}" for i in range(len(names))], out_dir=tmp
        )
        records = [
            {**bench.measure(candidate), "name": name}
            for name, candidate in zip(names, built, strict=True)
        ]
    budget = es.Budget(accuracy=f">= {dense['accuracy'] - 0.01}")
    chosen = es.select(records, budget, minimize="storage_compressed_kb").recommended
    table = Table(
        f"Compression ratio: the smallest {model} within 1 point of FP32 accuracy",
        HEADERS,
        note=(
            f"{bench.label}; {model} trained {bench.epochs} epochs. Ratios against the FP32 "
            f"ONNX file; 'gzip' is the entropy-coded size. Deep Compression reports "
            f"{DEEP_COMPRESSION_RATIO}x for LeNet-5 on **MNIST**; this is **Fashion-MNIST**, a "
            "harder dataset, and a different LeNet-5 (see `edgeslim zoo`), so the figures are "
            "comparable in kind, not in detail. Chosen by `es.select` (smallest gzip size, "
            "accuracy >= FP32 - 0.01): "
            + (f"**{chosen['name']}**." if chosen else "nothing kept accuracy within 1 point.")
        ),
    )
    for record in [{**dense, "name": "FP32 baseline"}, *records]:
        mark = " (chosen)" if chosen is not None and record["name"] == chosen["name"] else ""
        table.rows.append(
            [
                record["name"] + mark,
                f"{record['accuracy']:.4f}",
                f"{record['accuracy'] - dense['accuracy']:+.4f}",
                f"{record['storage_kb']:.1f}",
                f"{dense['storage_kb'] / record['storage_kb']:.1f}x",
                f"{record['storage_compressed_kb']:.1f}",
                f"{dense['storage_kb'] / record['storage_compressed_kb']:.1f}x",
            ]
        )
    return Section([table])


if __name__ == "__main__":
    run_alone(run, __doc__, model="lenet5")
