"""Host side of the LiteRT and TFLite Micro runtimes: the candidate's PyTorch model converted
by litert-torch (Google's PyTorch-to-LiteRT converter), then quantized by ai-edge-quantizer,
LiteRT's own quantizer, following the candidate's quantize step.

Pruning, distillation and fine-tuning happen in PyTorch, so the converted model carries them;
the quantize step is re-expressed with the runtime's tool instead of ONNX Runtime's, since a
runtime runs best what its own quantizer made.
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

# edgeslim's quantize kinds -> ai-edge-quantizer's recipes
RECIPES = {
    "static-int8": "static_wi8_ai8",
    "dynamic-int8": "dynamic_wi8_afp32",
    "weight-int8": "weight_only_wi8_afp32",
    "weight-int4": "weight_only_wi4_afp32",
}
CALIBRATION_SAMPLES = 300  # as the ONNX Runtime step's default


def require() -> None:
    """Import the converter (it prints torchao's and torch's start-up warnings from C++ and
    Python alike), or say which extra installs it."""
    failed: list[ImportError] = []

    def load() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import ai_edge_quantizer  # noqa: F401
                import litert_torch  # noqa: F401
        except ImportError as exc:
            failed.append(exc)

    c_output(load)
    if failed:
        exc = failed[0]
        raise MissingRuntimeError(
            "converting to .tflite needs litert-torch and ai-edge-quantizer: "
            f'pip install "edgeslim[litert]" ({exc})'
        ) from exc


def export_float(model: nn.Module, sample: Any, path: Path) -> None:
    import litert_torch

    from edgeslim.progress import quiet

    with quiet("litert_torch", "absl", "torch.export"):
        c_output(lambda: litert_torch.convert(model.eval(), (sample,)).export(str(path)))


def quantize(source: Path, target: Path, kind: str, settings: dict, data: Dataset) -> dict:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    from edgeslim.progress import quiet

    chosen = RECIPES[kind]
    tool = quantizer.Quantizer(str(source), getattr(recipe, chosen)())
    info: dict[str, Any] = {"recipe": chosen}
    calibrations: list[Any] = []
    if tool.need_calibration:
        signatures = Interpreter(model_path=str(source)).get_signature_list()
        key = next(iter(signatures))
        name = signatures[key]["inputs"][0]
        samples = settings.get("calibration_samples") or CALIBRATION_SAMPLES
        x = calibration_set(data, samples, settings.get("seed", 0))
        info["calibration_samples"] = len(x)
        feed = {key: [{name: x[i : i + 1]} for i in range(len(x))]}
        with quiet("absl"):  # its progress bar goes to the file descriptors
            c_output(lambda: calibrations.append(tool.calibrate(feed, num_threads=1)))
    quantized: list[Any] = []
    with quiet("absl"):
        c_output(lambda: quantized.append(tool.quantize(*calibrations)))
    # a stale file first: with overwrite=True the quantizer logs "Overwriting" on the root logger
    target.unlink(missing_ok=True)
    quantized[0].export_model(str(target))
    return info


def convert(model: nn.Module, quantize_step: dict | None, data: Dataset, path: Path) -> dict:
    """Write ``path`` (.tflite) from the PyTorch model, quantized as ``quantize_step`` says;
    return how (converter, quantizer and recipe)."""
    import torch

    require()
    float_path = path.with_suffix(".float.tflite")
    export_float(model, torch.from_numpy(data.test.x[:1]), float_path)
    info: dict[str, Any] = {
        "format": "tflite",
        "converter": f"litert-torch {version('litert-torch')}",
    }
    if quantize_step:
        kind = quantize_step["kind"]
        info["quantizer"] = f"ai-edge-quantizer {version('ai-edge-quantizer')}"
        info["quantize"] = {"kind": kind, **quantize(float_path, path, kind, quantize_step, data)}
        float_path.unlink()
    else:
        float_path.replace(path)
    return info
