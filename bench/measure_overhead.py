"""How much the measuring harness adds to latency, on every runtime, and how repeatable it is.

For each model file: the harness's batch-1 p50 (``es.measure``) next to a bare loop of the
runtime's own API (ONNX Runtime's ``run``, OpenVINO's ``infer``, LiteRT's and TFLite Micro's
set-invoke-get on a sample quantized beforehand, ExecuTorch's ``execute``) in its own fresh
process on the same core, their ratio (target: within 5%), and the coefficient of variation of
the repeated harness p50s.

The ratio compares the best p50 of the repeated processes on each side. On this project's VM
one process in two or three runs the same file 1.4-1.9x slower than the others, for its whole
life (measured: the same INT8 file gave p50s of 0.018 and 0.026-0.035 ms in alternate fresh
processes, bare loop and harness alike): a per-process state of the host, not the harness's
cost, and a median of a few processes picks it up at random. The best of N is the figure the
harness can reach; the cv column shows how much the host moved.

    python bench/measure_overhead.py [--runtimes] [--data digits] [--repeats 5] [--quick]

Without ``--runtimes``: every zoo model on ONNX Runtime. With it: the small CNN in FP32 and in
static INT8 on every installed runtime (the ``edgeslim demo --runtimes`` pair).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

import edgeslim as es
from edgeslim.errors import MissingRuntimeError
from edgeslim.measure.settings import MeasureSettings
from edgeslim.runtimes import RUNTIMES

# each prints the p50 in ms of 1000 timed calls after 20 warm-up calls, pinned to the last core
# (where the harness's worker runs); argv: model file, sample .npy (one float sample)
PRELUDE = """
import os, sys, time
import numpy as np
os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[-1]])
x = np.load(sys.argv[2])[:1]
def p50(call):
    for _ in range(20):
        call()
    times = []
    for _ in range(1000):
        t = time.perf_counter_ns(); call(); times.append(time.perf_counter_ns() - t)
    print(np.percentile(np.array(times) / 1e6, 50))
def quantized(detail_dtype, scale, zero):
    if detail_dtype == np.float32:
        return x
    info = np.iinfo(detail_dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail_dtype)
"""
BARE_LOOPS = {
    "onnxruntime": """
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
feed = {session.get_inputs()[0].name: x}
p50(lambda: session.run(None, feed))
""",
    "openvino": """
import openvino as ov
core = ov.Core()
model = core.read_model(sys.argv[1])
model.reshape({0: ov.PartialShape(list(x.shape))})
config = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
          "INFERENCE_PRECISION_HINT": "f32"}
request = core.compile_model(model, "CPU", config).create_infer_request()
p50(lambda: request.infer({0: x}))
""",
    "litert": """
from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=sys.argv[1], num_threads=1)
interpreter.allocate_tensors()
source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
sample = quantized(source["dtype"], *source["quantization"])
def call():
    interpreter.set_tensor(source["index"], sample)
    interpreter.invoke()
    interpreter.get_tensor(target["index"])
p50(call)
""",
    "tflite-micro": """
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_file(sys.argv[1], arena_size=4 << 20)
detail = interpreter.get_input_details(0)
params = detail.get("quantization_parameters") or {}
scales, zeros = params.get("scales", []), params.get("zero_points", [])
sample = quantized(detail["dtype"], *((scales[0], zeros[0]) if len(scales) else (1.0, 0)))
def call():
    interpreter.set_input(sample, 0)
    interpreter.invoke()
    interpreter.get_output(0)
p50(call)
""",
    "executorch": """
import torch
from executorch.runtime import Runtime
from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
program = Runtime.get().load_program(sys.argv[1])
_unsafe_reset_threadpool(1)  # in the harness's order: the pool before the method
torch.set_num_threads(1)
method = program.load_method("forward")
tensor = torch.from_numpy(x)
p50(lambda: method.execute([tensor]))
""",
}


def bare_p50(runtime: str, model: Path, sample: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + BARE_LOOPS[runtime], str(model), str(sample)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def compare(runtime, target, data, settings, sample, repeats) -> tuple[float, float, float, Path]:
    """(best harness p50, best bare p50, harness cv, the file both ran) over ``repeats``
    fresh processes each, interleaved so that a slow spell of the host hits both sides."""
    harness, bare = [], []
    for _ in range(repeats):
        record = es.measure(target, data, replace(settings, runtime=runtime))
        harness.append(record["latency_p50_ms"])
        model_file = Path(record["measured_with"]["model_file"])
        bare.append(bare_p50(runtime, model_file, sample))
    cv = statistics.pstdev(harness) / statistics.mean(harness)
    return min(harness), min(bare), cv, model_file


def installed() -> list[str]:
    names = []
    for name, engine in RUNTIMES.items():
        try:
            engine.check_available()
        except MissingRuntimeError:
            continue
        names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runtimes", action="store_true", help="every installed runtime")
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    data = es.data.load(args.data)
    settings = MeasureSettings(
        runs=1000, throughput_seconds=0.1, batch_sizes=(1,), activation_samples=16
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "x.npy"
        np.save(sample, data.test.x[:1])
        if args.runtimes:
            base = es.train(es.models.build("small-cnn", data.spec), data, epochs=5)
            fp32 = es.export(base, data, tmp)
            (int8,) = es.compress(
                fp32, data, [[{"quantize": {"kind": "static-int8"}}]], out_dir=tmp,
                show_progress=False,
            )  # fmt: skip
            targets = [("small-cnn fp32", fp32), ("small-cnn int8", int8)]
            plan = [(runtime, label, t) for runtime in installed() for label, t in targets]
        else:
            plan = []
            for name in sorted(es.models.ZOO):
                candidate = es.Candidate(name, model=es.models.build(name, data.spec))
                plan.append(("onnxruntime", name, es.export(candidate, data, tmp).artifact))
        for runtime, label, target in plan:
            h, b, cv, model_file = compare(runtime, target, data, settings, sample, repeats)
            rows.append((runtime, label, model_file.suffix, h, b, cv))
            print(f"  measured {label} on {runtime}", file=sys.stderr)
    print(
        f"\nharness vs a bare loop of each runtime's own API, batch 1, 1 thread, {args.data}, "
        f"best p50 of {repeats} fresh processes each, interleaved\n"
    )
    print("| runtime | model | file | harness p50 ms | bare p50 ms | ratio | harness cv |")
    print("|---|---|---|---:|---:|---:|---:|")
    for runtime, label, suffix, h, b, cv in rows:
        print(f"| {runtime} | {label} | {suffix} | {h:.4f} | {b:.4f} | {h / b:.3f} | {cv:.1%} |")


if __name__ == "__main__":
    main()
