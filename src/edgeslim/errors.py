"""Errors a user can cause. Each message says what to fix; the CLI prints it on one line."""


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
