"""Selection on hand-made records whose fronts are known by construction."""

from __future__ import annotations

import pytest

import edgeslim as es
from edgeslim.budget import Bound
from edgeslim.errors import ConfigError
from edgeslim.select import Objective, difference_interval, margin, pareto_ranks, select, wilson


def rec(name: str, accuracy: float, latency: float, storage: float = 50.0, **extra) -> dict:
    return {
        "name": name,
        "accuracy": accuracy,
        "latency_p95_ms": latency,
        "storage_kb": storage,
        **extra,
    }


TWO = [Objective("accuracy", "higher"), Objective("latency_p95_ms", "lower")]


def test_two_objective_front_and_ranks():
    records = [
        rec("a", 0.99, 5.0),  # front: most accurate
        rec("b", 0.95, 1.0),  # front: fastest
        rec("c", 0.97, 2.0),  # front: in between
        rec("d", 0.94, 3.0),  # dominated by b and c -> rank 2
        rec("e", 0.93, 6.0),  # dominated by d -> rank 3
    ]
    assert pareto_ranks(records, TWO) == [1, 1, 1, 2, 3]


def test_three_objective_front_keeps_points_dominated_in_two():
    records = [
        rec("a", 0.99, 5.0, storage=90),
        rec("b", 0.95, 1.0, storage=90),
        rec("c", 0.94, 3.0, storage=10),  # dominated on (acc, latency) but smallest: front
        rec("d", 0.94, 3.0, storage=20),  # same as c but bigger: dominated by c
    ]
    three = [*TWO, Objective("storage_kb", "lower")]
    assert pareto_ranks(records, TWO) == [1, 1, 2, 2]
    assert pareto_ranks(records, three) == [1, 1, 1, 2]
    chosen = select(records, objectives=["accuracy", "latency_p95_ms", "storage_kb"])
    assert {r["name"] for r in chosen.front} == {"a", "b", "c"}


def test_ties_are_all_on_the_front_and_broken_by_the_next_objective_then_name():
    records = [rec("z", 0.97, 2.0), rec("y", 0.97, 2.0), rec("x", 0.97, 1.5), rec("w", 0.9, 0.5)]
    # z and y tie (equal vectors do not dominate each other); x beats both; w trades accuracy
    assert pareto_ranks(records, TWO) == [2, 2, 1, 1]
    chosen = select(records, objectives=["accuracy", "latency_p95_ms"])
    assert chosen.recommended["name"] == "x"  # accuracy ties; lower latency wins
    # the other trade-off on the front first, then the rest in the same order
    assert [r["name"] for r in chosen.runner_ups] == ["w", "y", "z"]
    identical = select([rec("b", 0.97, 2.0), rec("a", 0.97, 2.0)], objectives=["accuracy"])
    assert identical.recommended["name"] == "a"  # full tie: the name decides, reproducibly


def test_budget_everything_fits_recommends_the_most_accurate():
    records = [rec("a", 0.99, 5.0), rec("b", 0.95, 1.0), rec("c", 0.97, 2.0)]
    chosen = select(records, es.Budget(latency_p95_ms=10), maximize="accuracy")
    assert [r["name"] for r in chosen.fitting] == ["a", "c", "b"]
    assert chosen.recommended["name"] == "a"
    assert {r["name"] for r in chosen.runner_ups} == {"b", "c"}
    assert not chosen.misses


def test_budget_as_hard_constraint_changes_the_winner():
    records = [rec("a", 0.99, 5.0), rec("b", 0.95, 1.0), rec("c", 0.97, 2.0)]
    chosen = select(records, es.Budget(latency_p95_ms="<= 2.5"), maximize="accuracy")
    assert chosen.recommended["name"] == "c"
    assert not chosen.is_fitting(records[0])
    fastest = select(records, es.Budget(accuracy=">= 0.96"), minimize="latency_p95_ms")
    assert fastest.recommended["name"] == "c"


def test_nothing_fits_reports_nearest_misses_with_what_broke():
    records = [
        rec("a", 0.99, 5.0, storage=400),  # 4x over storage
        rec("b", 0.95, 1.0, storage=110),  # 10% over storage: nearest
        rec("c", 0.80, 1.0, storage=90),  # accuracy short by 0.1 of 0.9 (11%)
    ]
    budget = es.Budget(storage_kb=100, accuracy=">= 0.9")
    chosen = select(records, budget)
    assert chosen.recommended is None and chosen.fitting == []
    assert [m.record["name"] for m in chosen.misses] == ["b", "c", "a"]
    (violation,) = chosen.misses[0].violations
    assert violation.bound == Bound("storage_kb", "<=", 100.0)
    assert violation.measured == 110
    assert violation.relative == pytest.approx(0.10)
    assert "nothing fits" in chosen.summary() and "storage_kb <= 100" in chosen.summary()


def test_failed_and_incomplete_records_are_never_recommended():
    records = [
        rec("ok", 0.9, 1.0),
        {"name": "broken", "status": "failed", "error": "boom"},
        {"name": "partial", "accuracy": 1.0},  # latency missing: cannot be ranked
    ]
    chosen = select(records, objectives=["accuracy", "latency_p95_ms"])
    assert chosen.recommended["name"] == "ok"
    assert {r["name"] for r in chosen.unmeasured} == {"broken", "partial"}


