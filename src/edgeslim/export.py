"""ONNX export, checked against PyTorch on real inputs before anything measures it."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeslim.candidate import Candidate
from edgeslim.compact import compact
from edgeslim.compress.qat import baked
from edgeslim.compress.quantize import weight_only
from edgeslim.data.bundle import Dataset, DataSpec
from edgeslim.errors import DataError, ExportError
from edgeslim.progress import quiet
from edgeslim.runtimes import onnx_outputs
from edgeslim.tasks import Task, task_of

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
SPEC_KEY = "edgeslim.spec"  # metadata: the data spec the model expects (shape, normalisation)
CHECK_SAMPLES = 256


@dataclass(frozen=True)
class ExportCheck:
    """How closely ONNX Runtime reproduced PyTorch on real inputs."""

    samples: int
    max_abs_diff: float
    agreement: float  # how often both lead to the same answer (the task's ``agreement``)
    opset: int
    agreement_name: str = "top1_agreement"


def quiet_exporter():
    """The exporter narrates every step on stdout and warns about optional packages."""
    return quiet("torch.onnx", "torch.export", "onnxscript")


def compare(
    path: Path,
    model: nn.Module,
    x: np.ndarray,
    atol: float,
    rtol: float,
    min_agreement: float = 0.0,
    task: Task | None = None,
) -> ExportCheck:
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = onnx_outputs(path, x)
    if got.shape != expected.shape:
        raise ExportError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape}")
    diff = float(np.abs(got - expected).max())
    bound = atol + rtol * float(np.abs(expected).max())
    if not diff <= bound:
        raise ExportError(
            f"{path}: ONNX Runtime output differs from PyTorch by {diff:.3g} (allowed {bound:.3g})"
        )
    task = task or task_of(DataSpec(x.shape[1:], got.shape[-1]))
    agreement = task.agreement(got, expected)
    if agreement < min_agreement:
        raise ExportError(
            f"{path}: ONNX Runtime agrees with PyTorch on only {agreement:.1%} of the "
            f"samples' answers ({task.agreement_name}; needed {min_agreement:.0%})"
        )
    opset = next(
        o.version
        for o in onnx.load(str(path), load_external_data=False).opset_import
        if o.domain in ("", "ai.onnx")
    )
    return ExportCheck(len(x), diff, agreement, opset, task.agreement_name)


def torchscript_only(model: nn.Module) -> bool:
    """ScriptModules and fake-quantized (QAT) models need the TorchScript-based exporter."""
    return isinstance(model, torch.jit.ScriptModule) or getattr(
        model, "exports_with_torchscript", False
    )


def fold_weight_quantizers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Store weights that the exporter left as FP32 -> QuantizeLinear as integer initializers.

    A QuantizeLinear of a constant is a constant: computing it once here makes the file hold
    INT8 weights (a quarter of the bytes) and leaves the runtime the plain DQ -> Conv pattern.
    """
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {n.output[0]: n for n in graph.node if n.output}

    def value(name: str) -> np.ndarray | None:
        """A constant's value: an initializer, a Constant node, or a Cast of either."""
        if name in inits:
            return onnx.numpy_helper.to_array(inits[name])
        node = producers.get(name)
        if node is not None and node.op_type == "Constant":
            return onnx.numpy_helper.to_array(node.attribute[0].t)
        if node is not None and node.op_type == "Identity":  # the exporter's deduplication
            return value(node.input[0])
        if node is not None and node.op_type == "Cast":
            source = value(node.input[0])
            to = next(a.i for a in node.attribute if a.name == "to")
            dtype = onnx.helper.tensor_dtype_to_np_dtype(to)
            return None if source is None else source.astype(dtype)
        return None

    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        weight, scale = value(node.input[0]), value(node.input[1])
        if weight is None or weight.ndim < 2:  # activations, or a scalar constant
            continue
        zero = value(node.input[2]) if len(node.input) > 2 else np.uint8(0)
        if scale is None or zero is None:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * weight.ndim
        if scale.size > 1:
            shape[axis] = -1
        info = np.iinfo(zero.dtype)
        q = np.round(weight / scale.reshape(shape)) + zero.astype(np.int64).reshape(
            shape if zero.size > 1 else [1] * weight.ndim
        )
        stored = np.clip(q, info.min, info.max).astype(zero.dtype)
        graph.initializer.append(onnx.numpy_helper.from_array(stored, node.output[0]))
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    remove_dead_ends(graph)
    return proto


