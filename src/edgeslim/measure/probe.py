"""Batch-1 latency of many model variants on a runtime and a device: what a latency table is
built from, and how latency-targeted pruning checks the model it chose.

Every call exports (or converts) the variants on this host and times them all in one fresh
torch-free worker (``mode: latency``), here or on a board over SSH, as ``measure`` times one
model: the same runtime, threads, pinning and loop. The first call's worker says which runtime
version and which machine answered; ``key`` names them, so a table measured elsewhere, on
another version or with other threads is never taken for this one.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.boards import board_named
from edgeslim.boards.process import THIS_HOST, read_result
from edgeslim.candidate import Candidate
from edgeslim.data.bundle import Dataset
from edgeslim.errors import MeasurementError
from edgeslim.export import export_for_timing
from edgeslim.measure.api import runtime_artifact
from edgeslim.measure.settings import MeasureSettings
from edgeslim.runtimes import runtime

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.boards import Board

PROBE_RUNS = 300  # per variant: a p50 within ~2% on a quiet core, ~0.1 s for a 0.3 ms model


@dataclass
class Timed:
    """One variant's figures, or why it has none."""

    p50_ms: float | None
    p95_ms: float | None = None
    error: str | None = None
    noisy: str | None = None


@dataclass
class LatencyProbe:
    data: Dataset
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    board: Board | str | None = None
    device: dict[str, Any] = field(default_factory=dict)  # filled by the first call

    def __post_init__(self) -> None:
        if isinstance(self.board, str):
            self.board = board_named(self.board)
        self.engine = runtime(self.settings.runtime)  # checked installed on first use
        self.settings = MeasureSettings(
            **{
                **self.settings.to_dict(),
                "runs": PROBE_RUNS,
                "min_runs": min(PROBE_RUNS, self.settings.min_runs),
                "warmup_runs": max(10, self.settings.warmup_runs),
            }
        )

    @property
    def runtime(self) -> str:
        return self.engine.name

    def key(self) -> str:
        """Runtime and version, device and threads: a table is kept and found under it."""
        if not self.device:
            raise MeasurementError("the probe has not measured anything yet: no device known")
        d = self.device
        return "|".join(
            [
                d["runtime"],
                d["runtime_version"],
                f"threads={self.settings.threads}",
                d.get("board") or "host",
                d["host"],
                d["cpu"],
            ]
        )

    def __call__(self, models: list[nn.Module]) -> list[Timed]:
        """The p50 of each model, in the order given."""
        self.engine.check_available()
        with tempfile.TemporaryDirectory(prefix="edgeslim-probe-") as tmp:
            work = Path(tmp)
            files = [self.artifact(model, index, work) for index, model in enumerate(models)]
            return self.time_files(files, work)

    def artifact(self, model: nn.Module, index: int, work: Path) -> Path:
        """The variant in the runtime's format. An ONNX runtime gets TorchScript's export:
        0.05 s against 2 s for the checked dynamo export of ``export_onnx`` (resnet8), with the
        same operators once ONNX Runtime has fused them; only its speed is read."""
        onnx_path = work / f"variant-{index}.onnx"
        if self.engine.reads_onnx:
            export_for_timing(model, self.data, onnx_path)
        candidate = Candidate(f"variant-{index}", model=model.eval())
        path, _ = runtime_artifact(self.engine, candidate, onnx_path, self.data, work)
        return path

    def time_files(self, files: list[Path], work: Path) -> list[Timed]:
        np.savez(work / "data.npz", x=self.data.test.x[:1], y=self.data.test.y[:1])
        request = {
            "mode": "latency",
            "model": str(files[0].resolve()),
            "models": [str(f.resolve()) for f in files],
            "data": str(work / "data.npz"),
            "settings": self.settings.to_dict(),
            "spec": self.data.spec.to_dict(),
            "result": str(work / "result.json"),
        }
        ended = (self.board or THIS_HOST).run_worker(request, work, self.settings.timeout_s)
        result = read_result(ended, None)
        info = result["info"]
        board = getattr(self.board, "name", None)
        self.device = {
            "runtime": info["runtime"],
            "runtime_version": info["runtime_version"],
            "host": info["host"],
            "cpu": info["cpu"],
            "board": board,
        }
        return [
            Timed(
                f.get("latency_p50_ms"),
                f.get("latency_p95_ms"),
                f.get("error"),
                f.get("timing_noisy"),
            )
            for f in result["latencies"]
        ]