def test_an_unmeasured_bound_metric_is_a_violation_not_a_pass():
    chosen = select([rec("a", 0.9, 1.0)], es.Budget(peak_memory_mb=64), objectives=["accuracy"])
    assert chosen.recommended is None
    assert chosen.misses[0].violations[0].measured is None


def test_memory_ranks_on_the_models_own_share_by_default_and_on_the_arena_under_its_bound():
    """The default objectives rank memory on model_memory_kb (the process's peak is mostly the
    runtime's own); a microcontroller's arena bound ranks it on the arena instead, a record
    off TFLite Micro on its activation estimate, as the bound holds it."""
    from edgeslim.select import DEFAULT_OBJECTIVES, device_objectives

    assert "model_memory_kb" in DEFAULT_OBJECTIVES and "peak_memory_mb" not in DEFAULT_OBJECTIVES
    lean = rec("lean", 0.9, 1.0, model_memory_kb=300, peak_memory_mb=12.0)
    heavy = rec("heavy", 0.9, 1.0, model_memory_kb=900, peak_memory_mb=11.0)
    chosen = select([heavy, lean])  # same accuracy, latency and storage
    assert [o.metric for o in chosen.objectives] == list(DEFAULT_OBJECTIVES)
    assert chosen.ranks == {"lean": 1, "heavy": 2}  # whatever the whole peak says
    arena = es.Budget.parse({"tensor_arena_kb": "<= 128"})
    assert device_objectives(["accuracy", "model_memory_kb", "peak_memory_mb"], arena) == [
        "accuracy",
        "tensor_arena_kb",
    ]
    both = es.Budget.parse({"tensor_arena_kb": "<= 128", "peak_memory_mb": "<= 64"})
    assert device_objectives(["peak_memory_mb"], both) == ["peak_memory_mb"]  # bounded: kept
    micro = {**heavy, "tensor_arena_kb": 40.0}
    onnx = {**lean, "name": "onnx", "activation_memory_kb": 60.0}  # no arena: its estimate
    on_device = select([micro, onnx], arena)
    assert [o.metric for o in on_device.objectives][-1] == "tensor_arena_kb"
    assert on_device.ranks == {"heavy": 1, "onnx": 2} and not on_device.unmeasured


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: es.Budget(latency_ms=2), "unknown metric"),
        (lambda: es.Budget(accuracy="about 0.9"), "'<= N' / '>= N'"),
        (lambda: select([], objectives=["speed"]), "unknown"),
        (lambda: select([], maximize="latency_p95_ms"), "cannot turn it around"),
        (lambda: select([rec("a", 1, 1), rec("a", 1, 1)]), "two records are named"),
    ],
)
def test_bad_budgets_and_objectives_are_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_bare_numbers_take_the_metric_direction():
    budget = es.Budget(accuracy=0.9, storage_kb=100)
    assert [str(b) for b in budget.bounds] == ["accuracy >= 0.9", "storage_kb <= 100"]


def test_wilson_and_newcombe_intervals_match_the_published_examples():
    """Newcombe (1998): 81/263 has the Wilson interval 0.2553-0.3662 (Stat. Med. 17:857, table
    I); 56/70 - 48/80 has the method-10 interval 0.0524-0.3339 (Stat. Med. 17:873, table II)."""
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert difference_interval(56 / 70, 70, 48 / 80, 80) == pytest.approx(
        (0.0524, 0.3339), abs=1e-4
    )


def with_samples(record: dict, n: int = 359) -> dict:
    return {**record, "measured_with": {"test_samples": n}}


def test_a_lead_of_2_in_359_is_within_noise_and_a_lead_of_97_is_not():
    best = with_samples(rec("a", 347 / 359, 1.0))
    close = margin(best, with_samples(rec("b", 345 / 359, 1.0)), "accuracy")
    assert (close.behind, close.samples, close.within) == (2, 359, True)
    far = margin(best, with_samples(rec("c", 250 / 359, 1.0)), "accuracy")
    assert (far.behind, far.within) == (97, False)
    assert margin(best, with_samples(rec("d", 0.9, 1.0), 100), "accuracy") is None  # other n
    assert margin(best, with_samples(rec("e", 0.9, 1.0)), "latency_p95_ms") is None
    chosen = select([best, with_samples(rec("b", 345 / 359, 0.5))], objectives=["accuracy"])
    assert "b is as good a pick" in chosen.summary()


def test_hypervolume_history_adds_only_fitting_trials_in_trial_order():
    """Boxes from each fitting trial to the budget's corner (accuracy 0.9, 100 KB), worked by
    hand: trial 0 (0.95, 50 KB) spans 0.05 x 50 = 2.5; trial 1 misses the accuracy bound; trial 2
    (0.92, 20 KB) adds 0.02 x 80 less the 0.02 x 50 it shares: 3.1; trial 3 failed."""
    from edgeslim.select import hypervolume_history, objectives_for

    records = [
        {**rec("t2", 0.92, 1.0, storage=20), "trial": 2},
        {**rec("t0", 0.95, 1.0, storage=50), "trial": 0},
        {**rec("t1", 0.85, 1.0, storage=10), "trial": 1},
        {"name": "t3", "trial": 3, "status": "failed", "error": "boom"},
    ]
    budget = es.Budget(accuracy=0.9, storage_kb=100)
    history = hypervolume_history(records, objectives_for(["accuracy", "storage_kb"]), budget)
    assert [t for t, _ in history] == [0, 1, 2, 3]
    assert [v for _, v in history] == pytest.approx([2.5, 2.5, 3.1, 3.1])
