"""Files written whole or not at all, and a full disk said in one line.

``write_atomic`` writes under a temporary name and renames, so a reader sees the old file or the
new one; a write that runs out of room (a full disk, a quota, the file size limit) raises one
``DiskFullError`` naming the file and what is free, after taking back what it half wrote.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from edgeslim.errors import DiskFullError

NO_ROOM = {
    errno.ENOSPC: "",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file size limit (ulimit -f) was reached",
}
TRY_AGAIN = "; free some space and try again"
PARTIAL = re.compile(r"^\..+\.(\d+)\.part$")  # write_atomic's temporary files: .NAME.PID.part


def size_text(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError  # unreachable


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (its nearest existing folder)."""
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            if folder.is_dir():
                return shutil.disk_usage(folder).free
    return None


def no_room(exc: BaseException) -> tuple[int, str | None] | None:
    """``(errno, file)`` when ``exc`` (or an error it came from) is a write that ran out of room;
    libraries that wrap it keep at least its words (``No space left on device``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_ROOM:
            return current.errno, current.filename
        for code in NO_ROOM:
            if os.strerror(code) in str(current):
                return code, None
        current = current.__cause__ or current.__context__
    return None


def disk_full(
    where: Path,
    needed: int | None = None,
    code: int = errno.ENOSPC,
    file: str | None = None,
    during: str = "",
) -> DiskFullError:
    """The one line for a write to ``where`` (or ``file``, where the error named one) that ran
    out of room ``during`` some work: what it needed and what is free, when that is known."""
    path = Path(file) if file and not PARTIAL.match(Path(file).name) else where
    facts = [NO_ROOM[code]] if NO_ROOM.get(code) else []
    free = free_bytes(path) if code == errno.ENOSPC else None
    if needed is not None and code == errno.ENOSPC:
        facts.append(f"{size_text(needed)} to write")
    if free is not None:
        facts.append(f"{size_text(free)} free")
    detail = f" ({', '.join(facts)})" if facts else ""
    during = f" while {during}" if during else ""
    return DiskFullError(f"disk full at {path}{during}{detail}{TRY_AGAIN}")


def as_disk_full(
    exc: BaseException, where: Path, needed: int | None = None, during: str = ""
) -> DiskFullError | None:
    """``exc`` as a ``DiskFullError`` when it is a write that ran out of room, else None."""
    if isinstance(exc, DiskFullError):
        return exc
    found = no_room(exc)
    if found is None:
        return None
    code, file = found
    return disk_full(where, needed, code, file, during)


@contextlib.contextmanager
def writing(where: Path, needed: int | None = None) -> Iterator[None]:
    """Writes under ``where``: one that runs out of room ends in a ``DiskFullError``."""
    try:
        yield
    except Exception as exc:
        full = as_disk_full(exc, where, needed)
        if full is None or full is exc:
            raise
        raise full from exc


def write_atomic(path: Path, text: str | bytes) -> None:
    """Readers see the old file or the new one, never half of one (temp file + rename). The
    temporary file never outlives a failure; a full disk is a ``DiskFullError``."""
    data = text.encode() if isinstance(text, str) else text
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    with writing(path, len(data)):  # outside: the free space is counted once the part is gone
        try:
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
