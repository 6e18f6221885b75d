"""The same models on every runtime: FP32 and INT8, each INT8 made by the runtime's own tool.

    python bench/runtimes.py [--quick]

Fashion-MNIST baselines (cached in bench/.cache). On ONNX Runtime and OpenVINO the INT8 file is
edgeslim's static INT8 (ONNX Runtime's quantizer); on LiteRT and TFLite Micro it is the same
PyTorch model converted by litert-torch and quantized by ai-edge-quantizer's `static_wi8_ai8`
recipe. Peers, each with its documented defaults: NNCF's `quantize` run on OpenVINO, and ONNX
Runtime's `quantize_static`. Batch 1, 1 thread, one pinned core; accuracy on the test split, on
the runtime. The pick per model is the fastest runtime and form within 1 point of the FP32
validation accuracy on ONNX Runtime (chosen on validation; the test accuracy is reported).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
import peers
from common import Bench, Section, Table, head, model_label, run_alone
from edgeslim.compress.quantize import calibration_set
from edgeslim.errors import MissingRuntimeError
from edgeslim.runtimes import RUNTIMES

FULL_MODELS: list[tuple[str, dict[str, Any]]] = [
    ("lenet5", {}),
    ("resnet8", {}),
    ("mobilenet-v1", {"width": 0.25}),
    ("ds-cnn", {}),
]
QUICK_MODELS = FULL_MODELS[:1]
QUICK_TEST_SAMPLES = 1000  # TFLite Micro's reference kernels run one sample at a time
CALIBRATION_SAMPLES = 300
HEADERS = [
    "model",
    "runtime",
    "form",
    "accuracy",
    "p50 ms",
    "p95 ms",
    "storage KB",
    "activations KB (estimate)",
    "arena KB (exact)",
    "conversion s",
]


def installed() -> list[str]:
    names = []
    for name, engine in RUNTIMES.items():
        try:
            engine.check_available()
            names.append(name)
        except MissingRuntimeError:
            print(f"{name} is not installed: left out", file=sys.stderr)
    return names


def measured(bench: Bench, runtimes: list[str], forms: dict[str, es.Candidate]) -> list[tuple]:
    """(runtime, form, record) for every form on every runtime, in one fresh worker each."""
    rows = []
    for name in runtimes:
        settings = replace(bench.settings, runtime=name)
        for form, candidate in forms.items():
            rows.append((name, form, es.measure(candidate, bench.data, settings)))
    return rows


def peer_rows(bench: Bench, fp32_onnx: Path, folder: Path, runtimes: list[str]) -> list[tuple]:
    calibration = calibration_set(bench.data, CALIBRATION_SAMPLES, seed=0)
    ort = peers.ort_quantize_static_defaults(fp32_onnx, calibration, folder / "ort-defaults.onnx")
    rows = [("onnxruntime", "ORT `quantize_static` defaults", bench.measure(ort))]
    if "openvino" in runtimes and peers.installed("nncf"):
        xml = peers.nncf_openvino(fp32_onnx, calibration, folder / "nncf-ov.xml")
        record = peers.openvino_record(xml, bench.data, bench.settings)
        rows.append(("openvino", "NNCF `quantize` defaults (OpenVINO IR)", record))
    return rows


def memory_rows(label: str, rows: list[tuple]) -> list[list[str]]:
    """Per form: the estimate beside each exact figure a runtime reported, and their ratio."""
    found = []
    for form in ("FP32", "INT8"):
        by_runtime = {rt: r for rt, f, r in rows if f == form}
        estimate = by_runtime["onnxruntime"]["activation_memory_kb"]
        cells = [label, form, f"{estimate:.1f}"]
        for runtime, metric in (
            ("tflite-micro", "tensor_arena_kb"),
            ("executorch", "planned_memory_kb"),
        ):
            exact = by_runtime.get(runtime, {}).get(metric)
            cells += [f"{exact:.1f}", f"{estimate / exact:.2f}"] if exact else ["-", "-"]
        found.append(cells)
    return found


def cell(record: dict, key: str, fmt: str) -> str:
    return format(record[key], fmt) if key in record else "-"


def run(bench: Bench, models: list[tuple[str, dict]] | None = None) -> Section:
    models = models or (QUICK_MODELS if bench.quick else FULL_MODELS)
    if bench.quick:  # a test subset, so TFLite Micro's one-sample-at-a-time loop stays short
        subset = head(bench.data.test, QUICK_TEST_SAMPLES)
        bench = replace(bench, data=replace(bench.data, test=subset))
    runtimes = installed()
    table = Table(
        "Runtimes: the same models measured on each",
        HEADERS,
        note=f"{bench.label}, {len(bench.data.test)} test samples, baselines trained "
        f"{bench.epochs} epochs; batch 1, 1 thread. INT8 on LiteRT and TFLite Micro is "
        "ai-edge-quantizer's `static_wi8_ai8`; on ONNX Runtime and OpenVINO edgeslim's static "
        "INT8. TFLite Micro's latency is its reference kernels on this CPU, not an MCU's.",
    )
    memory = Table(
        "Activation memory: edgeslim's estimate against the runtimes' exact figures",
        [
            "model",
            "form",
            "estimate KB",
            "TFLite Micro arena KB",
            "estimate / arena",
            "ExecuTorch plan KB",
            "estimate / plan",
        ],
        note="The estimate (`activation_memory_kb`, from the ONNX graph) counts activation "
        "buffers only; TFLite Micro's arena adds its own bookkeeping (tensor and node structs, "
        "per-channel quantization parameters) and the alignment of its planner. ExecuTorch "
        "plans float programs only (see the README).",
    )
    picks = Table(
        "Runtimes: the fastest runtime and form within 1 point of FP32",
        [
            "model",
            "FP32 val / test accuracy (ONNX Runtime)",
            "pick",
            "val accuracy (chose)",
            "test accuracy",
            "p50 ms",
            "vs best ORT INT8",
        ],
    )
    for name, options in models:
        label = model_label(name, options)
        base = bench.baseline(name, **options)
        with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
            folder = Path(tmp)
            fp32 = es.export(base, bench.data, folder)
            (int8,) = es.compress(
                fp32,
                bench.data,
                [[{"quantize": {"kind": "static-int8"}}]],
                names=["int8"],
                out_dir=folder,
                show_progress=False,
            )
            rows = measured(bench, runtimes, {"FP32": fp32, "INT8": int8})
            rows += peer_rows(bench, fp32.artifact, folder, runtimes)
        for runtime, form, record in rows:
            conversion = record.get("measured_with", {}).get("conversion") or {}
            table.rows.append(
                [
                    label,
                    runtime,
                    form,
                    cell(record, "accuracy", ".4f"),
                    cell(record, "latency_p50_ms", ".4f"),
                    cell(record, "latency_p95_ms", ".4f"),
                    cell(record, "storage_kb", ".1f"),
                    cell(record, "activation_memory_kb", ".1f"),
                    cell(record, "tensor_arena_kb", ".1f"),
                    f"{conversion['seconds']:.1f}" if conversion else "-",
                ]
            )
        memory.rows += memory_rows(label, rows)
        reference = next(r for rt, f, r in rows if rt == "onnxruntime" and f == "FP32")
        eligible = [
            (rt, f, r)
            for rt, f, r in rows
            if rt != "tflite-micro" and r["val_accuracy"] >= reference["val_accuracy"] - 0.01
        ]
        runtime, form, best = min(eligible, key=lambda row: row[2]["latency_p50_ms"])
        ort_int8 = min(
            r["latency_p50_ms"] for rt, f, r in rows if rt == "onnxruntime" and f != "FP32"
        )
        picks.rows.append(
            [
                label,
                f"{reference['val_accuracy']:.4f} / {reference['accuracy']:.4f}",
                f"{runtime} {form}",
                f"{best['val_accuracy']:.4f}",
                f"{best['accuracy']:.4f}",
                f"{best['latency_p50_ms']:.4f}",
                f"{ort_int8 / best['latency_p50_ms']:.2f}x",
            ]
        )
    return Section([table, memory, picks])


if __name__ == "__main__":
    run_alone(run, __doc__)
