"""Fault injection: bad inputs, crashing and hanging measurements, a full disk, malicious files,
a run killed at random points and one interrupted by Ctrl-C. Each case checks the clear error
*and* that the results written before it are intact. The counts in the README's reliability
table come from here."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeslim as es
from edgeslim import config, interrupts, names
from edgeslim.data import load
from edgeslim.errors import ConfigError, DataError, UntrustedFileError
from edgeslim.results import RunFolder
from tests.ci import missing
from tests.experiments import MEASURE, experiment_dict, reuse_baseline

CONFIG_EXAMPLES = 300
DATA_EXAMPLES = 150
KILLS = 20
INTERRUPTS = 12

# --- bad input: property-based ----------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["<= 2", ">= 0.9", "<= -1", "== 3", "fp16", "int8-static", "../x", "a/b"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["name", "model", "data", "train", "candidates", "measure", "budget", "objectives",
        "device", "search", "weights", "bogus"]  # fmt: skip


@pytest.mark.slow
@settings(max_examples=CONFIG_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8), st.booleans())
def test_any_experiment_file_is_accepted_or_refused_with_a_config_error(raw, named):
    if named:
        raw = {"name": "t", "model": "small-cnn", **raw}
    # what must be refused, whatever else the file holds: an unknown key, a missing name or
    # model, a name that is not a valid run name, a model that is not a reference
    must_refuse = (
        "bogus" in raw
        or not isinstance(raw.get("name"), str)
        or not isinstance(raw.get("model"), str)
        or names.NAME.fullmatch(raw["name"]) is None
    )
    try:
        experiment = config.parse(raw)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line that says what is wrong
    else:  # accepted: then it is fully usable, and it was not one that must be refused
        assert not must_refuse, raw
        assert experiment.config.name == raw["name"] and experiment.measure_settings()


@settings(max_examples=DATA_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(0, 40),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    poison=st.sampled_from([None, "nan", "inf", "label-high", "label-negative", "label-float"]),
    classes=st.integers(1, 4),
)
def test_any_array_dataset_loads_or_is_refused_with_a_data_error(
    tmp_path_factory, n, shape, poison, classes
):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    if x.size and poison == "nan":
        x.flat[0] = np.nan
    elif x.size and poison == "inf":
        x.flat[-1] = np.inf
    elif n and poison == "label-high":
        y[0] = 10**6
    elif n and poison == "label-negative":
        y[0] = -1
    elif n and poison == "label-float":
        y = y.astype(np.float32) + 0.5
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    np.savez(path, x=x, y=y, num_classes=np.array(classes))  # labels must stay below it
    try:
        data = load(f"npz:{path}")
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert poison is None and x.size > 0
        for split in (data.train, data.val, data.test):
            assert len(split) > 0 and np.isfinite(split.x).all()
            assert split.y.min() >= 0 and split.y.max() < data.spec.num_classes


# --- untrusted files ----------------------------------------------------------------------


def test_onnx_external_data_outside_the_model_folder_is_refused(small_cnn_onnx, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    model = onnx.load(str(small_cnn_onnx))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    (tmp_path / "models").mkdir()
    evil = tmp_path / "models" / "evil.onnx"
    onnx.save(model, str(evil))
    before = secret.stat().st_atime_ns
    with pytest.raises(UntrustedFileError, match="outside the model's folder"):
        es.measure(evil, "digits")
    assert secret.stat().st_atime_ns == before


def test_an_oversized_model_file_is_refused_before_it_is_parsed(small_cnn_onnx, monkeypatch):
    from edgeslim import graph

    monkeypatch.setattr(graph, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(DataError, match="over the 1,000-byte limit"):
        es.measure(small_cnn_onnx, "digits")


# --- isolation: the measuring process crashes, hangs, or runs out of memory ---------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, measure, status, reason",
    [
        ("segfault", {}, "failed", "killed by SIGSEGV"),
        ("hang", {"timeout_s": 3}, "failed", "timed out after 3 s"),
        ("oom", {"memory_limit_mb": 64}, "does-not-fit", "does not fit in 64 MB"),
    ],
)
def test_a_crashing_measurement_is_recorded_and_the_run_goes_on(
    first_run, tmp_path, monkeypatch, fault, measure, status, reason
):
    folder = reuse_baseline(first_run, RunFolder(tmp_path, "faulty"))
    exp = experiment_dict("faulty", candidates=["fp16"], measure={**MEASURE, **measure})
    folder.append({"name": "earlier", "status": "ok", "accuracy": 0.5})
    before = folder.results.read_bytes()
    monkeypatch.setenv("EDGESLIM_FAULT", fault)
    outcome = es.run(config.parse(exp), tmp_path, say=lambda _: None, show_progress=False)
    records = {r["name"]: r for r in folder.read()}
    for name in ("baseline", "fp16"):  # both tried, both recorded, the run finished
        assert records[name]["status"] == status
        assert reason in (records[name].get("error") or records[name].get("does_not_fit"))
    assert folder.results.read_bytes().startswith(before)  # earlier results intact
    assert outcome.reports["html"].is_file()


# --- durability -----------------------------------------------------------------------------


def test_a_full_disk_fails_the_write_loudly_and_keeps_what_was_there(tmp_path):
    folder = RunFolder(tmp_path, "full")
    for i in range(3):
        folder.append({"name": f"c{i}", "status": "ok", "accuracy": 0.9, "pad": "x" * 100})
    before = folder.results.read_bytes()
    script = textwrap.dedent(
        f"""
        import resource, signal
        from edgeslim.results import RunFolder
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, like ENOSPC
        folder = RunFolder({str(tmp_path)!r}, "full")
        size = folder.results.stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, size + 40))
        folder.append({{"name": "big", "status": "ok", "pad": "y" * 4000}})
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode != 0
    assert "DiskFullError: disk full at" in done.stderr and "ulimit -f" in done.stderr
    assert folder.results.read_bytes() == before  # the 40 bytes that fitted were taken back
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no damaged line to skip
        names = [r["name"] for r in folder.read()]
    assert names == ["c0", "c1", "c2"]
    folder.append({"name": "after", "status": "ok"})  # and the file is still usable
    assert [r["name"] for r in RunFolder(tmp_path, "full").read()][-1] == "after"


