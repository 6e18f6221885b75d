"""INT8 side by side: edgeslim's static and QAT INT8 against NNCF, PyTorch and ONNX Runtime's
quantizer, each with its documented defaults, on the same baselines and the same samples.

    python bench/peers_quantization.py [--quick]

Every post-training tool calibrates on the same 300 training samples (NNCF's default subset
size); edgeslim's static INT8 uses its own default (256 of them). Accuracy on the full test
split; p50/p99 latency at batch 1, 1 thread; speed-up against FP32 on the same runtime.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import numpy as np
from torch import nn

import edgeslim as es
import peers
from common import Bench, Section, Speed, Table, model_label, run_alone
from edgeslim.compress.quantize import calibration_set, cpu_has_vnni

FULL_MODELS: list[tuple[str, dict[str, Any]]] = [
    ("lenet5", {}),
    ("resnet8", {}),
    ("mobilenet-v1", {"width": 0.25}),
]
QUICK_MODELS = FULL_MODELS[:2]
CALIBRATION_SAMPLES = 300
HEADERS = ["model", "method", "runtime", "accuracy", "p50 ms", "p99 ms", "speed-up", "storage KB"]


def onnx_runtime_rows(
    bench: Bench, base: es.Candidate, calibration: np.ndarray, folder: Path
) -> tuple[list[tuple], Path]:
    """(method, runtime, record) for every form run on ONNX Runtime, FP32 first; the FP32 file."""
    fp32 = es.export(base, bench.data, folder)
    built = es.compress(
        base,
        bench.data,
        [[{"quantize": {"kind": "static-int8"}}], [{"qat": {"epochs": 1}}]],
        names=["static", "qat"],
        out_dir=folder,
    )
    forms: list[tuple[str, Any]] = [
        ("FP32", fp32),
        ("edgeslim static INT8", built[0]),
        ("edgeslim QAT INT8", built[1]),
    ]
    if peers.installed("nncf"):
        nncf_file = peers.nncf_onnx(fp32.artifact, calibration, folder / "nncf.onnx")
        forms.append(("NNCF `quantize` defaults", nncf_file))
    ort_file = peers.ort_quantize_static_defaults(
        fp32.artifact, calibration, folder / "ort-defaults.onnx"
    )
    forms.append(("ORT `quantize_static` defaults", ort_file))
    rows = [(method, "ONNX Runtime", bench.measure(target)) for method, target in forms]
    return rows, fp32.artifact


def openvino_rows(
    bench: Bench, fp32_onnx: Path, calibration: np.ndarray, folder: Path
) -> list[tuple]:
    fp32 = peers.openvino_fp32(fp32_onnx, folder / "fp32-ov.xml")
    int8 = peers.nncf_openvino(fp32_onnx, calibration, folder / "nncf-ov.xml")
    return [
        (method, "OpenVINO", peers.openvino_record(xml, bench.data, bench.settings))
        for method, xml in [("FP32", fp32), ("NNCF `quantize` defaults", int8)]
    ]


def pytorch_rows(bench: Bench, model: nn.Module, calibration: np.ndarray) -> list[tuple]:
    int8 = peers.torch_x86_ptq(model, calibration)
    return [
        ("FP32", "PyTorch", peers.torch_record(model, bench.data, bench.settings)),
        ("PyTorch x86 PTQ (FX)", "PyTorch", peers.torch_record(int8, bench.data, bench.settings)),
    ]


def run(bench: Bench, models: list[tuple[str, dict]] | None = None) -> Section:
    models = models or (QUICK_MODELS if bench.quick else FULL_MODELS)
    table = Table(
        "Quantization: edgeslim against the peers' INT8 defaults",
        HEADERS,
        note=(
            f"{bench.label}, baselines trained {bench.epochs} epochs; batch 1, 1 thread, one "
            f"pinned core; speed-up against FP32 on the same runtime; CPU VNNI: "
            f"{'yes' if cpu_has_vnni() else 'no'}. Post-training peers calibrate on the same "
            f"{CALIBRATION_SAMPLES} training samples."
        ),
    )
    speeds = []
    calibration = calibration_set(bench.data, CALIBRATION_SAMPLES, seed=0)
    for name, options in models:
        label = model_label(name, options)
        base = bench.baseline(name, **options)
        with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
            folder = Path(tmp)
            rows, fp32_file = onnx_runtime_rows(bench, base, calibration, folder)
            macs = rows[0][2]["macs"]
            if peers.installed("openvino") and peers.installed("nncf"):
                rows += openvino_rows(bench, fp32_file, calibration, folder)
            rows += pytorch_rows(bench, base.model, calibration)
        fp32 = {runtime: r for method, runtime, r in rows if method == "FP32"}
        for method, runtime, record in rows:
            reference = fp32[runtime]["latency_p50_ms"]
            table.rows.append(
                [
                    label,
                    method,
                    runtime,
                    f"{record['accuracy']:.4f}",
                    f"{record['latency_p50_ms']:.4f}",
                    f"{record['latency_p99_ms']:.4f}",
                    f"{reference / record['latency_p50_ms']:.2f}x",
                    f"{record['storage_kb']:.1f}",
                ]
            )
            speeds.append(Speed(label, method, runtime, macs, record["latency_p50_ms"]))
        if not peers.installed("nncf"):
            table.rows.append([label, "NNCF", "-", peers.PEERS_MISSING, "", "", "", ""])
    return Section([table], speeds)


if __name__ == "__main__":
    run_alone(run, __doc__)
