"""The command line as a user meets it: tables on success, one-line errors on bad input."""

import json
import os
import re
import subprocess
import sys

import pytest

FAST = ["--runs", "100"]


def edgeslim(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )


@pytest.mark.slow
def test_measure_prints_every_metric_and_writes_json(small_cnn_onnx, tmp_path):
    out = edgeslim(
        "measure", small_cnn_onnx, "--data", "digits", "--json", tmp_path / "r.json", *FAST
    )
    assert out.returncode == 0, out.stderr
    for name in ("accuracy", "latency_p99_ms", "peak_memory_mb", "energy_mj", "macs"):
        assert name in out.stdout
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["accuracy"] > 0.95 and record["measured_with"]["settings"]["runs"] == 100


@pytest.mark.slow
def test_zoo_lists_models_with_params_and_macs():
    out = edgeslim("zoo")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[1]: line for line in out.stdout.splitlines() if line.startswith("│")}
    for name in ("small-cnn", "lenet5", "resnet8", "ds-cnn", "mobilenet-v1", "mlp"):
        assert name in rows
    # worked by hand for an 8x8 digit: 3x3 convs 1->16 and 16->32 on 8x8 (9,216 + 294,912),
    # 32->64 on 4x4 after the pool (294,912), the 64->10 classifier (640); and the weights
    # 144 + 4,608 + 18,432 + 650, plus 16 + 32 + 64 biases: the batch norms folded into the
    # convolutions, as a trained model deploys them (an untrained one's shifts are all zero,
    # and an exporter that folds zeros away would count 23,834)
    cells = [cell.strip() for cell in rows["small-cnn"].split("│")[1:4]]
    assert cells == ["small-cnn", "23,946", "599,680"], cells


