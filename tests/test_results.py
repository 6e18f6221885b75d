"""The run folder: durable records, damaged lines skipped, one writer at a time, no escapes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from edgeslim.errors import ConfigError, DiskFullError, ExportError, RunLockedError
from edgeslim.files import as_disk_full, write_atomic
from edgeslim.results import RunFolder, checksum, encode


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


# --- the format a run folder keeps, its lists, and the cases the tests above leave out ---------


def test_a_checksum_is_the_sha256_of_the_compact_sorted_record_without_its_checksum():
    """Pinned: records written by earlier versions must still verify."""
    record = {"name": "a", "x": [1, 2.5], "p": Path("/q"), "checksum": "anything"}
    text = b'{"name":"a","p":"/q","x":[1,2.5]}'
    assert checksum(record) == hashlib.sha256(text).hexdigest()[:16]


def test_a_record_is_encoded_as_one_line_of_what_a_reader_will_see():
    line = encode({"name": "a", "steps": ("prune", "quantize"), "file": Path("/runs/a.onnx")})
    summed = hashlib.sha256(b'{"file":"/runs/a.onnx","name":"a","steps":["prune","quantize"]}')
    assert line == (
        b'{"name": "a", "steps": ["prune", "quantize"], "file": "/runs/a.onnx", "checksum": "'
        + summed.hexdigest()[:16].encode()
        + b'"}\n'
    )


def test_a_folder_at_a_path_and_its_files(tmp_path):
    folder = RunFolder.at(tmp_path / "runs" / "exp")
    assert (folder.root, folder.name, folder.path) == (
        tmp_path / "runs",
        "exp",
        tmp_path / "runs" / "exp",
    )
    assert folder.results == tmp_path / "runs" / "exp" / "results.jsonl"
    assert folder.artifacts == tmp_path / "runs" / "exp" / "artifacts"


def test_a_name_that_is_a_link_out_of_the_runs_folder_is_refused(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs" / "exp").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as caught:
        RunFolder(tmp_path / "runs", "exp")
    assert str(caught.value) == (
        f"run name 'exp' must stay inside {tmp_path / 'runs'} (1-100 letters, digits, '.', '_', "
        "'+' or '-', starting with a letter or digit)"
    )


def test_current_is_the_experiment_s_candidates_and_every_trial_latest_first_seen_order(tmp_path):
    folder = RunFolder(tmp_path, "run")
    for record in [
        {"name": "a", "v": 1},
        {"name": "gone", "v": 1},  # no longer in the experiment
        {"name": "trial-0001", "trial": 1},
        {"name": "a", "v": 2},
        {"name": "b", "v": 1},
    ]:
        folder.append(record)
    current = [(r["name"], r.get("v")) for r in folder.current({"a", "b", "c"})]
    assert current == [("a", 2), ("trial-0001", None), ("b", 1)]


def test_blank_and_undecodable_lines_are_skipped_and_the_rest_read(tmp_path):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a"})
    with open(folder.results, "ab") as handle:
        handle.write(b"\n   \n\xff\xfe not text\n[1, 2]\n")  # blank, not UTF-8, not a record
    folder.append({"name": "b"})
    with pytest.warns(UserWarning) as caught:
        assert list(folder.latest()) == ["a", "b"]
    assert [str(w.message).split(": ", 1)[0] for w in caught] == [
        f"{folder.results}:4",
        f"{folder.results}:5",
    ]


def test_a_damaged_line_is_reported_past_read_in_so_many_words(tmp_path):
    folder = RunFolder(tmp_path, "run")
    folder.results.parent.mkdir(parents=True)
    folder.results.write_bytes(b'{"name": "a"}\n')  # no checksum: edited by hand
    with pytest.warns(UserWarning) as caught:
        assert folder.read() == []
    (warning,) = caught
    assert str(warning.message) == (
        f"{folder.results}:1: damaged record skipped (partly written or edited); its candidate "
        "will be redone"
    )
    # stacklevel 2: the warning points at read()'s caller, not at results.py (under mutmut the
    # caller is its trampoline, so the test asks only that)
    assert Path(warning.filename).name != "results.py"


def test_a_new_results_file_is_readable_by_all_and_writable_by_its_owner(tmp_path):
    old = os.umask(0o022)
    try:
        RunFolder(tmp_path, "run").append({"name": "a"})
    finally:
        os.umask(old)
    assert (tmp_path / "run" / "results.jsonl").stat().st_mode & 0o777 == 0o644


def test_a_short_write_is_completed_by_the_next_ones(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path, "run")
    real_write = os.write
    sizes = []

    def seven_bytes_at_a_time(fd, data):
        sizes.append(len(data))
        return real_write(fd, bytes(data[:7]))

    record = {"name": "a", "accuracy": 0.5}
    monkeypatch.setattr(os, "write", seven_bytes_at_a_time)
    folder.append(record)
    monkeypatch.undo()
    line = encode(record)
    assert sizes == list(range(len(line), 0, -7))  # each write: what is still left
    assert folder.results.read_bytes() == line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert folder.latest()["a"]["accuracy"] == 0.5


def test_a_write_that_writes_nothing_is_a_full_disk_and_is_taken_back(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a"})
    before = folder.results.read_bytes()
    real_write = os.write
    calls = []

    def ten_then_nothing(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:10])) if len(calls) == 1 else 0

    record = {"name": "b", "pad": "x" * 100}
    monkeypatch.setattr(os, "write", ten_then_nothing)
    with pytest.raises(DiskFullError) as caught:
        folder.append(record)
    monkeypatch.undo()
    assert len(calls) == 2
    assert str(caught.value).startswith(
        f"disk full at {folder.results} ({len(encode(record))} bytes to write, "
    )
    assert folder.results.read_bytes() == before


def test_bytes_another_writer_appended_after_a_half_line_are_not_cut_off(tmp_path, monkeypatch):
    """Our half line is not the file's tail any more: cutting back to where we began would
    take the other writer's record too, so the half line stays (and reads as damaged)."""
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a"})
    before = folder.results.read_bytes()
    real_write = os.write
    other = encode({"name": "other"})
    calls = []

    def half_then_someone_else_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:20]))
        with open(folder.results, "ab") as handle:
            handle.write(other)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    record = {"name": "b", "pad": "x" * 100}
    monkeypatch.setattr(os, "write", half_then_someone_else_then_full)
    with pytest.raises(DiskFullError):
        folder.append(record)
    monkeypatch.undo()
    assert folder.results.read_bytes() == before + encode(record)[:20] + other