@pytest.fixture
def tiny_disk(tmp_path):
    """Mount a tmpfs of the size asked for (``tiny_disk(\"256k\")``); ``resize`` frees space."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
        )
        if done.returncode != 0:
            missing(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def cli_run(exp_file: Path, runs: Path) -> list[str]:
    return [sys.executable, "-m", "edgeslim.cli", "run", str(exp_file), "--runs", str(runs)]


def intact(folder: RunFolder) -> list[dict]:
    """Every record, with no damaged line among them (a warning would be an error here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return RunFolder(folder.root, folder.name).read()


def leftovers(root: Path) -> list[Path]:
    """Temporary files nobody will finish: ``.NAME.PID.part``, ``.NAME.compact``."""
    return [p for p in root.rglob(".*") if p.name.endswith((".part", ".compact"))]


def disk_full_case(first_run, tmp_path, runs: Path, name: str, limit=None):
    """A run of three candidates on a disk too small for it, then a rerun with room."""
    exp = experiment_dict(name, candidates=["int8-static", "fp16"])
    exp_file = tmp_path / f"{name}.yaml"
    exp_file.write_text(yaml.safe_dump(exp))
    folder = reuse_baseline(first_run, RunFolder(runs, name))
    folder.append({"name": "earlier", "status": "ok", "accuracy": 0.5})
    before = folder.results.read_bytes()

    def fsize():  # in the child: the file size limit, as `ulimit -f` sets it
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = subprocess.run(
        cli_run(exp_file, runs),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=fsize if limit else None,
    )
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert full.returncode == 2, full.stderr
    assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr
    assert re.match(rf"error: disk full at {re.escape(str(folder.path))}/", errors[0]), errors
    assert f"every finished candidate is kept in {folder.results}" in errors[0]
    assert leftovers(runs) == []
    for artifact in folder.artifacts.glob("*.onnx"):  # what is there is whole
        onnx.checker.check_model(str(artifact))
    kept = intact(folder)
    assert folder.results.read_bytes().startswith(before)
    return exp_file, folder, kept, errors[0]


def rerun_completes(exp_file: Path, folder: RunFolder, kept: list[dict]) -> None:
    done = subprocess.run(
        cli_run(exp_file, folder.root), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    final = intact(folder)
    assert {r["checksum"] for r in kept} <= {r["checksum"] for r in final}  # nothing lost
    names = [r["name"] for r in final]
    assert sorted(names) == sorted({"earlier", "baseline", "int8-static", "fp16"})  # once each
    for record in kept:
        if record["name"] != "earlier":
            assert f"{record['name']}: already ok, kept" in done.stdout
    assert leftovers(folder.root) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "size, where",
    [
        ("160k", "artifacts while building baseline ("),  # its export does not fit
        ("256k", "artifacts while building "),  # a quantized candidate's file does not fit
    ],
)
def test_a_full_disk_ends_the_run_in_one_line_and_a_rerun_with_room_completes(
    first_run, tmp_path, tiny_disk, size, where
):
    disk = tiny_disk(size)
    exp_file, folder, kept, error = disk_full_case(first_run, tmp_path, disk, "full")
    assert where in error
    resize(disk, "64m")  # space freed
    rerun_completes(exp_file, folder, kept)


@pytest.mark.slow
def test_the_file_size_limit_ends_the_run_in_one_line_and_a_rerun_without_it_completes(
    first_run, tmp_path
):
    """``ulimit -f``: EFBIG, where SIGXFSZ would otherwise kill the run without a word."""
    runs = tmp_path / "runs"
    exp_file, folder, kept, error = disk_full_case(
        first_run, tmp_path, runs, "fsize", limit=1_000_000
    )
    # every candidate fits under the limit; the 5 MB report does not
    assert "report.html (the file size limit (ulimit -f) was reached)" in error
    assert {r["name"] for r in kept} == {"earlier", "baseline", "int8-static", "fp16"}
    rerun_completes(exp_file, folder, kept)


# --- a run killed at random points ----------------------------------------------------------


@pytest.mark.slow
def test_a_run_killed_at_random_points_ends_with_every_candidate_measured_once(first_run, tmp_path):
    exp = experiment_dict("kill-loop")
    exp["candidates"] = [
        "int8-static",
        "fp16",
        {"name": "sparse", "recipe": [{"prune": {"kind": "unstructured", "sparsity": 0.5}}]},
    ]
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(exp))
    folder = reuse_baseline(first_run, RunFolder(tmp_path / "runs", "kill-loop"))
    command = [
        sys.executable,
        "-m",
        "edgeslim.cli",
        "run",
        str(exp_file),
        "--runs",
        str(folder.root),
    ]
    rng = random.Random(0)
    seen: dict[str, str] = {}  # every intact record line ever seen, by checksum
    kills = 0
    deadline = time.monotonic() + 900  # 90 s alone here; room for a slower or busy machine
    while kills < KILLS and time.monotonic() < deadline:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 6.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for record in folder.read():
                seen[record["checksum"]] = record["name"]
    assert kills == KILLS
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final = folder.read()
    names = [r["name"] for r in final]
    assert sorted(names) == sorted({"baseline", "int8-static", "fp16", "sparse"})  # once each
    lost = set(seen) - {r["checksum"] for r in final}
    assert lost == set()  # no record ever written was lost
    assert all(r["status"] == "ok" for r in final)
    json.dumps(final)  # and the file holds plain JSON


