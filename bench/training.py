"""Training options measured: learning-rate schedule, shifts and flips, label smoothing.

    python bench/training.py [--quick] [--models lenet5,resnet8] [--epochs 10]

Each row trains the same architecture from the same seed for the same epochs (no early stop)
and reports the FP32 test accuracy and the wall time; the defaults of ``train:`` are chosen from
this table (README, "Training").
"""

from __future__ import annotations

import argparse
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import load_data, markdown_table

OPTIONS = {
    "one-cycle (default)": {},
    "cosine": {"schedule": "cosine"},
    "shift 2": {"shift": 2},
    "shift 2 + flip": {"shift": 2, "flip": True},
    "shift 2 + flip + label smoothing 0.1": {"shift": 2, "flip": True, "label_smoothing": 0.1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="lenet5,resnet8")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    data, label = load_data(args.quick)
    epochs = 1 if args.quick else args.epochs
    rows = []
    for name in args.models.split(","):
        for option, settings in OPTIONS.items():
            model = es.models.build(name, data.spec)
            start = time.perf_counter()
            es.train(model, data, epochs=epochs, patience=None, show_progress=False, **settings)
            seconds = time.perf_counter() - start
            accuracy = es.evaluate(model, data.test)
            rows.append([name, option, f"{accuracy:.4f}", f"{seconds:.0f}"])
            print(rows[-1], flush=True)
    print(f"\n{label}; {epochs} epochs each, lr 3e-3, batch 64, seed 0, no early stop\n")
    print(markdown_table(["model", "training", "test accuracy", "seconds"], rows))


if __name__ == "__main__":
    main()
