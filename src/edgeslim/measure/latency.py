"""Latency at batch 1 and throughput over a few batch sizes, on ONNX Runtime.

The loop is kept as bare as a hand-written one (bench/measure_overhead.py checks that, on every
runtime): one feed prepared before the clock starts (quantized, for a full-integer model), one
call of the runtime's own API per sample, ``perf_counter_ns`` around it and nothing else.

Where the task has work a deployed pipeline does after the network before it can act (detection:
decoding the boxes and suppressing overlaps; ``after_network``), the same loop times it too, right
after each network call: the end-to-end figures then cover the very calls the network figures do,
so they are never below them and never from a quieter or a busier moment of the host.

Every record says under ``timing_noisy`` whether its timings say the host was busy while they
were taken (a spread no quiet host shows, see ``NOISY_CV``): null, or why in one line, so such a
figure does not decide a budget unannounced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.errors import MeasurementError
from edgeslim.measure.registry import family
from edgeslim.runtimes import Session, fixed_batch, timed_call
from edgeslim.runtimes.tflite_io import from_output

if TYPE_CHECKING:
    from edgeslim.measure.runtime import RuntimeContext

Finish = Callable[[Any], Any]  # the runtime's own answer (``timed_call``) -> what acts on it
# task -> (context, session) -> its ``Finish``; each task's metric module registers its own
AFTER_NETWORK: dict[str, Callable[[RuntimeContext, Session], Finish]] = {}

# When the spread of a record's timings says the host was busy while they were taken. Measured
# on this project's 2-core VM (batch 1, 1 thread, 300 runs on one pinned core):
# - p95/p50: the 62 latency rows of bench/RESULTS.md, each benchmark alone on the machine, have
#   a median of 1.13, 90% under 1.26 and one above 1.44 (1.67). With other processes on both
#   cores, 10 repeats each: small-cnn (0.02 ms) 1.09-2.13, centernet (0.85 ms) 5.7-6.2, and
#   10-16 with a busy loop pinned to the measuring core. The tester's noisy sparse-80 record
#   (5.187 ms network p95 against 1.687 ms end to end) was near 4. 1.5 lies between.
# - cv: a single preemption (a few ms) among 300 calls of a 0.02 ms model sends it to 5-9 while
#   p95 stays put; a loaded host gave small-cnn 5.6-9.5 and centernet 0.96-1.5, records of test
#   runs without such a pause 0.03-0.47. 0.75 lies between: a pause means another process held
#   the core while the model was timed, which p99 and the mean show even where p95 does not.
NOISY_CV = 0.75
NOISY_P95_OVER_P50 = 1.5


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


def end_to_end_stats(samples_ms: np.ndarray) -> dict:
    p50, p95 = np.percentile(samples_ms, [50, 95])
    return {"latency_e2e_p50_ms": float(p50), "latency_e2e_p95_ms": float(p95)}


def timing_noisy(network_ms: np.ndarray, end_to_end_ms: np.ndarray | None = None) -> str | None:
    """Why these per-call times are not to be trusted, or None: a spread past what a quiet host
    shows (``NOISY_CV``, ``NOISY_P95_OVER_P50``), or end-to-end percentiles below the network's
    (impossible for times taken in one loop: two loops at different moments of a noisy host).
    In the form ``"cv 6.52 > 0.75; end to end p95/p50 1.72 > 1.5"``."""
    reasons = []
    for label, samples in (("", network_ms), ("end to end ", end_to_end_ms)):
        if samples is None or not len(samples):
            continue
        stats = percentile_stats(samples)
        cv, p50 = stats["latency_cv"], stats["latency_p50_ms"]
        tail = stats["latency_p95_ms"] / p50 if p50 > 0 else 1.0
        if cv > NOISY_CV:
            reasons.append(f"{label}cv {cv:.2f} > {NOISY_CV:g}")
        if tail > NOISY_P95_OVER_P50:
            reasons.append(f"{label}p95/p50 {tail:.2f} > {NOISY_P95_OVER_P50:g}")
    if end_to_end_ms is not None and len(end_to_end_ms) and len(network_ms):
        for q in (50, 95):
            network, total = np.percentile(network_ms, q), np.percentile(end_to_end_ms, q)
            if total < network:
                reasons.append(f"end to end p{q} {total:.3f} ms < network p{q} {network:.3f} ms")
    return "; ".join(reasons) or None


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


def time_pipeline(
    run, finish: Finish, feed: dict, runs: int, min_runs: int, max_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-call ms of the network alone and of the network then ``finish`` on its answer, from
    the same calls (three clock reads a call: each end-to-end time holds its network time);
    ``runs`` calls, or fewer (>= min_runs) past the time cap."""
    network = np.empty(runs, dtype=np.int64)
    total = np.empty(runs, dtype=np.int64)
    clock = time.perf_counter_ns
    deadline = clock() + int(max_seconds * 1e9)
    count = 0
    while count < runs:
        start = clock()
        answer = run(None, feed)
        middle = clock()
        finish(answer)
        end = clock()
        network[count] = middle - start
        total[count] = end - start
        count += 1
        if count >= min_runs and end > deadline:
            break
    return network[:count] / 1e6, total[:count] / 1e6