# --- Ctrl-C -----------------------------------------------------------------------------------


class Finalized:
    """Ctrl-C pressed while the garbage collector runs a destructor (as it does for ONNX
    Runtime's quantizer): a KeyboardInterrupt raised there would be printed and ignored."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)


class Plain:
    pass


def collected_with_a_finalizer() -> None:
    """The same in a weak-reference callback (WeakValueDictionary's, in the report of #26)."""
    thing = Plain()
    weakref.finalize(thing, signal.raise_signal, signal.SIGINT)
    del thing


@pytest.mark.parametrize("where", ["__del__", "weakref callback"])
@pytest.mark.usefixtures("ctrl_c_interrupts")
def test_ctrl_c_inside_a_finalizer_is_not_lost(monkeypatch, where):
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), interrupts.handled():
        if where == "__del__":
            Finalized()  # freed at once: its __del__ gets the signal
        else:
            collected_with_a_finalizer()
        assert interrupts.requested() and ignored == []  # recorded, not raised into the void
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # ordinary code gets it a moment later
            time.sleep(0.01)
        raise AssertionError("the interrupt was never delivered again")
    assert ignored == []
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.usefixtures("ctrl_c_interrupts")
def test_an_interrupt_raised_at_a_safe_point_is_not_raised_again_by_its_retry(monkeypatch):
    """Ctrl-C inside a finalizer schedules a retry; when a safe point raises it first, the
    retry stands down: the run's clean-up after the interrupt (records kept, lock released)
    is not cut short by the same Ctrl-C a second time."""
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    cleaned_up = False
    with pytest.raises(KeyboardInterrupt), interrupts.handled():
        Finalized()  # the signal lands in its __del__: recorded, retry scheduled
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()  # the next safe point raises it
        time.sleep(interrupts.RETRY_S * 10)  # clean-up, past the moment the retry was due
        cleaned_up = True
    assert cleaned_up and ignored == []


