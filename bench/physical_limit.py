"""How far each model is from what this CPU core can do: its achieved 2*MACs / latency as a
share of the core's FP32 matrix-multiply peak, measured on one thread with numpy's BLAS and,
as a check on that figure, with ONNX Runtime's own MatMul (MLAS); the higher is the peak.

    python bench/physical_limit.py [--quick]

Run alone, it measures the FP32 and edgeslim static INT8 forms of the baselines; ``run_all.py``
passes every model its other sections measured instead.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import numpy as np
from threadpoolctl import threadpool_limits

import edgeslim as es
import peers
from common import Bench, Section, Speed, Table, run_alone

SIZES = (256, 512, 1024, 2048)


Multiply = Callable[[np.ndarray, np.ndarray], object]


def best_rate(multiply: Multiply, sizes: tuple[int, ...], repeats: int) -> tuple[float, int]:
    """Best FP32 GEMM rate in GFLOP/s over square sizes on one pinned core, and its size."""
    rng = np.random.default_rng(0)
    best, best_n = 0.0, 0
    with threadpool_limits(limits=1), peers.one_core():
        for n in sizes:
            a = rng.standard_normal((n, n), dtype=np.float32)
            b = rng.standard_normal((n, n), dtype=np.float32)
            multiply(a, b)  # warm-up: page in, pick the kernel
            for _ in range(repeats):
                start = time.perf_counter()
                multiply(a, b)
                rate = 2 * n**3 / (time.perf_counter() - start) / 1e9
                if rate > best:
                    best, best_n = rate, n
    return best, best_n


def onnx_runtime_matmul() -> Multiply:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def tensor(name: str) -> object:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", "n"])

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [tensor("a"), tensor("b")],
        [tensor("c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return lambda a, b: session.run(None, {"a": a, "b": b})


def gemm_peaks(sizes: tuple[int, ...] = SIZES, repeats: int = 5) -> dict[str, tuple[float, int]]:
    return {
        f"numpy @ ({blas_name()})": best_rate(np.matmul, sizes, repeats),
        "ONNX Runtime MatMul (MLAS)": best_rate(onnx_runtime_matmul(), sizes, repeats),
    }


def blas_name() -> str:
    from threadpoolctl import threadpool_info

    info = next((i for i in threadpool_info() if i.get("user_api") == "blas"), {})
    return f"{info.get('internal_api', 'unknown BLAS')} {info.get('version') or ''}".strip()


def table(speeds: list[Speed], peaks: dict[str, tuple[float, int]]) -> Table:
    peak = max(rate for rate, _ in peaks.values())
    measured = "; ".join(
        f"{name}: {rate:.1f} GFLOP/s at {n}x{n}" for name, (rate, n) in peaks.items()
    )
    result = Table(
        "Physical limit: achieved compute against this core's FP32 peak",
        ["model", "form", "runtime", "MACs", "p50 ms", "GFLOP/s", "% of peak"],
        note=(
            f"Peak: **{peak:.1f} GFLOP/s**, the best FP32 matrix multiply on 1 thread and one "
            f"pinned core ({measured}). Achieved = 2 x MACs / p50 latency at batch 1. INT8 "
            "rows are held against the FP32 peak too; this core's INT8 (VNNI) peak is higher, "
            "so their share of *their* peak is lower than shown."
        ),
    )
    for s in speeds:
        rate = 2 * s.macs / (s.p50_ms / 1e3) / 1e9
        result.rows.append(
            [
                s.model,
                s.form,
                s.runtime,
                f"{s.macs:,}",
                f"{s.p50_ms:.4f}",
                f"{rate:.2f}",
                f"{100 * rate / peak:.1f}%",
            ]
        )
    return result


def run(bench: Bench, speeds: list[Speed] | None = None) -> Section:
    peaks = gemm_peaks()
    if speeds is None:
        speeds = []
        for name in ["lenet5", "resnet8"]:
            base = bench.baseline(name)
            with tempfile.TemporaryDirectory(prefix="bench-limit-") as tmp:
                fp32 = bench.measure(es.export(base, bench.data, tmp))
                (int8,) = es.compress(base, bench.data, ["int8-static"], out_dir=tmp)
                int8 = bench.measure(int8)
            for form, record in [("FP32", fp32), ("edgeslim static INT8", int8)]:
                speeds.append(
                    Speed(name, form, "ONNX Runtime", fp32["macs"], record["latency_p50_ms"])
                )
    return Section([table(speeds, peaks)])


if __name__ == "__main__":
    run_alone(run, __doc__)
