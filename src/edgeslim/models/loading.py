"""Loading a user's model without ever unpickling arbitrary objects.

Accepted: a zoo name, ``package.module:function``, a TorchScript archive, a ``torch.export``
archive (``.pt2``), an ONNX file, or a state dict (``weights_only=True``) on top of a zoo model.
A pickled ``nn.Module`` is refused: unpickling it could run any code the file's author wrote.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ModelLoadError, UntrustedFileError
from edgeslim.models.archives import archive_kind, load_exported
from edgeslim.models.registry import ZOO, build

HOW_TO_SAVE = (
    "save the weights with torch.save(model.state_dict(), path) and pass the architecture "
    "(a zoo name or package.module:function) with the weights, or save a TorchScript "
    "(torch.jit.save), torch.export (.pt2) or ONNX file"
)


def load_model(
    ref: str, spec: DataSpec | None = None, weights: str | Path | None = None
) -> nn.Module | Path:
    """Return an ``nn.Module`` (torch-stage model) or the Path of an ONNX file."""
    path = Path(ref)
    if ref in ZOO:
        if spec is None:
            raise ModelLoadError(f"zoo model {ref!r} needs a data spec to be built")
        model: nn.Module | Path = build(ref, spec)
    elif path.suffix.lower() == ".onnx" or path.exists():
        model = load_file(path)
    elif ":" in ref and all(part.isidentifier() for part in ref.replace(":", ".").split(".")):
        model = call_factory(ref, spec)
    else:
        raise ModelLoadError(
            f"{ref}: not a zoo model ({', '.join(sorted(ZOO))}), not package.module:function, "
            "and no such file"
        )
    if weights is not None:
        if isinstance(model, Path):
            raise ModelLoadError(f"{ref}: weights can only be loaded into a PyTorch model")
        load_weights(model, weights)
    return model


def call_factory(ref: str, spec: DataSpec | None) -> nn.Module:
    module_name, _, function_name = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"{ref}: cannot import ({exc})") from exc
    takes_spec = "spec" in inspect.signature(factory).parameters
    model = factory(spec=spec) if takes_spec else factory()
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{ref}: returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def load_file(path: Path) -> nn.Module | Path:
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    if path.suffix.lower() == ".onnx":
        return path
    kind = archive_kind(path)
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        if kind == "torch-export":
            return load_exported(path)
    except ModelLoadError:
        raise
    except Exception as exc:  # a corrupt archive: say which file, keep the cause
        raise ModelLoadError(f"{path}: cannot load {kind} archive ({exc})") from exc
    state = load_state_dict(path)
    raise ModelLoadError(
        f"{path}: holds a state dict ({len(state)} tensors) but no architecture; pass the "
        "architecture too (a zoo name or package.module:function) and this file as its weights"
    )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UntrustedFileError(
            f"{path}: refused, loading it would execute code stored in the pickle; {HOW_TO_SAVE}"
        ) from exc
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path}: not a PyTorch weights file ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # common checkpoint layout
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: expected a state dict of tensors; {HOW_TO_SAVE}")
    return state


def load_weights(model: nn.Module, path: str | Path) -> None:
    state = load_state_dict(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{path}: weights do not fit the architecture ({mismatches(model, state)})"
        ) from exc


def mismatches(model: nn.Module, state: dict[str, torch.Tensor], shown: int = 3) -> str:
    """The first keys and shapes that differ, so a user can tell which layer is wrong."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = []
    for label, items in (
        ("size mismatch", resized),
        ("missing", missing),
        ("unexpected", unexpected),
    ):
        if items:
            more = f" and {len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{label}: {', '.join(items[:shown])}{more}")
    return "; ".join(parts) or "the state dict does not load"
