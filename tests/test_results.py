"""The run folder: durable records, damaged lines skipped, one writer at a time, no escapes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings

import pytest

from edgeslim.errors import ConfigError, DiskFullError, ExportError, RunLockedError
from edgeslim.files import as_disk_full, write_atomic
from edgeslim.results import RunFolder


def test_records_round_trip_with_checksums(tmp_path):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a", "accuracy": 0.5, "nested": {"x": [1, 2]}})
    folder.append({"name": "b", "accuracy": 0.7})
    folder.append({"name": "a", "accuracy": 0.9})  # a later record replaces the earlier one
    lines = folder.results.read_text().splitlines()
    assert len(lines) == 3 and all("checksum" in json.loads(line) for line in lines)
    latest = folder.latest()
    assert list(latest) == ["a", "b"]
    assert latest["a"]["accuracy"] == 0.9


def test_a_partly_written_last_line_is_skipped_with_a_warning_and_then_closed_off(tmp_path):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a", "accuracy": 0.5})
    with open(folder.results, "ab") as handle:
        handle.write(b'{"name": "b", "accur')  # a crash in the middle of a write
    with pytest.warns(UserWarning, match=r"results\.jsonl:2: damaged record skipped"):
        assert list(folder.latest()) == ["a"]
    folder.append({"name": "c", "accuracy": 0.6})  # must not be glued to the partial line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: reading it again in the same run is silent
        assert list(folder.latest()) == ["a", "c"]
    with pytest.warns(UserWarning, match="damaged"):  # a new run says it again
        assert list(RunFolder(tmp_path, "run").latest()) == ["a", "c"]


def test_an_edited_record_fails_its_checksum(tmp_path):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a", "accuracy": 0.5})
    folder.results.write_text(folder.results.read_text().replace("0.5", "0.99"))
    with pytest.warns(UserWarning, match="damaged"):
        assert folder.latest() == {}


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    folder = RunFolder(tmp_path, "run")
    with (
        folder.lock(),
        pytest.raises(RunLockedError, match=r"in use by pid \d+"),
        RunFolder(tmp_path, "run").lock(),
    ):
        pass
    with RunFolder(tmp_path, "run").lock():  # released afterwards
        pass


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/abs", "", ".hidden", "x" * 101])
def test_run_names_cannot_escape_the_runs_folder(tmp_path, name):
    with pytest.raises(ConfigError, match="run name"):
        RunFolder(tmp_path, name)


# --- a disk that fills up -------------------------------------------------------------------


def no_room(*_args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_record_cut_short_by_a_full_disk_is_taken_back_and_said_in_one_line(
    tmp_path, monkeypatch
):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a", "accuracy": 0.5})
    before = folder.results.read_bytes()
    real_write = os.write
    calls = []

    def half_then_full(fd, data):  # what a disk with room for half a line does
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        no_room()

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DiskFullError, match=r"disk full at .*results\.jsonl \(.* to write"):
        folder.append({"name": "b", "accuracy": 0.7, "pad": "x" * 500})
    monkeypatch.undo()
    assert len(calls) == 2  # one write, short; the second says why
    assert folder.results.read_bytes() == before  # the half line is gone again
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # so nothing is "damaged" on the next read
        assert list(folder.latest()) == ["a"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_write_atomic_on_a_full_disk_keeps_the_old_file_and_leaves_no_part(
    tmp_path, monkeypatch, code
):
    target = tmp_path / "report.html"
    target.write_text("old")

    def fails(_fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fails)
    with pytest.raises(DiskFullError, match=r"^disk full at .*report\.html") as caught:
        write_atomic(target, "new" * 1000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no .report.html.PID.part
    assert "\n" not in str(caught.value)
    if code == errno.EFBIG:
        assert "file size limit (ulimit -f)" in str(caught.value)
    if code == errno.ENOSPC:
        assert "3.0 kB to write" in str(caught.value) and " free)" in str(caught.value)


def test_an_interrupted_write_atomic_leaves_no_part(tmp_path, monkeypatch):
    def interrupted(_fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_errors_that_wrap_a_full_disk_are_recognised_and_others_are_not(tmp_path):
    wrapped = ExportError("ONNX export failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/a.onnx")
    full = as_disk_full(wrapped, tmp_path)
    assert full is not None and str(full).startswith("disk full at /x/a.onnx")
    quoted = RuntimeError(f"write failed: {os.strerror(errno.EDQUOT)}")  # only the words kept
    assert "quota" in str(as_disk_full(quoted, tmp_path / "f"))
    assert as_disk_full(RuntimeError("shapes differ"), tmp_path) is None
    assert as_disk_full(OSError(errno.ENOENT, "missing"), tmp_path) is None


def test_locking_a_folder_sweeps_the_temporary_files_of_dead_writers(tmp_path):
    folder = RunFolder(tmp_path, "run")
    folder.create()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = folder.path / f".report.html.{int(gone.stdout)}.part"
    dead.write_bytes(b"x" * 1000)
    dead_artifact = folder.artifacts / f".int8.onnx.{int(gone.stdout)}.part"
    dead_artifact.write_bytes(b"x")
    alive = folder.path / f".report.md.{os.getpid()}.part"  # a writer still at work
    alive.write_bytes(b"x")
    with folder.lock():
        pass
    assert not dead.exists() and not dead_artifact.exists()
    assert alive.exists()
