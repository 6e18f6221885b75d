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
    }


def test_bad_input_gets_one_line_and_nonzero_exit(bad_inputs):
    for case, args in bad_inputs.items():
        out = edgeslim(*args, *FAST)
        assert out.returncode == 2, (case, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, case
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, out.stderr)
