"""Latency at batch 1 and throughput over a few batch sizes, on ONNX Runtime.

The loop is kept as bare as a hand-written one (bench/measure_overhead.py checks that, on every
runtime): one feed prepared before the clock starts (quantized, for a full-integer model), one
call of the runtime's own API per sample, ``perf_counter_ns`` around it and nothing else.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from edgeslim.measure.registry import family
from edgeslim.runtimes import fixed_batch, timed_call

if TYPE_CHECKING:
    from edgeslim.measure.runtime import RuntimeContext


def percentile_stats(samples_ms: np.ndarray) -> dict:
    p50, p90, p95, p99 = np.percentile(samples_ms, [50, 90, 95, 99])
    mean, std = float(samples_ms.mean()), float(samples_ms.std())
    return {
        "latency_p50_ms": float(p50),
        "latency_p90_ms": float(p90),
        "latency_p95_ms": float(p95),
        "latency_p99_ms": float(p99),
        "latency_mean_ms": mean,
        "latency_std_ms": std,
        "latency_cv": std / mean if mean > 0 else 0.0,
    }


def time_runs(run, feed: dict, runs: int, min_runs: int, max_seconds: float) -> np.ndarray:
    """Per-call wall times in ms: ``runs`` calls, or fewer (>= min_runs) past the time cap."""
    timings = np.empty(runs, dtype=np.int64)
    clock = time.perf_counter_ns
    deadline = clock() + int(max_seconds * 1e9)
    count = 0
    while count < runs:
        start = clock()
        run(None, feed)
        end = clock()
        timings[count] = end - start
        count += 1
        if count >= min_runs and end > deadline:
            break
    return timings[:count] / 1e6


def warm_and_time(run, feed: dict, settings: dict) -> np.ndarray:
    """The settings' warm-up calls, then their timed ones (``time_runs``), in ms."""
    for _ in range(settings["warmup_runs"]):
        run(None, feed)
    return time_runs(run, feed, settings["runs"], settings["min_runs"], settings["max_seconds"])


@family(
    "latency",
    "runtime",
    [
        ("latency_p50_ms", "ms", "lower", "median batch-1 latency"),
        ("latency_p90_ms", "ms", "lower", "90th percentile batch-1 latency"),
        ("latency_p95_ms", "ms", "lower", "95th percentile batch-1 latency"),
        ("latency_p99_ms", "ms", "lower", "99th percentile batch-1 latency"),
        ("latency_mean_ms", "ms", "lower", "mean batch-1 latency"),
        ("latency_std_ms", "ms", "lower", "standard deviation of batch-1 latency"),
        ("latency_cv", "ratio", "lower", "coefficient of variation (std / mean)"),
    ],
    order=10,
)
def latency(ctx: RuntimeContext) -> dict:
    session = ctx.session()
    sample = {session.input_name: next(ctx.batches(session, ctx.x[:1]))[0]}
    run, feed = timed_call(session, sample)  # inputs prepared before the clock starts
    samples = warm_and_time(run, feed, ctx.settings)
    ctx.info["latency_runs"] = len(samples)
    ctx.info["latency_batch"] = len(next(iter(feed.values())))
    return percentile_stats(samples)


@family(
    "throughput",
    "runtime",
    [
        ("throughput", "samples/s", "higher", "best samples per second over the batch sizes"),
        ("throughput_by_batch", "samples/s", "", "samples per second at each batch size"),
    ],
    order=20,
)
def throughput(ctx: RuntimeContext) -> dict:
    s = ctx.settings
    session = ctx.session()
    name = session.input_name
    fixed = fixed_batch(session)
    sizes = [fixed] if fixed else list(s["batch_sizes"])
    by_batch = {}
    for size in sizes:
        index = np.arange(size) % len(ctx.x)
        run, feed = timed_call(session, {name: np.ascontiguousarray(ctx.x[index])})
        for _ in range(3):
            run(None, feed)
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < s["throughput_seconds"] or count < 3:
            run(None, feed)
            count += 1
        by_batch[str(size)] = count * size / elapsed
    ctx.info["throughput_batch_sizes"] = sizes
    return {"throughput": max(by_batch.values()), "throughput_by_batch": by_batch}
