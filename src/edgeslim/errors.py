"""Errors a user can cause. Each message says what to fix; the CLI prints it on one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def yaml_path(where: str, loc: tuple) -> str:
    """``("candidates", 2, "grid")`` under ``where`` -> ``where.candidates[2].grid``."""
    path = where
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe_validation(error: ValidationError, where: str = "") -> str:
    """One line per problem, each starting with the setting's path as the user wrote it."""
    return "; ".join(
        f"{yaml_path(where, tuple(item['loc'])) or 'top level'}: {item['msg']}"
        for item in error.errors()
    )
