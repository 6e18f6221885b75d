"""Quantization of the exported ONNX model, with ONNX Runtime's quantization tooling.

- ``static-int8``: QDQ format, per-channel INT8 weights, UINT8 activations (U8S8, what ORT
  recommends on x86), ranges calibrated on training samples (MinMax, Entropy or Percentile).
- ``dynamic-int8``: INT8 weights, activation ranges computed at run time.
- ``fp16``: weights and arithmetic in FP16, inputs and outputs kept FP32.
- ``weight-int8`` / ``weight-int4``: weight-only; conv and linear (Gemm/MatMul) weights are
  stored as INT8 or INT4 per output channel and dequantized by the runtime, activations stay
  FP32. Storage drops to 1 or 1/2 byte per weight; biases stay FP32.

Every quantized artifact is compared with its FP32 source on test samples (top-1 agreement).

``reduce_range: auto`` quantizes weights to 7 bits on x86 CPUs without VNNI instructions. There
ORT's U8S8 kernels add pairs of products in 16 bits and saturate (ORT's documentation says so);
measured on digits with small-cnn on an AVX2-only CPU: full range 95.0%, reduced range 100.0%,
FP32 99.7%. CPUs with AVX-512 VNNI or AVX-VNNI, and ARM, keep the full 8 bits.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Literal

import ml_dtypes
import numpy as np
import onnx
from onnx import helper, numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.compress.adaround import adaround
from edgeslim.compress.bias_correction import correct_biases
from edgeslim.compress.equalize import equalize
from edgeslim.compress.registry import technique
from edgeslim.data.bundle import Dataset, calibration_set
from edgeslim.errors import ConfigError
from edgeslim.graph import WEIGHTED_OPS
from edgeslim.progress import quiet

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def cpu_has_vnni() -> bool:
    """True where INT8 dot products do not saturate (x86 VNNI), or off x86 altogether."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def resolve_reduce_range(setting: bool | Literal["auto"]) -> bool:
    return (not cpu_has_vnni()) if setting == "auto" else bool(setting)


class StaticSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reduce_range: bool | Literal["auto"] = "auto"
    calibration_samples: int = Field(256, ge=1, description="training samples for calibration")
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    preprocess: bool = Field(True, description="shape inference and graph optimisation first")
    equalize: bool = Field(False, description="cross-layer equalisation first (equalize.py)")
    bias_correction: bool = Field(False, description="correct biases after (bias_correction.py)")
    adaround: bool = Field(False, description="learned rounding of weights (adaround.py)")
    adaround_iterations: int = Field(500, ge=1, description="training steps per layer")
    seed: int = 0


class DynamicSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reduce_range: bool | Literal["auto"] = "auto"
    per_channel: bool = True


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


def input_of(path: Path) -> tuple[str, tuple]:
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    value = next(i for i in model.graph.input if i.name not in inits)
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    )
    return value.name, dims


def check_calibration(x: np.ndarray, path: Path) -> None:
    name, dims = input_of(path)
    if len(x) == 0:
        raise ConfigError("calibration set is empty; give at least one sample")
    wanted = dims[1:]
    if x.ndim != len(dims) or any(
        w not in (None, 0, got) for w, got in zip(wanted, x.shape[1:], strict=False)
    ):
        raise ConfigError(
            f"calibration samples of shape {x.shape[1:]} do not fit the model input {name} {dims}"
        )


def equal_batch_size(count: int, largest: int = 32) -> int:
    """The largest batch size up to ``largest`` that splits ``count`` samples evenly. ONNX
    Runtime's histogram calibrators (entropy, percentile) stack every batch's activations with
    ``np.asarray`` and fail on a shorter last batch ("inhomogeneous shape"), so 1258 samples in
    batches of 32 broke them where 256 did not."""
    return next(size for size in range(min(largest, count), 0, -1) if count % size == 0)


