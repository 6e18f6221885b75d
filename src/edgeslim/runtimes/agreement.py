"""Does the runtime's file compute what the PyTorch model computes? Checked on real samples
after every conversion, on the runtime itself, before anything is timed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ExportError, MeasurementError
from edgeslim.runtimes.native_output import c_output
from edgeslim.runtimes.registry import fixed_batch
from edgeslim.tasks import Task, task_of

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.runtimes.registry import Runtime

SAMPLES = 128
FLOAT_TOLERANCE = 1e-3  # max abs diff, relative to the largest output
MIN_TOP1_AGREEMENT = 0.9  # for quantized files: the same class as PyTorch on 9 samples in 10


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
    import torch

    x = x[:SAMPLES]
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    loaded = []
    try:
        c_output(lambda: loaded.append(engine.load(path, 1)))  # runtimes' start-up notes
        session = loaded[0]
        step = fixed_batch(session) or len(x)
        got = np.concatenate(
            [
                session.run(None, {session.input_name: x[i : i + step]})[0]
                for i in range(0, len(x), step)
            ]
        )[: len(x)]
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
        raise ExportError(
            f"{path}: {engine.name} agrees with PyTorch on the answer ({task.agreement_name}) "
            f"for {top1:.1%} of {len(x)} samples (max abs diff {diff:.3g}); at least "
            f"{MIN_TOP1_AGREEMENT:.0%} expected"
        )
    if not is_quantized and diff > FLOAT_TOLERANCE * scale:
        raise ExportError(
            f"{path}: {engine.name}'s outputs differ from PyTorch's by up to {diff:.3g} "
            f"({task.agreement_name} {top1:.1%} on {len(x)} samples); at most "
            f"{FLOAT_TOLERANCE * scale:.3g} expected"
        )
    return figures
