"""Loading a user's model without ever unpickling arbitrary objects.

Accepted: a zoo name, a function that builds the model (``module:function``, or
``path/to/file.py:function``), a TorchScript archive, a ``torch.export`` archive (``.pt2``), an
ONNX file, or a state dict (``weights_only=True``) on top of an architecture.
A pickled ``nn.Module`` is refused: unpickling it could run any code the file's author wrote.

Where things are found: a relative path is taken from ``base_dir`` (the experiment file's folder)
or else the current folder; a function's module is looked for beside the experiment file, then in
the current folder, then among installed packages, and an error says every place it looked.
``locate`` turns a reference into one that holds from any current folder. A function is called
under the same seed as a zoo model is built (``registry.seeded``): the same seed, the same model.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import pickle
import re
import sys
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.data.registry import absolute
from edgeslim.errors import ModelLoadError, UntrustedFileError
from edgeslim.models.archives import archive_kind, load_exported
from edgeslim.models.registry import ZOO, build, seeded

HOW_TO_SAVE = (
    "save the weights with torch.save(model.state_dict(), path) and pass the architecture "
    "(a zoo name or module:function) with the weights, or save a TorchScript "
    "(torch.jit.save), torch.export (.pt2) or ONNX file"
)
# what a model's function may take, by name (any other parameter needs a default)
GIVEN = ("spec", "num_classes", "input_shape")
USER_MODULE = "edgeslim_user_{stem}_{key}"  # a lone file's module name: one per file and version


def load_model(
    ref: str,
    spec: DataSpec | None = None,
    weights: str | Path | None = None,
    *,
    base_dir: str | Path | None = None,
    seed: int = 0,
) -> nn.Module | Path:
    """Return an ``nn.Module`` (torch-stage model) or the Path of an ONNX file.

    A zoo model or a function's model is built from ``seed``; relative paths (the model's, the
    weights', a function's file) are taken from ``base_dir``, else from the current folder."""
    located = locate(ref, base_dir)
    path = Path(located)
    if located in ZOO:
        if spec is None:
            raise ModelLoadError(f"zoo model {ref!r} needs a data spec to be built")
        model: nn.Module | Path = build(located, spec, seed=seed)
    elif path.suffix.lower() == ".onnx" or is_there(path):
        model = load_file(path)
    elif split_function(located) is not None:
        model = call_factory(located, spec, seed=seed, base_dir=base_dir, shown=ref)
    else:
        close = difflib.get_close_matches(ref, list(ZOO), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ModelLoadError(
            f"{ref}: not a zoo model{hint} ({', '.join(sorted(ZOO))}), not module:function or "
            f"file.py:function, and no such file: {absolute(ref, base_dir)}"
        )
    if weights is not None:
        if isinstance(model, Path):
            raise ModelLoadError(f"{ref}: weights can only be loaded into a PyTorch model")
        load_weights(model, absolute(weights, base_dir))
    return model


def is_there(path: Path, kind: str = "exists") -> bool:
    """``path.exists()`` (or ``is_file``) that says no, rather than raising, for a name no file
    can have (too long, a NUL byte)."""
    try:
        return bool(getattr(path, kind)())
    except (OSError, ValueError):
        return False


def split_function(ref: str) -> tuple[str, str] | None:
    """``(module or file, function)`` for ``package.module:function`` or
    ``path/to/file.py:function``; None for any other reference."""
    target, colon, function = ref.rpartition(":")
    if not colon or not target or not function.isidentifier():
        return None
    if is_file(target) or all(part.isidentifier() for part in target.split(".")):
        return target, function
    return None


def is_file(target: str) -> bool:
    """A function's module given as a file (``mynet.py``, ``models/mynet``), not a module."""
    return target.lower().endswith(".py") or "/" in target or os.sep in target


def python_file(target: str, base_dir: str | Path | None) -> Path:
    return absolute(target if target.lower().endswith(".py") else f"{target}.py", base_dir)


def search_folders(base_dir: str | Path | None) -> list[tuple[Path, str]]:
    """Where a function's module is looked for, in order, and how to say where that is."""
    here = absolute(".")
    folders = [(absolute(base_dir), "beside the experiment file")] if base_dir is not None else []
    if not folders or folders[0][0] != here:
        folders.append((here, "in the current folder"))
    return folders


