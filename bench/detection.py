"""Object detection: CenterNet on the built-in scenes, FP32 against edgeslim's compressed forms
and the peers' that support detection here, each with its documented defaults.

    python bench/detection.py [--quick]

The scenes are synthetic (digits pasted on 64x64 canvases; ``edgeslim.data.scenes``). mAP by
pycocotools on the full test split, on ONNX Runtime; p95 end to end = network + decoding + NMS
at batch 1, 1 thread. Target: a compressed detector within 2 points of mAP@0.5 of FP32, at
least 3x smaller and 1.5x faster end to end.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import torch

import edgeslim as es
import peers
from common import Bench, Section, Table, baseline, run_alone

CALIBRATION_SAMPLES = 300  # NNCF's default subset size; every post-training tool gets these


def recipes(finetune: int) -> dict[str, list[dict]]:
    half = {"prune": {"kind": "structured", "ratio": 0.5}}
    tune = {"finetune": {"epochs": finetune, "lr": 2e-3}}

    def macs(reduction: float) -> dict:
        return {"prune": {"kind": "structured", "macs_reduction": reduction, "round_to": 8}}

    int8 = {"quantize": {"kind": "static-int8"}}
    return {
        "edgeslim structured 50% channels + fine-tune": [half, tune],
        "edgeslim static INT8": [int8],
        "edgeslim 1.5x MACs -> fine-tune -> INT8": [macs(1.5), tune, int8],
        "edgeslim 2x MACs -> fine-tune -> INT8": [macs(2.0), tune, int8],
        "edgeslim 2x MACs -> distil -> INT8": [
            macs(2.0), {"distill": {"epochs": finetune, "lr": 2e-3}}, int8,
        ],
    }  # fmt: skip


def peer_forms(base: es.Candidate, data, fp32: Path, folder: Path, finetune: int) -> list:
    calibration = data.train.x[:CALIBRATION_SAMPLES]
    forms = []
    if peers.installed("nncf"):
        forms.append(
            ("NNCF `quantize` defaults", peers.nncf_onnx(fp32, calibration, folder / "nncf.onnx"))
        )
    forms.append(
        (
            "ORT `quantize_static` defaults",
            peers.ort_quantize_static_defaults(fp32, calibration, folder / "ort.onnx"),
        )
    )
    example = torch.from_numpy(data.train.x[:1])
    pruned = peers.torch_pruning_plain(base.model, example, macs_reduction=2.0)
    start = es.Candidate("tp", recipe=({"torch_pruning": {"l1": 2.0}},), model=pruned)
    tune = [[{"finetune": {"epochs": finetune, "lr": 2e-3}}]]
    (tuned,) = es.compress(start, data, tune, out_dir=folder)
    forms.append(("Torch-Pruning plain (L1, 2x MACs) + fine-tune", tuned))
    return forms


HEADERS = ["method", "mAP@0.5", "Δ", "mAP@.5:.95", "p95 ms (net)", "p95 ms (end to end)",
           "faster", "storage KB", "smaller", "peak MB"]  # fmt: skip


def run(bench: Bench) -> Section:
    """The detection section: its own data (the scenes) and training budget, the session's
    measuring settings."""
    epochs, finetune = (3, 1) if bench.quick else (20, 12)
    data = es.data.load("scenes")
    base = baseline("centernet", data, "scenes", epochs)
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        folder = Path(tmp)
        fp32 = es.export(base, data, folder)
        forms = recipes(finetune)
        built = es.compress(
            base, data, list(forms.values()), names=[f"c{i}" for i in range(len(forms))],
            out_dir=folder, show_progress=False,
        )  # fmt: skip
        rows = [("FP32 baseline", fp32), *zip(forms, built, strict=True)]
        rows += peer_forms(base, data, fp32.artifact, folder, finetune)
        records = [(name, es.measure(target, data, bench.settings)) for name, target in rows]
    ref = records[0][1]
    met = []
    table = Table(
        "Object detection: centernet on the built-in scenes",
        HEADERS,
        note=(
            f"Synthetic scenes (digits on 64x64 canvases), {len(data.train)} train / "
            f"{len(data.test)} test; centernet trained {epochs} epochs, {finetune} (lr 2e-3) "
            "after pruning in every pruned method; mAP by pycocotools on the full test split, "
            "on ONNX Runtime; end to end = network + decoding + NMS at batch 1, 1 thread. "
            "Target: within 2 points of mAP@0.5, >= 3x smaller, >= 1.5x faster end to end."
        ),
    )
    for name, r in records:
        faster = ref["latency_e2e_p95_ms"] / r["latency_e2e_p95_ms"]
        smaller = ref["storage_kb"] / r["storage_kb"]
        drop = ref["map50"] - r["map50"]
        if name != "FP32 baseline" and drop <= 0.02 and smaller >= 3 and faster >= 1.5:
            met.append(name)
        table.rows.append(
            [
                name,
                f"{r['map50']:.4f}",
                f"{-drop:+.4f}",
                f"{r['map']:.4f}",
                f"{r['latency_p95_ms']:.3f}",
                f"{r['latency_e2e_p95_ms']:.3f}",
                f"{faster:.2f}x",
                f"{r['storage_kb']:.1f}",
                f"{smaller:.2f}x",
                f"{r['peak_memory_mb']:.2f}",
            ]
        )
    table.note += " " + (f"Met by: {', '.join(met)}." if met else "Not met by any method.")
    return Section([table])


if __name__ == "__main__":
    run_alone(run, __doc__)
