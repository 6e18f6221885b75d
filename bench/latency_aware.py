"""Design by measurement: latency tables, their predictor, and pruning to a latency target.

    python bench/latency_aware.py [--quick] [--models resnet8,mobilenet-v1] [--runtimes onnxruntime]
    python bench/run_all.py --only latency   # resnet8 and mobilenet-v1 on ONNX Runtime

Fashion-MNIST, batch 1, one thread, one pinned core. For each model and runtime:

1. the latency table is built from scratch (a fresh cache folder) and timed;
2. the predictor is checked on 30 variants it was not fitted to (random per-layer ratios, another
   seed), timed beside the baseline in one worker; predictions are brought to that moment by the
   baseline's drift, as the pruning does;
3. pruning to half the baseline's measured p50 (``target: {latency: 0.5}``) against uniform
   pruning tuned by bisection to the same *measured* latency: Torch-Pruning's defaults (L2
   magnitude, one ratio for every layer, free widths) and edgeslim's MACs-ratio pruning
   (``macs_reduction``); every model fine-tuned the same epochs with the same trainer, accuracy on
   the test split.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from unittest import mock

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import numpy as np

import edgeslim as es
from common import Bench, Section, Table, print_section
from edgeslim.compress import latency_table as LT
from edgeslim.compress import structured as ST
from edgeslim.errors import ConfigError
from edgeslim.measure import LatencyProbe, MeasureSettings

HELD_OUT = 30
FRACTION = 0.5
BISECTION = 6


def speedup(probe: LatencyProbe, base, model) -> float:
    base_now, now = probe([base, model])
    return base_now.p50_ms / now.p50_ms


def predictor_row(bench: Bench, base: es.Candidate, probe: LatencyProbe, name: str) -> list[str]:
    started = time.perf_counter()
    table, _, plain, _ = ST.latency_table(
        base.model, bench.data, ST.StructuredSettings(ratio=0.5), probe, show_progress=False
    )
    built = time.perf_counter() - started
    names = ST.prunable_names(base.model, plain)
    rng = np.random.default_rng(1234)
    plans = [{n: float(rng.uniform(0, LT.MAX_RATIO)) for n in names} for _ in range(HELD_OUT)]
    models = [ST.pruned_copy(base.model, bench.data, plain, plan) for plan in plans]
    base_now, *timed = probe([base.model, *models])
    drift = base_now.p50_ms / table.baseline_ms
    example = ST.example_input(bench.data)
    errors = np.array(
        [
            table.predictor.predict(LT.layer_work(m, example)) * drift / t.p50_ms - 1
            for m, t in zip(models, timed, strict=True)
        ]
    )
    summary = table.summary()
    return [
        name,
        probe.runtime,
        f"{table.baseline_ms:.4f}",
        str(plain.round_to),
        f"{len(table.samples)}",
        f"{built:.1f}",
        f"{summary['held_out_within_10pct']:.0%}",
        f"{np.mean(np.abs(errors) <= 0.10):.0%} of {HELD_OUT}",
        f"{np.median(np.abs(errors)):.1%}",
        f"{np.abs(errors).max():.1%}",
    ]


def tuned(base, data, settings_for, probe: LatencyProbe, goal: float, low: float, high: float):
    """Bisection on one knob (a ratio, a MACs reduction) for the measured speed-up ``goal``:
    (model, knob, speed-up) with the smallest knob that meets it, else the fastest tried."""
    met, fastest = None, None
    for _ in range(BISECTION):
        mid = (low + high) / 2
        [pruned] = es.compress(base, data, [[{"prune": settings_for(mid)}]], show_progress=False)
        tried = (pruned, mid, speedup(probe, base.model, pruned.model))
        if fastest is None or tried[2] > fastest[2]:
            fastest = tried
        if tried[2] >= goal:
            met, high = tried, mid
        else:
            low = mid
    return met or fastest


def finetuned(candidate: es.Candidate, bench: Bench) -> float:
    [tuned_model] = es.compress(
        candidate,
        bench.data,
        [[{"finetune": {"epochs": bench.finetune}}]],
        show_progress=False,
    )
    return es.evaluate(tuned_model.model, bench.data.test, bench.data.spec)


def target_rows(bench: Bench, base: es.Candidate, probe: LatencyProbe, name: str) -> list[list]:
    dense = es.evaluate(base.model, bench.data.test, bench.data.spec)
    rows = [[name, probe.runtime, "FP32", "1.00x", f"{dense:.4f}", "", ""]]
    recipe = [{"prune": {"kind": "structured", "target": {"latency": FRACTION}}}]
    try:
        [ours] = es.compress(base, bench.data, [recipe], probe=probe, show_progress=False)
    except ConfigError as exc:
        rows.append(
            [name, probe.runtime, "edgeslim latency target", "out of reach", "", "", str(exc)]
        )
        return rows
    said = ours.step("prune")["result"]["latency"]
    reached = speedup(probe, base.model, ours.model)
    accuracy = finetuned(ours, bench)
    rows.append(
        [
            name,
            probe.runtime,
            f"edgeslim target {FRACTION:g} x p50",
            f"{reached:.2f}x",
            f"{accuracy:.4f}",
            f"{(accuracy - dense) * 100:+.2f}",
            f"predicted {said['predicted_ms']:.4f} ms, measured {said['measured_ms']:.4f} ms",
        ]
    )
    others = {
        "Torch-Pruning defaults (uniform L2)": (
            lambda r: {"kind": "structured", "ratio": r},
            0.05,
            0.9,
        ),
        "edgeslim MACs-ratio (macs_reduction)": (
            lambda m: {"kind": "structured", "macs_reduction": m},
            1.05,
            12.0,
        ),
    }
    for label, (settings_for, low, high) in others.items():
        pruned, knob, at = tuned(base, bench.data, settings_for, probe, reached, low, high)
        accuracy = finetuned(pruned, bench)
        rows.append(
            [
                name,
                probe.runtime,
                f"{label} at {knob:.3g}",
                f"{at:.2f}x",
                f"{accuracy:.4f}",
                f"{(accuracy - dense) * 100:+.2f}",
                "tuned to the same measured speed-up",
            ]
        )
    return rows


def run(bench: Bench, models: list[str], runtimes: list[str]) -> Section:
    predictor = Table(
        "Latency tables and their predictor (held out: variants it was not fitted to)",
        [
            "model",
            "runtime",
            "baseline p50 ms",
            "widths in multiples of",
            "table samples",
            "table build s",
            "k-fold within 10%",
            "held out within 10%",
            "median error",
            "worst error",
        ],
    )
    targets = Table(
        f"Pruning to {FRACTION:g} x the baseline's measured p50, fine-tuned {bench.finetune} "
        f"epoch(s), {bench.label}",
        ["model", "runtime", "method", "measured speed-up", "accuracy", "Δ pts", "note"],
    )
    for name in models:
        base = bench.baseline(name)
        for runtime in runtimes:
            probe = LatencyProbe(bench.data, MeasureSettings(runtime=runtime))
            predictor.rows.append(predictor_row(bench, base, probe, name))
            targets.rows.extend(target_rows(bench, base, probe, name))
            print(f"{name} on {runtime}: done", flush=True)
    return Section([predictor, targets])


def run_default(bench: Bench) -> Section:
    """run_all's section: resnet8 and mobilenet-v1 on ONNX Runtime (resnet8 alone when quick:
    CI's check that the section completes), tables built afresh."""
    models = ["resnet8"] if bench.quick else ["resnet8", "mobilenet-v1"]
    with fresh_tables():
        return run(bench, models, ["onnxruntime"])


@contextlib.contextmanager
def fresh_tables() -> Iterator[None]:
    """An empty latency-table cache for the duration, so every table is built here, and timed."""
    with (
        tempfile.TemporaryDirectory(prefix="edgeslim-bench-cache-") as cache,
        mock.patch.dict(os.environ, {"XDG_CACHE_HOME": cache}),
    ):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="resnet8,mobilenet-v1,vit")
    parser.add_argument("--runtimes", default="onnxruntime,litert")
    args = parser.parse_args()
    with fresh_tables():
        bench = Bench.create(args.quick)
        print_section(run(bench, args.models.split(","), args.runtimes.split(",")))


if __name__ == "__main__":
    main()
