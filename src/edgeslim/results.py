"""The run folder: ``runs/NAME/`` with ``results.jsonl`` (one record per candidate, appended the
moment it is measured), the artifacts, and the reports.

Records are append-only JSON lines, each carrying a checksum of its own content, written with
one ``write`` on an ``O_APPEND`` descriptor and ``fsync``ed: a crash leaves at worst one partial
last line, which reading detects and skips with a warning. A lock file keeps two runs from
writing the same folder at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeslim.config import NAME_RULE, check_name
from edgeslim.errors import ConfigError, RunLockedError

RESULTS = "results.jsonl"
CHECKSUM = "checksum"


def checksum(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(record: dict[str, Any]) -> bytes:
    """One line of JSON; round-tripped first so the checksum covers what a reader will see."""
    plain = json.loads(json.dumps(record, default=str))
    plain[CHECKSUM] = checksum(plain)
    return (json.dumps(plain, default=str) + "\n").encode()


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one (temp file + rename)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(partial, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


class RunFolder:
    """``root/name``: the name may not climb out of ``root`` (no separators, no ``..``)."""

    def __init__(self, root: str | Path, name: str) -> None:
        try:
            check_name(name)
        except ValueError as exc:
            raise ConfigError(f"run name: {exc}") from exc
        self.root = Path(root)
        self.path = self.root / name
        if self.path.resolve().parent != self.root.resolve():
            raise ConfigError(f"run name {name!r} must stay inside {self.root} ({NAME_RULE})")
        self.name = name

    @classmethod
    def at(cls, path: str | Path) -> RunFolder:
        path = Path(path)
        return cls(path.parent, path.name)

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    def create(self) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive use of the folder for this process; refused (not waited for) if taken."""
        self.create()
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 (held for the whole block)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLockedError(
                f"{self.path} is in use by {holder}; wait for it to finish, or give this run "
                "another name"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def append(self, record: dict[str, Any]) -> None:
        """Add one record durably; a partial line left by a crash is first closed off."""
        self.create()
        line = encode(record)
        fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(self.results, "rb") as existing:
                    existing.seek(size - 1)
                    if existing.read(1) != b"\n":
                        line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.results} ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """Every intact record in order; damaged lines are skipped with a warning."""
        if not self.results.exists():
            return []
        records = []
        for number, raw in enumerate(self.results.read_bytes().splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                ok = isinstance(record, dict) and record.get(CHECKSUM) == checksum(record)
            except (json.JSONDecodeError, UnicodeDecodeError):
                ok = False
            if not ok:
                warnings.warn(
                    f"{self.results}:{number}: damaged record skipped (partly written or "
                    "edited); its candidate will be redone",
                    stacklevel=2,
                )
                continue
            records.append(record)
        return records

    def current(self, names: set[str]) -> list[dict[str, Any]]:
        """The latest records of the named candidates and of every search trial, in order;
        candidates since removed from the experiment are left out."""
        return [r for name, r in self.latest().items() if name in names or "trial" in r]

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last intact record of each candidate, by name, in first-seen order."""
        latest: dict[str, dict[str, Any]] = {}
        for record in self.read():
            latest[record["name"]] = record
        return latest