def digits_onnx(path, classes=10, domain="", op="MatMul", output_dims=None):
    """Flatten then one op (MatMul by default) on an 8x8 digit: a model that loads, or not."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    weights = np.random.default_rng(0).normal(size=(64, classes)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"]),
        helper.make_node(op, ["flat", "w"], ["y"], domain=domain),
    ]
    graph = helper.make_graph(
        nodes,
        "digits",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_dims or [1, classes])],
        [onnx.numpy_helper.from_array(weights, "w")],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


@pytest.fixture
def bad_inputs(small_cnn_onnx, tmp_path):
    (tmp_path / "notes.onnx").write_text("not a model")
    (tmp_path / "notes.txt").write_text("not a model")
    import numpy as np

    np.savez(tmp_path / "wide.npz", x=np.zeros((40, 1, 9, 9)), y=np.arange(40) % 2)
    return {
        "missing model file": ["measure", tmp_path / "nope.onnx"],
        "non-ONNX file": ["measure", tmp_path / "notes.onnx"],
        "non-model file": ["measure", tmp_path / "notes.txt"],
        "input shape does not fit": [
            "measure",
            small_cnn_onnx,
            "--data",
            f"npz:{tmp_path / 'wide.npz'}",
        ],
        "unknown data source": ["measure", small_cnn_onnx, "--data", "mnist"],
        "op the runtime does not know": [
            "measure",
            digits_onnx(tmp_path / "odd.onnx", domain="com.example", op="Mystery"),
        ],
        "64 logits on 10 classes": ["measure", digits_onnx(tmp_path / "wide.onnx", classes=64)],
        # ONNX cannot infer this contrib op's shape: the worker's first run catches it
        "64 logits, shape known only at run time": [
            "measure",
            digits_onnx(
                tmp_path / "wide-late.onnx",
                classes=64,
                domain="com.microsoft",
                op="FusedMatMul",
                output_dims=["batch", "classes"],
            ),
        ],
    }


@pytest.mark.slow
def test_bad_input_gets_one_line_and_nonzero_exit(bad_inputs):
    for case, args in bad_inputs.items():
        out = edgeslim(*args, *FAST)
        assert out.returncode == 2, (case, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, case
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, out.stderr)


@pytest.mark.slow
def test_a_model_the_runtime_refuses_names_the_runtime_and_its_reason(tmp_path):
    out = edgeslim(
        "measure", digits_onnx(tmp_path / "odd.onnx", domain="com.example", op="Mystery"), *FAST
    )
    assert out.returncode == 2 and "latency" not in out.stdout, out.stdout
    assert "onnxruntime" in out.stderr and "com.example:Mystery" in out.stderr, out.stderr


@pytest.mark.slow
def test_an_output_width_that_is_not_the_class_count_is_refused_before_timing(tmp_path):
    for name, dims in (("wide.onnx", None), ("wide-late.onnx", ["batch", "classes"])):
        contrib = {"domain": "com.microsoft", "op": "FusedMatMul"} if dims else {}
        model = digits_onnx(tmp_path / name, classes=64, output_dims=dims, **contrib)
        out = edgeslim("measure", model, *FAST)
        assert out.returncode == 2 and "latency" not in out.stdout, (name, out.stdout)
        assert "(1, 64)" in out.stderr and "10 classes" in out.stderr, (name, out.stderr)


def refused(*args, cwd=None, memory_gb=None, seconds=60) -> str:
    """Run the CLI as a user types it, bounded in time (and address space, when given): it must
    end with exit status 2 and one ``error:`` line, never a traceback or a hang."""
    import resource

    def bound_memory():
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=seconds,
        env={**os.environ, "COLUMNS": "80"},
        preexec_fn=bound_memory if memory_gb else None,
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, (args, out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    return lines[0]


def bomb(levels: int = 9) -> str:
    """ "Billion laughs": nine aliases of nine aliases ... expand to 9**levels items."""
    lines = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "bombs:\n" + "\n".join(lines) + "\n"


HEAD = "name: t\nmodel: small-cnn\n"
HOSTILE = {
    "alias bomb as a grid": HEAD
    + bomb()
    + "candidates:\n  - recipe: [{prune: {kind: unstructured}}]\n    grid: {prune.sparsity: *l8}\n",
    "alias bomb as a step's kind": HEAD
    + bomb()
    + "candidates:\n  - recipe: [{prune: {kind: *l8}}]\n",
    "a 4 MB list": HEAD + "x: [" + "0, " * 1_400_000 + "0]\n",
    "a list that contains itself": HEAD + "x: &x [1, *x]\n",
    "100,000 levels of nesting": HEAD + "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_yaml_is_refused_in_seconds_and_little_memory(case, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(HOSTILE[case])
    line = refused("run", path, "--runs", tmp_path / "runs", memory_gb=1, seconds=30)
    assert len(line) < 300 and str(path) in line, line
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "step, words",
    [
        ("{prune: [1, 2]}", "candidates[0].recipe[0].prune: expected a mapping of settings"),
        ("{finetune: 5}", "candidates[0].recipe[0].finetune: expected a mapping of settings"),
        ("{prune: abc}", "candidates[0].recipe[0].prune: expected a mapping of settings"),
    ],
)
def test_a_step_that_is_not_a_mapping_is_one_error_line(step, words, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        HEAD + f"candidates:\n  - recipe: [{step}]\n    grid: {{prune.sparsity: [0.5]}}\n"
    )
    line = refused("run", path, "--runs", tmp_path / "runs")
    assert words in line, line


def test_user_text_is_printed_as_it_is_never_as_markup(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(HEAD + "'[/oops]': 1\n'[bold]x': 2\n")
    line = refused("run", path, "--runs", tmp_path / "runs")
    assert "[/oops]: Extra inputs are not permitted" in line, line
    assert "[bold]x: Extra inputs" in line, line


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    [
        'name: "adv\\n"\nmodel: small-cnn\n',
        HEAD + 'candidates:\n  - {name: "abc\\n", preset: fp16}\n',
    ],
)
def test_a_name_with_a_final_newline_is_refused(text, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    line = refused("run", path, "--runs", tmp_path / "runs")
    assert "\\n' is not a valid name" in line, line
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as a run leaves it: experiment.json and results.jsonl (no records yet)."""
    from edgeslim import config

    folder = tmp_path / "t"
    folder.mkdir()
    experiment = config.parse({"name": "t", "model": "small-cnn", "candidates": ["fp16"]})
    (folder / "experiment.json").write_text(json.dumps(experiment.to_dict()))
    (folder / "results.jsonl").write_bytes(b"")
    return folder


@pytest.mark.slow
def test_report_of_the_current_folder_works(run_folder):
    out = edgeslim("report", ".", cwd=run_folder)
    assert out.returncode == 0, out.stderr
    assert (run_folder / "report.html").exists() and (run_folder / "report.md").exists()
    line = refused("report", ".", cwd=run_folder.parent)
    assert f"{run_folder.parent}: not a run folder" in line, line


@pytest.mark.slow
def test_report_of_a_damaged_run_folder_is_one_error_line(run_folder):
    from edgeslim.results import encode

    results = run_folder / "results.jsonl"
    results.write_bytes(encode({"name": "baseline", "accuracy": 0.9}) + encode({"accuracy": 0.8}))
    line = refused("report", run_folder)
    assert f"{results}:2: a record without a candidate name" in line, line
    spec = run_folder / "experiment.json"
    spec.write_text('{"name": "t", "model": ')
    line = refused("report", run_folder)
    assert f"{spec}: not valid JSON" in line, line
    spec.write_text('["t"]')
    line = refused("report", run_folder)
    assert f"{spec}: expected the experiment as a JSON object, got a list" in line, line


EXIT_CODES = {
    0: "a recommendation, and every candidate was measured",
    2: "a user error",
    3: "no recommendation: nothing fits the budget",
    4: "a recommendation, but some candidates failed",
    130: "interrupted (Ctrl-C)",
}


