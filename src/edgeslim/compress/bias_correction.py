"""Empirical bias correction after static quantization (Nagel et al. 2019, sec. 4.2; Finkelstein
et al. 2019): quantized weights shift each layer's mean output a little, and the shifts add up
layer after layer. On calibration samples, each Conv/Gemm output of the quantized model is
compared with the FP32 model's, and each channel's mean difference is added to that layer's
(INT32) bias, one layer at a time in graph order, so each layer is corrected for what the
corrections before it changed (correcting all at once was measured to leave the deep layers of
mobilenet-v1 as far off as before, some further).

The quantized layer's float output is read by exposing it as a graph output, which makes ONNX
Runtime run that layer as float arithmetic on the dequantized inputs and weights: the same
values as its integer kernel up to the output's own rounding, which is unbiased.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

LAYERS = ("Conv", "Gemm")


def outputs_of(model: onnx.ModelProto, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """The named tensors' values on ``x``, from a copy of ``model`` that exposes them."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(exposed.SerializeToString(), options, ["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return dict(zip(names, session.run(names, feed), strict=True))


def channel_means(y: np.ndarray) -> np.ndarray:
    """Mean of each channel (axis 1) over the batch and any spatial axes."""
    return y.mean(axis=tuple(d for d in range(y.ndim) if d != 1))


def correctable(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """Layer output -> (its INT32 bias initializer, that bias's scale), for quantized layers."""
    inits = {t.name for t in model.graph.initializer}
    dequantizer = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    found = {}
    for node in model.graph.node:
        if node.op_type not in LAYERS or len(node.input) < 3:
            continue
        dq = dequantizer.get(node.input[2])
        if dq is not None and dq.input[0] in inits and dq.input[1] in inits:
            found[node.output[0]] = (dq.input[0], dq.input[1])
    return found


def same_tensor(reference: onnx.ModelProto) -> dict[str, str]:
    """Quantized layer output -> the FP32 tensor it matches. The quantizer drops a Relu after a
    layer (the output's quantized range does its work) and gives the layer the Relu's output
    name, so such a name stands for the Relu's input: the layer's own output."""
    producer = {o: n for n in reference.graph.node for o in n.output}
    match = {}
    for name, node in producer.items():
        if node.op_type in LAYERS:
            match[name] = name
        elif node.op_type == "Relu" and producer.get(node.input[0], node).op_type in LAYERS:
            match[name] = node.input[0]
    return match


def correct_biases(fp32: Path, quantized: Path, x: np.ndarray) -> dict:
    """Correct ``quantized`` (written by ONNX Runtime's quantizer from ``fp32``) in place."""
    reference = onnx.load(str(fp32))
    model = onnx.load(str(quantized))
    match = same_tensor(reference)
    layers = {k: v for k, v in correctable(model).items() if k in match}
    if not layers:
        return {"layers": 0}
    names = list(layers)
    wanted = [match[n] for n in names]
    reference_values = outputs_of(reference, wanted, x)
    expected = {n: channel_means(reference_values[match[n]]) for n in names}
    tensors = {t.name: t for t in model.graph.initializer}

    def shifts(wanted: list[str]) -> dict[str, np.ndarray]:
        got = outputs_of(model, wanted, x)
        return {name: expected[name] - channel_means(got[name]) for name in wanted}

    def size(deltas: dict[str, np.ndarray]) -> float:
        return round(float(np.mean([np.abs(d).mean() for d in deltas.values()])), 6)

    before = size(shifts(names))
    for name in names:  # graph order: the layers before this one are corrected already
        bias_name, scale_name = layers[name]
        bias = numpy_helper.to_array(tensors[bias_name])
        scale = numpy_helper.to_array(tensors[scale_name])
        step = np.round(shifts([name])[name] / scale).astype(np.int64).reshape(bias.shape)
        corrected = np.clip(bias.astype(np.int64) + step, -(2**31), 2**31 - 1)
        tensors[bias_name].CopyFrom(numpy_helper.from_array(corrected.astype(np.int32), bias_name))
    onnx.save(model, str(quantized))
    # the mean over layers of each channel's mean output shift from FP32, before and after
    return {"layers": len(layers), "mean_shift": {"before": before, "after": size(shifts(names))}}
