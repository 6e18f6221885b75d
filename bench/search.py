"""Samplers against random sampling at the budgets people run (20 and 40 trials), over seeds.

Every sampler searches the same space (channel ratio, unstructured sparsity, quantization,
distillation and its temperature, 3 fine-tune epochs) for lenet5 under the same budget
(accuracy >= 0.85, storage <= 60 KB; objectives accuracy up, storage down), once per seed. A
run is scored by the hypervolume of its fitting front **on validation figures** (what the search
chose on), with the budget's bounds as the reference point; that front is then re-scored on the
test split (reported, never chosen on). Wall time per trial comes from the study's own clock.
The 20-trial figures are the first 20 trials of the 40-trial runs: a sequential sampler's first
20 trials do not depend on how many follow. ``SAMPLER+stop`` runs with the multi-fidelity rule on
(``stop_early``, the default setting): a trial whose fine-tune cannot reach the accuracy bound
stops there, unmeasured; plain ``SAMPLER`` runs without it, as random sampling always does here.

``--workers-only`` prints trials per hour with 1 and 2 local workers instead.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from common import FASHION
from edgeslim import config
from edgeslim.budget import Budget
from edgeslim.results import RunFolder
from edgeslim.search import run_search, sampler_name
from edgeslim.select import dominates, hypervolume, objectives_for, reference_point

BUDGET = {"accuracy": ">= 0.85", "storage_kb": "<= 60"}
STOP = "stop"  # a sampler's suffix: the search's multi-fidelity rule on (stop_early)
OBJECTIVES = ["accuracy", "storage_kb"]


def experiment(
    name: str,
    data: str,
    trials: int,
    sampler: str,
    seed: int,
    quick: bool,
    stop_early: bool = False,
    finetune_epochs: int = 3,
) -> config.Experiment:
    return config.parse(
        {
            "name": name,
            "model": "lenet5",
            "data": data,
            # digits: 1,258 training images, so smaller batches and more epochs to reach the
            # budget's 0.85 (4 epochs of 128 left lenet5 at 0.74)
            "train": (
                {"epochs": 15, "batch_size": 32}
                if data == "digits"
                else {"epochs": 2 if quick else 4, "batch_size": 128}
            ),
            "measure": {
                "runs": 200,
                "min_runs": 50,
                "max_seconds": 1.0,
                "batch_sizes": [1, 32],
                "throughput_seconds": 0.2,
            },
            "budget": BUDGET,
            "objectives": OBJECTIVES,
            "search": {
                "space": {
                    "structured_ratio": [0.0, 0.7],
                    "sparsity": [0.0, 0.9],
                    "quantize": ["none", "int8-static", "fp16", "weight-int4"],
                    "distill": [False, True],
                    "temperature": [2.0, 8.0],
                    "finetune_epochs": finetune_epochs,
                },
                "trials": trials,
                "sampler": sampler,
                "stop_early": stop_early,
                "population": 6,
                "seed": seed,
            },
        }
    )


def share_baseline(root: Path, source: str, target: str) -> None:
    folder = RunFolder(root, target)
    folder.create()
    for cached in (root / source).glob("baseline-*.pt"):
        shutil.copy(cached, folder.path)


def front(records: list[dict], objectives, budget: Budget) -> list[dict]:
    """The fitting records no other fitting record dominates."""
    fitting = [
        r
        for r in records
        if r.get("status", "ok") == "ok"
        and all(o.value(r) is not None for o in objectives)
        and budget.fits(r)
    ]
    return [r for r in fitting if not any(dominates(o, r, objectives) for o in fitting)]


def elapsed(folder: Path, name: str) -> list[float]:
    """Seconds from the first trial's start to each trial's end, by trial number (the study's
    clock: sampling, building and measuring all counted)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'search.db'}")
    study = optuna.load_study(study_name=name, storage=storage)
    trials = sorted(study.trials, key=lambda t: t.number)
    start = trials[0].datetime_start
    return [((t.datetime_complete or t.datetime_start) - start).total_seconds() for t in trials]