def module_file(module: str, folder: Path) -> Path | None:
    """``folder/a/b.py`` or ``folder/a/b/__init__.py`` for module ``a.b``, if there is one."""
    base = folder.joinpath(*module.split("."))
    for path in (base.parent / f"{base.name}.py", base / "__init__.py"):
        if is_there(path, "is_file"):
            return path
    return None


def locate(ref: str, base_dir: str | Path | None = None) -> str:
    """``ref`` made independent of the current folder: a model file's path becomes absolute, and
    so does a function's file (``mynet:build`` with ``mynet.py`` beside the experiment file or in
    the current folder becomes ``/abs/mynet.py:build``). A zoo name, an installed module's
    function, and a bare word that names no file are returned as they are."""
    if ref in ZOO:
        return ref
    function = split_function(ref)
    if function is not None and not is_there(absolute(ref, base_dir)):
        target, name = function
        if is_file(target):
            return f"{python_file(target, base_dir)}:{name}"
        for folder, _ in search_folders(base_dir):
            found = module_file(target, folder)
            if found is not None:
                return f"{found}:{name}"
        return ref
    path = absolute(ref, base_dir)
    if is_there(path) or Path(ref).suffix or len(Path(ref).parts) > 1:
        return str(path)
    return ref  # a bare word: most likely a misspelled zoo name, which loading reports


def source_file(ref: str) -> Path | None:
    """The file a located reference is read from (a model file, a function's module file),
    for noticing that it changed; None for a zoo name or an installed module."""
    path = Path(ref)
    if ref in ZOO:
        return None
    if is_there(path, "is_file"):
        return path
    function = split_function(ref)
    if function is not None and is_file(function[0]) and is_there(Path(function[0]), "is_file"):
        return Path(function[0])
    return None


def check_reference(ref: str, what: str, base_dir: str | Path | None = None) -> None:
    """Fail now, naming ``what`` (``model``, ``distill.student.model``), if ``ref`` names no zoo
    model, no file and no function that can be imported; builds nothing."""
    located = locate(ref, base_dir)
    path = Path(located)
    if located in ZOO or is_there(path, "is_file"):
        return
    try:
        function = split_function(located)
        if function is None:
            load_model(located, base_dir=base_dir)  # raises: says what the reference is not
        else:
            find_function(located, base_dir, shown=ref)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{what}: {exc}") from exc


@contextlib.contextmanager
def first_on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while a user's module loads (its own imports of
    neighbouring files work as they do when it is run from its folder)."""
    entry = str(folder)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def where_raised(exc: BaseException, own: str | Path | None = None) -> str:
    """``ValueError: bad width (mynet.py, line 12)``: the error and the last line of the user's
    file ``own`` it came through (else the last line of Python code it came from)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    mine = [f for f in frames if own is not None and Path(f.filename) == Path(own)]
    frame = (mine or frames or [None])[-1]
    line = f" ({Path(frame.filename).name}, line {frame.lineno})" if frame else ""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return f"{text[:300]}{line}"