def remove_dead_ends(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers nothing reads any more (repeat until none is left)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for n in graph.node for name in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    used = {name for n in graph.node for name in n.input} | outputs
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def save_deployable(proto: onnx.ModelProto, path: Path, spec: dict) -> None:
    """Save one self-contained file without the exporter's per-node debug metadata.

    The exporter tags every node with its Python call stack and module path; that is useful
    when debugging the exporter and dead weight on a device, where it would inflate storage.
    """
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        del value.metadata_props[:]
    del proto.graph.metadata_props[:]
    onnx.helper.set_model_props(proto, {SPEC_KEY: json.dumps(spec)})
    onnx.save(proto, str(path))


def export_for_timing(model: nn.Module, data: Dataset, path: Path) -> None:
    """A quick, unchecked ONNX export at batch 1 (TorchScript's exporter): for timing a model's
    shape on a runtime, never for deployment or accuracy. In eval mode, as deployed (batch
    norms folded into the convolutions)."""
    example = (torch.from_numpy(data.test.x[:1]),)
    with quiet_exporter(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's exporter is deprecated: said each time
        torch.onnx.export(
            model.eval(),
            example,
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamo=False,
            opset_version=17,
        )


def export_onnx(
    model: nn.Module,
    data: Dataset,
    path: str | Path,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> ExportCheck:
    """Export ``model`` (batch dimension dynamic) to ``path`` and check it on test inputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored_bits = getattr(model, "stored_weight_bits", None)
    if stored_bits is not None:  # trained for weight-only storage (qat without activations)
        model = baked(model)
    model = model.eval()
    x = data.test.x[:CHECK_SAMPLES]
    exported = hasattr(model, "exported_program")  # a torch.export program keeps its shapes
    example = (torch.from_numpy(x[: getattr(model, "static_batch", 2)]),)
    try:
        with torch.no_grad():
            model(*example)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(
            f"{type(model).__name__} does not accept {data.spec.name or 'data'} samples of shape "
            f"{data.spec.input_shape}: {first}"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="edgeslim-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            with quiet_exporter():
                if torchscript_only(model):
                    torch.onnx.export(
                        model,
                        example,
                        str(raw),
                        input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME],
                        dynamo=False,
                        opset_version=17,
                        dynamic_axes={INPUT_NAME: {0: "batch"}},
                    )
                else:
                    torch.onnx.export(
                        # a torch.export program is exported as itself (its graph, its shapes)
                        getattr(model, "exported_program", model),
                        example,
                        str(raw),
                        input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME],
                        dynamo=True,
                        optimize=True,
                        external_data=False,
                        dynamic_shapes=None if exported else ({0: torch.export.Dim("batch")},),
                    )
        except Exception as exc:
            raise ExportError(f"ONNX export of {type(model).__name__} failed: {exc}") from exc
        proto = fold_weight_quantizers(onnx.load(str(raw)))
    for stale in path.parent.glob(f"{path.name}.data*"):
        stale.unlink()
    # written whole under a temporary name, then renamed: a full disk or Ctrl-C part way leaves
    # no half file under the artifact's name (an earlier, finished one stays)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        save_deployable(proto, partial, data.spec.to_dict())
        if stored_bits is not None:  # the weights are on the grid already: storing them is exact
            weight_only(partial, partial, stored_bits)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    task = task_of(data.spec)
    if getattr(model, "exports_with_torchscript", False):
        # fake quantization in PyTorch and INT8 kernels in ORT round differently: judge a
        # quantized export by its predictions, not by float closeness
        return compare(path, model, x, atol=float("inf"), rtol=0, min_agreement=0.97, task=task)
    return compare(path, model, x, atol, rtol, task=task)


def export(candidate: Candidate, data: Dataset, out_dir: str | Path) -> Candidate:
    """Export a torch-stage candidate to ``out_dir/<name>.onnx``; the check goes in the recipe."""
    if candidate.model is None:
        raise ExportError(f"candidate {candidate.name!r} has no PyTorch model to export")
    path = Path(out_dir) / f"{candidate.name}.onnx"
    check = export_onnx(candidate.model, data, path)
    try:
        stripped = compact(path)  # in place, through a temporary file
    except BaseException:
        path.with_name(f".{path.name}.compact").unlink(missing_ok=True)
        raise
    step = {
        "export": {
            "format": "onnx",
            "opset": check.opset,
            "max_abs_diff": check.max_abs_diff,
            check.agreement_name: check.agreement,
            "names_stripped_bytes": stripped,
        }
    }
    return candidate.with_step(step, artifact=path)
