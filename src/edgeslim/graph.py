"""What the ONNX graph says about a model, read once on the host.

Shapes come from ONNX shape inference at batch size 1. Weights are followed back through
DequantizeLinear / Cast / Transpose so quantized and FP16 graphs count the same layers as
their FP32 parent. Nothing here runs the model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgeslim.errors import DataError, MeasurementError, UntrustedFileError

# op type -> index of its weight input; MACs are counted for these ops only (as thop/fvcore do)
WEIGHTED_OPS = {
    "Conv": 1,
    "ConvTranspose": 1,
    "Gemm": 1,
    "MatMul": 1,
    "ConvInteger": 1,
    "MatMulInteger": 1,
    "QLinearConv": 3,
    "QLinearMatMul": 3,
    "MatMulNBits": 1,
}
# ops a weight passes through unchanged in meaning on its way to a layer
WEIGHT_PATH_OPS = {"DequantizeLinear", "Cast", "Transpose", "Identity", "Reshape"}
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
# ops that change how an activation is laid out or encoded, not which values are zero
VIEW_OPS = QDQ_OPS | {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose"}
INTEGER_OPS = {"ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul"}


@dataclass
class Layer:
    """One weighted operation (conv, linear) and what it costs."""

    name: str  # the weight's initializer name, which matches the PyTorch parameter name
    op: str
    macs: int
    weight_shape: tuple[int, ...]
    weight_elements: int
    weight_zeros: int
    storage_bits: int  # bits per stored weight (32 for FP32, 8 for INT8, 4 for INT4)
    compute: str  # arithmetic the runtime uses: "fp32", "fp16" or "int8"


@dataclass
class Product:
    """A product of two activations (attention's QK^T and attention x V): MACs, no weight."""

    name: str  # the node's name in the graph
    op: str
    macs: int
    compute: str


@dataclass
class Tensor:
    name: str
    nbytes: int | None  # None where shape inference could not tell
    producer: int  # node index, -1 for graph inputs
    last_use: int  # node index, len(nodes) for graph outputs


@dataclass
class GraphSummary:
    path: Path
    input_name: str
    input_shape: tuple[int | str, ...]  # as declared, batch dimension included
    output_names: list[str]
    opsets: dict[str, int]
    output_shape: tuple[int | str, ...] = ()  # the first output at batch 1, as inferred
    layers: list[Layer] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)  # activation x activation matmuls
    params: int = 0
    nonzero_params: int = 0
    weight_bytes: int = 0
    activations: list[Tensor] = field(default_factory=list)
    node_count: int = 0
    unknown_shapes: int = 0
    activation_inputs: list[str] = field(default_factory=list)  # float tensors fed to layers
    artifact: Path | None = None  # the file a runtime loads, where it is not ``path`` (.tflite)
    conversion: dict | None = None  # how that file was made, and what its converter knows


MAX_MODEL_BYTES = int(os.environ.get("EDGESLIM_MAX_MODEL_BYTES", 2 * 1024**3))


def external_files(model: onnx.ModelProto, path: Path) -> list[Path]:
    """The external-data files a model names, each required to stay inside its folder: a
    location like ``../../etc/shadow`` or ``/dev/zero`` is refused, never read."""
    folder = path.parent.resolve()
    files = []
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise UntrustedFileError(
                f"{path}: tensor {tensor.name!r} points its data outside the model's folder "
                f"({location!r}); keep external data files next to the model"
            )
        if not target.is_file():
            raise DataError(f"{path}: external data file {location!r} not found")
        files.append(target)
    return files


