"""Object detection: CenterNet on the built-in scenes, FP32 against edgeslim's compressed forms
and the peers' that support detection here, each with its documented defaults.

    python bench/detection.py [--quick] [--epochs N] [--finetune N]

The scenes are synthetic (digits pasted on 64x64 canvases; ``edgeslim.data.scenes``). mAP by
pycocotools on the full test split, on ONNX Runtime; p95 end to end = network + decoding + NMS
at batch 1, 1 thread. Target: a compressed detector within 2 points of mAP@0.5 of FP32, at
least 3x smaller and 1.5x faster end to end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import torch

import edgeslim as es
import peers
from common import baseline, markdown_table, measure_settings

CALIBRATION_SAMPLES = 300  # NNCF's default subset size; every post-training tool gets these


def recipes(finetune: int) -> dict[str, list[dict]]:
    prune = {"prune": {"kind": "structured", "ratio": 0.5}}
    light = {"prune": {"kind": "structured", "ratio": 0.3}}
    int8 = {"quantize": {"kind": "static-int8"}}
    return {
        "edgeslim structured 50% + fine-tune": [prune, {"finetune": {"epochs": finetune}}],
        "edgeslim static INT8": [int8],
        "edgeslim structured 50% -> distil -> INT8": [
            prune, {"distill": {"epochs": finetune}}, int8,
        ],
        "edgeslim structured 30% -> distil -> INT8": [
            light, {"distill": {"epochs": finetune}}, int8,
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
    (tuned,) = es.compress(start, data, [[{"finetune": {"epochs": finetune}}]], out_dir=folder)
    forms.append(("Torch-Pruning plain (L1, 2x MACs) + fine-tune", tuned))
    return forms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None, help="baseline epochs (default 12)")
    parser.add_argument("--finetune", type=int, default=None, help="epochs after pruning (6)")
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.quick else 12)
    finetune = args.finetune or (1 if args.quick else 6)
    data = es.data.load("scenes")
    settings = measure_settings(args.quick)
    base = baseline("centernet", data, "scenes", epochs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fp32 = es.export(base, data, folder)
        forms = recipes(finetune)
        built = es.compress(
            base, data, list(forms.values()), names=[f"c{i}" for i in range(len(forms))],
            out_dir=folder,
        )  # fmt: skip
        rows = [("FP32 baseline", fp32), *zip(forms, built, strict=True)]
        rows += peer_forms(base, data, fp32.artifact, folder, finetune)
        records = [(name, es.measure(target, data, settings)) for name, target in rows]
    ref = records[0][1]
    table, met = [], []
    for name, r in records:
        faster = ref["latency_e2e_p95_ms"] / r["latency_e2e_p95_ms"]
        smaller = ref["storage_kb"] / r["storage_kb"]
        drop = ref["map50"] - r["map50"]
        if name != "FP32 baseline" and drop <= 0.02 and smaller >= 3 and faster >= 1.5:
            met.append(name)
        table.append(
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
    headers = ["method", "mAP@0.5", "Δ", "mAP@.5:.95", "p95 ms (net)", "p95 ms (end to end)",
               "faster", "storage KB", "smaller", "peak MB"]  # fmt: skip
    print(
        f"\ncenternet on the built-in scenes (synthetic, {len(data.test)} test scenes); "
        f"baseline {epochs} epochs, {finetune} after pruning; ONNX Runtime, 1 thread, batch 1\n"
    )
    print(markdown_table(headers, table))
    verdict = (
        f"target met by: {', '.join(met)}"
        if met
        else "target (within 2 pts, >= 3x smaller, >= 1.5x faster end to end) not met"
    )
    print(f"\n{verdict}")


if __name__ == "__main__":
    main()
