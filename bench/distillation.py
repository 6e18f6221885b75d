"""Teacher, narrow student trained alone, and the same student distilled (same epochs, seeds).

python bench/distillation.py [--teacher resnet8] [--teacher-epochs 6] [--teacher-shift 0]
                             [--teacher-flip] [--student small-cnn] [--widths 0.25]
                             [--seeds 3] [--epochs 6] [--settings 4:0.5,2:0.5]
                             [--shift 0] [--flip] [--quick]

``--settings`` lists temperature:alpha pairs, one distilled row each; the student trained alone
(alpha 0) gets the same epochs, learning rate, seeds, shifts and flips, once per seed. As a
section of ``run_all.py`` it runs the settings in ``SECTION`` against the headline's teacher.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import Bench, Section, Table, baseline_label


@dataclass(frozen=True)
class Comparison:
    """One distillation experiment: a student alone against the same student distilled."""

    student: str = "small-cnn"
    widths: tuple[float, ...] = (0.25,)
    seeds: int = 3
    epochs: int = 6
    lr: float = 1e-2
    pairs: tuple[tuple[float, float], ...] = ((4.0, 0.5),)  # (temperature, alpha) per row
    shift: int = 0
    flip: bool = False


SECTION = Comparison(widths=(0.25, 0.5), pairs=((1.0, 0.5), (4.0, 0.5)))
TEACHER = "resnet8"


def settings_of(text: str) -> tuple[tuple[float, float], ...]:
    pairs = []
    for item in text.split(","):
        temperature, _, alpha = item.partition(":")
        pairs.append((float(temperature), float(alpha or 0.5)))
    return tuple(pairs)


def spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {spread(values):.4f}"


def verdict(alone: list[float], distilled: list[float]) -> str:
    """Distilled against alone in points; a win or a loss only past the larger standard
    deviation of the two, so seed noise reads as a tie."""
    gain = 100 * (statistics.mean(distilled) - statistics.mean(alone))
    if min(len(alone), len(distilled)) < 2:
        return f"{gain:+.2f} (one seed: no verdict)"
    noise = 100 * max(spread(alone), spread(distilled))
    word = "wins" if gain > noise else "loses" if gain < -noise else "ties"
    return f"{gain:+.2f} ({word}; 1 std {noise:.2f})"


def student_rows(
    teacher: es.Candidate, data: es.data.Dataset, c: Comparison, width: float
) -> list[list[str]]:
    """The student alone and each distilled setting, mean ± std over ``c.seeds`` seeds."""
    alone: list[float] = []
    distilled: dict[tuple[float, float], list[float]] = {pair: [] for pair in c.pairs}
    params = 0
    for seed in range(c.seeds):
        shared = {
            "epochs": c.epochs,
            "lr": c.lr,
            "seed": seed,
            "student": {"model": c.student, "width": width, "seed": seed},
            "shift": c.shift,
            "flip": c.flip,
        }
        recipes = [[{"distill": {**shared, "alpha": 0.0}}]]
        recipes += [[{"distill": {**shared, "alpha": a, "temperature": t}}] for t, a in c.pairs]
        built = es.compress(teacher, data, recipes, names=[f"s{i}" for i in range(len(recipes))])
        alone.append(es.evaluate(built[0].model, data.test))
        for pair, candidate in zip(c.pairs, built[1:], strict=True):
            distilled[pair].append(es.evaluate(candidate.model, data.test))
        params = sum(p.numel() for p in built[0].model.parameters())
        print(f"width {width} seed {seed}: alone {alone[-1]:.4f}, distilled "
              + ", ".join(f"T{t} a{a} {v[-1]:.4f}" for (t, a), v in distilled.items()),
              flush=True)  # fmt: skip
    name = f"{c.student} {width:g}"
    return [
        [f"{name} alone (alpha 0)", f"{params:,}", cell(alone), "-"],
        *(
            [
                f"{name} distilled (T {t:g}, alpha {a:g})",
                f"{params:,}",
                cell(values),
                verdict(alone, values),
            ]
            for (t, a), values in distilled.items()
        ),
    ]


def compare(
    teacher: es.Candidate, data: es.data.Dataset, label: str, c: Comparison, teacher_note: str
) -> Table:
    teacher_params = sum(p.numel() for p in teacher.model.parameters())
    rows = [[f"teacher {teacher_note}", f"{teacher_params:,}",
             f"{es.evaluate(teacher.model, data.test):.4f}", "-"]]  # fmt: skip
    for width in c.widths:
        rows += student_rows(teacher, data, c, width)
    note = (
        f"{label}; each student trained {c.epochs} epochs at lr {c.lr:g}, shift {c.shift}, "
        f"flip {c.flip}; mean ± std over {c.seeds} seeds; test accuracy in PyTorch; "
        "points against the same student alone: a win or a loss only past one standard deviation"
    )
    headers = ["model", "params", "test accuracy", "points vs alone"]
    return Table("Distillation: the same student alone and distilled", headers, rows, note)


def run(bench: Bench) -> Section:
    """The run_all section: the headline's teacher, the settings in ``SECTION``."""
    import headline

    teacher = headline.teacher(bench)
    c = SECTION if not bench.quick else Comparison(widths=(0.25,), seeds=1, epochs=1)
    table = compare(teacher, bench.data, bench.label, c, headline.teacher_label(bench))
    return Section([table])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=TEACHER)
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--teacher-shift", type=int, default=0)
    parser.add_argument("--teacher-flip", action="store_true")
    parser.add_argument("--student", default="small-cnn")
    parser.add_argument("--widths", default="0.25")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--settings", default="4:0.5", help="temperature:alpha,...")
    parser.add_argument("--shift", type=int, default=0)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    bench = Bench.create(args.quick)
    training = {"shift": args.teacher_shift, "flip": args.teacher_flip}
    training = {k: v for k, v in training.items() if v}
    if training:
        training["patience"] = None
    teacher_epochs = 2 if args.quick else args.teacher_epochs
    teacher = bench.baseline(args.teacher, epochs=teacher_epochs, training=training)
    c = Comparison(
        student=args.student,
        widths=tuple(float(w) for w in args.widths.split(",")),
        seeds=args.seeds,
        epochs=2 if args.quick else args.epochs,
        lr=args.lr,
        pairs=settings_of(args.settings),
        shift=args.shift,
        flip=args.flip,
    )
    about = baseline_label(args.teacher, teacher_epochs, training)
    print("\n" + compare(teacher, bench.data, bench.label, c, about).markdown())


if __name__ == "__main__":
    main()
