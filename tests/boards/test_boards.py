"""Measuring on a board over SSH, against a simulated board: a real sshd on a loopback port, and
a device Python with numpy and onnxruntime only (no torch, no edgeslim)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import edgeslim as es
from edgeslim.boards import Board, BoardConfig
from edgeslim.boards.probe import check
from edgeslim.errors import BoardError, BoardFault, ConfigError
from tests.boards.simulated import CuttableLink, board_config
from tests.ci import missing
from tests.conftest import QUICK

# long enough that two measurements started together overlap unless something serialises them
SLOW = replace(QUICK, throughput_seconds=0.6)


def test_the_device_python_has_numpy_and_the_runtime_only(device_env):
    for module, importable in (("numpy", 0), ("onnxruntime", 0), ("torch", 1), ("edgeslim", 1)):
        # as the board runs it: no PYTHONPATH of this host's (a source checkout) leaks in
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [str(device_env), "-c", f"import {module}"], capture_output=True, env=env
        )
        assert (done.returncode != 0) == bool(importable), module


@pytest.mark.slow
def test_a_remote_measurement_gives_the_local_figures_and_says_where(
    board_server, device_env, small_cnn_onnx, digits
):
    local = es.measure(small_cnn_onnx, digits, QUICK)
    remote = es.measure(
        small_cnn_onnx, digits, QUICK, board=Board(board_config(board_server, device_env))
    )
    assert set(remote) == set(local)  # the same metrics, none lost on the way
    assert remote["accuracy"] == local["accuracy"] > 0.9
    assert remote["storage_kb"] == local["storage_kb"]
    how = remote["measured_with"]
    assert how["device"] == {"board": "loop", "ssh": board_server.target()}
    assert local["measured_with"]["device"] == {"board": None}
    assert how["uname"] and how["cpu"] and how["cpu_count"] >= 1 and how["host"]
    assert how["runtime"] == "onnxruntime" and how["runtime_version"]
    assert how["torch_loaded_in_worker"] is False
    assert board_server.leftovers() == []  # the temporary folder is gone


def test_an_unknown_host_key_is_refused_and_never_added(board_server, device_env, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    board = Board(board_config(board_server, device_env, known_hosts=str(empty)))
    with pytest.raises(BoardError, match="not in known_hosts"):
        check(board)
    assert empty.read_text() == ""  # not silently accepted


def test_a_changed_host_key_is_refused(board_server, device_env, tmp_path):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")],
        check=True,
    )
    kind, key = (tmp_path / "impostor.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{board_server.port} {kind} {key}\n")
    board = Board(board_config(board_server, device_env, known_hosts=str(wrong)))
    with pytest.raises(BoardError, match="CHANGED"):
        check(board)


def test_a_login_without_the_key_is_refused(board_server, device_env, tmp_path):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")],
        check=True,
    )
    board = Board(board_config(board_server, device_env, identity=str(tmp_path / "stranger")))
    with pytest.raises(BoardError, match="refused the login; edgeslim logs in with a key"):
        check(board)


def start_measuring(board: Board, path: Path, data, settings=SLOW) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go() -> None:
        try:
            out["record"] = es.measure(path, data, settings, board=board)
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    return thread, out


def walls(*outs: dict) -> list[tuple[float, float]]:
    return [tuple(out["record"]["measured_with"]["worker_wall"]) for out in outs]


@pytest.mark.slow
def test_one_board_serves_one_measurement_at_a_time(
    board_server, device_env, small_cnn_onnx, digits
):
    config = board_config(board_server, device_env)
    runs = [start_measuring(Board(config), small_cnn_onnx, digits) for _ in range(2)]
    for thread, _ in runs:
        thread.join(timeout=120)
    (_, first_end), (second_start, _) = sorted(walls(*(out for _, out in runs)))
    assert first_end <= second_start  # serialised by the board's lock


@pytest.mark.slow
def test_a_pool_of_two_boards_serves_two_measurements_at_once(
    board_server, second_board, device_env, small_cnn_onnx, digits, tmp_path
):
    known = tmp_path / "known_hosts"
    known.write_text(board_server.known_hosts.read_text() + second_board.known_hosts.read_text())
    config = board_config(
        board_server,
        device_env,
        ssh=[board_server.target(), second_board.target()],
        known_hosts=str(known),
    )
    runs = [start_measuring(Board(config), small_cnn_onnx, digits) for _ in range(2)]
    for thread, _ in runs:
        thread.join(timeout=120)
    outs = [out for _, out in runs]
    (_, first_end), (second_start, _) = sorted(walls(*outs))
    assert second_start < first_end  # in parallel
    used = {out["record"]["measured_with"]["device"]["ssh"] for out in outs}
    assert used == {board_server.target(), second_board.target()}


def worker_processes_in(folder: Path) -> list[int]:
    """Processes whose working folder is under ``folder`` (a worker left running)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in str((proc / "cwd").resolve()):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def wait_until(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_a_hung_worker_is_stopped_retried_and_reported(
    board_server, device_env, small_cnn_onnx, digits, monkeypatch
):
    monkeypatch.setenv("EDGESLIM_FAULT", "hang")
    board = Board(board_config(board_server, device_env, retries=1, retry_wait_s=0))
    started = time.monotonic()
    with pytest.raises(BoardFault, match="failed 2 times.*ran past 3 s"):
        es.measure(small_cnn_onnx, digits, replace(QUICK, timeout_s=3), board=board)
    assert time.monotonic() - started < 60
    assert wait_until(lambda: not board_server.leftovers())
    assert wait_until(lambda: not worker_processes_in(board_server.board_tmp))


def test_hostile_names_reach_neither_the_shell_nor_the_file_system(
    board_server, device_env, small_cnn_onnx, digits, tmp_path
):
    # relative names: a shell that ran them would create them in its folder (the login's home)
    names = [f"edgeslim-pwned-{tmp_path.name}-{i}" for i in range(3)]
    hostile_file = tmp_path / f"$(touch {names[0]}).onnx"
    hostile_file.write_bytes(small_cnn_onnx.read_bytes())
    workdir = tmp_path / f"w; touch {names[1]}"
    board = Board(board_config(board_server, device_env, workdir=str(workdir)))
    candidate = es.Candidate(f"x; touch {names[2]}", artifact=hostile_file)
    record = es.measure(candidate, digits, QUICK, board=board)
    assert record["accuracy"] > 0.9
    places = {Path.home(), Path.cwd(), tmp_path, board_server.board_tmp}
    assert not any((place / name).exists() for place in places for name in names)
    assert workdir.is_dir()  # the odd name was taken literally, as a folder name
    assert not list(workdir.glob("edgeslim-run-*"))
    with pytest.raises(ValueError, match="not an SSH destination"):
        BoardConfig(name="b", ssh="pi@host; rm -rf ~")
    with pytest.raises(ValueError, match="not an SSH destination"):
        BoardConfig(name="b", ssh="-oProxyCommand=touch /tmp/x")


def dropped_link_experiment(config: BoardConfig) -> dict:
    from tests.experiments import MEASURE

    return {
        "name": "on-board",
        "model": "small-cnn",
        "data": "digits",
        "train": {"epochs": 2},
        "candidates": ["int8-dynamic"],
        "measure": {**MEASURE, "throughput_seconds": 0.5},
        "device": config.model_dump(exclude_defaults=True),
        "objectives": ["accuracy", "latency_p95_ms"],
    }


@pytest.mark.slow
def test_a_dropped_connection_is_retried_then_recorded_and_the_run_resumes(
    board_server, device_env, tmp_path
):
    link = CuttableLink(board_server.port)
    known = tmp_path / "known_hosts"
    known.write_text(board_server.host_line(link.port))
    config = board_config(
        board_server, device_env, ssh=board_server.target(link.port), known_hosts=str(known)
    )
    experiment = es.config.parse(dropped_link_experiment(config))

    def cut_mid_measurement() -> None:
        def worker_started() -> bool:
            return any(
                (board_server.board_tmp / d / "stderr.txt").exists()
                for d in board_server.leftovers()
            )

        if wait_until(worker_started, 120):
            time.sleep(0.3)
            link.cut()

    cutter = threading.Thread(target=cut_mid_measurement)
    cutter.start()
    said: list[str] = []
    outcome = es.run(experiment, tmp_path / "runs", say=said.append, show_progress=False)
    cutter.join()
    records = {r["name"]: r for r in outcome.records}
    assert set(records) == {"baseline", "int8-dynamic"}  # nothing lost: each has its record
    for record in records.values():
        assert record["status"] == "failed"
        assert "board loop: failed 2 times" in record["error"]
    assert any("retrying (1/1)" in line for line in said)
    assert wait_until(lambda: not board_server.leftovers())  # the board cleaned up after itself
    assert wait_until(lambda: not worker_processes_in(board_server.board_tmp))

    link.mend()
    again = es.run(
        experiment, tmp_path / "runs", say=said.append, show_progress=False, retry_failed=True
    )
    assert {r["name"]: r["status"] for r in again.records} == {
        "baseline": "ok",
        "int8-dynamic": "ok",
    }
    assert again.records[0]["measured_with"]["device"]["board"] == "loop"
    report = again.reports["markdown"].read_text()
    assert "measured on board loop over SSH" in report  # the run, and each machine it used:
    assert f"measured on board loop over SSH ({config.ssh[0]}): " in report
    link.close()


def write_devices_file(path: Path, config: BoardConfig, **changes) -> Path:
    import yaml

    settings = {**config.model_dump(exclude_defaults=True, exclude={"name"}), **changes}
    path.write_text(yaml.safe_dump({config.name: settings}))
    return path


def edgeslim_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", **env},
    )


