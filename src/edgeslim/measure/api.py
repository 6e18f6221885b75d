"""``measure(model, data)``: one record of every metric, measured the same way every time.

Graph metrics are read on the host; runtime metrics come from a fresh worker process that
imports no torch. The record's keys are the metric names of DESIGN.md, plus ``measured_with``
(how, where, with what) and ``errors`` (families that failed, if any).
"""

from __future__ import annotations

import datetime
import importlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.boards import board_named
from edgeslim.boards.process import OUT_OF_MEMORY, THIS_HOST, memory_failures, read_result
from edgeslim.candidate import Candidate
from edgeslim.data import load
from edgeslim.data.bundle import Dataset, validation_warnings
from edgeslim.errors import ConfigError, DataError, DoesNotFit, MeasurementError
from edgeslim.figures import without_nonfinite
from edgeslim.graph import GraphSummary, expose_activations, summarize

# every family registers on import; this order is the order of DESIGN.md's metric table
from edgeslim.measure import (  # noqa: F401
    accuracy,  # isort: skip
    compute,
    detection,
    energy,
    latency,
    memory,
    sparsity,
    storage,
)
from edgeslim.measure.reference import reference_model
from edgeslim.measure.registry import families
from edgeslim.measure.settings import MeasureSettings
from edgeslim.runtimes import Runtime, runtime
from edgeslim.runtimes.agreement import check_agreement, quantized
from edgeslim.tasks import task_of

if TYPE_CHECKING:
    from edgeslim.boards import Board


def check_fits(summary: GraphSummary, data: Dataset) -> None:
    """The model must accept the data's samples (batch dimension aside) and give the outputs
    its task reads: a model that does not would still run, and be measured wrongly."""
    declared = summary.input_shape[1:]
    wanted = data.spec.input_shape
    fits = len(declared) == len(wanted) and all(
        not isinstance(d, int) or d in (0, w) for d, w in zip(declared, wanted, strict=True)
    )
    if not fits:
        raise DataError(
            f"{summary.path}: model input {tuple(summary.input_shape)} does not fit "
            f"{data.spec.name or 'data'} samples of shape {wanted} (batch first)"
        )
    task_of(data.spec).check_output(summary.output_shape, summary.path)


def resolve_artifact(target: Candidate | str | Path | Any, data: Dataset, work: Path) -> Path:
    if isinstance(target, (str, Path)):
        return Path(target)
    if isinstance(target, Candidate) and target.artifact is not None:
        return Path(target.artifact)
    # torch (1.5 s to import) only for a model to export: measuring a file, and importing the
    # budgets and the selection that read this module's metrics, stay without it
    from edgeslim.export import export_onnx

    model = target.model if isinstance(target, Candidate) else target
    if model is None:
        raise MeasurementError(f"candidate {target.name!r} has neither an artifact nor a model")
    path = work / "model.onnx"
    export_onnx(model, data, path)
    return path


def torch_model(target: Candidate | str | Path | Any) -> Any:
    """The PyTorch model behind ``target``, if there is one (an ONNX file has none)."""
    if isinstance(target, Candidate):
        return target.model
    return None if isinstance(target, (str, Path)) else target


def runtime_artifact(
    engine: Runtime,
    target: Candidate | str | Path | Any,
    onnx_path: Path,
    data: Dataset,
    work: Path,
) -> tuple[Path, dict | None]:
    """The file the runtime loads: the ONNX file itself, or the runtime's own format made by
    its converter (kept beside the candidate's ONNX file, else in the work folder)."""
    if engine.reads_onnx:
        return onnx_path, None

    if isinstance(target, (str, Path)):
        raise ConfigError(
            f"{target}: runtime {engine.name!r} converts from the PyTorch model; give a "
            "Candidate, an nn.Module, a zoo name or package.module:function, not an ONNX file"
        )
    candidate = target if isinstance(target, Candidate) else Candidate("model", model=target)
    engine.check_recipe(candidate.recipe, f"candidate {candidate.name!r}")
    if candidate.model is None:
        raise ConfigError(
            f"candidate {candidate.name!r}: runtime {engine.name!r} converts from the PyTorch "
            "model, and this candidate has only its ONNX file; give the model (a zoo name, "
            "package.module:function, or an nn.Module)"
        )
    keep = Path(candidate.artifact).parent if candidate.artifact else work
    keep.mkdir(parents=True, exist_ok=True)
    path = keep / f"{candidate.name}.{engine.name}{engine.formats[0]}"
    steps = [step["quantize"] for step in candidate.recipe if "quantize" in step]
    started = time.perf_counter()
    converter = importlib.import_module(engine.converter)
    info = converter.convert(candidate.model.eval(), steps[-1] if steps else None, data, path)
    info["seconds"] = round(time.perf_counter() - started, 3)
    return path, info


