"""Every pruning kind at several levels next to the dense baseline: what each one buys.

    python bench/pruning.py [--model resnet8] [--quick]

Fashion-MNIST with resnet8 (digits with small-cnn when the data is missing). Every variant is
fine-tuned for the same number of epochs and measured by ``es.measure`` on ONNX Runtime,
1 thread: accuracy, p50 latency, MACs, storage and gzip-compressed storage.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import baseline, load_data, markdown_table

VARIANTS = {
    "unstructured 50%": {"kind": "unstructured", "sparsity": 0.5},
    "unstructured 80%": {"kind": "unstructured", "sparsity": 0.8},
    "unstructured 90%": {"kind": "unstructured", "sparsity": 0.9},
    "structured 30% channels": {"kind": "structured", "ratio": 0.3},
    "structured 50% channels": {"kind": "structured", "ratio": 0.5},
    "structured 30%, round_to 8": {"kind": "structured", "ratio": 0.3, "round_to": 8},
    "structured MACs / 3": {"kind": "structured", "macs_reduction": 3.0},
    "structured MACs / 3, round_to 8": {"kind": "structured", "macs_reduction": 3.0, "round_to": 8},
    "N:M 2:4": {"kind": "nm", "n": 2, "m": 4},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--quick", action="store_true", help="12k training samples, 2k validation and test, 1 epoch"
    )
    args = parser.parse_args()
    data, label = load_data(args.quick)
    model = args.model or ("resnet8" if label.startswith("fashion") else "small-cnn")
    epochs, finetune = (2, 1) if args.quick else (6, 2)
    base = baseline(model, data, label, epochs)
    recipes = [[{"prune": p}, {"finetune": {"epochs": finetune}}] for p in VARIANTS.values()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        candidates = [es.export(base, data, tmp)]
        candidates += es.compress(
            base, data, recipes, names=[f"v{i}" for i in range(len(recipes))], out_dir=tmp
        )
        records = [es.measure(c, data) for c in candidates]
    dense = records[0]
    for name, record in zip(["dense baseline", *VARIANTS], records, strict=True):
        rows.append(
            [
                name,
                f"{record['accuracy']:.4f}",
                f"{record['latency_p50_ms']:.4f}",
                f"{dense['latency_p50_ms'] / record['latency_p50_ms']:.2f}x",
                f"{record['macs']:,}",
                f"{record['weight_sparsity']:.2f}",
                f"{record['storage_kb']:.1f}",
                f"{record['storage_compressed_kb']:.1f}",
                f"{dense['storage_compressed_kb'] / record['storage_compressed_kb']:.2f}x",
            ]
        )
    print(
        f"\n{model} on {label}: baseline {epochs} epochs, each variant fine-tuned {finetune}; "
        f"ONNX Runtime, 1 thread, batch 1\n"
    )
    print(
        markdown_table(
            [
                "variant",
                "accuracy",
                "p50 ms",
                "speed-up",
                "MACs",
                "weight sparsity",
                "storage KB",
                "gzip KB",
                "gzip ratio",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