def test_devices_check_reports_what_the_board_has(board_server, device_env, tmp_path):
    config = board_config(board_server, device_env)
    devices = write_devices_file(tmp_path / "devices.yaml", config)
    out = edgeslim_cli("devices", "check", "loop", env={"EDGESLIM_DEVICES": str(devices)})
    assert out.returncode == 0, out.stderr
    import numpy
    import onnxruntime

    for fact in ("cores", "MB free", "MHz", numpy.__version__, onnxruntime.__version__):
        assert fact in out.stdout
    listed = edgeslim_cli("devices", env={"EDGESLIM_DEVICES": str(devices)})
    assert "loop" in listed.stdout and "cortex-a53" in listed.stdout
    # a board without the runtime it promises: check says so and fails
    write_devices_file(devices, config, runtimes=["openvino"])
    out = edgeslim_cli("devices", "check", "loop", env={"EDGESLIM_DEVICES": str(devices)})
    assert out.returncode == 1 and "not installed" in out.stdout


@pytest.mark.slow
def test_calibration_replaces_the_assumed_slowdown_in_host_budgets(
    board_server, device_env, tmp_path, monkeypatch
):
    config = board_config(board_server, device_env, profile="cortex-a53")
    devices = write_devices_file(tmp_path / "devices.yaml", config)
    monkeypatch.setenv("EDGESLIM_DEVICES", str(devices))
    experiment = {"name": "x", "model": "small-cnn", "device": "loop"}
    on_board = es.config.parse(experiment)
    assert on_board.on_board and "latency_p95_ms <= 33" in on_board.budget.describe()
    assumed = es.config.parse({**experiment, "measure": {"where": "host"}})
    assert not assumed.on_board and "latency_p95_ms <= 4.125" in assumed.budget.describe()
    assert assumed.slowdown["source"] == "assumed by the profile cortex-a53"

    out = edgeslim_cli(
        "devices", "calibrate", "loop", "--models", "small-cnn,lenet5", "--runs", "100",
        env={"EDGESLIM_DEVICES": str(devices)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    stored = es.boards.calibration("loop")
    assert stored["models"] == ["small-cnn", "lenet5"]
    # the same machine on both ends: a slowdown near 1, whatever the noise
    assert 0.3 < stored["slowdown"] < 3 and stored["board_host"]
    # each ratio is the board's p50 over the host's as measured (rounded to 4 places), and the
    # slowdown their median: a calibrate storing 1.0 (or anything not measured) fails here
    ratios = []
    for name, figures in stored["per_model"].items():
        measured = figures["board_p50_ms"] / figures["host_p50_ms"]
        assert figures["ratio"] == pytest.approx(measured, rel=0.01, abs=0.002), name
        ratios.append(figures["ratio"])
    assert stored["slowdown"] == pytest.approx(statistics.median(ratios), abs=0.001)
    calibrated = es.config.parse({**experiment, "measure": {"where": "host"}})
    bound = 33 / stored["slowdown"]
    assert f"latency_p95_ms <= {round(bound, 6):g}" in calibrated.budget.describe()
    assert "measured by edgeslim devices calibrate loop" in calibrated.slowdown["source"]


def test_board_settings_are_checked_before_any_work(
    board_server, device_env, monkeypatch, tmp_path
):
    monkeypatch.setenv("EDGESLIM_DEVICES", str(tmp_path / "none.yaml"))
    config = board_config(board_server, device_env).model_dump(exclude_defaults=True)
    base = {"name": "x", "model": "small-cnn"}
    with pytest.raises(
        ConfigError, match="unknown device profile 'pi9', and no board of that name.*boards: none"
    ):
        es.config.parse({**base, "device": "pi9"})
    with pytest.raises(ConfigError, match="board loop has .*onnxruntime.*not .*openvino"):
        es.config.parse({**base, "device": config, "runtimes": ["openvino"]})
    with pytest.raises(ConfigError, match="device.*ssh"):
        es.config.parse({**base, "device": {**config, "ssh": "pi@a b"}})
    with pytest.raises(ConfigError, match="measure.where: host is for a board"):
        es.config.parse({**base, "measure": {"where": "host"}})
    with pytest.raises(ConfigError, match="devices calibrate loop"):
        es.config.parse(
            {
                **base,
                "device": {**config, "budget": {"latency_p95_ms": 30}},
                "measure": {"where": "host"},
            }
        )


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KB file system: the board's disk, full before the model is unpacked."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_on_the_board_is_retried_then_reported(
    board_server, device_env, small_cnn_onnx, digits, tiny_disk
):
    board = Board(board_config(board_server, device_env, workdir=str(tiny_disk), retry_wait_s=0))
    with pytest.raises(BoardFault, match="failed 2 times.*No space left on device"):
        es.measure(small_cnn_onnx, digits, QUICK, board=board)
    assert [p.name for p in tiny_disk.iterdir()] == ["edgeslim-board.lock"]  # nothing left


@pytest.mark.slow
def test_a_board_that_comes_back_after_a_drop_gets_the_retry(
    board_server, device_env, small_cnn_onnx, digits, tmp_path
):
    """A reboot, as the host sees it: the link drops mid-measurement, then answers again."""
    link = CuttableLink(board_server.port)
    known = tmp_path / "known_hosts"
    known.write_text(board_server.host_line(link.port))
    said: list[str] = []
    board = Board(
        board_config(
            board_server,
            device_env,
            ssh=board_server.target(link.port),
            known_hosts=str(known),
            retry_wait_s=2,
        ),
        say=said.append,
    )

    def reboot() -> None:
        if wait_until(lambda: any(board_server.board_tmp.glob("edgeslim-run-*/stderr.txt"))):
            link.cut()
            time.sleep(1)
            link.mend()

    rebooter = threading.Thread(target=reboot)
    rebooter.start()
    record = es.measure(small_cnn_onnx, digits, SLOW, board=board)
    rebooter.join()
    link.close()
    assert record["accuracy"] > 0.9
    assert len(said) == 1 and "retrying (1/1)" in said[0]


def test_a_missing_ssh_client_is_a_clear_error(board_server, device_env, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BoardError, match="OpenSSH client .ssh. is not installed"):
        check(Board(board_config(board_server, device_env)))


def test_calibration_stores_the_median_of_the_measured_ratios(tmp_path, monkeypatch):
    """Hand-set latencies (host 1, 2, 4 ms; board 3, 10, 32 ms: ratios 3, 5, 8): the stored
    slowdown is their median, 5, not their mean or a constant; each ratio is kept per model."""
    from types import SimpleNamespace

    from edgeslim.measure import calibrate as calibration
    from edgeslim.measure.calibrate import calibrate

    monkeypatch.setenv("EDGESLIM_DEVICES", str(tmp_path / "devices.yaml"))
    p50 = {"small-cnn": (1.0, 3.0), "lenet5": (2.0, 10.0), "mlp": (4.0, 32.0)}
    built = iter(p50)

    def fake_measure(model, data, settings, board=None):
        name = model.name
        here, there = p50[name]
        where = {"cpu": "host cpu" if board is None else "board cpu", "host": "pi"}
        return {"latency_p50_ms": there if board else here, "measured_with": where}

    def fake_build(name, spec):
        return SimpleNamespace(name=next(built), eval=lambda: SimpleNamespace(name=name))

    monkeypatch.setattr(calibration, "measure", fake_measure)
    monkeypatch.setattr(calibration, "build", fake_build)
    board = SimpleNamespace(name="pi", config=SimpleNamespace(runtimes=["onnxruntime"]))
    said: list[str] = []
    entry = calibrate(board, tuple(p50), say=said.append)
    assert entry["slowdown"] == 5.0
    assert {m: v["ratio"] for m, v in entry["per_model"].items()} == {
        "small-cnn": 3.0, "lenet5": 5.0, "mlp": 8.0
    }  # fmt: skip
    assert es.boards.calibration("pi")["slowdown"] == 5.0  # stored for budgets to use
    assert entry["board_cpu"] == "board cpu" and entry["host_cpu"] == "host cpu"
    assert said[1] == "lenet5: 2.000 ms here, 10.000 ms on pi: 5.00x"


@pytest.mark.parametrize(
    "entry", ["../escape.txt", "/tmp/absolute.txt", "sub/dir.txt", "link", "folder"]
)
def test_the_board_refuses_a_payload_entry_outside_its_folder(entry, tmp_path):
    """bootstrap.unpack runs on the board: only plain files named inside the folder."""
    import io
    import tarfile

    from edgeslim.boards.bootstrap import unpack

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(entry)
        if entry == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif entry == "folder":
            info.type = tarfile.DIRTYPE
        else:
            info.size = 2
        archive.addfile(info, io.BytesIO(b"hi") if info.isfile() else None)
        good = tarfile.TarInfo("request.json")
        good.size = 2
        archive.addfile(good, io.BytesIO(b"{}"))
    folder = tmp_path / "work"
    folder.mkdir()
    with pytest.raises(ValueError, match="refused payload entry"):
        unpack(buffer.getvalue(), str(folder))
    assert not any(folder.iterdir()) and not (tmp_path / "escape.txt").exists()


@pytest.fixture
def board_here(tmp_path, monkeypatch):
    """A board whose "ssh" runs the bootstrap on this machine, in ``tmp_path``: the real lock
    protocol (the bootstrap's ``flock``, its ``busy`` and ``locked`` answers) without sshd, so
    the lock-wait tests run everywhere. Returns a Board factory and the lock file's path."""
    import edgeslim.boards.ssh

    monkeypatch.setattr(edgeslim.boards.ssh, "ssh_argv", lambda target, remote, options: remote)

    def make(lock_wait_s: float, said: list[str]) -> Board:
        config = BoardConfig(
            name="here",
            ssh="me@127.0.0.1",
            python=sys.executable,
            workdir=str(tmp_path),
            lock_wait_s=lock_wait_s,
        )
        return Board(config, say=said.append)

    return make, tmp_path / "edgeslim-board.lock"


@contextlib.contextmanager
def holding(lock_file: Path):
    """The board's lock taken as another measurement would (the same ``flock``)."""
    with open(lock_file, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
        fcntl.flock(held, fcntl.LOCK_UN)


def acquiring(board: Board) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go() -> None:
        started = time.monotonic()
        try:
            out["channel"], out["target"] = board.acquire(timeout_s=30)
        except Exception as exc:
            out["error"] = exc
        out["waited_s"] = time.monotonic() - started

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


def test_a_busy_board_is_waited_for_and_taken_once_free(board_here):
    """lock_wait_s is the longest wait, not a refusal at the first 'busy': the second holder
    keeps asking while the lock is held, and takes the board once it is released."""
    make, lock_file = board_here
    said: list[str] = []
    with holding(lock_file):
        thread, out = acquiring(make(lock_wait_s=600, said=said))
        assert wait_until(lambda: said or out, seconds=60), "no answer from the board"
        assert said == ["board here: busy, waiting for it"], out  # told busy, still waiting
        time.sleep(1.5)  # a few more polls (every 0.5 s): it keeps waiting while held
        assert thread.is_alive() and not out, out
    thread.join(timeout=60)
    assert not thread.is_alive(), "the board was released but never taken"
    assert "error" not in out, out["error"]
    channel = out["channel"]
    try:
        with pytest.raises(BlockingIOError), open(lock_file, "a") as probe:  # now it holds it
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        channel.close()
    assert out["waited_s"] >= 1.5


def test_a_board_busy_for_longer_than_lock_wait_s_is_refused_with_a_clear_error(board_here):
    """Held throughout: refused with a BoardError (not a fault to retry) naming the board and
    the wait, after at least lock_wait_s and well before the default hour."""
    make, lock_file = board_here
    said: list[str] = []
    with holding(lock_file):
        thread, out = acquiring(make(lock_wait_s=2, said=said))
        thread.join(timeout=90)  # 2 s asked; the slack is for a busy machine, not the code
        assert not thread.is_alive(), "lock_wait_s was not honoured: still waiting after 90 s"
    error = out.get("error")
    assert isinstance(error, BoardError) and not isinstance(error, BoardFault), out
    assert re.fullmatch(
        r"board here: no board of \['me@127\.0\.0\.1'\] was free for 2 s", str(error)
    ), str(error)
    assert out["waited_s"] >= 2  # it waited the time asked, not refused at the first 'busy'
    assert said == ["board here: busy, waiting for it"]  # said once, not once per poll
