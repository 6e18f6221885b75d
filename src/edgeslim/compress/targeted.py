"""Per-layer pruning ratios chosen for a latency target on the runtime, from measured figures.

HALP-style global allocation (Shen et al. 2022), with the latency table in place of their
lookup table: each layer's accuracy drop at each ratio (the validation sweep of
``sensitivity``) and the latency it saves (the table's predictor, on the pruned model itself)
make a knapsack, filled greedily with the cheapest accuracy per millisecond saved until the
predicted latency meets the goal. The savings of several layers do not add up exactly (pruning
a layer's outputs also narrows the next layer's inputs), so the whole allocation is predicted
again and the goal tightened until it is met. Chosen over NetAdapt's iteration, which fine-tunes
a proposal per layer at every step: minutes per step on this machine's CPUs.

The model chosen is then *measured* on the runtime; when it misses the target, the goal is
tightened by what was missed, and when it lands far under it, relaxed; once one goal has missed
and another met, the next lies between them. Of the models that met the target, the least
pruned is kept (``ROUNDS`` measurements at most; fewer when a new goal gives widths already
measured, as it does once every layer is pruned as far as allowed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from edgeslim.compress.latency_table import LatencyTable, OutOfReach, Probe, layer_work
from edgeslim.compress.sensitivity import Sensitivity
from edgeslim.errors import MeasurementError

GRID = np.round(np.arange(0.0, 0.9001, 0.05), 2)  # ratios the allocation moves between
ROUNDS = 5  # measured corrections at most
TOLERANCE = 0.05  # a measured p50 within 5% over the target is taken as meeting it
# a measured p50 more than 10% under the target prunes more than asked: accuracy is given away,
# so the goal is relaxed (between a goal that missed and one that met, when both are known)
OVERSHOOT = 0.10


def interpolate(points: dict[float, float]) -> np.ndarray:
    """A per-ratio curve over ``GRID`` from a few measured points (0 at ratio 0)."""
    xs = [0.0, *sorted(points)]
    ys = [0.0, *(points[r] for r in sorted(points))]
    return np.interp(GRID, xs, ys)


def allocate(
    drops: dict[str, np.ndarray], savings: dict[str, np.ndarray], needed_ms: float
) -> dict[str, float]:
    """Greedy knapsack: move the layer whose next ratio step costs the least accuracy per ms
    saved, until the savings add up to ``needed_ms`` (or nothing is left to prune)."""
    at = dict.fromkeys(drops, 0)
    saved = 0.0
    while saved < needed_ms:
        best, best_cost = None, np.inf
        for layer, index in at.items():
            if index + 1 >= len(GRID):
                continue
            gain = savings[layer][index + 1] - savings[layer][index]
            if gain <= 0:
                continue
            cost = max(drops[layer][index + 1] - drops[layer][index], 0.0) + 1e-4
            if cost / gain < best_cost:
                best, best_cost = layer, cost / gain
        if best is None:
            break
        saved += savings[best][at[best] + 1] - savings[best][at[best]]
        at[best] += 1
    return {layer: float(GRID[index]) for layer, index in at.items() if index > 0}


def choose(
    model: nn.Module,
    example,
    table: LatencyTable,
    sensitivity: Sensitivity,
    pruned: Callable[[dict[str, float]], nn.Module],
    probe: Probe,
    target_ms: float,
    fraction: bool = False,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, float], dict]:
    """Per-layer ratios whose pruned model measures at most ``target_ms`` (p50) on the probe's
    runtime, and what the record says about it: target, predicted and measured latency.
    ``fraction``: the target is a fraction of the baseline's p50, and the measured speed-up
    (against the baseline timed beside the pruned model) decides whether it is met."""
    predictor = table.predictor
    base_pred = predictor.predict(layer_work(model, example))
    drops, savings = {}, {}
    for layer in sensitivity.accuracy:
        drops[layer] = np.maximum.accumulate(
            interpolate({r: sensitivity.drop(layer, r) for r in sensitivity.ratios})
        )
        alone = {
            r: base_pred - predictor.predict(layer_work(pruned({layer: r}), example))
            for r in sensitivity.ratios
        }
        savings[layer] = interpolate(alone)
    goal = target_ms
    rounds: list[dict] = []
    # the round that met the target with the least pruning, its ratios and its pruned model
    kept: tuple[dict, dict[str, float], nn.Module] | None = None
    missed_at = met_at = None  # goals whose models missed / met the target: a bracket

    def shaped(ratios: dict[str, float]) -> tuple[nn.Module, float]:
        narrowed = pruned(ratios)
        return narrowed, predictor.predict(layer_work(narrowed, example))

    tried: list[dict[str, float]] = []  # each round's allocation
    for _ in range(ROUNDS):
        ratios, candidate, predicted = fitted(drops, savings, base_pred, goal, shaped)
        if ratios in tried:  # the goal moved, the widths did not: timing them again tells nothing
            say(f"prune: a {goal:.4g} ms goal gives widths already measured; no further rounds")
            break
        tried.append(ratios)
        base_now, measured = probe([model, candidate])  # side by side: one host moment
        if measured.p50_ms is None or base_now.p50_ms is None:
            why = measured.error or base_now.error
            raise MeasurementError(f"the pruned model cannot run on {probe.runtime}: {why}")
        # a fraction of the baseline is judged against the baseline timed beside it
        reached = measured.p50_ms * (table.baseline_ms / base_now.p50_ms if fraction else 1.0)
        this = {
            "goal_ms": round(goal, 5),
            "predicted_ms": round(predicted, 5),
            "measured_ms": round(measured.p50_ms, 5),
            "baseline_now_ms": round(base_now.p50_ms, 5),
            "reached_ms": round(reached, 5),
        }
        rounds.append(this)
        if reached <= target_ms * (1 + TOLERANCE):
            if kept is None or reached > kept[0]["reached_ms"]:
                kept = this, ratios, candidate
            if reached >= target_ms * (1 - OVERSHOOT):
                break  # met, without pruning much more than the target asks
            met_at, then = goal, "pruning less"
        else:
            missed_at, then = goal, "asking for less"
        say(
            f"prune: {reached:.4g} ms measured against a {target_ms:.4g} ms target "
            f"({predicted:.4g} ms predicted); {then}"
        )
        if missed_at is not None and met_at is not None:  # between the two, geometrically
            goal = float(np.sqrt(missed_at * met_at))
        else:  # by what the measurement says the prediction was off
            goal *= target_ms / reached
    if kept is None:
        closest = min(r["reached_ms"] for r in rounds)
        raise OutOfReach(
            f"prune.target: {target_ms:.4g} ms is out of reach on {probe.runtime} with the "
            f"layers this pruning may narrow; the closest measured was {closest:.4g} ms "
            f"(baseline {table.baseline_ms:.4g} ms)"
        )
    met, ratios, chosen = kept
    info = {
        "runtime": probe.runtime,
        "target_ms": round(target_ms, 5),
        "baseline_ms": round(table.baseline_ms, 5),
        "predicted_ms": met["predicted_ms"],
        "measured_ms": met["measured_ms"],
        "measured_speedup": round(met["baseline_now_ms"] / met["measured_ms"], 3),
        # against the measured figure brought to the table's moment (the baseline's drift)
        "predictor_error": round(
            met["predicted_ms"] * met["baseline_now_ms"] / table.baseline_ms / met["measured_ms"]
            - 1,
            4,
        ),
        "rounds": rounds,
        # where the time goes, predicted per layer: the report's chart of baseline against this
        "layers_ms": {
            "fixed": round(predictor.fixed_ms, 5),
            "baseline": rounded(predictor.breakdown(layer_work(model, example))),
            "pruned": rounded(predictor.breakdown(layer_work(chosen, example))),
        },
    }
    return ratios, info


def fitted(
    drops: dict[str, np.ndarray],
    savings: dict[str, np.ndarray],
    base_pred: float,
    goal: float,
    shaped: Callable[[dict[str, float]], tuple[nn.Module, float]],
) -> tuple[dict[str, float], nn.Module, float]:
    """The allocation whose whole pruned model is predicted at ``goal``, with that model and
    its prediction: savings of several layers do not add up exactly, so more is asked for until
    the prediction meets it."""
    needed = base_pred - goal
    for _ in range(8):
        ratios = allocate(drops, savings, needed)
        narrowed, predicted = shaped(ratios)
        if predicted <= goal * 1.01:
            break
        needed += predicted - goal
    return ratios, narrowed, predicted


def rounded(costs: dict[str, float]) -> dict[str, float]:
    return {name: round(ms, 5) for name, ms in costs.items()}
