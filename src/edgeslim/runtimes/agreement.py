"""Does the runtime's file compute what the PyTorch model computes? Checked on real samples
after every conversion, on the runtime itself, before anything is timed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ExportError, MeasurementError
from edgeslim.runtimes.native_output import c_output
from edgeslim.runtimes.registry import outputs
from edgeslim.tasks import Task, task_of

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.runtimes.registry import Runtime

SAMPLES = 128
FLOAT_TOLERANCE = 1e-3  # max abs diff, relative to the largest output
MIN_TOP1_AGREEMENT = 0.9  # for quantized files: the same class as PyTorch on 9 samples in 10

# What a user can change when a quantized file disagrees: the quantize step's settings that the
# quantizer making the file really reads, in YAML spelling (tests check every name against the
# settings model or the converter's source). A runtime that reads ONNX runs the file ONNX
# Runtime's quantizer made (compress/quantize.py, compress/mixed.py, compress/qat.py).
ONNX_QUANTIZER_ADVICE = (
    "with kind: static-int8, calibrate on more samples (calibration_samples: 1000), try "
    "calibration_method: entropy or percentile, per_channel: true if it is off, "
    "bias_correction: true, equalize: true or adaround: true; keep the weights of the layers "
    "that suffer in float with kind: mixed and bits: [8, 32] (activations stay float); or "
    "train for INT8 with a qat step in place of the quantize step (or more epochs for a qat "
    "step already there)"
)
# a converting runtime's own quantizer (its converter module) -> the settings it reads, with a
# value worth trying
CONVERTER_SETTINGS = {
    "edgeslim.runtimes.tflite_convert": {"calibration_samples": "1000", "seed": "1"},
    "edgeslim.runtimes.executorch_convert": {
        "calibration_samples": "1000",
        "per_channel": "true if it is off",
    },
}


def advice(engine: Runtime) -> str:
    """What to try, in the experiment's YAML, when ``engine``'s quantized file disagrees with
    PyTorch."""
    if engine.reads_onnx:
        return ONNX_QUANTIZER_ADVICE
    read = CONVERTER_SETTINGS.get(engine.converter or "", {})
    text = f"{engine.name}'s file is quantized by its own quantizer"
    if read:
        tried = ", ".join(f"{name}: {value}" for name, value in read.items())
        text += f", which reads the quantize step's {' and '.join(read)}; try {tried}"
    float_activations = [k for k in engine.quantize_kinds or () if k.startswith("weight-")]
    if float_activations:
        text += f"; or keep the activations float (kind: {' or '.join(float_activations)})"
    return text + (
        "; keeping single layers float is not a setting of this quantizer here (on a runtime "
        "that reads ONNX, kind: mixed does it)"
    )


def quantized(recipe: tuple | list) -> bool:
    return any("quantize" in step or "qat" in step for step in recipe)


def check_agreement(
    engine: Runtime,
    path: str,
    model: nn.Module,
    x: np.ndarray,
    is_quantized: bool,
    task: Task | None = None,
) -> dict[str, Any]:
    """Max abs diff and the task's agreement (top-1 for a classifier) against PyTorch; an
    ExportError with both figures when a float file is off by more than FLOAT_TOLERANCE, or a
    quantized one agrees on fewer than MIN_TOP1_AGREEMENT of the samples."""
    import torch  # torch: on the host only; the runtimes package is imported by the worker

    given, x = len(x), x[:SAMPLES]
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    loaded = []
    try:
        c_output(lambda: loaded.append(engine.load(path, 1)))  # runtimes' start-up notes
        session = loaded[0]
        got = outputs(session, x)
    except (RuntimeError, ValueError) as exc:  # the runtime's own words: an op it lacks, ...
        raise MeasurementError(
            f"{path}: {engine.name} {engine.version()} cannot run this model: "
            + " ".join(str(exc).split())
        ) from exc
    diff = float(np.abs(got.astype(np.float32) - expected).max())
    task = task or task_of(DataSpec(x.shape[1:], got.shape[-1]))
    top1 = task.agreement(got.astype(np.float32), expected)
    figures = {
        "runtime": engine.name,
        "samples": len(x),
        "max_abs_diff": diff,
        task.agreement_name: top1,
        "quantized": is_quantized,
    }
    scale = max(1.0, float(np.abs(expected).max()))
    if is_quantized and top1 < MIN_TOP1_AGREEMENT:
        compared = (
            "the whole test split"
            if given == len(x)
            else f"the first {len(x)} of the test split's {given}"
        )
        raise ExportError(
            f"{path}: {engine.name} agrees with PyTorch on the answer ({task.agreement_name}) "
            f"for {top1:.1%} of {len(x)} samples ({compared}; max abs diff {diff:.3g}); at "
            f"least {MIN_TOP1_AGREEMENT:.0%} expected (a fixed threshold, not a setting). To "
            f"agree more: {advice(engine)}"
        )
    if not is_quantized and diff > FLOAT_TOLERANCE * scale:
        raise ExportError(
            f"{path}: {engine.name}'s outputs differ from PyTorch's by up to {diff:.3g} "
            f"({task.agreement_name} {top1:.1%} on {len(x)} samples); at most "
            f"{FLOAT_TOLERANCE * scale:.3g} expected"
        )
    return figures