def score(records: list[dict], upto: int) -> dict:
    """One run's figures over its first ``upto`` trials."""
    trials = [r for r in records if "trial" in r and r["trial"] < upto]
    on_val = objectives_for(["val_accuracy", "storage_kb"])
    on_test = objectives_for(OBJECTIVES)
    val_budget = Budget.parse(BUDGET).renamed({"accuracy": "val_accuracy"})
    test_budget = Budget.parse(BUDGET)
    chosen = front(trials, on_val, val_budget)
    best = max(chosen, key=lambda r: r["val_accuracy"], default=None)
    return {
        "val": hypervolume(chosen, on_val, reference_point([], on_val, val_budget)),
        # the same models, their test figures: a front chosen on validation, scored on test
        "test": hypervolume(chosen, on_test, reference_point([], on_test, test_budget)),
        "fitting": sum(1 for r in trials if r.get("status") == "ok" and val_budget.fits(r)),
        "best": (best["val_accuracy"], best["accuracy"]) if best else None,
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(q2), float(q3)


def compare(args: argparse.Namespace, data: str, root: Path, say) -> None:
    samplers = args.samplers.split(",")
    checkpoints = [args.trials // 2, args.trials]
    runs: dict[str, list[dict]] = {s: [] for s in samplers}
    first = None
    for sampler in samplers:
        for seed in range(args.seeds):
            name = f"{sampler.replace('+', '-')}-seed{seed}"
            kind, _, stop = sampler.partition("+")
            exp = experiment(
                name, data, args.trials, kind, seed, args.quick, stop == STOP, args.finetune_epochs
            )
            if first:
                share_baseline(root, first, name)
            first = first or name
            start = time.perf_counter()
            outcome = run_search(exp, str(root), say=say, show_progress=False)
            wall = time.perf_counter() - start
            clock = elapsed(outcome.folder.path, name)
            scores = {c: score(outcome.records, c) for c in checkpoints}
            runs[sampler].append(
                {"scores": scores, "clock": clock, "wall": wall, "records": outcome.records}
            )
            print(
                f"{sampler} seed {seed}: hypervolume (validation) "
                + ", ".join(f"{scores[c]['val']:.4f} at {c}" for c in checkpoints)
                + f"; {wall:.0f} s",
                file=sys.stderr,
            )

    auto = exp.config.search.model_copy(update={"sampler": "auto"})
    default = f"{sampler_name(auto, args.trials)}+{STOP}"  # and stop_early's default, on
    label = {s: f"{s} (the default)" if s == default else s for s in samplers}
    print(
        f"# search: samplers against random sampling, lenet5 on {data.split(':')[0]}, "
        f"{args.seeds} seeds\n"
    )
    print(
        "budget: accuracy >= 0.85, storage_kb <= 60; objectives: accuracy, storage_kb; "
        "chosen on validation (val_accuracy), the same fronts re-scored on test\n"
    )
    print(
        "| sampler | trials | hypervolume on validation: median [quartiles] | same front on "
        "test: median | fitting trials (median) | best fitting: val → test accuracy (median) | "
        "s for these trials (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in checkpoints:
        for sampler in samplers:
            scored = [r["scores"][c] for r in runs[sampler]]
            q1, q2, q3 = quartiles([s["val"] for s in scored])
            test = statistics.median(s["test"] for s in scored)
            fitting = statistics.median(s["fitting"] for s in scored)
            bests = [s["best"] for s in scored if s["best"]]
            best = (
                f"{statistics.median(b[0] for b in bests):.4f} → "
                f"{statistics.median(b[1] for b in bests):.4f}"
                if bests
                else "none"
            )
            seconds = statistics.median(r["clock"][c - 1] for r in runs[sampler])
            print(
                f"| {label[sampler]} | {c} | {q2:.4f} [{q1:.4f}, {q3:.4f}] | {test:.4f} | "
                f"{fitting:g} | {best} | {seconds:.0f} |"
            )

    if "random" not in runs:
        return
    print("\n# targets\n")
    for sampler in (s for s in samplers if s != "random"):
        for c in checkpoints:
            mine = statistics.median(r["scores"][c]["val"] for r in runs[sampler])
            upper = quartiles([r["scores"][c]["val"] for r in runs["random"]])[2]
            verdict = "met" if mine > upper else "not met"
            print(
                f"- {label[sampler]} at {c} trials: median {mine:.4f} against random's upper "
                f"quartile {upper:.4f}: {verdict}"
            )
        goal = statistics.median(r["scores"][args.trials]["val"] for r in runs["random"])
        reached = []
        for run in runs[sampler]:
            for c in range(1, args.trials + 1):
                if score_at(run, c, goal):
                    reached.append(run["clock"][c - 1])
                    break
        random_s = statistics.median(r["clock"][-1] for r in runs["random"])
        print(
            f"- {label[sampler]} reached random's {args.trials}-trial median ({goal:.4f}) in "
            f"{len(reached)} of {len(runs[sampler])} seeds"
            + (f", in {statistics.median(reached):.0f} s (median)" if reached else "")
            + f"; random's {args.trials} trials took {random_s:.0f} s (median)"
        )


def score_at(run: dict, upto: int, goal: float) -> bool:
    """Whether the run's front over its first ``upto`` trials reached ``goal``."""
    if upto not in run["scores"]:
        run["scores"][upto] = score(run["records"], upto)
    return run["scores"][upto]["val"] >= goal


def workers_table(args: argparse.Namespace, data: str, root: Path, say) -> None:
    print(f"\n# trials per hour ({args.worker_trials} trials, random sampler)\n")
    print("| workers | trials | wall s | trials / hour |")
    print("|---:|---:|---:|---:|")
    first = None
    for workers in (1, 2):
        exp = experiment(f"workers-{workers}", data, args.worker_trials, "random", 0, args.quick)
        if first:
            share_baseline(root, first, exp.config.name)
        first = first or exp.config.name
        outcome = run_search(exp, str(root), workers=workers, say=say, show_progress=False)
        wall = outcome.timings["search"]  # the trials alone: baseline and report excluded
        done = sum(1 for r in outcome.records if "trial" in r)
        print(f"| {workers} | {done} | {wall:.0f} | {done / wall * 3600:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="per run; also scored at half")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--samplers",
        default="random,gp,gp+stop",
        help="each SAMPLER or SAMPLER+stop (multi-fidelity: stop_early on; off otherwise)",
    )
    parser.add_argument("--finetune-epochs", type=int, default=3, help="the space's")
    parser.add_argument("--data", choices=["fashion-mnist", "digits"], default="fashion-mnist")
    parser.add_argument("--worker-trials", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="digits, 2 seeds, 10 trials")
    parser.add_argument("--workers-only", action="store_true", help="trials per hour only")
    args = parser.parse_args()
    if args.quick:
        args.data, args.seeds, args.trials = "digits", 2, 10
    data = "digits"
    if args.data == "fashion-mnist" and FASHION.is_dir():
        data = f"fashion-mnist:{FASHION}"
    elif args.data == "fashion-mnist":
        print("Fashion-MNIST not installed; using digits", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="edgeslim-search-bench-"))
    say = print if "-v" in sys.argv else (lambda _: None)
    try:
        if args.workers_only:
            workers_table(args, data, root, say)
        else:
            compare(args, data, root, say)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
