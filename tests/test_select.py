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


# --- the words and figures a selection reports, worked by hand --------------------------------

OBJECTIVES3 = ["accuracy", "latency_p95_ms", "storage_kb"]


def scored(name: str, right: int, latency: float, storage: float, **extra) -> dict:
    """A record whose accuracy is ``right`` of 359 test samples."""
    return with_samples(rec(name, right / 359, latency, storage, **extra))


def old_note(lacking: int, having: int) -> str:
    """The note on records that predate validation figures (these hand-made ones)."""
    return (
        f"note: chosen on accuracy, the test split's figure: {lacking} of {having} records have "
        "no val_accuracy (measured before edgeslim measured the validation split); measure them "
        "again to choose on validation"
    )


def test_the_summary_names_the_pick_its_bounds_each_runner_up_and_which_are_as_good():
    """a and d both get 347 of 359 right, a faster: a wins. Every record fits and is on the
    front (d is the smallest, b faster, c fastest and smallest), so the runner-ups are d, b, c in
    the ranking's order. d trails by 0 samples and b by 2 (within noise); c by 97 (not)."""
    records = [
        scored("c", 250, 0.4, 20),
        scored("b", 345, 0.5, 45, timing_noisy="cv 0.41 > 0.25"),
        scored("d", 347, 2.0, 30),
        scored("a", 347, 1.0, 40),
    ]
    budget = es.Budget(storage_kb=50, latency_p95_ms=5)
    chosen = select(records, budget, objectives=OBJECTIVES3)
    assert chosen.summary() == "\n".join(
        [
            "recommended: a",
            "  accuracy 0.9666, storage_kb 40 (<= 50), latency_p95_ms 1 (<= 5)",
            "  chosen to maximise accuracy under storage_kb <= 50, latency_p95_ms <= 5",
            "runner-ups:",
            "  d: accuracy 0.9666, storage_kb 30, latency_p95_ms 2; same accuracy on 359 test "
            "samples",
            "  b [timing noisy: cv 0.41 > 0.25]: accuracy 0.961, storage_kb 45, latency_p95_ms "
            "0.5; 2 of 359 test samples behind on accuracy (within noise)",
            "  c: accuracy 0.6964, storage_kb 20, latency_p95_ms 0.4; 97 of 359 test samples "
            "behind on accuracy (more than noise)",
            "a's lead in accuracy over d (0 of 359), b (2 of 359) is within the 95% confidence "
            "interval of the difference (Newcombe's score method): each is as good a pick",
            old_note(4, 4),
        ]
    )


def test_the_summary_of_one_close_runner_up_a_minimised_goal_and_no_budget():
    records = [scored("slow", 347, 2.0, 40), scored("fast", 345, 1.0, 40)]
    chosen = select(records, objectives=["latency_p95_ms", "accuracy"])
    assert chosen.summary().splitlines() == [
        "recommended: fast",
        "  latency_p95_ms 1, accuracy 0.961",
        "  chosen to minimise latency_p95_ms under no budget",
        "runner-ups:",
        "  slow: latency_p95_ms 2, accuracy 0.9666",  # a proportion only: latency has no margin
        old_note(2, 2),
    ]
    alone = select(records[:1], objectives=["accuracy"])
    assert alone.summary().splitlines() == [
        "recommended: slow",
        "  accuracy 0.9666",
        "  chosen to maximise accuracy under no budget",
        old_note(1, 1),
    ]
    close = select(records, objectives=["accuracy"])
    assert close.summary().splitlines()[-2] == (
        "slow's lead in accuracy over fast (2 of 359) is within the 95% confidence interval of "
        "the difference (Newcombe's score method): fast is as good a pick"
    )


