"""The peers' own flows, each with its documented defaults, and a measurement for runtimes
other than ONNX Runtime.

Every function here is what a user of that tool would write after reading its getting-started
page; none is tuned. Models the peers write as ONNX are measured by ``es.measure`` like
edgeslim's; OpenVINO and PyTorch models are measured by ``runtime_record``, which times batch-1
calls with the same loop (``edgeslim.measure.latency.time_runs``), the same warm-up and run
counts, one thread, pinned to the same core as edgeslim's measuring worker.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import edgeslim as es
from edgeslim.measure.latency import percentile_stats, time_runs

Predict = Callable[[np.ndarray], np.ndarray]


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


PEERS_MISSING = "not installed (pip install -e '.[peers]')"


# ---------------------------------------------------------------- quantization


def nncf_onnx(source: Path, calibration: np.ndarray, target: Path) -> Path:
    """``nncf.quantize`` on the ONNX model, every argument at its default."""
    import nncf
    import onnx

    model = onnx.load(str(source))
    name = model.graph.input[0].name
    dataset = nncf.Dataset(list(calibration[:, None]), lambda x: {name: x})
    onnx.save(nncf.quantize(model, dataset), str(target))
    return target


def nncf_openvino(source: Path, calibration: np.ndarray, target: Path) -> Path:
    """``nncf.quantize`` on the OpenVINO model read from the same ONNX file, saved as IR."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(source))
    quantized = nncf.quantize(model, nncf.Dataset(list(calibration[:, None])))
    ov.save_model(quantized, str(target))
    return target


def openvino_fp32(source: Path, target: Path) -> Path:
    """The ONNX model converted to OpenVINO IR (``ov.save_model`` defaults: FP16 weights on
    disk, decompressed to FP32 when loaded)."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(source)), str(target))
    return target


def ort_quantize_static_defaults(source: Path, calibration: np.ndarray, target: Path) -> Path:
    """``onnxruntime.quantization.quantize_static`` with only the required arguments."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    name = onnx.load(str(source), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter(calibration[:, None])

        def get_next(self) -> dict[str, np.ndarray] | None:
            sample = next(self.samples, None)
            return None if sample is None else {name: sample}

    quantize_static(str(source), str(target), Reader())
    return target


def torch_x86_ptq(model: nn.Module, calibration: np.ndarray) -> nn.Module:
    """PyTorch's post-training static INT8 in the installed torch: FX graph mode with the
    ``x86`` backend's default qconfig mapping (the flow of PyTorch's PTQ tutorial)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    example = (torch.from_numpy(calibration[:1]),)
    prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), example)
    with torch.inference_mode():
        for start in range(0, len(calibration), 32):
            prepared(torch.from_numpy(calibration[start : start + 32]))
    return convert_fx(prepared)


# ---------------------------------------------------------------- structured pruning


def classifier(model: nn.Module) -> nn.Module:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]


def torch_pruning_plain(
    model: nn.Module, example: torch.Tensor, macs_reduction: float
) -> nn.Module:
    """Torch-Pruning's benchmark recipe (``reproduce/main.py``, method ``l1``): L1 magnitude
    importance, the same ratio in every layer, pruned in 1/400 steps until the MACs have
    fallen by ``macs_reduction``; the classifier is kept."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=1.0,
        iterative_steps=400,
        ignored_layers=[classifier(model)],
    )
    base, _ = tp.utils.count_ops_and_params(model, example)
    current = base
    while base / current < macs_reduction and pruner.current_step < 400:
        pruner.step()
        current, _ = tp.utils.count_ops_and_params(model, example)
    return model


# ---------------------------------------------------------------- other runtimes


@contextmanager
def one_core() -> Iterator[None]:
    """This process on the last core, as ``es.measure`` pins its worker."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def runtime_record(
    predict: Predict, data: es.data.Dataset, settings: es.MeasureSettings
) -> dict[str, Any]:
    """Accuracy on the validation and test splits, as edgeslim's worker measures them (a
    benchmark chooses on the first and reports the second), and batch-1 latency percentiles."""
    one = np.ascontiguousarray(data.test.x[:1])
    with one_core():
        for _ in range(settings.warmup_runs):
            predict(one)
        samples = time_runs(
            lambda _outputs, feed: predict(feed["x"]),
            {"x": one},
            settings.runs,
            settings.min_runs,
            settings.max_seconds,
        )
    return {
        "val_accuracy": split_accuracy(predict, data.val),
        "accuracy": split_accuracy(predict, data.test),
        **percentile_stats(samples),
    }


def split_accuracy(predict: Predict, split: es.data.Split) -> float:
    x, y = split.x, split.y
    correct = sum(
        int((predict(x[i : i + 256]).argmax(axis=1) == y[i : i + 256]).sum())
        for i in range(0, len(x), 256)
    )
    return correct / len(x)


def openvino_record(xml: Path, data: es.data.Dataset, settings: es.MeasureSettings) -> dict:
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(xml), "CPU", {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY"}
    )
    request = compiled.create_infer_request()

    def predict(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return request.get_output_tensor(0).data

    record = runtime_record(predict, data, settings)
    record["storage_kb"] = (xml.stat().st_size + xml.with_suffix(".bin").stat().st_size) / 1024
    return record


def torch_record(model: nn.Module, data: es.data.Dataset, settings: es.MeasureSettings) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    try:
        record = runtime_record(predict, data, settings)
    finally:
        torch.set_num_threads(threads)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    record["storage_kb"] = buffer.getbuffer().nbytes / 1024
    return record