def check_result(result: dict, path: Path, data: Dataset, settings: MeasureSettings) -> None:
    """A model the runtime refused, or whose outputs its task cannot read, has no metrics
    worth keeping: say why instead of recording empty or wrong figures."""
    refused = result["errors"].get("runs")
    if refused:
        cap = settings.memory_limit_mb
        if cap and OUT_OF_MEMORY.search(refused):
            raise DoesNotFit(f"does not fit in {cap:g} MB: {refused}")
        info = result["info"]
        raise MeasurementError(
            f"{path}: {info['runtime']} {info['runtime_version']} cannot run this model: {refused}"
        )
    task_of(data.spec).check_output(result["info"]["output_shape"], path)


def measure(
    target: Candidate | str | Path | Any,
    data: Dataset | str,
    settings: MeasureSettings | None = None,
    *,
    board: Board | str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Measure a Candidate, an ONNX file or an ``nn.Module`` on every registered metric, on the
    runtime ``settings.runtime`` names (``runtime="openvino"`` as an override), in a fresh
    process on this host or on ``board`` (a Board, or a board's name in the devices file)."""
    if isinstance(data, str):
        data = load(data)
    settings = settings or MeasureSettings()
    if overrides:
        settings = MeasureSettings(**{**settings.to_dict(), **overrides})
    engine = runtime(settings.runtime)
    engine.check_available()
    if isinstance(board, str):
        board = board_named(board)
    with tempfile.TemporaryDirectory(prefix="edgeslim-measure-") as tmp:
        work = Path(tmp)
        path = resolve_artifact(target, data, work)  # ONNX: the graph metrics read it
        summary = summarize(path, data.spec.input_shape)
        check_fits(summary, data)
        runtime_file, conversion = runtime_artifact(engine, target, path, data, work)
        engine.check_format(str(runtime_file))
        summary.artifact, summary.conversion = runtime_file, conversion  # storage: its bytes
        record: dict[str, Any] = {}
        for fam in families("graph", data.spec.task):
            record.update(fam.fn(summary))
        model = torch_model(target)
        if model is not None:
            recipe = target.recipe if isinstance(target, Candidate) else ()
            record["agreement"] = check_agreement(
                engine,
                str(runtime_file),
                model,
                data.test.x,
                quantized(recipe),
                task_of(data.spec),
            )
        names = [n for n in summary.activation_inputs if n != summary.input_name]
        exposed = (
            expose_activations(path, work / "activations.onnx", names)
            if names and engine.reads_onnx
            else []
        )
        np.savez(
            work / "data.npz", x=data.test.x, y=data.test.y, val_x=data.val.x, val_y=data.val.y
        )
        try:  # the runtime's own memory is measured on it (model_memory_kb)
            reference = reference_model(engine.name, tuple(data.spec.input_shape))
        except Exception as exc:  # the other figures stand without it; the worker says why
            reference = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())}
        request = {
            "model": str(runtime_file.resolve()),
            "data": str(work / "data.npz"),
            "activations_model": str(work / "activations.onnx") if exposed else None,
            # None: this runtime's file cannot expose its activations (not measured there)
            "activation_names": exposed if engine.reads_onnx else None,
            "reference_model": reference,
            "settings": settings.to_dict(),
            "spec": data.spec.to_dict(),
            "result": str(work / "result.json"),
        }
        ended = (board or THIS_HOST).run_worker(request, work, settings.timeout_s)
    result = read_result(ended, settings.memory_limit_mb)
    check_result(result, runtime_file, data, settings)
    record.update(result["metrics"])
    record, not_finite = without_nonfinite(record)  # the graph's figures, too
    not_finite.update(result.get("not_finite", {}))
    if not_finite:  # left out, so they neither fit a bound nor rank; the report flags them
        record["not_finite"] = not_finite
    if result["errors"]:
        record["errors"] = result["errors"]
    weak = validation_warnings(data)
    if weak:  # what chooses on this record is told, not left to guess
        record["validation_warnings"] = weak
    if settings.memory_limit_mb and memory_failures(result["errors"]):
        record["does_not_fit"] = (
            f"ran out of its {settings.memory_limit_mb:g} MB memory cap in "
            + ", ".join(sorted(memory_failures(result["errors"])))
        )
    record["measured_with"] = {
        **result["info"],
        **({"conversion": conversion} if conversion else {}),
        **({"latency_caveat": engine.latency_caveat} if engine.latency_caveat else {}),
        "settings": settings.to_dict(),
        "model_file": str(runtime_file),
        "graph_file": str(path),
        "opsets": summary.opsets,
        "data": data.source,
        "task": data.spec.task,
        "test_samples": len(data.test),
        "validation": data.validation,
        "storage_compressor": storage.COMPRESSOR,
        "storage_coding": storage.CODING,
        "activation_memory": memory.ACTIVATION_METHOD,
        "energy_table": energy.SOURCE,
        "device": ended.where or {"board": None},
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return record
