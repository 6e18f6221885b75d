"""The run folder: ``runs/NAME/`` with ``results.jsonl`` (one record per candidate, appended the
moment it is measured), the artifacts, and the reports.

Records are append-only JSON lines, each carrying a checksum of its own content, written with
one ``write`` on an ``O_APPEND`` descriptor and ``fsync``ed: a crash leaves at worst one partial
last line, which reading detects and skips with a warning (once per folder object, however often
it is read). A lock file keeps two runs from writing the same folder at once.

A write that runs out of room (a full disk, a quota, the file size limit) raises one
``DiskFullError`` naming the file, after taking back what it half wrote: a record's partial line
is cut off again, a temporary file is removed.
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

from edgeslim.errors import ConfigError, RunLockedError
from edgeslim.files import PARTIAL, disk_full, pid_alive, writing
from edgeslim.names import NAME_RULE, check_name

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
        self.warned: set[tuple[int, bytes]] = set()  # damaged lines already warned about

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
        with writing(self.path):
            self.artifacts.mkdir(parents=True, exist_ok=True)

    def sweep(self) -> list[Path]:
        """Remove the temporary files (``.NAME.PID.part``) of writers that died before they
        could: they hold space and nothing reads them. Returns what was removed."""
        removed = []
        for folder in (self.path, self.artifacts):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                match = PARTIAL.match(path.name)
                if match and not pid_alive(int(match[1])):
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed.append(path)
        return removed

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive use of the folder for this process; refused (not waited for) if taken.

        A folder this call created is removed again when the block fails before any work was
        kept (no record, no artifact, no trained baseline): a run that stops at a mistake in its
        model or data leaves no ``runs/NAME/.lock`` behind, nor an empty ``runs/``."""
        created = [p for p in (self.root, self.path) if not p.exists()]
        self.create()
        with writing(self.path / ".lock"):
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
            with writing(self.path / ".lock"):
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()}\n")
                handle.flush()
            self.sweep()
            yield
        except BaseException:
            if self.path in created:
                self.remove_unused(also_root=self.root in created)  # still under the lock
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def remove_unused(self, also_root: bool = False) -> bool:
        """Remove the folder if it holds nothing a run keeps: only the lock, the experiment's
        own description, an empty ``artifacts/``. Returns whether it was removed."""
        unused = {".lock", "experiment.json", "examples.json"}
        try:
            if self.artifacts.is_dir() and any(self.artifacts.iterdir()):
                return False
            names = {p.name for p in self.path.iterdir()} - {self.artifacts.name}
            if not names <= unused:
                return False
            for name in names:
                (self.path / name).unlink(missing_ok=True)
            if self.artifacts.is_dir():
                self.artifacts.rmdir()
            self.path.rmdir()
        except OSError:
            return False
        if also_root:
            with contextlib.suppress(OSError):  # only when empty: other runs' folders stay
                self.root.rmdir()
        return True

    def append(self, record: dict[str, Any]) -> None:
        """Add one record durably; a partial line left by a crash is first closed off. When the
        disk fills up part way, the part written is cut off again and ``DiskFullError`` says so:
        the file ends as it began."""
        self.create()
        line = encode(record)
        with writing(self.results, len(line)):
            fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(self.results, "rb") as existing:
                    existing.seek(size - 1)
                    if existing.read(1) != b"\n":
                        line = b"\n" + line
            done = 0
            with writing(self.results, len(line)):
                try:
                    done = os.write(fd, line)  # one write: concurrent appends never interleave
                    while done < len(line):  # short: out of room; the next write says why
                        written = os.write(fd, line[done:])
                        if not written:
                            raise disk_full(self.results, len(line))
                        done += written
                    os.fsync(fd)
                except BaseException:
                    if done and os.fstat(fd).st_size == size + done:  # our bytes are the tail
                        with contextlib.suppress(OSError):
                            os.ftruncate(fd, size)
                    raise
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
                if (number, raw) in self.warned:
                    continue
                self.warned.add((number, raw))
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
