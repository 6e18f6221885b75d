"""Every runtime measures the same model the same way: same accuracy as ONNX Runtime, every
metric present, a torch-free worker, and a clear error where the runtime is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import edgeslim as es
from edgeslim.errors import ConfigError, MissingRuntimeError
from edgeslim.runtimes import RUNTIMES, runtime
from tests.conftest import QUICK


def installed(name: str) -> bool:
    try:
        RUNTIMES[name].check_available()
    except MissingRuntimeError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI installs every runtime; {name} is missing")
        return False
    return True


@pytest.fixture(scope="module")
def reference(small_cnn_onnx, digits):
    return es.measure(small_cnn_onnx, digits, QUICK)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_runtime_measures_every_metric_like_onnx_runtime(
    name, small_cnn_onnx, digits, quick, reference
):
    if not installed(name):
        pytest.skip(f"{name} is not installed")
    record = es.measure(small_cnn_onnx, digits, replace(quick, runtime=name))
    assert "errors" not in record, record["errors"]
    assert set(reference) - {"errors"} <= set(record)
    assert abs(record["accuracy"] - reference["accuracy"]) <= 0.01
    assert record["latency_p50_ms"] > 0 and record["throughput"] > 0
    how = record["measured_with"]
    assert how["runtime"] == name and how["runtime_version"]
    assert how["torch_loaded_in_worker"] is False


def test_openvino_computes_in_fp32_not_bf16(small_cnn_onnx, digits):
    """Left to its defaults OpenVINO runs bf16 on CPUs that have it: outputs would differ from
    ONNX Runtime's by ~1e-2. In FP32 they agree to float rounding."""
    if not installed("openvino"):
        pytest.skip("openvino is not installed")
    x = digits.test.x[:64]
    outputs = {}
    for name in ("onnxruntime", "openvino"):
        session = runtime(name).load(str(small_cnn_onnx), threads=1)
        outputs[name] = session.run(None, {session.input_name: x})[0]
    assert outputs["openvino"].shape == (64, digits.spec.num_classes)
    np.testing.assert_allclose(outputs["openvino"], outputs["onnxruntime"], atol=1e-4)


def test_a_runtime_that_is_not_installed_names_its_extra(
    small_cnn_onnx, digits, quick, monkeypatch
):
    absent = replace(RUNTIMES["openvino"], name="absent", package="edgeslim_absent_runtime")
    monkeypatch.setitem(RUNTIMES, "absent", absent)
    with pytest.raises(MissingRuntimeError, match=r'pip install "edgeslim\[openvino\]"'):
        es.measure(small_cnn_onnx, digits, replace(quick, runtime="absent"))


def test_an_unknown_runtime_is_a_config_error_everywhere(small_cnn_onnx):
    with pytest.raises(ConfigError, match="unknown runtime 'tflite'"):
        es.MeasureSettings(runtime="tflite")
    from edgeslim import config
    from tests.experiments import experiment_dict

    with pytest.raises(ConfigError, match=r"measure\.runtime"):
        config.parse(experiment_dict(measure={"runtime": "tflite"}))
    out = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", "measure", small_cnn_onnx, "--runtime", "tflite"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.startswith("error: "), out.stderr
    assert "unknown runtime 'tflite'" in out.stderr and "Traceback" not in out.stderr
