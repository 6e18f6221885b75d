"""Errors a user can cause. Each message says what to fix; the CLI prints it on one line."""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class EdgeslimError(Exception):
    """Base for every error caused by input (files, settings, data), not by a bug."""


class DataError(EdgeslimError):
    """A data source is missing, malformed, or does not fit the model."""


class ModelLoadError(EdgeslimError):
    """A model could not be found, built or loaded safely."""


class UntrustedFileError(ModelLoadError):
    """A file would need arbitrary code execution (pickle) to load."""


class ExportError(EdgeslimError):
    """ONNX export failed, or the exported model disagrees with PyTorch."""


class MeasurementError(EdgeslimError):
    """The measuring process failed, crashed or timed out."""


class ConfigError(EdgeslimError):
    """A setting is invalid; the message names it and what is expected."""


class DoesNotFit(MeasurementError):
    """The model ran out of the memory it was capped to: it does not fit the emulated device."""


class MissingRuntimeError(EdgeslimError):
    """A runtime was asked for whose package is not installed; the message names the extra."""


class BoardError(EdgeslimError):
    """A board over SSH refused us (host key, login, missing Python) or failed to measure."""


class BoardFault(BoardError):
    """A fault that may pass, so the measurement is retried: a dropped connection, a board that
    reboots, a hung worker, a full disk."""


class RunLockedError(EdgeslimError):
    """Another process is working on the same run folder."""


class DiskFullError(EdgeslimError):
    """A write ran out of room: the disk is full, the quota used up, or the file size limit
    (``ulimit -f``) reached. The message names the file and, where known, the bytes it needed
    and the bytes free; the partial file is removed first and every finished record is kept."""


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 2, 4, 4, 3
_SHORT.maxset = _SHORT.maxfrozenset = 4
_SHORT.maxstring = _SHORT.maxother = 60
MESSAGE_PROBLEMS = 5  # a validation error lists this many problems, then counts the rest
PROBLEM_CHARS = 300  # one problem's message is cut here


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` bounded in work and length: user input goes into messages only this way
    (a value may be a huge list, or an alias bomb that expands to billions of items)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value: Any) -> str:
    """What a YAML value is, in the words of a message: ``a list``, ``a number``, ..."""
    if value is None:
        return "nothing (null)"
    for types, words in (
        (bool, "true/false"),
        ((int, float), "a number"),
        (str, "a string"),
        (dict, "a mapping"),
        ((list, tuple), "a list"),
    ):
        if isinstance(value, types):
            return words
    return f"a {type(value).__name__}"


def _key(part: Any) -> str:
    text = str(part) if isinstance(part, str | int) else short(part, 40)
    return text if len(text) <= 40 and text.isprintable() else short(part, 40)


def yaml_path(where: str, loc: tuple) -> str:
    """``("candidates", 2, "grid")`` under ``where`` -> ``where.candidates[2].grid``."""
    path = where
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{_key(part)}" if path else _key(part)
    return path


def describe_validation(error: ValidationError, where: str = "") -> str:
    """One problem per clause (the first few), each starting with the setting's path as the user
    wrote it; messages are cut, never the whole of a huge value."""
    problems = error.errors(include_url=False, include_input=False)
    clauses = []
    for item in problems[:MESSAGE_PROBLEMS]:
        message = " ".join(str(item["msg"]).split())
        if len(message) > PROBLEM_CHARS:
            message = message[: PROBLEM_CHARS - 3] + "..."
        clauses.append(f"{yaml_path(where, tuple(item['loc'])) or 'top level'}: {message}")
    if len(problems) > MESSAGE_PROBLEMS:
        clauses.append(f"and {len(problems) - MESSAGE_PROBLEMS:,} more")
    return "; ".join(clauses)