def calibration_reader(x: np.ndarray, input_name: str, batch_size: int = 32):
    from onnxruntime.quantization import CalibrationDataReader  # ORT's quantizer (onnx, sympy)

    size = equal_batch_size(len(x), batch_size)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([x[i : i + size] for i in range(0, len(x), size)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    return Reader()


def preprocessed(source: Path, folder: Path) -> Path:
    """ORT's recommended pre-pass: shape inference plus graph optimisation (BN folding)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process  # ORT's quantizer

    target = folder / "preprocessed.onnx"
    with quiet("root", "onnxruntime"):
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    return target


def quantize_static(source: Path, target: Path, calibration: np.ndarray, s: StaticSettings) -> dict:
    """ONNX Runtime's static quantizer, with equalisation before, learned rounding between two
    passes and bias correction after, where asked; returns what those did."""
    from onnxruntime.quantization import (  # ORT's quantizer
        CalibrationMethod,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    check_calibration(calibration, source)
    info = {}
    with tempfile.TemporaryDirectory(prefix="edgeslim-quant-") as tmp:
        model_in = source
        if s.equalize:
            model = onnx.load(str(source))
            info["equalization"] = equalize(model)
            model_in = Path(tmp) / "equalized.onnx"
            onnx.save(model, str(model_in))
        model_in = preprocessed(model_in, Path(tmp)) if s.preprocess else model_in
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[s.calibration_method]

        def ort_pass(model: Path, out: Path) -> None:
            with quiet("root", "onnxruntime"):  # the calibrators narrate on stdout and warn
                ort_quantize_static(
                    str(model),
                    str(out),
                    calibration_reader(calibration, input_of(source)[0]),
                    quant_format=QuantFormat.QDQ,
                    per_channel=s.per_channel,
                    reduce_range=resolve_reduce_range(s.reduce_range),
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=method,
                    calibration_cache_path=None,
                    extra_options={"CalibTensorRangeSymmetric": False},
                )

        reference = model_in  # what bias correction aims at: FP32 before any rounding
        if s.adaround:
            ort_pass(model_in, Path(tmp) / "grid.onnx")  # fixes each weight's scale
            model = onnx.load(str(model_in))
            grid = onnx.load(str(Path(tmp) / "grid.onnx"))
            info["adaround"] = adaround(model, grid, calibration, s.adaround_iterations, s.seed)
            model_in = Path(tmp) / "rounded.onnx"
            onnx.save(model, str(model_in))
        ort_pass(model_in, target)
        if s.bias_correction:
            info["bias_correction"] = correct_biases(reference, target, calibration)
    return info


@technique("quantize.static-int8", StaticSettings, stage="onnx")
def static_int8(source: Path, target: Path, data: Dataset, s: StaticSettings) -> dict:
    done = quantize_static(source, target, calibration_set(data, s.calibration_samples, s.seed), s)
    return {
        **done,
        "calibration_samples": min(s.calibration_samples, len(data.train)),
        "reduce_range": resolve_reduce_range(s.reduce_range),
    }


@technique("quantize.dynamic-int8", DynamicSettings, stage="onnx")
def dynamic_int8(source: Path, target: Path, data: Dataset, s: DynamicSettings) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic  # ORT's quantizer: as above

    # ORT's CPU ConvInteger kernel takes UINT8 weights only; MatMulInteger takes INT8 too.
    has_conv = any(n.op_type == "Conv" for n in onnx.load(str(source)).graph.node)
    weight_type = QuantType.QUInt8 if has_conv else QuantType.QInt8
    with tempfile.TemporaryDirectory(prefix="edgeslim-quant-") as tmp, quiet("root"):
        quantize_dynamic(
            str(preprocessed(source, Path(tmp))),
            str(target),
            per_channel=s.per_channel,
            weight_type=weight_type,
            reduce_range=resolve_reduce_range(s.reduce_range),
        )
    return {"weight_type": weight_type.name, "reduce_range": resolve_reduce_range(s.reduce_range)}


@technique("quantize.fp16", NoSettings, stage="onnx")
def fp16(source: Path, target: Path, data: Dataset, s: NoSettings) -> dict:
    from onnxruntime.transformers.float16 import convert_float_to_float16  # ORT's converter
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted = OnnxModel(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True))
    converted.topological_sort()  # the converter appends its input/output casts at the end
    onnx.save(converted.model, str(target))
    return {}


def stored_weights(model: onnx.ModelProto) -> dict[str, int]:
    """Conv/linear weight initializers that only conv/linear nodes read -> their output-channel
    axis (what a per-channel scale runs along)."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    axes: dict[str, int] = {}
    for node in graph.node:
        index = WEIGHTED_OPS.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in inits:
            continue
        name = node.input[index]
        if name in axes or any(u.op_type not in WEIGHTED_OPS for u in users[name]):
            continue
        transposed = node.op_type == "Gemm" and any(
            a.name == "transB" and a.i for a in node.attribute
        )
        axes[name] = 0 if node.op_type != "MatMul" and (node.op_type != "Gemm" or transposed) else 1
    return axes


def weight_qmax(width: int) -> int:
    """The largest stored integer of a weight-only width (symmetric: 7 at 4 bits); QAT trains
    on the same grid."""
    return 2 ** (width - 1) - 1


def weight_only(source: Path, target: Path, bits: int | dict[str, int]) -> dict:
    """Store conv/linear weights as INT8 or INT4 per output channel behind DequantizeLinear, or
    as FP16 behind a Cast; ``bits`` is one width for every layer, or one per weight (16: FP16,
    32 or absent: left FP32)."""
    model = onnx.load(str(source))
    axes = stored_weights(model)
    widths = dict.fromkeys(axes, bits) if isinstance(bits, int) else dict(bits)
    if 4 in widths.values():  # INT4 DequantizeLinear needs opset 21
        model = onnx.version_converter.convert_version(model, max(21, opset(model)))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    covered, new_nodes = [], []
    for name, axis in axes.items():
        width = widths.get(name, 32)
        if width == 32:
            continue
        weight = numpy_helper.to_array(inits[name]).astype(np.float32)
        graph.initializer.remove(inits[name])
        covered.append(name)
        if width == 16:
            graph.initializer.append(
                numpy_helper.from_array(weight.astype(np.float16), f"{name}_h")
            )
            new_nodes.append(
                helper.make_node(
                    "Cast", [f"{name}_h"], [name], name=f"{name}_cast", to=onnx.TensorProto.FLOAT
                )
            )
            continue
        qmax = weight_qmax(width)
        reduce = tuple(d for d in range(weight.ndim) if d != axis)
        scale = np.abs(weight).max(axis=reduce) / qmax
        scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
        shape = [1] * weight.ndim
        shape[axis] = -1
        q = np.clip(np.round(weight / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
        stored = q.astype(ml_dtypes.int4) if width == 4 else q  # raw bytes, 2 weights a byte
        graph.initializer.extend(
            [
                numpy_helper.from_array(stored, f"{name}_q"),
                numpy_helper.from_array(scale, f"{name}_scale"),
            ]
        )
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_q", f"{name}_scale"],
                [name],
                name=f"{name}_dequantize",
                axis=axis,
            )
        )
    for node in reversed(new_nodes):  # dequantizers first, so the graph stays sorted
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return {"bits": bits, "layers": covered}


def opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


@technique("quantize.weight-int8", NoSettings, stage="onnx")
def weight_int8(source: Path, target: Path, data: Dataset, s: NoSettings) -> dict:
    return weight_only(source, target, 8)


@technique("quantize.weight-int4", NoSettings, stage="onnx")
def weight_int4(source: Path, target: Path, data: Dataset, s: NoSettings) -> dict:
    return weight_only(source, target, 4)