def test_the_summary_when_nothing_fits_or_nothing_was_measured():
    records = [rec("a", 0.8, 9.0, storage=400), rec("b", 0.95, 1.0, storage=110)]
    budget = es.Budget(storage_kb=100, accuracy=">= 0.9")
    assert select(records, budget).summary() == "\n".join(
        [
            "nothing fits storage_kb <= 100, accuracy >= 0.9; nearest misses:",
            "  b: storage_kb <= 100: measured 110, off by 10 (10%)",
            "  a: storage_kb <= 100: measured 400, off by 300 (300%); accuracy >= 0.9: measured "
            "0.8, off by 0.1 (11%)",
            old_note(2, 2),
        ]
    )
    failed = [{"name": "x", "status": "failed"}]
    assert select(failed, objectives=["latency_p95_ms"]).summary() == (
        "nothing measured to recommend (minimise latency_p95_ms under no budget)"
    )


def test_figures_text_skips_what_a_record_lacks_says_where_a_fallback_came_from_and_bounds():
    from edgeslim.select import figures_text, objectives_for

    objectives = objectives_for(["accuracy", "latency_p95_ms", "storage_kb", "tensor_arena_kb"])
    budget = es.Budget.parse({"tensor_arena_kb": "<= 128", "storage_kb": "<= 64"})
    record = {"accuracy": 0.91234, "storage_kb": 50.0, "activation_memory_kb": 60.0}
    assert figures_text(record, objectives, budget) == (
        "accuracy 0.9123, tensor_arena_kb 60 (from activation_memory_kb), storage_kb 50"
    )
    assert figures_text(record, objectives, budget, bounds=True) == (
        "accuracy 0.9123, tensor_arena_kb 60 (from activation_memory_kb) (<= 128), "
        "storage_kb 50 (<= 64)"
    )
    # no arena and no estimate: that figure is left out, the ones after it stay
    assert figures_text({"accuracy": 0.9, "storage_kb": 50.0}, objectives, budget) == (
        "accuracy 0.9, storage_kb 50"
    )
    both_sides = es.Budget.parse({"accuracy": 0.9}).merged(es.Budget.parse({"accuracy": "<= 0.99"}))
    assert figures_text({"accuracy": 0.95}, objectives[:1], both_sides, bounds=True) == (
        "accuracy 0.95 (>= 0.9, <= 0.99)"
    )


def test_device_metrics_put_the_primary_then_the_bounded_then_the_rest_less_host_figures():
    from edgeslim.select import device_metrics, objectives_for

    objectives = objectives_for(["accuracy", "latency_p95_ms", "storage_kb", "peak_memory_mb"])
    assert device_metrics(objectives, es.Budget()) == [
        "accuracy",
        "latency_p95_ms",
        "storage_kb",
        "peak_memory_mb",
    ]
    arena = es.Budget.parse({"tensor_arena_kb": "<= 128", "storage_kb": "<= 64"})
    assert device_metrics(objectives, arena) == [
        "accuracy",
        "tensor_arena_kb",
        "storage_kb",
        "latency_p95_ms",
    ]


@pytest.mark.parametrize(
    ("measured_with", "metric", "samples"),
    [
        ({"accuracy_samples": 300, "test_samples": 359}, "accuracy", 300),  # what was scored
        ({"test_samples": 359}, "accuracy", 359),
        ({"val_samples": 120, "test_samples": 359}, "val_accuracy", 120),
        ({"test_samples": 359}, "val_accuracy", None),
        ({"test_samples": 359}, "map50", None),  # not a proportion of samples
        ({"test_samples": 1}, "accuracy", 1),
        ({"test_samples": 0}, "accuracy", None),
        ({"test_samples": -5}, "accuracy", None),
        ({"test_samples": True}, "accuracy", None),
        ({"test_samples": 359.0}, "accuracy", None),
        ({"test_samples": "359"}, "accuracy", None),
        (None, "accuracy", None),
    ],
)
def test_samples_of_reads_the_split_a_proportion_was_measured_on(measured_with, metric, samples):
    from edgeslim.select import samples_of

    assert samples_of({"measured_with": measured_with}, metric) == samples
    assert samples_of({}, metric) is None


