"""The command line as a user meets it: tables on success, one-line errors on bad input."""

import json
import os
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


def test_measure_prints_every_metric_and_writes_json(small_cnn_onnx, tmp_path):
    out = edgeslim(
        "measure", small_cnn_onnx, "--data", "digits", "--json", tmp_path / "r.json", *FAST
    )
    assert out.returncode == 0, out.stderr
    for name in ("accuracy", "latency_p99_ms", "peak_memory_mb", "energy_mj", "macs"):
        assert name in out.stdout
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["accuracy"] > 0.95 and record["measured_with"]["settings"]["runs"] == 100


def test_zoo_lists_models_with_params_and_macs():
    out = edgeslim("zoo")
    assert out.returncode == 0, out.stderr
    for name in ("small-cnn", "lenet5", "resnet8", "ds-cnn", "mobilenet-v1", "mlp"):
        assert name in out.stdout


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


def test_bad_input_gets_one_line_and_nonzero_exit(bad_inputs):
    for case, args in bad_inputs.items():
        out = edgeslim(*args, *FAST)
        assert out.returncode == 2, (case, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, case
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, out.stderr)


def test_a_model_the_runtime_refuses_names_the_runtime_and_its_reason(tmp_path):
    out = edgeslim(
        "measure", digits_onnx(tmp_path / "odd.onnx", domain="com.example", op="Mystery"), *FAST
    )
    assert out.returncode == 2 and "latency" not in out.stdout, out.stdout
    assert "onnxruntime" in out.stderr and "com.example:Mystery" in out.stderr, out.stderr


def test_an_output_width_that_is_not_the_class_count_is_refused_before_timing(tmp_path):
    for name, dims in (("wide.onnx", None), ("wide-late.onnx", ["batch", "classes"])):
        contrib = {"domain": "com.microsoft", "op": "FusedMatMul"} if dims else {}
        model = digits_onnx(tmp_path / name, classes=64, output_dims=dims, **contrib)
        out = edgeslim("measure", model, *FAST)
        assert out.returncode == 2 and "latency" not in out.stdout, (name, out.stdout)
        assert "(1, 64)" in out.stderr and "10 classes" in out.stderr, (name, out.stderr)
