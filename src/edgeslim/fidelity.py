"""Multi-fidelity for the search: a trial's training stops once it shows that the trial cannot
reach the budget's quality bound, so no more epochs, export or measurement go into it.

The rule reads the trial's own validation score after each epoch of each training in its
recipe (``train.watching``) and asks how much earlier trials gained from that same point to
their measured validation figure (on the runtime, after every later step: quantization loss
included). Only earlier trials that were no better at that point count: a model further from
where it started (more pruned, say) has more to recover, so a trial at 0.36 after one epoch may
gain 0.5 where one at 0.85 gains 0.05, and the gains of better trials would understate it. A
trial stops when even the largest such gain, plus ``SLACK``, leaves it under the bound. An
infeasible trial cannot be on the fitting front, so stopping it loses no candidate the search
would keep, unless it would have gained more than every comparable earlier trial did: hence the
rule waits for ``EVIDENCE`` of them.

Successive halving or Optuna's pruners rank a trial against the others at the same epoch; with
several objectives a trial behind on accuracy may still lead on size, so ranking on one of them
would stop trials the front needs. The budget's bound is the one verdict on a single figure that
holds whatever the other objectives are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeslim.budget import Bound, Budget
from edgeslim.figures import is_figure
from edgeslim.train import TrainingStopped

SLACK = 0.01  # on top of the largest gain seen: a trial a point short of that is still let go on
EVIDENCE = 3  # earlier trials that trained the same way before any trial is stopped

Curves = dict[str, list[float]]  # a trial's trainings, "1:finetune/2" -> validation per epoch


@dataclass(frozen=True)
class Seen:
    """An earlier trial's trainings and the validation figure it was measured at."""

    curves: Curves
    final: float


def quality_bound(budget: Budget, metric: str) -> Bound | None:
    """The budget's lower bound on the validation quality figure, the one a fine-tune can tell
    early; None without one (nothing to stop a trial for)."""
    for bound in budget.bounds:
        if bound.metric == metric and bound.op == ">=":
            return bound
    return None


@dataclass
class Watch:
    """Sees one trial's trainings (an epoch watcher) and stops them when the trial is out of
    reach of ``bound``; ``curves`` is what the next trials learn from."""

    bound: Bound
    earlier: list[Seen]
    curves: Curves = field(default_factory=dict)
    stopped: dict[str, Any] | None = None
    trainings: int = 0

    def __call__(self, desc: str, epoch: int, epochs: int, score: float) -> None:
        if epoch == 1:
            self.trainings += 1
        key = f"{self.trainings}:{desc}/{epochs}"
        self.curves.setdefault(key, []).append(round(score, 6))
        if epoch >= epochs:  # the last epoch: stopping saves nothing of this training
            return
        gains = [  # from trials no better at this point: a worse start leaves more to gain
            seen.final - curve[epoch - 1]
            for seen in self.earlier
            if len(curve := seen.curves.get(key, ())) >= epoch and curve[epoch - 1] <= score
        ]
        if len(gains) < EVIDENCE:
            return
        if self.bound.excess(score + max(gains) + SLACK) == 0:  # it may still get there
            return
        self.stopped = {
            "training": desc,
            "epoch": epoch,
            "epochs": epochs,
            "score": round(score, 4),
            "largest_gain": round(max(gains), 4),
            "from_trials": len(gains),
        }
        raise TrainingStopped(self.reason())

    def reason(self) -> str:
        s = self.stopped or {}
        return (
            f"stopped after {s['training']} epoch {s['epoch']} of {s['epochs']} at "
            f"{self.bound.metric} {s['score']:.4f}: of the {s['from_trials']} earlier trials "
            f"no higher there, none gained more than {s['largest_gain']:+.4f} by the end, so "
            f"it cannot reach {self.bound}"
        )


def seen(attrs: dict[str, Any], metric: str) -> Seen | None:
    """What a finished trial teaches, from its attributes: its curves and measured figure,
    whether it fitted or not (None when it has not both: a trial from before this rule, or one
    that failed or stopped)."""
    curves, record = attrs.get("curves"), attrs.get("record")
    if not isinstance(curves, dict) or record is None:
        return None
    final = record.get(metric)
    return Seen(curves, float(final)) if is_figure(final) else None
