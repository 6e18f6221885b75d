"""Multi-fidelity's rule on its own: when a trial's training is stopped, and on what evidence."""

from __future__ import annotations

import pytest
import torch

import edgeslim as es
from edgeslim.budget import Budget
from edgeslim.fidelity import EVIDENCE, Seen, Watch, quality_bound, seen
from edgeslim.train import TrainingStopped, fit, watching

BOUND = quality_bound(Budget(val_accuracy=">= 0.9", storage_kb=60), "val_accuracy")
FINETUNE = "1:finetune/3"


def earlier(gains: list[float], key: str = FINETUNE) -> list[Seen]:
    """Finished trials that were at 0.80 after the first epoch and gained ``gain`` by the end."""
    return [Seen({key: [0.80, 0.85, 0.86]}, 0.80 + gain) for gain in gains]


def test_the_bound_is_the_budgets_lower_bound_on_the_validation_figure():
    assert str(BOUND) == "val_accuracy >= 0.9"
    assert quality_bound(Budget(val_accuracy=">= 0.9"), "val_map50") is None
    assert quality_bound(Budget(storage_kb=60), "val_accuracy") is None


def test_a_trial_out_of_reach_by_the_largest_gain_seen_is_stopped_after_its_epoch():
    watch = Watch(BOUND, earlier([0.02, 0.05, 0.03]))
    with pytest.raises(TrainingStopped, match="cannot reach val_accuracy >= 0.9"):
        watch("finetune", 1, 3, 0.83)  # 0.83 + 0.05 + 0.01 < 0.9
    assert watch.stopped == {
        "training": "finetune",
        "epoch": 1,
        "epochs": 3,
        "score": 0.83,
        "largest_gain": 0.05,
        "from_trials": 3,
    }
    assert "epoch 1 of 3" in watch.reason() and "+0.0500" in watch.reason()
    assert watch.curves == {FINETUNE: [0.83]}


def test_a_trial_within_the_largest_gain_and_the_slack_goes_on_until_it_is_not():
    watch = Watch(BOUND, earlier([0.02, 0.05, 0.03]))
    watch("finetune", 1, 3, 0.845)  # 0.845 + 0.05 + 0.01 >= 0.9: it may still get there
    assert watch.stopped is None
    # from epoch 2 (0.85) the others ended at -0.03, 0 and -0.02: 0.88 + 0 + 0.01 < 0.9
    with pytest.raises(TrainingStopped, match="epoch 2 of 3"):
        watch("finetune", 2, 3, 0.88)
    assert watch.curves == {FINETUNE: [0.845, 0.88]}


def test_nothing_is_stopped_before_enough_comparable_trials_trained_the_same_way():
    short = Watch(BOUND, earlier([0.01] * (EVIDENCE - 1)))
    short("finetune", 1, 3, 0.81)  # hopeless, but too little evidence to say so
    other_training = Watch(BOUND, earlier([0.01] * EVIDENCE, key="1:distill/3"))
    other_training("finetune", 1, 3, 0.81)  # evidence from a distillation does not count
    # trials that were better after epoch 1 (0.80) say nothing of one at 0.36: it has more
    # to recover than they had
    further_back = Watch(BOUND, earlier([0.01] * EVIDENCE))
    further_back("finetune", 1, 3, 0.36)
    assert short.stopped is None and other_training.stopped is None
    assert further_back.stopped is None


def test_the_last_epoch_of_a_training_is_never_a_reason_to_stop():
    watch = Watch(BOUND, earlier([0.0] * EVIDENCE, key="1:finetune/1"))
    watch("finetune", 1, 1, 0.1)  # nothing left of this training to save
    assert watch.stopped is None and watch.curves == {"1:finetune/1": [0.1]}


def test_each_training_of_a_recipe_has_its_own_curve():
    watch = Watch(BOUND, [])
    for epoch in (1, 2):
        watch("distill", epoch, 2, 0.5 + epoch / 10)
    watch("qat", 1, 1, 0.75)
    assert watch.curves == {"1:distill/2": [0.6, 0.7], "2:qat/1": [0.75]}


def test_only_trials_with_curves_and_a_measured_figure_teach():
    curves = {FINETUNE: [0.8, 0.85, 0.86]}
    measured = {"status": "does-not-fit", "val_accuracy": 0.88}  # a miss on size still teaches
    assert seen({"curves": curves, "record": measured}, "val_accuracy") == Seen(curves, 0.88)
    assert seen({"record": measured}, "val_accuracy") is None  # from before the rule
    stopped = {"status": "does-not-fit", "stopped_early": {}}
    assert seen({"curves": curves, "record": stopped}, "val_accuracy") is None
    assert (
        seen(
            {"curves": curves, "record": {**measured, "val_accuracy": float("nan")}}, "val_accuracy"
        )
        is None
    )


def test_fit_reports_every_epoch_to_the_watcher_and_stops_when_it_says(digits):
    model = es.models.build("mlp", digits.spec)
    said = []

    def watcher(desc: str, epoch: int, epochs: int, score: float) -> None:
        said.append((desc, epoch, epochs, round(score, 4)))
        if epoch == 2:
            raise TrainingStopped("enough")

    before = [p.detach().clone() for p in model.parameters()]
    with watching(watcher), pytest.raises(TrainingStopped, match="enough"):
        fit(model, digits, epochs=5, desc="finetune", show_progress=False)
    assert [s[:3] for s in said] == [("finetune", 1, 5), ("finetune", 2, 5)]
    assert all(0 <= s[3] <= 1 for s in said)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    fit(model, digits, epochs=1, show_progress=False)  # outside the block: nobody watches
    assert len(said) == 2