def test_a_failing_cut_back_still_raises_the_full_disk(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path, "run")
    folder.append({"name": "a"})
    real_write = os.write

    calls = []

    def half_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:20]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def refused(_fd, _size):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "write", half_then_full)
    monkeypatch.setattr(os, "ftruncate", refused)
    with pytest.raises(DiskFullError, match=r"^disk full at .*results\.jsonl") as caught:
        folder.append({"name": "b", "pad": "x" * 100})
    assert len(calls) == 2
    assert caught.value.__cause__.errno == errno.ENOSPC  # the write's error, not the cut's


def test_a_full_disk_when_opening_or_creating_names_the_results_file_or_the_folder(
    tmp_path, monkeypatch
):
    """Neither error names a file: the line names what was being written, and what it needed."""
    folder = RunFolder(tmp_path, "run")
    folder.create()
    record = {"name": "a", "accuracy": 0.5}

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "open", full)
    with pytest.raises(DiskFullError) as caught:
        folder.append(record)
    assert str(caught.value).startswith(
        f"disk full at {folder.results} ({len(encode(record))} bytes to write, "
    )
    monkeypatch.undo()
    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(DiskFullError) as caught:
        RunFolder(tmp_path, "other").create()
    assert str(caught.value).startswith(f"disk full at {tmp_path / 'other'} (")


def test_sweeping_returns_what_it_removed_and_skips_what_it_cannot_remove(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path, "run")
    folder.create()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(gone.stdout)
    removable = folder.artifacts / f".a.onnx.{pid}.part"
    stuck = folder.path / f".report.html.{pid}.part"
    kept = folder.path / f"report.html.{pid}.part"  # not a temporary file's name
    for path in (removable, stuck, kept):
        path.write_bytes(b"x")
    real_unlink = Path.unlink

    def unlink(path, *args, **kwargs):
        if path == stuck:
            raise PermissionError(errno.EACCES, "refused", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    assert folder.sweep() == [removable]
    assert stuck.exists() and kept.exists() and not removable.exists()
    assert RunFolder(tmp_path, "never-made").sweep() == []


def test_an_unused_folder_is_removed_with_an_empty_root_and_a_used_one_is_kept(tmp_path):
    def folder_with(*names: str, artifact: bool = False, root: str = "runs") -> RunFolder:
        folder = RunFolder(tmp_path / root, "exp")
        folder.create()
        for name in names:
            (folder.path / name).write_text("x")
        if artifact:
            (folder.artifacts / "a.onnx").write_text("x")
        return folder

    unused = folder_with(".lock", "experiment.json", "examples.json")  # all three: still unused
    assert unused.remove_unused(also_root=True) is True
    assert not (tmp_path / "runs").exists()  # the root was empty: removed too
    alone = folder_with(".lock", root="shared")
    RunFolder(tmp_path / "shared", "other").create()
    assert alone.remove_unused(also_root=True) is True
    assert not alone.path.exists() and (tmp_path / "shared" / "other").is_dir()  # root stays
    kept_root = folder_with(root="kept")
    assert kept_root.remove_unused() is True and (tmp_path / "kept").is_dir()
    with_results = folder_with(".lock", "results.jsonl", root="r1")
    assert with_results.remove_unused(also_root=True) is False
    assert sorted(p.name for p in with_results.path.iterdir()) == [
        ".lock",
        "artifacts",
        "results.jsonl",
    ]
    with_artifact = folder_with(".lock", artifact=True, root="r2")
    assert with_artifact.remove_unused() is False and (with_artifact.artifacts / "a.onnx").exists()
    no_artifacts = RunFolder(tmp_path / "r3", "exp")
    no_artifacts.path.mkdir(parents=True)
    (no_artifacts.path / ".lock").write_text("x")
    assert no_artifacts.remove_unused() is True and not no_artifacts.path.exists()
    missing = RunFolder(tmp_path / "r4", "exp")
    assert missing.remove_unused() is False  # nothing there: nothing removed


def test_a_lock_block_that_fails_in_a_folder_it_made_leaves_nothing_behind(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="model broken"), RunFolder(runs, "exp").lock():
        (runs / "exp" / "experiment.json").write_text("{}")
        raise RuntimeError("model broken")
    assert not runs.exists()
    kept = RunFolder(runs, "exp")
    kept.append({"name": "a"})
    with pytest.raises(RuntimeError), kept.lock():
        raise RuntimeError("model broken")
    assert kept.results.exists()  # it was there before: the folder stays
