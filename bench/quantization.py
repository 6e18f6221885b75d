"""FP32 against every quantized form, per model: what INT8, FP16 and INT4 buy on this CPU.

    python bench/quantization.py [--models resnet8,mobilenet-v1,ds-cnn] [--quick]

Fashion-MNIST (digits when missing). Accuracy on the full test split, p50 latency at batch 1
and 1 thread, storage, and speed-up against FP32, all from ``es.measure`` on ONNX Runtime.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import baseline, load_data, markdown_table
from edgeslim.compress.quantize import cpu_has_vnni

FORMS = {
    "static INT8 (QDQ, MinMax)": [{"quantize": {"kind": "static-int8"}}],
    "static INT8 (Entropy)": [
        {"quantize": {"kind": "static-int8", "calibration_method": "entropy"}}
    ],
    "QAT INT8": [{"qat": {"epochs": 1}}],
    "dynamic INT8": [{"quantize": {"kind": "dynamic-int8"}}],
    "FP16": [{"quantize": {"kind": "fp16"}}],
    "weight-only INT8": [{"quantize": {"kind": "weight-int8"}}],
    "weight-only INT4": [{"quantize": {"kind": "weight-int4"}}],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet8,mobilenet-v1,ds-cnn")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data, label = load_data(args.quick)
    epochs = 2 if args.quick else 6
    rows = []
    for model in args.models.split(","):
        base = baseline(model, data, label, epochs)
        with tempfile.TemporaryDirectory() as tmp:
            candidates = [es.export(base, data, tmp)]
            candidates += es.compress(
                base,
                data,
                list(FORMS.values()),
                names=[f"q{i}" for i in range(len(FORMS))],
                out_dir=tmp,
            )
            records = [es.measure(c, data) for c in candidates]
        fp32 = records[0]
        for name, record in zip(["FP32", *FORMS], records, strict=True):
            rows.append(
                [
                    model,
                    name,
                    f"{record['accuracy']:.4f}",
                    f"{record['latency_p50_ms']:.4f}",
                    f"{fp32['latency_p50_ms'] / record['latency_p50_ms']:.2f}x",
                    f"{record['storage_kb']:.1f}",
                    f"{fp32['storage_kb'] / record['storage_kb']:.2f}x",
                ]
            )
    print(
        f"\n{label}: baselines {epochs} epochs; ONNX Runtime, 1 thread, batch 1; "
        f"CPU VNNI: {'yes' if cpu_has_vnni() else 'no (reduce_range on)'}\n"
    )
    print(
        markdown_table(
            ["model", "form", "accuracy", "p50 ms", "speed-up", "storage KB", "smaller"], rows
        )
    )


if __name__ == "__main__":
    main()
