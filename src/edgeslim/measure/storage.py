"""Storage: the artifact's bytes on disk, after a standard compressor (gzip -9, DEFLATE), and
entropy-coded (``coding``: codebooks and index bytes under xz).

The compressed sizes are what a firmware image or an over-the-air update actually carries; they
are where unstructured zeros and shared weights pay off even when the file itself stays dense.
A runtime's own file that is not ONNX (.tflite, .pte) is coded as its bytes under xz.
"""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path
from typing import TYPE_CHECKING

from edgeslim.measure.registry import family

if TYPE_CHECKING:
    from edgeslim.graph import GraphSummary

KB = 1024  # bytes; every *_kb metric uses binary kilobytes
COMPRESSOR = "gzip -9 (DEFLATE)"
XZ_PRESET = 6  # xz's default; 9e measured no smaller on the zoo
CODING = (
    "ONNX: graph + per-tensor codebook (<= 256 values) and index bytes, xz (LZMA2) preset "
    f"{XZ_PRESET}; other formats: the file under xz (LZMA2) preset {XZ_PRESET}"
)


def artifact_files(path: Path) -> list[Path]:
    """The model file and any external-data files stored beside it under its name."""
    return [path, *sorted(path.parent.glob(f"{path.name}.data*"))]


@family(
    "storage",
    "graph",
    [
        ("storage_kb", "KB", "lower", "bytes of the file(s) the runtime loads / 1024"),
        ("storage_compressed_kb", "KB", "lower", f"bytes after {COMPRESSOR} / 1024"),
        ("storage_coded_kb", "KB", "lower", "entropy-coded bytes (codebooks + indices) / 1024"),
    ],
)
def storage(summary: GraphSummary) -> dict:
    path = summary.artifact or summary.path
    raw = b"".join(p.read_bytes() for p in artifact_files(path))
    compressed = gzip.compress(raw, compresslevel=9, mtime=0)
    if path.suffix == ".onnx":  # onnx only here: a board's worker may run without it
        import onnx

        from edgeslim.measure import coding  # imports onnx, as above

        coded = coding.encode(onnx.load(str(path)), XZ_PRESET)
    else:
        coded = lzma.compress(raw, preset=XZ_PRESET)
    return {
        "storage_kb": len(raw) / KB,
        "storage_compressed_kb": len(compressed) / KB,
        "storage_coded_kb": len(coded) / KB,
    }
