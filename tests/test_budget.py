"""The device budget on hand-worked bounds: parsing, direction, excess, fallbacks, host scaling."""

from __future__ import annotations

import math

import pytest

from edgeslim.budget import Bound, Budget, Violation, parse_bound
from edgeslim.errors import ConfigError

NAN, INF = float("nan"), float("inf")


def test_a_bound_prints_its_metric_op_and_shortest_value():
    assert str(Bound("latency_p95_ms", "<=", 2.0)) == "latency_p95_ms <= 2"
    assert str(Bound("accuracy", ">=", 0.925)) == "accuracy >= 0.925"


@pytest.mark.parametrize(
    ("bound", "measured", "excess"),
    [
        (Bound("latency_p95_ms", "<=", 2.0), 3.5, 1.5),  # 1.5 ms over
        (Bound("latency_p95_ms", "<=", 2.0), 1.0, 0.0),  # under: fits
        (Bound("latency_p95_ms", "<=", 2.0), 2.0, 0.0),  # on the bound: fits
        (Bound("accuracy", ">=", 0.75), 0.5, 0.25),  # 0.25 short
        (Bound("accuracy", ">=", 0.75), 1.0, 0.0),  # above: fits
    ],
)
def test_excess_is_the_distance_on_the_wrong_side_only(bound, measured, excess):
    assert bound.excess(measured) == excess


@pytest.mark.parametrize("measured", [NAN, INF, -INF])
@pytest.mark.parametrize("op", ["<=", ">="])
def test_a_nonfinite_figure_is_infinitely_far_whatever_the_direction(op, measured):
    assert Bound("storage_kb", op, 10.0).excess(measured) == INF


def test_relative_excess_divides_by_the_bound_size():
    assert Bound("storage_kb", "<=", 200.0).relative_excess(250.0) == 0.25  # 50 / 200
    # the size of a negative bound: 2 over -4 is half the bound, not 2 / 1e-12
    assert Bound("latency_p95_ms", "<=", -4.0).relative_excess(-2.0) == 0.5
    # a bound of 0 divides by 1e-12: 3 over is 3e12 bounds over
    assert Bound("storage_kb", "<=", 0.0).relative_excess(3.0) == pytest.approx(3e12)
    assert Bound("storage_kb", "<=", 200.0).relative_excess(100.0) == 0.0


def test_a_violation_says_what_was_measured_and_how_far_off():
    bound = Bound("latency_p95_ms", "<=", 2.0)
    assert str(Violation(bound, None)) == "latency_p95_ms <= 2 (not measured)"
    assert str(Violation(bound, NAN)) == "latency_p95_ms <= 2: measured nan, not a finite number"
    assert str(Violation(bound, 3.0)) == "latency_p95_ms <= 2: measured 3, off by 1 (50%)"
    accuracy = Bound("accuracy", ">=", 0.8)
    assert str(Violation(accuracy, 0.6)) == "accuracy >= 0.8: measured 0.6, off by 0.2 (25%)"


def test_a_violation_s_relative_distance():
    bound = Bound("storage_kb", "<=", 100.0)
    assert Violation(bound, None).relative == INF  # not measured: as far as can be
    assert Violation(bound, 130.0).relative == pytest.approx(0.3)
    assert Violation(bound, NAN).relative == INF


