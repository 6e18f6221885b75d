"""How much the measuring harness adds to latency, and how repeatable it is.

For each zoo model: the harness's batch-1 p50 (``es.measure``) next to a bare ONNX Runtime
loop's p50 in its own fresh process on the same core, their ratio (target: within 5%), and the
coefficient of variation of five repeated harness p50s (target: under 5%).

    python bench/measure_overhead.py [--data digits] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import edgeslim as es
from edgeslim.measure.settings import MeasureSettings

BARE_LOOP = """
import os, sys, time
import numpy as np, onnxruntime as ort
os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[-1]])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])[:1]
feed = {session.get_inputs()[0].name: x}
for _ in range(20):
    session.run(None, feed)
times = []
for _ in range(1000):
    t = time.perf_counter_ns(); session.run(None, feed); times.append(time.perf_counter_ns() - t)
print(np.percentile(np.array(times) / 1e6, 50))
"""


def bare_p50(model: Path, sample: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BARE_LOOP, str(model), str(sample)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = es.data.load(args.data)
    settings = MeasureSettings(
        runs=1000, throughput_seconds=0.1, batch_sizes=(1,), activation_samples=16
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        sample = Path(tmp) / "x.npy"
        np.save(sample, data.test.x[:1])
        for name in sorted(es.models.ZOO):
            model = es.export(
                es.Candidate(name, model=es.models.build(name, data.spec)), data, tmp
            ).artifact
            harness = [
                es.measure(model, data, settings)["latency_p50_ms"] for _ in range(args.repeats)
            ]
            bare = [bare_p50(model, sample) for _ in range(args.repeats)]
            h, b = statistics.median(harness), statistics.median(bare)
            cv = statistics.pstdev(harness) / statistics.mean(harness)
            rows.append((name, h, b, h / b, cv))
            print(f"  measured {name}", file=sys.stderr)
    print(
        f"\nharness vs bare ONNX Runtime loop, batch 1, 1 thread, {args.data}, "
        f"median of {args.repeats} repeats\n"
    )
    print("| model | harness p50 ms | bare p50 ms | ratio | harness cv (5 repeats) |")
    print("|---|---:|---:|---:|---:|")
    for name, h, b, ratio, cv in rows:
        print(f"| {name} | {h:.4f} | {b:.4f} | {ratio:.3f} | {cv * 100:.1f}% |")


if __name__ == "__main__":
    main()
