"""How a measurement is taken; recorded with every result so numbers can be compared."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeslim.errors import ConfigError
from edgeslim.runtimes import runtime


@dataclass(frozen=True)
class MeasureSettings:
    runtime: str = "onnxruntime"  # a name of edgeslim.runtimes.RUNTIMES
    threads: int = 1  # the runtime's intra-op threads; the worker is pinned to as many cores
    pin_cores: bool = True
    cores: tuple[int, ...] = ()  # pin to these CPU ids (default: the last ``threads`` cores)
    memory_limit_mb: float | None = None  # cap on the worker's memory growth: emulate a device
    warmup_runs: int = 20
    runs: int = 1000  # latency samples wanted (p99 then rests on the slowest 10)
    min_runs: int = 100  # ... and never fewer, even past max_seconds
    max_seconds: float = 5.0  # time cap on the latency loop
    batch_sizes: tuple[int, ...] = (1, 8, 32, 128)
    throughput_seconds: float = 0.5  # per batch size
    activation_samples: int = 256  # test samples used for activation sparsity
    timeout_s: float = 600.0  # the worker is killed past this

    def __post_init__(self) -> None:
        checks = {
            "threads": self.threads >= 1,
            "warmup_runs": self.warmup_runs >= 0,
            "runs": self.runs >= 1,
            "min_runs": 1 <= self.min_runs <= self.runs,
            "max_seconds": self.max_seconds > 0,
            "batch_sizes": bool(self.batch_sizes) and all(b >= 1 for b in self.batch_sizes),
            "throughput_seconds": self.throughput_seconds > 0,
            "activation_samples": self.activation_samples >= 1,
            "timeout_s": self.timeout_s > 0,
            "cores": all(c >= 0 for c in self.cores) and len(set(self.cores)) == len(self.cores),
            "memory_limit_mb": self.memory_limit_mb is None or self.memory_limit_mb > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid measure settings: {', '.join(bad)} ({self})")

        runtime(self.runtime, "measure settings")  # an unknown name is a ConfigError
        if self.cores and len(self.cores) < self.threads:
            raise ConfigError(
                f"{self.threads} threads need at least as many cores, got {self.cores}"
            )

    def to_dict(self) -> dict:
        return asdict(self)
