"""The headline: the best Fashion-MNIST model edgeslim recommends for storage <= 25 KB and
p95 latency <= 0.5 ms (batch 1, 1 thread), next to the public Fashion-MNIST benchmark's
"2 Conv, <100K parameters" entry (92.5%).

    python bench/headline.py [--quick]

The candidates are resnet8 (MLPerf Tiny's reference topology) with channels pruned and distilled
from the dense model, then either quantized to INT8 (fewer channels) or trained for INT4 weights
(more channels in the same bytes); ``es.select`` picks the most accurate that fits **on the
validation split** (6,000 images carved from the training files), and the table reports each
model's accuracy on the official 10,000-image test split, which chose nothing. The dense
model (the teacher) trains 20 epochs with random shifts and flips and no early stop (20 plain
epochs with early stopping gave a worse one than 6: 0.9179 against 0.9219). The candidates are
distilled on the plain images: distilling on shifted and flipped ones too (12 epochs, the teacher
seeing the same images) gave 0.9194 against 0.9241 for channels 30% + INT4 QAT.
"""

from __future__ import annotations

import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import Bench, Section, Speed, Table, baseline_label, run_alone

MODEL = "resnet8"
BUDGET = {"storage_kb": "<= 25", "latency_p95_ms": "<= 0.5"}
REFERENCE = (
    "Fashion-MNIST benchmark, 2 Conv <100K parameters",
    0.925,
    "https://github.com/zalandoresearch/fashion-mnist#benchmark",
)
TEACHER_EPOCHS = 20
TEACHER_TRAINING = {"shift": 2, "flip": True, "patience": None}
# (channels removed, weights): INT8 fits ~15k parameters in 25 KB, INT4 ~40k (27% removed
# leaves 11/23/46 channels, 40k parameters; 25% leaves 12/24/48, 44k, past 25 KB)
CANDIDATES_FULL = ((0.55, 8), (0.3, 4), (0.27, 4))
CANDIDATES_QUICK = ((0.6, 8), (0.35, 4))
KD_EPOCHS = 20


def teacher(bench: Bench) -> es.Candidate:
    """The dense model every candidate is distilled from (cached under bench/.cache)."""
    if bench.quick:
        return bench.baseline(MODEL)
    return bench.baseline(MODEL, epochs=TEACHER_EPOCHS, training=TEACHER_TRAINING)


def teacher_label(bench: Bench) -> str:
    if bench.quick:
        return baseline_label(MODEL, bench.epochs)
    return baseline_label(MODEL, TEACHER_EPOCHS, TEACHER_TRAINING)


def recipe(ratio: float, bits: int, epochs: int) -> list[dict]:
    pruned = [{"prune": {"kind": "structured", "ratio": ratio}}, {"distill": {"epochs": epochs}}]
    if bits == 8:
        return [*pruned, {"quantize": {"kind": "static-int8"}}]
    return [*pruned, {"qat": {"bits": 4, "epochs": max(1, epochs // 3), "distill": True}}]


def candidate_name(ratio: float, bits: int) -> str:
    return f"channels {int(ratio * 100)}% + KD + " + ("INT8" if bits == 8 else "INT4 QAT")


def run(bench: Bench) -> Section:
    candidates = CANDIDATES_QUICK if bench.quick else CANDIDATES_FULL
    epochs = 1 if bench.quick else KD_EPOCHS
    names = [candidate_name(*c) for c in candidates]
    base = teacher(bench)
    with tempfile.TemporaryDirectory(prefix="bench-headline-") as tmp:
        dense = {**bench.measure(es.export(base, bench.data, tmp)), "name": f"{MODEL} FP32"}
        built = es.compress(
            base,
            bench.data,
            [recipe(*c, epochs) for c in candidates],
            names=[f"h{i}" for i in range(len(candidates))],
            out_dir=tmp,
        )
        records = [{**bench.measure(c), "name": n} for n, c in zip(names, built, strict=True)]
    budget = es.Budget.parse(BUDGET)
    selection = es.select([dense, *records], budget, maximize="accuracy")
    best = selection.recommended
    table = Table(
        "Headline: the best model under storage <= 25 KB and p95 <= 0.5 ms",
        ["model", "test accuracy", "val accuracy", "p95 ms", "storage KB", "parameters", "fits"],
        note=(
            f"{bench.label}; baseline {teacher_label(bench)}, each candidate distilled {epochs} "
            f"epochs from it (INT4: then {max(1, epochs // 3)} epochs of weight-only INT4 QAT, "
            "distilling too); ONNX Runtime, batch 1, 1 thread on this CPU "
            "(not a microcontroller). The public benchmark's entry reports accuracy only; "
            "<100K parameters is up to ~390 KB in FP32, so it is not held to this budget. "
            + (
                f"Recommended by `es.select`, chosen on validation accuracy: **{best['name']}**; "
                "test accuracy is reported and chose nothing."
                if best
                else "Nothing fits: " + selection.summary()
            )
        ),
    )
    for record in [dense, *records]:
        marks = " **(recommended)**" if best is not None and record["name"] == best["name"] else ""
        table.rows.append(
            [
                record["name"] + marks,
                f"{record['accuracy']:.4f}",
                f"{record['val_accuracy']:.4f}",
                f"{record['latency_p95_ms']:.4f}",
                f"{record['storage_kb']:.1f}",
                f"{record['params']:,}",
                "yes" if budget.fits(record) else "no",
            ]
        )
    name, accuracy, source = REFERENCE
    table.rows.append([f"[{name}]({source})", f"{accuracy:.4f}", "-", "-", "-", "< 100,000", "-"])
    speeds = [
        Speed(MODEL, r["name"], "ONNX Runtime", r["macs"], r["latency_p50_ms"]) for r in records
    ]
    return Section([table], speeds)


if __name__ == "__main__":
    run_alone(run, __doc__)
