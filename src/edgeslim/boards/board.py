"""A board over SSH (or a pool of identical ones) that measures candidates where they will run.

The host packs the torch-free worker (edgeslim's own source, zipped), the runtime's file, the
test samples and the request, and the board's bootstrap (``bootstrap.py``) runs the worker in a
fresh temporary folder there and sends the result back. A board is used by one measurement at a
time (a lock on the board itself, so it holds across processes and hosts); a pool hands each
measurement the first free board. Faults that may pass are retried, the rest reported at once.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeslim.boards.process import WorkerExit
from edgeslim.boards.ssh import Channel, SshOptions, check_target
from edgeslim.errors import BoardError, BoardFault
from edgeslim.names import check_name
from edgeslim.runtimes import check_runtime


@functools.cache
def bootstrap_source() -> str:
    """Read once: it is sent on every connection, and a busy pool is polled twice a second."""
    return Path(__file__).with_name("bootstrap.py").read_text()


# the answer to "connect and take the lock" may take a login's worth of time on a slow board
HANDSHAKE_S = 30.0


class BoardConfig(BaseModel):
    """A board as the experiment file or the devices file names it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    ssh: list[str] = Field(description="user@host or ssh://user@host:port; several: a pool")
    python: str = Field("python3", description="the board's interpreter (numpy + the runtime)")
    runtimes: list[str] = ["onnxruntime"]
    profile: str | None = Field(None, description="a built-in profile whose budget applies")
    budget: dict[str, float | str] = {}
    identity: str | None = Field(None, description="private key file (default: ssh's own)")
    known_hosts: str | None = Field(None, description="default: ~/.ssh/known_hosts")
    workdir: str | None = Field(None, description="where temporary folders go on the board")
    retries: int = Field(2, ge=0, description="tries after the first, for faults that pass")
    retry_wait_s: float = Field(10.0, ge=0, description="pause before a retry (reboots)")
    connect_timeout_s: float = Field(10.0, gt=0)
    lock_wait_s: float = Field(3600.0, gt=0, description="longest wait for a free board")

    @field_validator("ssh", mode="before")
    @classmethod
    def one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("ssh")
    @classmethod
    def destinations(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one SSH destination")
        if len(set(value)) != len(value):
            raise ValueError(f"each board of a pool once, got {value}")
        return [check_target(target) for target in value]

    @field_validator("runtimes")
    @classmethod
    def known_runtimes(cls, value: list[str]) -> list[str]:
        return [check_runtime(name) for name in value]

    @field_validator("name")
    @classmethod
    def valid_name(cls, value: str) -> str:
        return check_name(value)


@functools.cache
def worker_zip() -> bytes:
    """edgeslim's source as an importable zip: the worker imports numpy, the runtime and a few
    of these modules only, so the board needs nothing of edgeslim installed."""
    package = Path(__file__).resolve().parents[1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(package.rglob("*.py")):
            archive.write(source, (Path("edgeslim") / source.relative_to(package)).as_posix())
    return buffer.getvalue()


def payload(request: dict[str, Any], env: dict[str, str]) -> bytes:
    """The tar archive the board unpacks: its files under fixed names (nothing the user named
    reaches the board's file system or command line), and the request rewritten to them."""
    model = Path(request["model"])
    files: dict[str, bytes | Path] = {
        "worker.zip": worker_zip(),
        f"model{model.suffix}": model,
        "data.npz": Path(request["data"]),
    }
    remote = {
        **request,
        "model": f"model{model.suffix}",
        "data": "data.npz",
        "result": "result.json",
    }
    if request.get("models"):  # a latency table's variants
        remote["models"] = []
        for index, path in enumerate(map(Path, request["models"])):
            files[f"variant-{index}{path.suffix}"] = path
            remote["models"].append(f"variant-{index}{path.suffix}")
    if request.get("activations_model"):
        files["activations.onnx"] = Path(request["activations_model"])
        remote["activations_model"] = "activations.onnx"
    files["request.json"] = json.dumps(remote).encode()
    files["env.json"] = json.dumps(env).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Board:
    """A device like ``boards.process.THIS_HOST``: ``run_worker`` measures on the board."""

    def __init__(self, config: BoardConfig, say: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.say = say or (lambda text: None)
        self.options = SshOptions(
            identity=config.identity,
            known_hosts=config.known_hosts,
            connect_timeout_s=config.connect_timeout_s,
        )

    def __repr__(self) -> str:
        return f"Board({self.name!r}, {self.config.ssh})"

    def bootstrap(self, timeout_s: float) -> list[str]:
        """The remote command: the board's Python running the bootstrap's source."""
        return [
            self.config.python,
            "-c",
            bootstrap_source(),
            self.config.workdir or "",
            f"{timeout_s:g}",
        ]

    def acquire(self, timeout_s: float) -> tuple[Channel, str]:
        """A connection that holds the lock of the first free board of the pool; waits while
        all are busy. A board that cannot be reached is skipped while others can."""
        deadline = time.monotonic() + self.config.lock_wait_s
        waiting_said = False
        while True:
            faults = []
            for target in self.config.ssh:
                channel = Channel(target, self.bootstrap(timeout_s), self.options)
                try:
                    message = channel.receive(
                        self.config.connect_timeout_s + HANDSHAKE_S, "taking the board's lock"
                    )
                except BoardFault as exc:
                    faults.append(exc)
                    continue
                if message["kind"] == "locked":
                    return channel, target
                channel.close()  # busy: another measurement holds this board
            if len(faults) == len(self.config.ssh):
                raise faults[0] if len(faults) == 1 else BoardFault("; ".join(map(str, faults)))
            if time.monotonic() > deadline:
                raise BoardError(
                    f"board {self.name}: no board of {self.config.ssh} was free for "
                    f"{self.config.lock_wait_s:g} s"
                )
            if not waiting_said:
                self.say(f"board {self.name}: busy, waiting for it")
                waiting_said = True
            time.sleep(0.5)

    def measure_once(self, archive: bytes, timeout_s: float) -> WorkerExit:
        channel, target = self.acquire(timeout_s)
        try:
            channel.send(f"{len(archive)}\n".encode() + archive)
            # the board enforces timeout_s on its worker; this margin covers the transfer
            message = channel.receive(timeout_s + 60 + len(archive) / 1e5, "measuring")
        finally:
            channel.close()  # the board's lifeline: it stops its worker and cleans up
        where = {"board": self.name, "ssh": target}
        if message["kind"] == "error":
            raise BoardFault(f"{target}: {message['error']}")
        if message.get("timeout"):
            raise BoardFault(f"{target}: the worker ran past {timeout_s:g} s and was stopped")
        return WorkerExit(message["returncode"], message["stderr"], message["result"], where)

    def run_worker(self, request: dict[str, Any], work: Path, timeout_s: float) -> WorkerExit:
        """Measure on the board, retrying faults that may pass (``retries`` times, with a
        pause); a fault that stays is raised with every try's reason. The files cross in the
        archive, so the host's ``work`` folder is not used here."""
        env = {"OMP_NUM_THREADS": str(request["settings"]["threads"])}
        if os.environ.get("EDGESLIM_FAULT"):  # the isolation tests' fault injection
            env["EDGESLIM_FAULT"] = os.environ["EDGESLIM_FAULT"]
        archive = payload(request, env)
        reasons = []
        tries = self.config.retries + 1
        for attempt in range(1, tries + 1):
            try:
                return self.measure_once(archive, timeout_s)
            except BoardFault as exc:
                reasons.append(f"try {attempt}: {exc}")
                if attempt < tries:
                    self.say(f"board {self.name}: {exc}; retrying ({attempt}/{tries - 1})")
                    time.sleep(self.config.retry_wait_s)
        raise BoardFault(f"board {self.name}: failed {tries} times: " + "; ".join(reasons))