def load_checked(path: str | Path) -> onnx.ModelProto:
    """Load and validate an ONNX file, with one clear error for every way it can be wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise DataError(
            f"{path}: {path.stat().st_size:,} bytes is over the {MAX_MODEL_BYTES:,}-byte limit "
            "(EDGESLIM_MAX_MODEL_BYTES)"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, others raise ValueError
        raise DataError(f"{path}: not an ONNX model ({type(exc).__name__})") from exc
    extra = external_files(model, path)
    if extra:
        total = path.stat().st_size + sum(f.stat().st_size for f in set(extra))
        if total > MAX_MODEL_BYTES:
            raise DataError(f"{path}: {total:,} bytes with external data, over the limit")
        onnx.load_external_data_for_model(model, str(path.parent))
    if not model.graph.node:
        raise DataError(f"{path}: not an ONNX model (no graph nodes)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{path}: invalid ONNX model ({first})") from exc
    return model


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def declared_shape(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def with_batch_one(
    model: onnx.ModelProto, sample_shape: tuple[int, ...] | None = None
) -> onnx.ModelProto:
    """A copy with concrete input dimensions, so inference yields concrete shapes: batch 1,
    and the data's sample shape wherever the model leaves a dimension symbolic."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in graph_inputs(fixed):
        dims = value.type.tensor_type.shape.dim
        wanted = (1, *sample_shape) if sample_shape and len(sample_shape) == len(dims) - 1 else ()
        for i, dim in enumerate(dims):
            if not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = wanted[i] if wanted else 1
    return fixed


def tensor_bytes(value: onnx.ValueInfoProto, elem_type: int | None = None) -> int | None:
    """Bytes of a tensor at its shape, held as ``elem_type`` (default: its own type)."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if any(d is None for d in dims):
        return None
    elem_type = elem_type or tensor_type.elem_type
    bits = onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize * 8
    if elem_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        bits = 4
    return math.ceil(math.prod(dims) * bits / 8)


def storage_bits(tensor: onnx.TensorProto) -> int:
    if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return 4
    return onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize * 8


def summarize(path: str | Path, sample_shape: tuple[int, ...] | None = None) -> GraphSummary:
    """Graph facts at batch 1; ``sample_shape`` fills dimensions the model leaves symbolic."""
    path = Path(path)
    model = load_checked(path)
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        raise DataError(
            f"{path}: the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "edgeslim measures single-input classifiers"
        )
    try:
        inferred = onnx.shape_inference.infer_shapes(
            with_batch_one(model, sample_shape), data_prop=True
        )
    except Exception as exc:
        raise MeasurementError(f"{path}: ONNX shape inference failed ({exc})") from exc
    graph = inferred.graph
    summary = GraphSummary(
        path=path,
        input_name=inputs[0].name,
        input_shape=declared_shape(inputs[0]),
        output_names=[o.name for o in graph.output],
        output_shape=declared_shape(graph.output[0]) if graph.output else (),
        opsets={o.domain or "ai.onnx": o.version for o in model.opset_import},
        node_count=len(graph.node),
    )
    walk = GraphWalk(graph)
    count_params(summary, walk)
    count_layers(summary, walk)
    track_activations(summary, walk)
    return summary


class GraphWalk:
    """Look-ups over one inferred graph: initializers, producers, shapes, dequantizers."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.nodes = list(graph.node)
        self.init = {t.name: t for t in graph.initializer}
        self.producer = {out: i for i, node in enumerate(self.nodes) for out in node.output}
        self.values = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}
        self.dequantizer = {n.input[0]: n for n in self.nodes if n.op_type == "DequantizeLinear"}

    def array(self, name: str) -> np.ndarray | None:
        """The constant value of a tensor (initializer or Constant node), else None."""
        if name in self.init:
            return numpy_helper.to_array(self.init[name])
        node = self.nodes[self.producer[name]] if name in self.producer else None
        if node is not None and node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return numpy_helper.to_array(attr.t) if attr is not None else None
        return None

    def stored_weight(self, name: str) -> str:
        """Follow a layer's weight input back through Q/DQ, Cast, Transpose to its storage."""
        while name not in self.init and name in self.producer:
            node = self.nodes[self.producer[name]]
            if node.op_type not in WEIGHT_PATH_OPS:
                break
            name = node.input[0]
        return name

    def weighted_nodes(self) -> Iterator[tuple[onnx.NodeProto, str]]:
        """Each conv/gemm/matmul node with the stored tensor behind its weight input."""
        for node in self.nodes:
            index = WEIGHTED_OPS.get(node.op_type)
            if index is not None and len(node.input) > index:
                yield node, self.stored_weight(node.input[index])

    def source_activation(self, name: str) -> str:
        """The tensor whose values a layer input carries, looking through Q/DQ and reshapes."""
        while name in self.producer and self.nodes[self.producer[name]].op_type in VIEW_OPS:
            name = self.nodes[self.producer[name]].input[0]
        return name

    def quantized(self, node: onnx.NodeProto) -> bool:
        """An integer op, or one fed by a dequantizer (QDQ): the runtime computes it in INT8."""
        producer = self.producer.get(node.input[0])
        return node.op_type in INTEGER_OPS or (
            producer is not None and self.nodes[producer].op_type == "DequantizeLinear"
        )

    def float_kind(self, name: str) -> str:
        value = self.values.get(name)
        half = value is not None and value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        return "fp16" if half else "fp32"

    def zero_count(self, name: str, values: np.ndarray) -> int:
        """Zeros in a stored weight; a quantized weight is zero where it equals its zero point."""
        dq = self.dequantizer.get(name)
        zero_point = self.array(dq.input[2]) if dq is not None and len(dq.input) > 2 else None
        if zero_point is None:
            return int(values.size - np.count_nonzero(values))
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if zero_point.size > 1:  # per-channel: broadcast along the quantization axis
            shape = [1] * values.ndim
            shape[axis] = -1
            zero_point = zero_point.reshape(shape)
        return int(np.count_nonzero(values.astype(np.int64) == zero_point.astype(np.int64)))


