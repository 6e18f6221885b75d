"""The version records carry, beside the package metadata that pip reads."""

__version__ = "0.1.0"
