"""AdaRound (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML
2020): learn, per weight, whether to round its INT8 value up or down, so that each layer's output
on calibration samples stays closest to FP32, instead of rounding every weight to nearest.

It runs between two passes of ONNX Runtime's quantizer: the first fixes each weight's scale
(the grid); for every Conv/Gemm, the rounding variables V are trained with PyTorch against the
layer's FP32 output on the calibration samples (the layer's FP32 inputs, read with ORT), with
the paper's rectified sigmoid h(V), its regulariser pushing h to 0 or 1 and its annealed beta
(20 to 2). The chosen grid values are written into the FP32 model, so ORT's second pass, which
computes the same scales, stores exactly those integers. A weight at the end of its channel's
range keeps rounding to nearest, so the range, and so the scale, does not move.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from edgeslim.compress.bias_correction import outputs_of
from edgeslim.compress.equalize import attribute

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (paper, eq. 23)
REGULARISATION = 0.01
WARM_UP = 0.2  # share of iterations without the rounding regulariser


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def initial_v(rest: torch.Tensor) -> torch.Tensor:
    """V with h(V) equal to the fractional part: training starts from the FP32 weight."""
    p = ((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def layer_function(node: onnx.NodeProto, weight: np.ndarray):
    """The node as a function of (input, weight) in PyTorch, or None where it is not plain."""
    if node.op_type == "Gemm":
        trans_a, trans_b = attribute(node, "transA", 0), attribute(node, "transB", 0)
        if trans_a:
            return None
        return lambda x, w: x @ (w.T if trans_b else w)
    if node.op_type != "Conv" or attribute(node, "auto_pad", b"NOTSET") not in (b"NOTSET", 0):
        return None
    dims = weight.ndim - 2
    if dims not in (1, 2):
        return None
    pads = attribute(node, "pads", [0] * 2 * dims)
    if pads[:dims] != pads[dims:]:
        return None
    conv = F.conv1d if dims == 1 else F.conv2d
    options = {
        "stride": attribute(node, "strides", [1] * dims),
        "padding": pads[:dims],
        "dilation": attribute(node, "dilations", [1] * dims),
        "groups": attribute(node, "group", 1),
    }
    return lambda x, w: conv(x, w, **options)


def weight_grids(quantized: onnx.ModelProto) -> dict[str, tuple[np.ndarray, int, int, int]]:
    """FP32 weight name -> (scale, axis, qmin, qmax) of the weight ORT quantized."""
    inits = {t.name: t for t in quantized.graph.initializer}
    grids = {}
    for node in quantized.graph.node:
        if node.op_type != "DequantizeLinear" or not node.input[0].endswith("_quantized"):
            continue
        stored = inits.get(node.input[0])
        scale = inits.get(node.input[1])
        if stored is None or scale is None or stored.data_type != onnx.TensorProto.INT8:
            continue
        values = numpy_helper.to_array(stored)
        bound = int(np.abs(values).max()) if values.size else 127
        qmax = 64 if bound <= 64 else 127  # reduce_range stores 7-bit weights
        axis = attribute(node, "axis", 1)
        grids[node.input[0].removesuffix("_quantized")] = (
            numpy_helper.to_array(scale).astype(np.float32),
            axis,
            -qmax,
            qmax,
        )
    return grids


def round_layer(
    fn, weight: np.ndarray, x: np.ndarray, grid: tuple, iterations: int, seed: int
) -> tuple[np.ndarray, float, float]:
    """The weight on its grid, rounded adaptively; with the output MSE of nearest and adaptive."""
    scale, axis, qmin, qmax = grid
    shape = [1] * weight.ndim
    if scale.size > 1:
        shape[axis] = -1
    s = torch.from_numpy(scale.reshape(shape))
    w = torch.from_numpy(weight)
    inputs = torch.from_numpy(x)
    with torch.no_grad():
        target = fn(inputs, w)
    scaled = w / s
    floor = torch.floor(scaled)
    rest = scaled - floor
    edge = torch.round(scaled).abs() >= qmax  # the channel's extremes: keep nearest
    v = initial_v(rest).requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=1e-2)
    generator = torch.Generator().manual_seed(seed)

    def quantized(h: torch.Tensor) -> torch.Tensor:
        q = torch.where(edge, torch.round(scaled), floor + h)
        return s * torch.clamp(q, qmin, qmax)

    for step in range(iterations):
        batch = inputs[torch.randint(0, len(inputs), (min(32, len(inputs)),), generator=generator)]
        with torch.no_grad():
            expected = fn(batch, w)
        h = rectified_sigmoid(v)
        loss = F.mse_loss(fn(batch, quantized(h)), expected)
        progress = step / max(1, iterations)
        if progress >= WARM_UP:
            beta = 20 + (2 - 20) * (progress - WARM_UP) / (1 - WARM_UP)
            loss = loss + REGULARISATION * (1 - (2 * h - 1).abs().pow(beta)).sum() / h.numel()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        chosen = quantized((rectified_sigmoid(v) >= 0.5).float())
        nearest = s * torch.clamp(torch.round(scaled), qmin, qmax)
        error_nearest = float(F.mse_loss(fn(inputs, nearest), target))
        error_adaptive = float(F.mse_loss(fn(inputs, chosen), target))
    if error_adaptive > error_nearest:  # never worse than rounding to nearest
        chosen, error_adaptive = nearest, error_nearest
    return chosen.numpy().astype(weight.dtype), error_nearest, error_adaptive


def adaround(
    fp32: onnx.ModelProto,
    quantized: onnx.ModelProto,
    x: np.ndarray,
    iterations: int = 500,
    seed: int = 0,
) -> dict:
    """Move ``fp32``'s Conv/Gemm weights (in place) onto the grid ``quantized`` uses for them,
    rounded adaptively; returns each layer's output error, rounded to nearest and adaptively."""
    torch.manual_seed(seed)
    grids = weight_grids(quantized)
    tensors = {t.name: t for t in fp32.graph.initializer}
    layers = [
        n
        for n in fp32.graph.node
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and n.input[1] in grids
    ]
    functions = {}
    for node in layers:
        fn = layer_function(node, numpy_helper.to_array(tensors[node.input[1]]))
        if fn is not None and node.input[0] not in tensors:
            functions[node.input[1]] = (node.input[0], fn)
    if not functions:
        return {"layers": 0}
    graph_inputs = {i.name for i in fp32.graph.input}
    names = sorted({source for source, _ in functions.values()} - graph_inputs)
    inputs = {**outputs_of(fp32, names, x), **{name: x for name in graph_inputs}}
    errors = {}
    for weight_name, (source, fn) in functions.items():
        weight = numpy_helper.to_array(tensors[weight_name]).astype(np.float32)
        rounded, nearest, adaptive = round_layer(
            fn, weight, inputs[source].astype(np.float32), grids[weight_name], iterations, seed
        )
        tensors[weight_name].CopyFrom(numpy_helper.from_array(rounded, weight_name))
        errors[weight_name] = {"nearest": nearest, "adaptive": adaptive}
    total = {k: float(np.mean([e[k] for e in errors.values()])) for k in ("nearest", "adaptive")}
    return {
        "layers": len(errors),
        "iterations": iterations,
        "output_mse": {k: round(v, 8) for k, v in total.items()},
    }
