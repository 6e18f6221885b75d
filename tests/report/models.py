"""A model for report tests, loaded as ``tests.report.models:narrow_cnn`` (a user's factory)."""

from __future__ import annotations

from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.models.small_cnn import small_cnn


def narrow_cnn(spec: DataSpec) -> nn.Module:
    """The zoo's small CNN at half its width: converts and measures in seconds."""
    return small_cnn(spec, width=0.5)