def warm_and_time(run, feed: dict, settings: dict) -> np.ndarray:
    """The settings' warm-up calls, then their timed ones (``time_runs``), in ms."""
    for _ in range(settings["warmup_runs"]):
        run(None, feed)
    return time_runs(run, feed, settings["runs"], settings["min_runs"], settings["max_seconds"])


ROUNDS = 5  # a latency table's variants are timed in turns: drift on the host hits them alike
WARM_S = 0.5  # every variant runs in turns this long before any is timed


def latency_of_files(ctx: RuntimeContext, paths: list[str]) -> list[dict]:
    """Batch-1 p50 and p95 of each model file, for a latency table: every file loaded first,
    then timed in ``ROUNDS`` turns of ``runs / ROUNDS`` calls each, so that a slow spell of the
    host falls on every variant, not on whichever was timed then; and all of them run in turns
    for ``WARM_S`` first (the first models a fresh worker timed ran 25% slow here). A file the
    runtime refuses gets its one-line reason instead."""
    s = ctx.settings
    loaded: list[tuple | str] = []
    for path in paths:
        try:
            session = ctx.session(path)
            sample = {session.input_name: next(ctx.batches(session, ctx.x[:1]))[0]}
            run, feed = timed_call(session, sample)
            for _ in range(s["warmup_runs"]):
                run(None, feed)
            loaded.append((run, feed))
        except Exception as exc:
            loaded.append(" ".join(f"{type(exc).__name__}: {exc}".split()))
    ready = [entry for entry in loaded if isinstance(entry, tuple)]
    deadline = time.perf_counter() + WARM_S  # a fresh worker's first calls run slow: not timed
    while ready and time.perf_counter() < deadline:
        for run, feed in ready:
            run(None, feed)
    samples: list[list[np.ndarray]] = [[] for _ in paths]
    per_round = max(1, s["runs"] // ROUNDS)
    for _ in range(ROUNDS):
        for index, entry in enumerate(loaded):
            if isinstance(entry, tuple):
                run, feed = entry
                samples[index].append(
                    time_runs(run, feed, per_round, per_round, s["max_seconds"] / ROUNDS)
                )
    figures = []
    for entry, timings in zip(loaded, samples, strict=True):
        if isinstance(entry, str):
            figures.append({"error": entry})
            continue
        every = np.concatenate(timings)
        stats = percentile_stats(every)
        figures.append(
            {
                "latency_p50_ms": stats["latency_p50_ms"],
                "latency_p95_ms": stats["latency_p95_ms"],
                "runs": len(every),
                "timing_noisy": timing_noisy(every),
            }
        )
    return figures


def after_network(task: str):
    """Register ``make(ctx, session) -> finish`` as what ``task``'s pipeline does with each
    answer of the network: timed with it, in the latency loop."""

    def add(make: Callable[[RuntimeContext, Session], Finish]):
        AFTER_NETWORK[task] = make
        return make

    return add


def first_output(session: Session, answer: Any) -> np.ndarray:
    """The first output of the runtime's own call (``timed_call``) as ``run`` gives it: a
    full-integer model's answer dequantized with its output scale."""
    first = np.asarray(answer[0])
    scale = getattr(session, "output_scale", None)
    return from_output(first, *scale) if scale is not None else first


def check_first_output(session: Session, run, feed: dict, sample: dict) -> None:
    """``first_output`` reads this session's own answer as ``run`` does, or the end-to-end time
    would time the wrong thing: a MeasurementError naming the mismatch."""
    got = first_output(session, run(None, feed)).copy()  # a view of the runtime's buffer, maybe
    expected = np.asarray(session.run(None, sample)[0])
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise MeasurementError(
            "end-to-end latency: the runtime's own call answers differently from its run "
            f"(shape {got.shape} vs {expected.shape}); first_output cannot read this session"
        )


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
    s = ctx.settings
    make_finish = AFTER_NETWORK.get(ctx.spec.task if ctx.spec else "classification")
    end_to_end = None
    if make_finish is None:
        samples = warm_and_time(run, feed, s)
    else:
        check_first_output(session, run, feed, sample)
        finish = make_finish(ctx, session)
        for _ in range(s["warmup_runs"]):
            finish(run(None, feed))
        samples, end_to_end = time_pipeline(
            run, finish, feed, s["runs"], s["min_runs"], s["max_seconds"]
        )
    ctx.info["latency_runs"] = len(samples)
    ctx.info["latency_batch"] = len(next(iter(feed.values())))
    figures = percentile_stats(samples)
    if end_to_end is not None:
        figures.update(end_to_end_stats(end_to_end))
        ctx.info["latency_e2e"] = "the same calls as the network figures, then the task's step"
    # always there (null when the timings look quiet): records of one model stay comparable
    figures["timing_noisy"] = timing_noisy(samples, end_to_end)
    return figures


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
