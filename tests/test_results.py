"""The run folder: durable records, damaged lines skipped, one writer at a time, no escapes."""

from __future__ import annotations

import json

import pytest

from edgeslim.errors import ConfigError, RunLockedError
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
    with pytest.warns(UserWarning, match="damaged"):
        assert list(folder.latest()) == ["a", "c"]


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