@pytest.mark.usefixtures("ctrl_c_interrupts")
def test_an_interrupt_that_a_library_swallows_is_raised_at_the_next_check():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGXFSZ)
    with pytest.raises(KeyboardInterrupt), interrupts.handled():
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN  # EFBIG, not death
        with contextlib.suppress(KeyboardInterrupt):  # a library's broad except
            signal.raise_signal(signal.SIGINT)
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        # nothing checks again before the end of the block: its end raises it
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGXFSZ)) == before
    assert not interrupts.requested()
    interrupts.check()  # outside a block: nothing pending


RECORD_LINE = re.compile(r"^\[\d+/\d+\] \S+: (accuracy|FAILED|does not fit|already)")


def lines_of(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


@pytest.mark.slow
def test_ctrl_c_always_stops_a_run_in_one_line_and_the_rerun_resumes(first_run, tmp_path):
    """SIGINT at random moments (while the baseline is measured, mid-build, right after a
    record), to the run alone or to its whole process group as a terminal's Ctrl-C does."""
    exp = experiment_dict("ctrl-c")
    exp["candidates"] = [
        {
            "name": "q",
            "recipe": [{"quantize": {"kind": "static-int8"}}],
            "grid": {
                "quantize.calibration_method": ["minmax", "entropy", "percentile"],
                "quantize.calibration_samples": [64, 256],
            },
        },
        "fp16",
        "int8-dynamic",
    ]
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(exp))
    folder = reuse_baseline(first_run, RunFolder(tmp_path / "runs", "ctrl-c"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    moments = {  # the line after which to wait, and how long
        "baseline": ("weights reused", 2.0),
        "building": (": building", 1.5),
        "record": (RECORD_LINE, 0.3),
    }
    rng = random.Random(0)
    seen: dict[str, str] = {}
    tries, outcomes = 0, []
    deadline = time.monotonic() + 900  # 90 s alone here; room for a slower or busy machine
    while tries < INTERRUPTS and time.monotonic() < deadline:
        moment = list(moments)[tries % len(moments)]
        trigger, wait = moments[moment]
        group = tries % 2 == 0  # Ctrl-C in a terminal reaches the measuring process too
        stderr = tmp_path / f"stderr-{tries}.txt"
        with open(stderr, "w") as err:
            proc = subprocess.Popen(
                cli_run(exp_file, folder.root),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                start_new_session=True,
                # as in a terminal: Ctrl-C interrupts (a background job inherits SIGINT ignored)
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        said: queue.Queue = queue.Queue()
        threading.Thread(target=lines_of, args=(proc.stdout, said), daemon=True).start()
        out = []
        while (line := said.get(timeout=120)) is not None:
            out.append(line)
            if trigger.search(line) if isinstance(trigger, re.Pattern) else trigger in line:
                break
        time.sleep(rng.uniform(0, wait))
        if line is None or proc.poll() is not None:  # finished first: not a try
            proc.wait()
            break
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        tries += 1
        code = proc.wait(timeout=120)
        while (line := said.get(timeout=30)) is not None:
            out.append(line)
        text = stderr.read_text()
        mid_build = ": building" in out[-1]
        clean = (
            code == 130
            and "interrupted: every finished candidate is kept" in text
            and "Exception ignored" not in text
            and "Traceback" not in text
        )
        outcomes.append((moment, "group" if group else "run", mid_build, code, clean, text))
        for record in intact(folder):
            seen[record["checksum"]] = record["name"]
    failures = [o for o in outcomes if not o[4]]
    assert failures == [], failures
    assert tries == INTERRUPTS, outcomes
    assert sum(o[2] for o in outcomes) >= 3, outcomes  # several landed mid-build
    done = subprocess.run(cli_run(exp_file, folder.root), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    final = intact(folder)
    assert set(seen) <= {r["checksum"] for r in final}  # no record ever written was lost
    names = [r["name"] for r in final]
    assert sorted(names) == sorted({"baseline", *exp_candidates(exp)})  # each done once
    for name in set(seen.values()):
        assert f"{name}: already ok, kept" in done.stdout  # not redone
    print(f"{tries} interrupts, {len(outcomes) - len(failures)} stopped cleanly, "
          f"{sum(o[2] for o in outcomes)} mid-build")  # fmt: skip


def exp_candidates(exp: dict) -> set[str]:
    return set(config.parse(exp).recipes)


# --- models the measurement cannot take, and ones it must ------------------------------------


def tiny_onnx(path, inputs: int, shape: list, weight=None, bias=None) -> None:
    """Flatten, then one Gemm 64 -> 10 (``weight`` (64, 10) and ``bias`` (10,), by default
    every weight 1/64 and no bias)."""
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape) for i in range(inputs)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 10])
    flat = helper.make_node("Flatten", ["x0"], ["f"])
    weight = np.ones((64, 10), np.float32) / 64 if weight is None else weight
    tensors = [helper.make_tensor("w", TensorProto.FLOAT, [64, 10], weight.ravel())]
    if bias is not None:
        tensors.append(helper.make_tensor("b", TensorProto.FLOAT, [10], bias))
    gemm = helper.make_node("Gemm", ["f", "w", *(["b"] if bias is not None else [])], ["y"])
    graph = helper.make_graph([flat, gemm], "tiny", ins, [out], tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_a_model_with_several_inputs_is_refused_clearly(tmp_path):
    tiny_onnx(tmp_path / "two.onnx", inputs=2, shape=["n", 1, 8, 8])
    with pytest.raises(DataError, match="the model has 2 inputs"):
        es.measure(tmp_path / "two.onnx", "digits")


def test_a_model_with_dynamic_batch_and_spatial_shape_is_measured(tmp_path):
    """A nearest-class-mean classifier (one Gemm: x . mean_c - |mean_c|^2 / 2, the class means
    of digits' training split) whose input has no fixed batch, height or width: measured on the
    whole test split, its accuracy is the one numpy works out in float64 for the same split
    (327 of 359 on the built-in digits). No answer is near a tie (the smallest gap between the
    two best scores is asserted), so float32 on the runtime cannot turn one."""
    digits = es.data.load("digits")
    x = digits.train.x.reshape(len(digits.train.x), -1).astype(np.float64)
    means = np.stack([x[digits.train.y == c].mean(axis=0) for c in range(10)])
    weight, bias = means.T, -0.5 * (means**2).sum(axis=1)
    tiny_onnx(
        tmp_path / "dynamic.onnx",
        inputs=1,
        shape=["batch", 1, "h", "w"],
        weight=weight.astype(np.float32),
        bias=bias.astype(np.float32),
    )
    test = digits.test.x.reshape(len(digits.test.x), -1).astype(np.float64)
    scores = np.sort(test @ weight + bias, axis=1)
    assert (scores[:, -1] - scores[:, -2]).min() > 1e-3  # no near-tie for float32 to turn
    right = int(((test @ weight + bias).argmax(axis=1) == digits.test.y).sum())
    assert 0.5 * len(test) < right < len(test)  # a real classifier, not a constant's ~1/10
    record = es.measure(tmp_path / "dynamic.onnx", "digits", runs=50, min_runs=10)
    assert record["accuracy"] == pytest.approx(right / len(test), abs=1e-12)
    assert record["macs"] == 640
