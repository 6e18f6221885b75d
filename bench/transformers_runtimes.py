"""The benchmark's ViT on every runtime: FP32 and INT8 as each runtime's own quantizer makes it.

    python bench/transformers_runtimes.py [--quick]

Uses the ViT that ``bench/transformers.py`` trained (cached under bench/.cache). A runtime that
cannot run the model gets a row saying why, in its own words.
"""

from __future__ import annotations

import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import edgeslim as es
from common import Bench, Section, Table, run_alone
from edgeslim.errors import EdgeslimError

FORMS = {
    "onnxruntime": ["FP32", "int8-static", "int8-dynamic"],
    "openvino": ["FP32", "int8-static"],
    "litert": ["FP32", "int8-static", "int8-dynamic"],
    "executorch": ["FP32", "int8-static"],
    "tflite-micro": ["int8-static"],
}


def run(bench: Bench, model: str = "vit") -> Section:
    table = Table(
        f"{model} on every runtime",
        ["runtime", "form", "accuracy", "p50 ms", "p95 ms", "storage KB", "note"],
        note=f"{bench.label}; {model} trained {bench.epochs} epochs; batch 1, 1 thread.",
    )
    base = bench.baseline(model)
    with tempfile.TemporaryDirectory(prefix="bench-vit-runtimes-") as tmp:
        built = {"FP32": es.export(base, bench.data, tmp)}
        quantized = es.compress(base, bench.data, ["int8-static", "int8-dynamic"], out_dir=tmp)
        built.update({c.name: c for c in quantized})
        for runtime, forms in FORMS.items():
            for form in forms:
                try:
                    record = es.measure(built[form], bench.data, bench.settings, runtime=runtime)
                except EdgeslimError as exc:
                    reason = str(exc).split("cannot run this model: ")[-1][:160]
                    table.rows.append([runtime, form, "-", "-", "-", "-", reason])
                    continue
                table.rows.append(
                    [
                        runtime,
                        form,
                        f"{record['accuracy']:.4f}",
                        f"{record['latency_p50_ms']:.4f}",
                        f"{record['latency_p95_ms']:.4f}",
                        f"{record['storage_kb']:.1f}",
                        "",
                    ]
                )
    return Section([table])


if __name__ == "__main__":
    run_alone(run, __doc__, model="vit")
