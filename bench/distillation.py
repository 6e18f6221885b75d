"""Teacher, narrow student trained alone, and the same student distilled (same epochs, seeds).

python bench/distillation.py [--teacher resnet8] [--student small-cnn] [--width 0.25]
                             [--seeds 3] [--epochs 6] [--temperature 4] [--alpha 0.5]
                             [--shift 0] [--flip] [--quick]

The student trained alone gets the same epochs, learning rate, shifts and flips.
"""

from __future__ import annotations

import argparse
import statistics
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import baseline, load_data, markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet8")
    parser.add_argument("--student", default="small-cnn")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--shift", type=int, default=0)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data, label = load_data(args.quick)
    teacher = baseline(args.teacher, data, label, 2 if args.quick else 6)
    epochs = 2 if args.quick else args.epochs
    alone, distilled, params = [], [], 0
    for seed in range(args.seeds):
        shared = {
            "epochs": epochs,
            "lr": 1e-2,
            "seed": seed,
            "student": {"model": args.student, "width": args.width, "seed": seed},
            "shift": args.shift,
            "flip": args.flip,
        }
        a, d = es.compress(
            teacher,
            data,
            [
                [{"distill": {**shared, "alpha": 0.0}}],
                [{"distill": {**shared, "alpha": args.alpha, "temperature": args.temperature}}],
            ],
            names=["alone", "distilled"],
        )
        alone.append(es.evaluate(a.model, data.test))
        distilled.append(es.evaluate(d.model, data.test))
        params = sum(p.numel() for p in d.model.parameters())
    teacher_params = sum(p.numel() for p in teacher.model.parameters())

    def cell(values: list[float]) -> str:
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} +- {spread:.4f}"

    print(
        f"\n{label}: {epochs} epochs each; student {args.student} width {args.width}; "
        f"alpha {args.alpha}, T {args.temperature}, shift {args.shift}, flip {args.flip}; "
        f"mean +- std over {args.seeds} seeds (PyTorch evaluation)\n"
    )
    print(
        markdown_table(
            ["model", "params", "test accuracy"],
            [
                [
                    f"teacher {args.teacher}",
                    f"{teacher_params:,}",
                    f"{es.evaluate(teacher.model, data.test):.4f}",
                ],
                ["student alone (alpha 0)", f"{params:,}", cell(alone)],
                ["student distilled", f"{params:,}", cell(distilled)],
            ],
        )
    )


if __name__ == "__main__":
    main()
