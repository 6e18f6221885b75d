"""Teacher, narrow student trained alone, and the same student distilled (same epochs, seeds).

python bench/distillation.py [--teacher resnet8] [--teacher-epochs 6] [--student small-cnn]
                             [--width 0.25] [--seeds 3] [--epochs 6] [--settings 4:0.5,2:0.5]
                             [--shift 0] [--flip] [--quick]

``--settings`` lists temperature:alpha pairs, one distilled row each; the student trained alone
(alpha 0) gets the same epochs, learning rate, seeds, shifts and flips, once per seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import baseline, load_data, markdown_table


def settings_of(text: str) -> list[tuple[float, float]]:
    pairs = []
    for item in text.split(","):
        temperature, _, alpha = item.partition(":")
        pairs.append((float(temperature), float(alpha or 0.5)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet8")
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--student", default="small-cnn")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--settings", default="4:0.5", help="temperature:alpha,...")
    parser.add_argument("--shift", type=int, default=0)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data, label = load_data(args.quick)
    teacher = baseline(args.teacher, data, label, 2 if args.quick else args.teacher_epochs)
    epochs = 2 if args.quick else args.epochs
    pairs = settings_of(args.settings)
    alone: list[float] = []
    distilled: dict[tuple[float, float], list[float]] = {pair: [] for pair in pairs}
    params = 0
    for seed in range(args.seeds):
        shared = {
            "epochs": epochs,
            "lr": 1e-2,
            "seed": seed,
            "student": {"model": args.student, "width": args.width, "seed": seed},
            "shift": args.shift,
            "flip": args.flip,
        }
        recipes = [[{"distill": {**shared, "alpha": 0.0}}]]
        recipes += [[{"distill": {**shared, "alpha": a, "temperature": t}}] for t, a in pairs]
        built = es.compress(teacher, data, recipes, names=[f"s{i}" for i in range(len(recipes))])
        alone.append(es.evaluate(built[0].model, data.test))
        for pair, candidate in zip(pairs, built[1:], strict=True):
            distilled[pair].append(es.evaluate(candidate.model, data.test))
        params = sum(p.numel() for p in built[0].model.parameters())
        print(f"seed {seed}: alone {alone[-1]:.4f}, distilled "
              + ", ".join(f"T{t} a{a} {v[-1]:.4f}" for (t, a), v in distilled.items()),
              flush=True)  # fmt: skip
    teacher_params = sum(p.numel() for p in teacher.model.parameters())

    def cell(values: list[float]) -> str:
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} +- {spread:.4f}"

    print(
        f"\n{label}: teacher trained {args.teacher_epochs} epochs; {epochs} epochs each, lr 1e-2; "
        f"student {args.student} width {args.width}; "
        f"shift {args.shift}, flip {args.flip}; mean +- std over {args.seeds} seeds "
        "(PyTorch evaluation)\n"
    )
    taught = es.evaluate(teacher.model, data.test)
    rows = [
        [f"teacher {args.teacher}", f"{teacher_params:,}", f"{taught:.4f}"],
        ["student alone (alpha 0)", f"{params:,}", cell(alone)],
        *(
            [f"student distilled (T {t:g}, alpha {a:g})", f"{params:,}", cell(values)]
            for (t, a), values in distilled.items()
        ),
    ]  # fmt: skip
    print(markdown_table(["model", "params", "test accuracy"], rows))


if __name__ == "__main__":
    main()
