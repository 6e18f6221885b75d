import numpy as np

import edgeslim as es
from edgeslim.measure.latency import percentile_stats, time_runs


def test_percentile_stats_on_known_samples():
    stats = percentile_stats(np.arange(1, 101, dtype=float))
    assert stats["latency_p50_ms"] == 50.5
    assert stats["latency_p99_ms"] == np.percentile(np.arange(1, 101), 99)
    assert abs(stats["latency_cv"] - np.std(np.arange(1, 101)) / 50.5) < 1e-12


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
