"""Host side of the ExecuTorch runtime, as its XNNPACK tutorial writes it: ``torch.export``,
the XNNPACK quantizer through PT2E (``prepare_pt2e`` / ``convert_pt2e``) for a static INT8
step, then ``to_edge_transform_and_lower`` with the XNNPACK partitioner and ``to_executorch``.

The same float model lowered without a delegate gives ExecuTorch's own memory plan: the bytes
of activations it allocates up front (``planned_memory_bytes``), an exact figure for a program
run by ExecuTorch's portable kernels, as on a microcontroller.
"""

from __future__ import annotations

import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.data.bundle import calibration_set
from edgeslim.errors import MissingRuntimeError
from edgeslim.runtimes.native_output import c_output

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.data.bundle import Dataset

CALIBRATION_SAMPLES = 300


def require() -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c_output(lambda: __import__("executorch.exir"))
    except ImportError as exc:
        raise MissingRuntimeError(
            f'converting to .pte needs executorch: pip install "edgeslim[executorch]" ({exc})'
        ) from exc


def quantized_module(model: Any, sample: Any, data: Dataset, settings: dict) -> Any:
    import executorch.kernels.quantized  # noqa: F401  (out variants, for the memory plan)
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=settings.get("per_channel", True))
    )
    prepared = prepare_pt2e(torch.export.export(model, (sample,)).module(), quantizer)
    x = calibration_set(data, settings.get("calibration_samples") or CALIBRATION_SAMPLES, 0)
    with torch.no_grad():
        for i in range(len(x)):
            prepared(torch.from_numpy(x[i : i + 1]))
    return convert_pt2e(prepared)


def lower(module: Any, sample: Any, delegate: bool) -> Any:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(module, (sample,))
    partitioner = [XnnpackPartitioner()] if delegate else None
    return to_edge_transform_and_lower(exported, partitioner=partitioner).to_executorch()


def convert(model: nn.Module, quantize_step: dict | None, data: Dataset, path: Path) -> dict:
    """Write ``path`` (.pte) lowered to XNNPACK, quantized as ``quantize_step`` says; return
    how, and the float program's memory plan."""
    import torch

    require()
    sample = torch.from_numpy(data.test.x[:1])
    info: dict[str, Any] = {"format": "pte", "converter": f"executorch {version('executorch')}"}
    programs: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if quantize_step:
            info["quantizer"] = "XNNPACKQuantizer (PT2E), symmetric INT8"
            info["quantize"] = {"kind": quantize_step["kind"]}
            model = quantized_module(model, sample, data, quantize_step)
        c_output(lambda: programs.append(lower(model, sample, delegate=True)))
        if not quantize_step:
            c_output(lambda: programs.append(lower(model, sample, delegate=False)))
    path.write_bytes(programs[0].buffer)
    if quantize_step:  # the portable kernels run a Q/DQ graph in float: its plan is no INT8 arena
        info["planned_memory"] = (
            "not reported for a quantized program: ExecuTorch's portable kernels dequantize "
            "weights and activations to float, so its plan would count float copies that an "
            "integer kernel never makes"
        )
    else:
        plan = programs[1].executorch_program.execution_plan[0].non_const_buffer_sizes
        info["planned_memory_bytes"] = int(sum(plan))
    return info
