"""NSGA-II against random sampling at the same number of trials, and trials per hour with 1
and 2 local workers.

Both samplers search the same space (channel ratio, unstructured sparsity, quantization,
distillation and its temperature) for lenet5 on Fashion-MNIST (digits where it is missing),
under the same budget and seed. Each is scored by the hypervolume of its fitting front, with
the budget's bounds as the reference point (objectives: accuracy up, storage down). Trials per
hour come from separate random-sampler studies run with ``--workers 1`` and ``--workers 2``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from common import FASHION
from edgeslim import config
from edgeslim.results import RunFolder
from edgeslim.search import run_search
from edgeslim.select import hypervolume_history


def experiment(name: str, data: str, trials: int, sampler: str, quick: bool) -> config.Experiment:
    return config.parse(
        {
            "name": name,
            "model": "lenet5",
            "data": data,
            "train": {"epochs": 2 if quick else 4, "batch_size": 128},
            "measure": {
                "runs": 200,
                "min_runs": 50,
                "max_seconds": 1.0,
                "batch_sizes": [1, 32],
                "throughput_seconds": 0.2,
            },
            "budget": {"accuracy": ">= 0.85", "storage_kb": "<= 60"},
            "objectives": ["accuracy", "storage_kb"],
            "search": {
                "space": {
                    "structured_ratio": [0.0, 0.7],
                    "sparsity": [0.0, 0.9],
                    "quantize": ["none", "int8-static", "fp16", "weight-int4"],
                    "distill": [False, True],
                    "temperature": [2.0, 8.0],
                    "finetune_epochs": 1,
                },
                "trials": trials,
                "sampler": sampler,
                "population": 6,
                "seed": 0,
            },
        }
    )


def share_baseline(root: Path, source: str, target: str) -> None:
    folder = RunFolder(root, target)
    folder.create()
    for cached in (root / source).glob("baseline-*.pt"):
        shutil.copy(cached, folder.path)


def print_comparison(rows: list[tuple], data: str, trials: int) -> None:
    print(f"# search: NSGA-II vs random, lenet5 on {data.split(':')[0]}, {trials} trials each\n")
    print("budget: accuracy >= 0.85, storage_kb <= 60; objectives: accuracy, storage_kb\n")
    print(
        "| sampler | trials | fitting | hypervolume (fitting front) | most accurate fitting | s |"
    )
    print("|---|---:|---:|---:|---|---:|")
    for sampler, n, fit, hv, best, wall in rows:
        print(f"| {sampler} | {n} | {fit} | {hv:.4f} | {best} | {wall:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=18)
    parser.add_argument("--worker-trials", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="digits, 8 trials")
    parser.add_argument("--workers-only", action="store_true", help="skip the sampler comparison")
    args = parser.parse_args()
    data = f"fashion-mnist:{FASHION}" if FASHION.is_dir() and not args.quick else "digits"
    if data == "digits" and not args.quick:
        print("Fashion-MNIST not installed; using digits", file=sys.stderr)
    trials = 8 if args.quick else args.trials
    root = Path(tempfile.mkdtemp(prefix="edgeslim-search-bench-"))
    say = print if "-v" in sys.argv else (lambda _: None)

    rows = []
    first = None
    for sampler in () if args.workers_only else ("nsga2", "random"):
        exp = experiment(f"compare-{sampler}", data, trials, sampler, args.quick)
        if first:
            share_baseline(root, first, exp.config.name)
        first = first or exp.config.name
        start = time.perf_counter()
        outcome = run_search(exp, str(root), say=say, show_progress=False)
        wall = time.perf_counter() - start
        selection = outcome.selection
        history = hypervolume_history(outcome.records, selection.objectives, selection.budget)
        trial_records = [r for r in outcome.records if "trial" in r]
        fitting = [r for r in selection.fitting if "trial" in r]
        best = max(fitting, key=lambda r: r["accuracy"], default=None)
        rows.append(
            (
                sampler,
                len(trial_records),
                len(fitting),
                history[-1][1] if history else 0.0,
                f"{best['accuracy']:.4f} at {best['storage_kb']:.1f} KB" if best else "none",
                wall,
            )
        )

    if args.workers_only:
        first = "workers-1"
    else:
        print_comparison(rows, data, trials)

    print(f"\n# trials per hour ({args.worker_trials} trials, random sampler)\n")
    print("| workers | trials | wall s | trials / hour |")
    print("|---:|---:|---:|---:|")
    for workers in (1, 2):
        exp = experiment(f"workers-{workers}", data, args.worker_trials, "random", args.quick)
        share_baseline(root, first, exp.config.name)
        outcome = run_search(exp, str(root), workers=workers, say=say, show_progress=False)
        wall = outcome.timings["search"]  # the trials alone: baseline and report excluded
        done = sum(1 for r in outcome.records if "trial" in r)
        print(f"| {workers} | {done} | {wall:.0f} | {done / wall * 3600:.0f} |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