def test_a_margin_is_said_only_of_a_lead_on_a_proportion_over_the_same_samples():
    best = with_samples(rec("a", 0.5, 1.0))
    zero = margin(best, with_samples(rec("b", 0.0, 1.0)), "accuracy")  # 0 is a proportion
    assert (zero.behind, zero.samples, zero.within) == (180, 359, False)  # 0.5 x 359 = 179.5
    assert (zero.low, zero.high) == difference_interval(0.5, 359, 0.0, 359)
    perfect = with_samples(rec("p", 1.0, 1.0))
    assert margin(perfect, best, "accuracy").behind == 180
    assert margin(best, best, "accuracy").behind == 0
    assert margin(best, perfect, "accuracy") is None  # not a lead
    assert margin(with_samples(rec("x", 1.5, 1.0)), best, "accuracy") is None  # not a proportion
    assert margin(best, with_samples(rec("n", float("nan"), 1.0)), "accuracy") is None
    assert margin(with_samples(rec("n", float("nan"), 1.0)), best, "accuracy") is None
    lacking = with_samples({"name": "l", "latency_p95_ms": 1.0})
    assert margin(best, lacking, "accuracy") is None


def test_a_margin_on_the_validation_split_says_so():
    from edgeslim.select import Margin

    assert Margin("val_accuracy", 100, 3, 0.0, 0.05).text() == (
        "3 of 100 validation samples behind on val_accuracy (within noise)"
    )
    assert Margin("accuracy", 100, 1, 0.001, 0.05).text() == (
        "1 of 100 test samples behind on accuracy (more than noise)"
    )
    assert Margin("accuracy", 100, 0, -0.02, 0.02).text() == "same accuracy on 100 test samples"


def test_a_perfect_score_s_interval_ends_at_one_exactly():
    assert wilson(16, 16)[1] == 1.0  # 1.0000000000000002 before the clip
    assert wilson(0, 16)[0] == 0.0


def test_objectives_are_refused_naming_what_is_wrong():
    from edgeslim.select import objectives_for

    with pytest.raises(ConfigError) as caught:
        objectives_for([])
    assert str(caught.value).startswith(
        "objectives: unknown empty list; choose from accuracy, activation_memory_kb, "
    )
    with pytest.raises(ConfigError, match=r"^objectives: unknown \['speed'\]; choose from "):
        objectives_for(["accuracy", "speed"])
    with pytest.raises(ConfigError) as caught:
        objectives_for(["accuracy", "storage_kb", "accuracy"])
    assert str(caught.value) == (
        "objectives: each metric once, got ['accuracy', 'storage_kb', 'accuracy']"
    )