@pytest.mark.parametrize("command", ["run", "demo", "search"])
def test_help_lists_the_exit_codes(command):
    out = edgeslim(command, "--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {meaning}" in text, (code, text)


def experiment_file(tmp_path, name: str, **changes):
    """A tiny experiment on digits: a small CNN trained for 2 epochs, the baseline only."""
    import yaml

    from tests.experiments import MEASURE

    spec = {
        "name": name,
        "model": "small-cnn",
        "data": "digits",
        "train": {"epochs": 2},
        "measure": MEASURE,
        **changes,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_a_run_with_a_recommendation_exits_0_and_says_each_training_epoch(tmp_path):
    out = edgeslim("run", experiment_file(tmp_path, "good"), "--runs", tmp_path / "runs")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("train baseline: epoch ")]
    assert len(epochs) == 2, out.stdout  # one plain line per epoch (output is not a terminal)
    first, last = (lines[i] for i in epochs)
    assert re.match(
        r"train baseline: epoch 1/2: loss \d\.\d{4}, val_accuracy \d\.\d{4} \(best \d\.\d{4} "
        r"at epoch 1\); \d+s, about \d+s left$",
        first,
    ), first
    assert last.startswith("train baseline: epoch 2/2: loss ") and "left" not in last, last
    training = next(i for i, line in enumerate(lines) if "baseline: training" in line)
    measured = next(i for i, line in enumerate(lines) if line.startswith("[1/1] baseline: "))
    assert training < epochs[0] < epochs[1] < measured  # as it happens, not after the run
    assert "recommended: baseline" in out.stdout


@pytest.mark.slow
def test_a_failing_candidate_exits_4_and_nothing_fitting_exits_3(tmp_path):
    """An MLP left untrained (0 epochs: quick), whose INT8 form calibrated on one sample answers
    unlike PyTorch on 1 sample in 6: that candidate fails with advice, as does one that cannot
    be built."""
    candidates = [
        {"name": "int8-one-sample", "recipe": [{"quantize": {"kind": "static-int8",
                                                           "calibration_samples": 1}}]},
        {"name": "impossible", "recipe": [{"prune": {"kind": "structured",
                                                      "macs_reduction": 500}}]},
    ]  # fmt: skip
    runs = tmp_path / "runs"
    untrained = {"model": "mlp", "train": {"epochs": 0}, "candidates": candidates}
    path = experiment_file(tmp_path, "fails", **untrained)
    out = edgeslim("run", path, "--runs", runs)
    assert out.returncode == 4, (out.returncode, out.stderr[-2000:])
    assert "failed candidates: int8-one-sample, impossible" in " ".join(out.stderr.split())
    said = " ".join(out.stdout.split())
    assert "int8-one-sample: FAILED in measure: ExportError:" in said
    assert "samples (the first 128 of the test split's" in said
    assert "To agree more: with kind: static-int8, calibrate on more samples" in said
    # the same records under a budget nothing meets: no recommendation wins over the failures
    path = experiment_file(tmp_path, "fails", **untrained, budget={"storage_kb": "<= 0.001"})
    out = edgeslim("run", path, "--runs", runs)
    assert out.returncode == 3, (out.returncode, out.stderr[-2000:])
    assert "already failed" in out.stdout and "building" not in out.stdout


@pytest.mark.slow
def test_run_retry_failed_redoes_only_the_failed_candidates(first_run, tmp_path):
    """`edgeslim run FILE` on a finished folder redoes nothing; with --retry-failed it builds
    the failed candidate again (here it fails again: status 4) and leaves the rest alone."""
    import shutil

    import yaml

    from tests.experiments import experiment_dict

    _, outcome, _ = first_run
    shutil.copytree(outcome.folder.path, tmp_path / "runs" / outcome.folder.name)
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(experiment_dict()))
    plain = edgeslim("run", spec, "--runs", tmp_path / "runs")
    assert plain.returncode == 4, plain.stderr  # a recommendation, and a failed candidate
    assert "building" not in plain.stdout
    retried = edgeslim("run", spec, "--runs", tmp_path / "runs", "--retry-failed")
    assert retried.returncode == 4, retried.stderr
    built = [line for line in retried.stdout.splitlines() if "building" in line]
    assert len(built) == 1 and "impossible" in built[0], retried.stdout
    lines = (tmp_path / "runs" / outcome.folder.name / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(outcome.folder.results.read_text().splitlines()) + 1


INTERRUPT_THROUGH_C = """
import ctypes
run = ctypes.pythonapi.PyRun_String
run.restype = ctypes.py_object
run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
try:
    run(b"raise KeyboardInterrupt", 257, {}, {})  # as pybind11's exec does, mid-quantization
except KeyboardInterrupt:
    from edgeslim.cli import exit_interrupted
    exit_interrupted()
"""


def test_an_interrupt_that_passed_through_c_still_exits_130(tmp_path):
    """Under ``python -m`` CPython would die by SIGINT (-2) after ``sys.exit(130)`` here."""
    (tmp_path / "interrupted.py").write_text(INTERRUPT_THROUGH_C)
    done = subprocess.run([sys.executable, "-m", "interrupted"], cwd=tmp_path)
    assert done.returncode == 130
