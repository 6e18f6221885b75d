"""Storage: the artifact's bytes on disk, and after a standard compressor (gzip -9, DEFLATE).

The compressed size is what a firmware image or an over-the-air update actually carries; it is
where unstructured zeros pay off even when the file itself stays dense.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from edgeslim.measure.registry import family

if TYPE_CHECKING:
    from edgeslim.measure.graph import GraphSummary

KB = 1024  # bytes; every *_kb metric uses binary kilobytes
COMPRESSOR = "gzip -9 (DEFLATE)"


def artifact_files(path: Path) -> list[Path]:
    """The model file and any external-data files stored beside it under its name."""
    return [path, *sorted(path.parent.glob(f"{path.name}.data*"))]


@family(
    "storage",
    "graph",
    [
        ("storage_kb", "KB", "lower", "bytes of the file(s) the runtime loads / 1024"),
        ("storage_compressed_kb", "KB", "lower", f"bytes after {COMPRESSOR} / 1024"),
    ],
)
def storage(summary: GraphSummary) -> dict:
    raw = b"".join(p.read_bytes() for p in artifact_files(summary.artifact or summary.path))
    compressed = gzip.compress(raw, compresslevel=9, mtime=0)
    return {"storage_kb": len(raw) / KB, "storage_compressed_kb": len(compressed) / KB}