def importing(path: Path | str, shown: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except ModelLoadError:
        raise
    except Exception as exc:  # anything the user's module raises while it loads
        raise ModelLoadError(
            f"{shown}: importing {path} failed: {where_raised(exc, path)}"
        ) from exc


def import_file(path: Path, shown: str) -> ModuleType:
    """A user's module from its file. Inside a package (folders with ``__init__.py``) it is
    imported as ``package.module`` with the package's folder first on ``sys.path`` (its relative
    imports work); a lone file under a module name of its own, one per file and version."""
    parts, root = [] if path.name == "__init__.py" else [path.stem], path.parent
    while (root / "__init__.py").is_file() and root.name.isidentifier():
        parts.insert(0, root.name)
        root = root.parent
    if len(parts) > 1 or path.name == "__init__.py":
        dotted = ".".join(parts)
        with first_on_path(root):
            module = importing(path, shown, lambda: importlib.import_module(dotted))
        found = getattr(module, "__file__", None)
        if found is None or Path(found).resolve() != path.resolve():
            raise ModelLoadError(
                f"{shown}: {path} is module {dotted}, but Python already has a module of that "
                f"name from {found or 'elsewhere'}; rename the package"
            )
        return module
    stat = path.stat()
    key = hashlib.sha256(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:12]
    name = USER_MODULE.format(stem=re.sub(r"\W", "_", path.stem), key=key)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{shown}: {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: dataclasses and pickling look it up by name
    try:
        with first_on_path(path.parent):
            importing(path, shown, lambda: spec.loader.exec_module(module))
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def import_module(target: str, base_dir: str | Path | None, shown: str) -> ModuleType:
    """A function's module: a file, or a module beside the experiment file, in the current
    folder, or installed, in that order."""
    if is_file(target):
        path = python_file(target, base_dir)
        if not is_there(path, "is_file"):
            raise ModelLoadError(f"{shown}: no file {path}")
        return import_file(path, shown)
    looked = []
    for folder, how in search_folders(base_dir):
        found = module_file(target, folder)
        if found is not None:
            return import_file(found, shown)
        looked.append(f"{folder.joinpath(*target.split('.'))}.py ({how})")
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (target == exc.name or target.startswith(f"{exc.name}.")):
            raise ModelLoadError(
                f"{shown}: cannot import module {target!r}: not found; looked for "
                f"{', '.join(looked)} and for an installed module {target!r}"
            ) from exc
        raise ModelLoadError(f"{shown}: importing {target} failed: {where_raised(exc)}") from exc
    except Exception as exc:  # anything the module raises while it loads
        raise ModelLoadError(f"{shown}: importing {target} failed: {where_raised(exc)}") from exc


def find_function(ref: str, base_dir: str | Path | None = None, shown: str = "") -> Callable:
    """The function ``module:function`` (or ``file.py:function``) names, imported."""
    shown = shown or ref
    target, name = split_function(ref) or (ref, "")
    module = import_module(target, base_dir, shown)
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        own = sorted(
            key
            for key, value in vars(module).items()
            if inspect.isfunction(value)
            and value.__module__ == module.__name__
            and not key.startswith("_")
        )
        close = difflib.get_close_matches(name, own, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = "no function" if factory is None else "no callable"
        raise ModelLoadError(
            f"{shown}: {getattr(module, '__file__', None) or target} has {what} {name!r}{hint}; "
            f"its functions: {', '.join(own) or 'none'}"
        )
    return factory


def arguments(factory: Callable, spec: DataSpec | None, shown: str) -> dict[str, Any]:
    """What the function takes, by name, of ``spec``, ``num_classes`` and ``input_shape``."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or extension without a signature
        return {}
    given: dict[str, Any] = {"spec": spec}
    if spec is not None:
        given.update(num_classes=spec.num_classes, input_shape=tuple(spec.input_shape))
    kwargs = {}
    for name, parameter in parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        required = parameter.default is parameter.empty
        if name in given and parameter.kind != parameter.POSITIONAL_ONLY:
            if given[name] is None and name != "spec" and required:
                raise ModelLoadError(f"{shown}: its {name} comes from the data; give data too")
            if given[name] is not None or name == "spec":
                kwargs[name] = given[name]
        elif required:
            raise ModelLoadError(
                f"{shown}: parameter {name!r} has no default; a model's function is given only "
                f"{', '.join(GIVEN)} (by name), so give the others defaults"
            )
    return kwargs


def call_factory(
    ref: str,
    spec: DataSpec | None,
    *,
    seed: int = 0,
    base_dir: str | Path | None = None,
    shown: str = "",
) -> nn.Module:
    """Build the model ``ref``'s function returns, from ``seed`` (torch's, numpy's and Python's
    random state, given back afterwards), as a zoo model is built."""
    shown = shown or ref
    factory = find_function(ref, base_dir, shown)
    kwargs = arguments(factory, spec, shown)
    try:
        with seeded(seed):
            model = factory(**kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # the user's function failed: say where, keep the cause
        own = getattr(getattr(factory, "__code__", None), "co_filename", None)
        raise ModelLoadError(
            f"{shown}: building the model failed: {where_raised(exc, own)}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelLoadError(
            f"{shown}: returned {type(model).__name__}, expected a torch.nn.Module"
        )
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
        "architecture too (a zoo name or module:function) and this file as its weights"
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
