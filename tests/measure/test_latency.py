import re
import time

import numpy as np
import pytest

import edgeslim as es
from edgeslim.measure.latency import percentile_stats, time_runs


def test_percentile_stats_on_known_samples():
    """1..100 ms: worked by hand with linear interpolation between ranks (p = 1 + q * 99) and
    the population standard deviation sqrt((100^2 - 1) / 12)."""
    stats = percentile_stats(np.arange(1, 101, dtype=float))
    assert stats["latency_p50_ms"] == pytest.approx(50.5)
    assert stats["latency_p90_ms"] == pytest.approx(90.1)
    assert stats["latency_p95_ms"] == pytest.approx(95.05)
    assert stats["latency_p99_ms"] == pytest.approx(99.01)
    assert stats["latency_mean_ms"] == pytest.approx(50.5)
    assert stats["latency_std_ms"] == pytest.approx((9999 / 12) ** 0.5)
    assert stats["latency_cv"] == pytest.approx(28.86607004772212 / 50.5)


def test_percentile_stats_on_skewed_samples():
    """1, 1, 1, 1, 6 ms (one slow call): the mean (2) is not the median (1), so the cv must
    divide by the mean. Worked by hand: rank 1 + q * 4 between sorted samples, population
    standard deviation sqrt((4 * 1 + 16) / 5) = 2, cv 2 / 2 = 1 (by the median: 2; with the
    sample standard deviation: 1.118)."""
    stats = percentile_stats(np.array([1.0, 6.0, 1.0, 1.0, 1.0]))
    assert stats["latency_p50_ms"] == pytest.approx(1.0)
    assert stats["latency_p90_ms"] == pytest.approx(4.0)
    assert stats["latency_p95_ms"] == pytest.approx(5.0)
    assert stats["latency_p99_ms"] == pytest.approx(5.8)
    assert stats["latency_mean_ms"] == pytest.approx(2.0)
    assert stats["latency_std_ms"] == pytest.approx(2.0)
    assert stats["latency_cv"] == pytest.approx(1.0)


def test_time_runs_respects_the_time_cap_but_keeps_min_runs():
    calls = []
    samples = time_runs(lambda *_: calls.append(1), {}, runs=10_000, min_runs=30, max_seconds=1e-9)
    assert len(samples) == len(calls) == 30


def test_measured_latency_is_ordered_and_recorded(small_cnn_onnx, digits, quick):
    record = es.measure(small_cnn_onnx, digits, quick)
    assert 0 < record["latency_p50_ms"] <= record["latency_p90_ms"] <= record["latency_p95_ms"]
    assert record["latency_p95_ms"] <= record["latency_p99_ms"]
    how = record["measured_with"]
    assert how["latency_runs"] == 200 and how["settings"]["threads"] == 1
    assert set(record["throughput_by_batch"]) == {"1", "16"}
    assert record["throughput"] == max(record["throughput_by_batch"].values())


def quiet_host(n: int = 300, ms: float = 1.0, seed: int = 0) -> np.ndarray:
    """Per-call times as a quiet host gives them: a few percent of jitter around ``ms``."""
    return ms * (1 + 0.03 * np.abs(np.random.default_rng(seed).normal(size=n)))


def test_timing_noisy_passes_a_quiet_host_and_flags_a_wide_spread():
    from edgeslim.measure.latency import NOISY_CV, NOISY_P95_OVER_P50, timing_noisy

    quiet = quiet_host()
    assert timing_noisy(quiet) is None
    assert timing_noisy(quiet, quiet + 0.2) is None  # decoding adds a little, as it should
    # one stray pause in 300 calls (a page fault): the cv jumps, the percentiles do not
    paused = quiet.copy()
    paused[7] = 40.0
    assert timing_noisy(paused) == f"cv {paused.std() / paused.mean():.2f} > {NOISY_CV:g}"
    # a busy neighbour for a tenth of the calls: 3x slower there, p95 lands among them
    busy = quiet.copy()
    busy[::10] *= 3
    ratio = np.percentile(busy, 95) / np.percentile(busy, 50)
    assert ratio > NOISY_P95_OVER_P50
    assert f"p95/p50 {ratio:.2f} > {NOISY_P95_OVER_P50:g}" in timing_noisy(busy)
    assert timing_noisy(quiet, busy).startswith("end to end p95/p50")


def test_timing_noisy_flags_end_to_end_figures_below_the_network():
    """The detection demo's sparse-80 once read 5.187 ms p95 for the network and 1.687 ms p95
    end to end: timed in two loops, the network's on a busier moment of the host."""
    from edgeslim.measure.latency import timing_noisy

    network = quiet_host(ms=1.5)
    network[::10] = 5.2  # its loop ran while the host was busy
    end_to_end = quiet_host(ms=1.6, seed=1)
    flag = timing_noisy(network, end_to_end)
    p95 = np.percentile(network, 95)
    assert f"end to end p95 {np.percentile(end_to_end, 95):.3f} ms < network p95 {p95:.3f} ms" in (
        flag
    )
    assert "end to end p50" not in flag  # the medians are in order


def test_time_pipeline_times_the_network_and_its_finish_in_the_same_calls():
    from edgeslim.measure.latency import time_pipeline

    events = []

    def run(_outputs, feed):
        events.append("network")
        time.sleep(0.002 if len(events) % 7 == 0 else 0)  # now and then a slow call
        return [np.zeros(3)]

    def finish(answer):
        events.append("finish")
        time.sleep(0.0005)

    network, total = time_pipeline(run, finish, {}, runs=40, min_runs=40, max_seconds=10)
    assert events == ["network", "finish"] * 40  # one loop: each finish right after its call
    assert len(network) == len(total) == 40
    assert (total - network >= 0.5).all()  # each end-to-end time holds its own network time
    slow = network > 1.5
    assert slow.any() and (total[slow] > 2).all()  # the slow calls are slow end to end too


def test_every_measured_record_says_whether_its_timings_were_noisy(small_cnn_onnx, digits, quick):
    record = es.measure(small_cnn_onnx, digits, quick)
    noisy = record["timing_noisy"]  # always there: null, or why
    assert noisy is None or re.fullmatch(r"(cv|p95/p50) \d+\.\d\d > [\d.]+(; .+)?", noisy), noisy