def count_params(summary: GraphSummary, walk: GraphWalk) -> None:
    """Parameters: float initializers and quantized weights, but not Q/DQ scales or shapes."""
    qdq_meta = {
        n.input[i] for n in walk.nodes if n.op_type in QDQ_OPS for i in (1, 2) if len(n.input) > i
    }
    floats = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.BFLOAT16,
    }
    # integer weights that integer ops read directly (dynamic INT8: ConvInteger, MatMulInteger)
    integer_weights = {name for n, name in walk.weighted_nodes() if n.op_type in INTEGER_OPS}
    for name, tensor in walk.init.items():
        weight = name in walk.dequantizer or name in integer_weights
        if not ((tensor.data_type in floats and name not in qdq_meta) or weight):
            continue
        values = numpy_helper.to_array(tensor)
        summary.params += int(values.size)
        summary.nonzero_params += int(values.size) - walk.zero_count(name, values)
        summary.weight_bytes += math.ceil(values.size * storage_bits(tensor) / 8)


def count_layers(summary: GraphSummary, walk: GraphWalk) -> None:
    for node, source in walk.weighted_nodes():
        weight = walk.array(source)
        if weight is None:  # activation x activation (attention): MACs without a weight
            summary.products.append(
                Product(
                    name=node.name or node.output[0],
                    op=node.op_type,
                    macs=layer_macs(
                        node,
                        (),
                        concrete(walk.values.get(node.input[0])),
                        concrete(walk.values.get(node.output[0])),
                    ),
                    compute="int8" if walk.quantized(node) else walk.float_kind(node.input[0]),
                )
            )
            continue
        summary.activation_inputs.append(walk.source_activation(node.input[0]))
        quantized = walk.quantized(node)
        macs = layer_macs(
            node,
            weight.shape,
            concrete(walk.values.get(node.input[0])),
            concrete(walk.values.get(node.output[0])),
        )
        stored = walk.init.get(source)
        summary.layers.append(
            Layer(
                name=source,
                op=node.op_type,
                macs=macs,
                weight_shape=tuple(weight.shape),
                weight_elements=int(weight.size),
                weight_zeros=walk.zero_count(source, weight),
                storage_bits=storage_bits(stored) if stored is not None else 32,
                compute="int8" if quantized else walk.float_kind(node.input[0]),
            )
        )


def layer_macs(
    node: onnx.NodeProto,
    weight_shape: tuple[int, ...],
    inp: tuple[int, ...] | None,
    out: tuple[int, ...] | None,
) -> int:
    """Multiply-accumulates of one layer at batch size 1 (0 where shapes are unknown)."""
    if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
        return math.prod(out) * math.prod(weight_shape[1:]) if out else 0
    if node.op_type == "ConvTranspose":
        return math.prod(inp) * math.prod(weight_shape[1:]) if inp else 0
    if node.op_type == "MatMulNBits":
        k = next((a.i for a in node.attribute if a.name == "K"), 0)
        return math.prod(out) * k if out else 0
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        k = (inp[0] if trans_a else inp[-1]) if inp else 0
        return math.prod(out) * k if out else 0
    return math.prod(out) * inp[-1] if out and inp else 0  # MatMul family