@pytest.mark.parametrize(
    ("metric", "spec", "op", "value"),
    [
        ("latency_p95_ms", 2, "<=", 2.0),  # a number: the metric's own direction
        ("throughput", 100, ">=", 100.0),  # higher is better
        ("accuracy", 0.9, ">=", 0.9),
        ("accuracy", "<= 0.99", "<=", 0.99),  # a string states its own
        ("latency_p95_ms", ">=0.5", ">=", 0.5),
        ("storage_kb", "  <=   512  ", "<=", 512.0),
        ("storage_kb", "<= 5.", "<=", 5.0),
        ("storage_kb", "<= .5", "<=", 0.5),
        ("storage_kb", "<= +2e3", "<=", 2000.0),
        ("storage_kb", "<= 25E-1", "<=", 2.5),
        ("latency_p95_ms", ">= -1", ">=", -1.0),
    ],
)
def test_bounds_parse_from_numbers_and_strings(metric, spec, op, value):
    bound = parse_bound(metric, spec)
    assert (bound.metric, bound.op, bound.value) == (metric, op, value)
    assert isinstance(bound.value, float)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (True, r"^device\.storage_kb: expected a number or '<= N' / '>= N', got True$"),
        (NAN, r"^device\.storage_kb: a bound must be a finite number, got nan$"),
        (INF, r"^device\.storage_kb: a bound must be a finite number, got inf$"),
        ("2", r"^device\.storage_kb: expected a number or '<= N' / '>= N', got '2'$"),
        ("< 2", r"expected a number"),
        ("== 2", r"expected a number"),
        ("<= 2 kb", r"expected a number"),
        ("<= e3", r"expected a number"),
        ("<= 1e999", r"^device\.storage_kb: a bound must be a finite number, got '<= 1e999'$"),
        (None, r"expected a number"),
    ],
)
def test_bad_bounds_are_refused_naming_where_and_what(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_bound("storage_kb", spec, where="device")


def test_an_unknown_metric_is_refused_with_the_known_ones_listed():
    with pytest.raises(ConfigError) as caught:
        parse_bound("latency", 2)
    text = str(caught.value)
    assert text.startswith("budget.latency: unknown metric; a budget may bound accuracy, ")
    assert ", latency_p95_ms, " in text and text.endswith("weight_sparsity")
    with pytest.raises(ConfigError, match=r"^run\.budget\.speed: unknown metric"):
        Budget.parse({"speed": 1}, where="run.budget")
    with pytest.raises(ConfigError, match=r"^budget\.speed: unknown metric"):
        Budget.parse({"speed": 1})


def test_a_budget_gathers_given_bounds_then_keyword_ones():
    budget = Budget([Bound("macs", "<=", 5e6)], storage_kb=200, accuracy=">= 0.9")
    assert budget.describe() == ["macs <= 5e+06", "storage_kb <= 200", "accuracy >= 0.9"]
    assert repr(budget) == "Budget(macs <= 5e+06, storage_kb <= 200, accuracy >= 0.9)"
    assert bool(budget) and not Budget() and not Budget.parse(None) and not Budget.parse({})
    assert repr(Budget()) == "Budget()"


def test_parse_reads_a_mapping_in_order():
    budget = Budget.parse({"latency_p95_ms": 2, "accuracy": "<= 0.99"})
    assert budget.bounds == (
        Bound("latency_p95_ms", "<=", 2.0),
        Bound("accuracy", "<=", 0.99),
    )


def test_merging_replaces_bounds_on_the_same_metric_and_op_only():
    base = Budget(latency_p95_ms=5, storage_kb=200, accuracy=">= 0.9")
    merged = base.merged(Budget(latency_p95_ms=3, accuracy="<= 0.99"))
    assert merged.describe() == [
        "storage_kb <= 200",  # kept: not named by the other
        "accuracy >= 0.9",  # kept: the other bounds accuracy from the other side
        "latency_p95_ms <= 3",  # replaced
        "accuracy <= 0.99",
    ]
    assert base.describe() == ["latency_p95_ms <= 5", "storage_kb <= 200", "accuracy >= 0.9"]


def test_a_device_budget_on_a_faster_host_scales_time_and_rate_bounds_only():
    device = Budget(
        latency_p95_ms=3, throughput=100, storage_kb=200, accuracy=">= 0.9", energy_mj=4
    )
    assert device.on_host(1) is device
    host = device.on_host(3)
    assert host.bounds == (
        Bound("latency_p95_ms", "<=", 1.0),  # 3 ms there is 1 ms here
        Bound("throughput", ">=", 300.0),  # 100/s there is 300/s here
        Bound("storage_kb", "<=", 200.0),
        Bound("accuracy", ">=", 0.9),
        Bound("energy_mj", "<=", 4.0),
    )
    # rounded to 6 decimals: 1 ms / 3 is 0.333333 ms
    assert Budget(latency_p50_ms=1).on_host(3).bounds[0].value == 0.333333
    assert Budget(latency_p50_ms=1).on_host(0.5).bounds[0].value == 2.0


def test_violations_name_each_broken_bound_with_its_figure():
    budget = Budget(latency_p95_ms=2, accuracy=">= 0.9", storage_kb=100)
    record = {"latency_p95_ms": 3.0, "accuracy": 0.95, "storage_kb": 100}
    (broken,) = budget.violations(record)
    assert broken == Violation(Bound("latency_p95_ms", "<=", 2.0), 3.0)
    assert isinstance(broken.measured, float)
    assert not budget.fits(record)
    assert budget.fits({"latency_p95_ms": 2, "accuracy": 0.9, "storage_kb": 99.5})  # on bounds


def test_a_missing_or_unusable_figure_breaks_its_bound_as_not_measured():
    budget = Budget(storage_kb=100, accuracy=">= 0.5", latency_p95_ms=2)
    violations = budget.violations({"accuracy": True, "latency_p95_ms": "1"})
    assert [(v.bound.metric, v.measured) for v in violations] == [
        ("storage_kb", None),  # absent
        ("accuracy", None),  # a bool is not a figure
        ("latency_p95_ms", None),  # nor is text
    ]


def test_a_nonfinite_figure_breaks_its_bound_with_the_value_kept():
    budget = Budget(accuracy=">= 0.5", latency_p95_ms=2)
    violations = budget.violations({"accuracy": NAN, "latency_p95_ms": -INF})
    assert [v.bound.metric for v in violations] == ["accuracy", "latency_p95_ms"]
    assert math.isnan(violations[0].measured) and violations[1].measured == -INF
    assert not budget.fits({"accuracy": NAN, "latency_p95_ms": 1.0})


def test_an_arena_bound_falls_back_to_the_activation_estimate_only_when_the_arena_is_absent():
    budget = Budget(tensor_arena_kb=64)
    assert budget.fits({"activation_memory_kb": 60.0})
    assert budget.violations({"activation_memory_kb": 80.0}) == [
        Violation(Bound("tensor_arena_kb", "<=", 64.0), 80.0)
    ]
    assert budget.violations({"tensor_arena_kb": None, "activation_memory_kb": 70}) == [
        Violation(Bound("tensor_arena_kb", "<=", 64.0), 70.0)
    ]
    # the runtime's own arena wins over the estimate, either way
    assert budget.fits({"tensor_arena_kb": 50.0, "activation_memory_kb": 900.0})
    assert not budget.fits({"tensor_arena_kb": 90.0, "activation_memory_kb": 10.0})
    assert budget.violations({}) == [Violation(Bound("tensor_arena_kb", "<=", 64.0), None)]
    # no fallback for other metrics
    assert Budget(storage_kb=1).violations({"activation_memory_kb": 0.5})[0].measured is None