def test_a_record_missing_an_objective_has_no_key_and_the_default_is_the_first():
    from edgeslim.select import default_objectives

    with pytest.raises(KeyError, match="latency_p95_ms"):
        Objective("latency_p95_ms", "lower").key({"accuracy": 0.9})
    assert default_objectives([{"name": "x", "params": 5}]) == ["accuracy"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maximize": "accuracy", "minimize": "storage_kb"}, "give maximize or minimize, not both"),
        (
            {"minimize": "accuracy", "objectives": ["accuracy", "latency_p95_ms"]},
            "accuracy is higher-is-better; cannot turn it around",
        ),
        (
            {"maximize": "storage_kb", "objectives": ["accuracy"]},
            "storage_kb is lower-is-better; cannot turn it around",
        ),
    ],
)
def test_a_goal_against_the_metric_s_direction_is_refused(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        select([], **kwargs)
    assert str(caught.value) == message


def test_a_duplicate_name_is_refused_by_name():
    with pytest.raises(ConfigError) as caught:
        select([rec("a", 0.9, 1.0), rec("b", 0.9, 1.0), rec("a", 0.8, 1.0)])
    assert str(caught.value) == "two records are named 'a'"


def test_at_most_three_runner_ups_and_three_misses_by_default():
    records = [rec(f"r{i}", 0.9 - i / 100, 1.0 + i) for i in range(5)]  # a chain: r0 best
    chosen = select(records, objectives=["accuracy", "latency_p95_ms"])
    assert [r["name"] for r in chosen.runner_ups] == ["r1", "r2", "r3"]
    assert chosen.misses == [] and chosen.unmeasured == []
    assert chosen.fits(records[4]) and chosen.is_fitting(records[4])
    none_fit = select(records, es.Budget(accuracy=">= 0.95"), objectives=["accuracy"])
    assert [m.record["name"] for m in none_fit.misses] == ["r0", "r1", "r2"]
    assert not none_fit.fits(records[0]) and not none_fit.is_fitting(records[0])


def test_nothing_fitting_keeps_every_list_of_the_selection():
    measured = [rec("a", 0.8, 1.0), rec("b", 0.7, 0.5)]
    failed = {**rec("f", 0.99, 0.1), "status": "failed"}  # figures, but failed: never ranked
    chosen = select([*measured, failed], es.Budget(accuracy=">= 0.9"), objectives=OBJECTIVES3)
    assert chosen.recommended is None and chosen.runner_ups == [] and chosen.fitting == []
    assert chosen.measured == measured and chosen.unmeasured == [failed]
    assert chosen.ranks == {"a": 1, "b": 1}
    fits = select([*measured, failed], objectives=OBJECTIVES3)
    assert fits.recommended["name"] == "a" and fits.unmeasured == [failed]


def test_the_reference_point_takes_bounds_else_just_past_the_worst_value_seen():
    from edgeslim.select import objectives_for, reference_point

    objectives = objectives_for(["accuracy", "storage_kb"])
    records = [
        {"accuracy": 0.95, "storage_kb": 40.0},
        {"accuracy": 0.97, "storage_kb": 50.0},
        {"accuracy": 0.99},  # no storage: not seen for it
    ]
    # accuracy is a loss of -accuracy: the worst seen is -0.95
    assert reference_point(records, objectives) == pytest.approx(
        [-0.95 * 1.0001 + 1e-9, 50 * 1.0001 + 1e-9], rel=1e-12, abs=0
    )
    bounded = reference_point(records, objectives, es.Budget(accuracy=">= 0.9"))
    assert bounded == pytest.approx([-0.9, 50.005000001], rel=1e-12, abs=0)
    assert reference_point([], objectives) == pytest.approx([1e-9, 1e-9], rel=1e-9, abs=0)


def test_hypervolume_of_nothing_inside_is_zero():
    from edgeslim.select import hypervolume, objectives_for

    objectives = objectives_for(["accuracy", "storage_kb"])
    outside = [{"accuracy": 0.85, "storage_kb": 10.0}]  # short of the 0.9 corner
    assert hypervolume(outside, objectives, [-0.9, 100.0]) == 0.0
    assert hypervolume([], objectives, [-0.9, 100.0]) == 0.0


def test_hypervolume_history_reference_and_membership_come_from_fitting_trials_only():
    """Budget on accuracy only: storage's reference is just past the worst fitting trial's
    (50 KB -> 50.005000001). t0 (0.95, 50 KB) spans 0.05 x 0.005000001; t1 (0.92, 20 KB) adds
    0.02 x 30 (20 to 50 KB; above 50 t0 holds it). t2 failed and t3 lacks storage: neither
    counts, nor sets the box."""
    from edgeslim.select import hypervolume_history, objectives_for

    records = [
        {**rec("t0", 0.95, 1.0, storage=50), "trial": 0},
        {**rec("t1", 0.92, 1.0, storage=20), "trial": 1},
        {**rec("t2", 0.99, 1.0, storage=500), "trial": 2, "status": "failed"},
        {"name": "t3", "trial": 3, "accuracy": 0.99},
    ]
    history = hypervolume_history(
        records, objectives_for(["accuracy", "storage_kb"]), es.Budget(accuracy=0.9)
    )
    first = 0.05 * 0.005000001
    assert history == [
        (0, pytest.approx(first)),
        (1, pytest.approx(first + 0.02 * 30)),
        (2, pytest.approx(first + 0.02 * 30)),
        (3, pytest.approx(first + 0.02 * 30)),
    ]


# --- choose on validation, report on test ------------------------------------------------------


def two_splits(name: str, val: float, test: float, storage: float = 10.0, **extra) -> dict:
    """A record measured on both splits (180 validation and 359 test samples)."""
    record = rec(name, test, 1.0, storage, val_accuracy=val, **extra)
    record["measured_with"] = {"accuracy_samples": 359, "val_samples": 180}
    return record


def test_every_choice_reads_the_validation_figure_and_the_test_one_is_only_reported():
    """`lucky` is best on the test split and worst on validation: asked to maximise accuracy
    under an accuracy bound, the choice, the bound and the margins all read val_accuracy, and
    the test figure is shown beside it with the gap."""
    records = [
        two_splits("lucky", val=0.90, test=0.99),
        two_splits("steady", val=0.96, test=0.94),
        two_splits("close", val=0.95, test=0.93, storage=5.0),
    ]
    chosen = select(records, es.Budget(accuracy=">= 0.92"), maximize="accuracy")
    assert chosen.recommended["name"] == "steady"
    assert chosen.primary.metric == "val_accuracy"
    assert chosen.chosen_on == {"accuracy": "val_accuracy"}
    assert [str(b) for b in chosen.budget.bounds] == ["val_accuracy >= 0.92"]
    assert not chosen.is_fitting(records[0])  # 0.99 on test, but 0.90 on validation
    lines = chosen.summary().splitlines()
    assert (
        lines[1] == "  val_accuracy 0.96 (>= 0.92), accuracy 0.94, latency_p95_ms 1, storage_kb 10"
    )
    assert "2 of 180 validation samples behind on val_accuracy (within noise)" in lines[4]
    assert lines[-1] == (
        "chosen on val_accuracy 0.9600 (validation split); reported: accuracy 0.9400 on the test "
        "split, 2.00 points below; never chosen on"
    )
    # the same records ranked on storage first still hold the accuracy bound to validation
    small = select(records, es.Budget(accuracy=">= 0.92"), minimize="storage_kb")
    assert small.recommended["name"] == "close"


def test_a_record_without_a_validation_figure_keeps_the_choice_on_test_and_says_so():
    """An old run's record beside new ones: mixing splits would rank unlike with unlike, so the
    choice stays on the test split for all, with a note (the old run still reports)."""
    old = rec("old", 0.97, 1.0, 10.0)
    records = [two_splits("new", val=0.99, test=0.95), old]
    chosen = select(records, maximize="accuracy")
    assert chosen.chosen_on == {} and chosen.primary.metric == "accuracy"
    assert chosen.recommended["name"] == "old"
    assert chosen.summary().splitlines()[-1] == (
        "note: chosen on accuracy, the test split's figure: 1 of 2 records have no val_accuracy "
        "(measured before edgeslim measured the validation split); measure them again to choose "
        "on validation"
    )
    # a failed record has no figures to lack
    failed = {"name": "broken", "status": "failed", "error": "boom"}
    assert select([records[0], failed], maximize="accuracy").chosen_on == {
        "accuracy": "val_accuracy"
    }


def test_a_weak_validation_split_is_a_note_on_the_choice_not_a_silent_one():
    warning = "the validation split has 40 samples, fewer than 100: ..."
    records = [
        two_splits("a", val=0.9, test=0.9, validation_warnings=[warning]),
        two_splits("b", val=0.8, test=0.8, validation_warnings=[warning]),
    ]
    chosen = select(records, maximize="accuracy")
    assert chosen.notes == [warning]
    assert chosen.summary().splitlines()[-1] == f"note: {warning}"
