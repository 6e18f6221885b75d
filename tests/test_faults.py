"""Fault injection: bad inputs, crashing and hanging measurements, a full disk, malicious files,
and a run killed at random points. Each case checks the clear error *and* that the results
written before it are intact. The counts in the README's reliability table come from here."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import onnx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeslim as es
from edgeslim import config
from edgeslim.data import load
from edgeslim.errors import ConfigError, DataError, UntrustedFileError
from edgeslim.results import RunFolder
from tests.experiments import MEASURE, experiment_dict, reuse_baseline

CONFIG_EXAMPLES = 300
DATA_EXAMPLES = 150
KILLS = 20

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


@settings(max_examples=CONFIG_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8), st.booleans())
def test_any_experiment_file_is_accepted_or_refused_with_a_config_error(raw, named):
    if named:
        raw = {"name": "t", "model": "small-cnn", **raw}
    try:
        experiment = config.parse(raw)
    except ConfigError as exc:
        assert str(exc)  # a message that says what is wrong
    else:  # accepted: then it is fully usable
        assert experiment.config.name and experiment.measure_settings()


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
    from edgeslim.measure import graph

    monkeypatch.setattr(graph, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(DataError, match="over the 1,000-byte limit"):
        es.measure(small_cnn_onnx, "digits")


# --- isolation: the measuring process crashes, hangs, or runs out of memory ---------------


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
    assert "File too large" in done.stderr or "short write" in done.stderr
    assert folder.results.read_bytes().startswith(before)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        names = [r["name"] for r in folder.read()]
    assert names == ["c0", "c1", "c2"]  # the partial line is skipped, nothing earlier lost
    folder.append({"name": "after", "status": "ok"})  # and the file is still usable
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert [r["name"] for r in folder.read()][-1] == "after"


# --- a run killed at random points ----------------------------------------------------------


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
    deadline = time.monotonic() + 400
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


# --- models the measurement cannot take, and ones it must ------------------------------------


def tiny_onnx(path, inputs: int, shape: list) -> None:
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape) for i in range(inputs)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 10])
    flat = helper.make_node("Flatten", ["x0"], ["f"])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [64, 10], np.ones(640, np.float32) / 64)
    gemm = helper.make_node("Gemm", ["f", "w"], ["y"])
    graph = helper.make_graph([flat, gemm], "tiny", ins, [out], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_a_model_with_several_inputs_is_refused_clearly(tmp_path):
    tiny_onnx(tmp_path / "two.onnx", inputs=2, shape=["n", 1, 8, 8])
    with pytest.raises(DataError, match="the model has 2 inputs"):
        es.measure(tmp_path / "two.onnx", "digits")


def test_a_model_with_dynamic_batch_and_spatial_shape_is_measured(tmp_path):
    tiny_onnx(tmp_path / "dynamic.onnx", inputs=1, shape=["batch", 1, "h", "w"])
    record = es.measure(tmp_path / "dynamic.onnx", "digits", runs=50, min_runs=10)
    assert 0 <= record["accuracy"] <= 1 and record["macs"] == 640