def concrete(value: onnx.ValueInfoProto | None) -> tuple[int, ...] | None:
    if value is None or not value.type.tensor_type.HasField("shape"):
        return None
    dims = value.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def quantized_buffers(walk: GraphWalk, constant: set[str]) -> tuple[dict[str, str], dict]:
    """How a runtime holds the activations of a Q/DQ graph: as 8-bit buffers.

    ONNX Runtime (QLinear kernels), TFLite Micro and XNNPACK fuse each DequantizeLinear ->
    op -> QuantizeLinear group into one integer kernel: the float tensor a DequantizeLinear
    makes is never materialised (it is the 8-bit input, read through a scale), and a float
    tensor that only QuantizeLinear nodes read is written already quantized. Returns the
    tensors that share another's buffer (-> that tensor) and the float tensors held at an
    8-bit type (-> the type)."""
    readers: dict[str, list[str]] = {}
    for node in walk.nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    ends = {v.name for v in [*walk.graph.input, *walk.graph.output]}
    alias: dict[str, str] = {}
    narrowed: dict[str, int] = {}
    for node in walk.nodes:
        if node.op_type not in QDQ_OPS or not node.input or node.input[0] in constant:
            continue
        source, result = node.input[0], node.output[0]
        if node.op_type == "DequantizeLinear" and result not in ends:
            alias[result] = source
        elif (
            node.op_type == "QuantizeLinear"
            and source not in ends
            and set(readers[source]) == {"QuantizeLinear"}
            and result in walk.values
        ):
            alias[result] = source
            narrowed[source] = walk.values[result].type.tensor_type.elem_type
    return alias, narrowed


def track_activations(summary: GraphSummary, walk: GraphWalk) -> None:
    """Lifetimes of every activation buffer, in execution (graph) order, each at the width the
    runtime holds it (see ``quantized_buffers``)."""
    constant = set(walk.init)
    for node in walk.nodes:  # a node fed only by constants is folded away by the runtime
        if node.op_type == "Constant" or (
            node.input and all(i in constant or not i for i in node.input)
        ):
            constant.update(node.output)
    alias, narrowed = quantized_buffers(walk, constant)

    def buffer(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    live: dict[str, Tensor] = {}
    for value in walk.graph.input:
        if value.name not in constant:
            live[value.name] = Tensor(value.name, tensor_bytes(value), -1, -1)
    for i, node in enumerate(walk.nodes):
        for name in node.input:
            if buffer(name) in live:
                live[buffer(name)].last_use = i
        for name in node.output:
            if name and name not in constant and name not in alias:
                value = walk.values.get(name)
                nbytes = tensor_bytes(value, narrowed.get(name)) if value else None
                live[name] = Tensor(name, nbytes, i, i)
    for value in walk.graph.output:
        if buffer(value.name) in live:
            live[buffer(value.name)].last_use = len(walk.nodes)
    summary.activations = list(live.values())
    summary.unknown_shapes = sum(t.nbytes is None for t in summary.activations)


def activation_peak_bytes(summary: GraphSummary) -> int:
    """Peak bytes of tensors alive at once when nodes run in graph order."""
    steps = summary.node_count + 1
    alive = np.zeros(steps + 1, dtype=np.int64)
    for tensor in summary.activations:
        if tensor.nbytes is None:
            continue
        first = max(tensor.producer, 0)
        alive[first : max(tensor.last_use, first) + 1] += tensor.nbytes
    return int(alive.max())


def expose_activations(path: str | Path, out_path: str | Path, names: list[str]) -> list[str]:
    """Write a copy of the model whose outputs also include ``names`` (for activation stats)."""
    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {
        v.name: v
        for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    existing = {o.name for o in model.graph.output}
    exposed = []
    for name in dict.fromkeys(names):
        value = known.get(name)
        if value is None or value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            continue
        if name not in existing:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
        exposed.append(name)
    onnx.save(model, str(out_path))
    return exposed
