"""Better post-training quantization: static INT8 with and without cross-layer equalisation,
AdaRound and bias correction, per channel and per tensor, on mobilenet-v1, resnet8 and lenet5.

    python bench/ptq.py [--quick]

Per-tensor weights are what many integer accelerators and older runtimes take; depthwise
convolutions with batch norm folded in are where one scale per tensor hurts, and where
equalisation (Nagel et al. 2019) is meant to help. Accuracy on the full test split, on ONNX
Runtime, from ``es.measure``.
"""

from __future__ import annotations

import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import Bench, Section, Table, model_label, run_alone

MODELS = [("mobilenet-v1", {"width": 0.25}), ("resnet8", {}), ("lenet5", {})]
QUICK_MODELS = [("mobilenet-v1", {"width": 0.25})]
FORMS = {
    f"{scope}{label}": {"per_channel": scope == "per channel", **options}
    for scope in ("per channel", "per tensor")
    for label, options in (
        ("", {}),
        (" + CLE", {"equalize": True}),
        (" + bias correction", {"bias_correction": True}),
        (" + CLE + bias correction", {"equalize": True, "bias_correction": True}),
        (" + AdaRound", {"adaround": True}),
        (
            " + CLE + AdaRound + bias correction",
            {"equalize": True, "adaround": True, "bias_correction": True},
        ),
    )
}
# --quick: every technique still runs once, on the scope where the target lies
QUICK_FORMS = {name: options for name, options in FORMS.items() if name.startswith("per tensor")}
HEADERS = ["model", "form", "accuracy", "Δ vs FP32 (pts)", "storage KB"]


def run(bench: Bench) -> Section:
    table = Table(
        "Static INT8 with cross-layer equalisation (CLE), AdaRound and bias correction",
        HEADERS,
        note=(
            f"{bench.label}; baselines trained {bench.epochs} epochs. ONNX Runtime's static "
            "quantizer (QDQ, U8S8, MinMax on 256 training samples); CLE runs on the FP32 graph "
            "before it, AdaRound (500 steps a layer) between two passes of it, bias correction "
            "(empirical, layer by layer, on the same samples) after it. "
            "Target: mobilenet-v1 per tensor within 0.5 pt of FP32."
        ),
    )
    forms = QUICK_FORMS if bench.quick else FORMS
    for name, options in QUICK_MODELS if bench.quick else MODELS:
        base = bench.baseline(name, **options)
        with tempfile.TemporaryDirectory(prefix="bench-ptq-") as tmp:
            dense = bench.measure(es.export(base, bench.data, tmp))
            recipes = [[{"quantize": {"kind": "static-int8", **s}}] for s in forms.values()]
            built = es.compress(
                base,
                bench.data,
                recipes,
                names=[f"q{i}" for i in range(len(recipes))],
                out_dir=tmp,
                show_progress=False,
            )
            records = [bench.measure(c) for c in built]
        label = model_label(name, options)
        table.rows.append(
            [label, "FP32", f"{dense['accuracy']:.4f}", "+0.00", f"{dense['storage_kb']:.1f}"]
        )
        for form, record in zip(forms, records, strict=True):
            drop = (record["accuracy"] - dense["accuracy"]) * 100
            table.rows.append(
                [
                    label,
                    form,
                    f"{record['accuracy']:.4f}",
                    f"{drop:+.2f}",
                    f"{record['storage_kb']:.1f}",
                ]
            )
    return Section([table])


if __name__ == "__main__":
    run_alone(run, __doc__)
