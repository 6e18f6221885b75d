"""Torch archives read without running anything they hold.

``torch.export.load`` unpickles with ``weights_only=False`` (a weight marked ``use_pickle``, a
custom or opaque constant, and as a fallback whenever a weights-only load of the sample inputs
fails) and loads AOTInductor's compiled libraries: a crafted ``.pt2`` runs its author's code.
So an archive is inspected first, by its members and its JSON configs alone: compiled code and
pickled objects are refused, and every pickle torch would read must load with the weights-only
unpickler. The load itself then runs with torch's weights-only loading forced, so no fallback
can unpickle freely either.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import MethodType

import torch
from torch import nn

from edgeslim.errors import ModelLoadError, UntrustedFileError

# members torch.export.load would run as code, by where they sit in the archive
COMPILED = ("data/aotinductor/", "data/executorch/", "data/mtia")
OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")  # torchbind / plain pickles of objects
PAYLOAD_CONFIGS = ("data/weights/", "data/constants/")
EXPORT_ONLY = (
    "an exported program is a frozen graph: it can be measured and quantized, not trained, "
    "pruned or fine-tuned; for those pass its architecture (package.module:function) and a "
    "state dict"
)


def archive_kind(path: Path) -> str:
    """Tell the torch archive formats apart by their members, without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "legacy-pickle"
    if any(
        n.endswith("serialized_exported_program.json") or ("/models/" in n and n.endswith(".json"))
        for n in names
    ) or any(n.endswith("archive_format") for n in names):
        return "torch-export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "torch-save"


def pickled_members(archive: zipfile.ZipFile, path: Path) -> list[str]:
    """The members torch would unpickle; refuses compiled code and pickled objects outright."""
    names = archive.namelist()
    root = names[0].split("/", 1)[0] + "/" if names and "/" in names[0] else ""
    inside = {name.removeprefix(root): name for name in names}
    compiled = [rel for rel in inside if rel.startswith(COMPILED) or rel.endswith((".so", ".dll"))]
    if compiled:
        raise UntrustedFileError(
            f"{path}: refused, holds compiled code that loading would run ({compiled[0]}); "
            "save the program with torch.export.save, not an AOTInductor package"
        )
    pickled = [
        full
        for rel, full in inside.items()
        if rel.endswith(".pt") and not rel.startswith("extra/")  # sample inputs, legacy payloads
    ]
    for rel, full in inside.items():
        if not (rel.startswith(PAYLOAD_CONFIGS) and rel.endswith("_config.json")):
            continue
        try:
            entries = json.loads(archive.read(full))["config"]
            payloads = [(e["path_name"], bool(e.get("use_pickle"))) for e in entries.values()]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{path}: malformed torch.export archive ({rel}: {exc})") from exc
        folder = full[: len(full) - len(rel)] + rel.rsplit("/", 1)[0] + "/"
        for name, use_pickle in payloads:
            if str(name).startswith(OBJECT_PREFIXES):
                raise UntrustedFileError(
                    f"{path}: refused, holds a pickled object ({name}) that loading would "
                    "unpickle and so could run code; export a model whose constants are tensors"
                )
            if use_pickle:
                pickled.append(folder + str(name))
    return pickled


def check_export_archive(path: Path) -> None:
    """Refuse an archive any of whose pickles needs more than the weights-only unpickler."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in pickled_members(archive, path):
                try:
                    blob = archive.read(member)
                except KeyError as exc:
                    raise ModelLoadError(f"{path}: torch.export archive lacks {member}") from exc
                try:
                    with warnings.catch_warnings():  # its protocol notes would reach the console
                        warnings.simplefilter("ignore")
                        torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
                except pickle.UnpicklingError as exc:
                    raise UntrustedFileError(
                        f"{path}: refused, {member.split('/', 1)[-1]} is a pickle that would "
                        "execute code when loaded; save the program with torch.export.save "
                        "from plain tensors"
                    ) from exc
                except Exception as exc:  # truncated or not a torch file at all
                    raise ModelLoadError(f"{path}: unreadable member {member} ({exc})") from exc
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path}: not a zip archive ({exc})") from exc


@contextlib.contextmanager
def weights_only_forced() -> Iterator[None]:
    """Every ``torch.load`` inside is weights-only, whatever its caller asks for."""
    before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = before


def static_batch(program: torch.export.ExportedProgram) -> int | None:
    """The batch size a program was exported for, or None when its batch dimension is dynamic:
    a static one is baked into the graph's shapes, so only that batch size runs."""
    first_input = program.graph_signature.user_inputs[0]
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == first_input)
    value = node.meta.get("val")
    first = value.shape[0] if value is not None and len(value.shape) else None
    return first if isinstance(first, int) else None


def frozen(program: torch.export.ExportedProgram) -> nn.Module:
    """``ExportedProgram.module()`` refuses ``eval()``. Its graph's mode was fixed at export, so
    eval is a no-op here; training would silently train a graph frozen in eval mode, so it is
    refused with what to pass instead."""
    module = program.module()

    def train(self: nn.Module, mode: bool = True) -> nn.Module:
        if mode:
            raise ModelLoadError(EXPORT_ONLY)
        return self

    module.train = MethodType(train, module)  # type: ignore[method-assign]
    module.eval = MethodType(lambda self: self, module)  # type: ignore[method-assign]
    module.training = False
    batch = static_batch(program)
    frozen_module = module if batch is None else FixedBatch(module, batch)
    # the ONNX exporter takes the program itself: re-tracing its unlifted graph fails
    frozen_module.exported_program = program
    return frozen_module


class FixedBatch(nn.Module):
    """A program exported for one batch size, run on any: in slices of that size, the last one
    padded. ``static_batch`` tells the ONNX exporter which batch size the file keeps."""

    def __init__(self, graph: nn.Module, batch: int) -> None:
        super().__init__()
        self.graph = graph
        self.static_batch = batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == self.static_batch:
            return self.graph(x)
        size, count = self.static_batch, x.shape[0]
        padded = torch.cat([x, x.new_zeros((-count % size, *x.shape[1:]))])
        return torch.cat([self.graph(s) for s in padded.split(size)])[:count]


def load_exported(path: Path) -> nn.Module:
    """A ``torch.export`` archive as a module that measures, checked before torch reads it."""
    check_export_archive(path)
    with weights_only_forced():
        program = torch.export.load(str(path))
    return frozen(program)
