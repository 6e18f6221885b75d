"""The record: every metric of DESIGN.md, for every zoo model, from a torch-free worker."""

import subprocess
import sys

import pytest

import edgeslim as es
from edgeslim.errors import DataError
from edgeslim.measure import METRICS

DESIGN_METRICS = {
    "accuracy",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_cv",
    "throughput",
    "peak_memory_mb",
    "activation_memory_kb",
    "storage_kb",
    "storage_compressed_kb",
    "weight_sparsity",
    "activation_sparsity",
    "params",
    "nonzero_params",
    "macs",
    "energy_mj",
}


def test_registry_declares_every_design_metric_with_unit_and_direction():
    assert set(METRICS) >= DESIGN_METRICS
    for name in DESIGN_METRICS:
        assert METRICS[name].unit and METRICS[name].better in ("higher", "lower")


@pytest.mark.slow
@pytest.mark.parametrize("name", es.models.models_for("classification"))
def test_every_zoo_model_gets_every_metric(name, digits, tmp_path, quick):
    model = es.models.build(name, digits.spec)
    candidate = es.export(es.Candidate(name, model=model), digits, tmp_path)
    record = es.measure(candidate, digits, quick)
    assert set(record) >= DESIGN_METRICS, DESIGN_METRICS - set(record)
    assert "errors" not in record
    assert record["measured_with"]["torch_loaded_in_worker"] is False
    assert record["macs"] > 0 and record["params"] > 0


def test_trained_model_accuracy_is_measured_on_the_runtime(trained_small_cnn, digits, quick):
    """On both held-out splits, each on its own samples: the test split's figure is reported,
    the validation split's is what choices read; the record says where validation came from."""
    record = es.measure(trained_small_cnn, digits, quick)  # exported on the fly
    assert record["accuracy"] == pytest.approx(
        es.evaluate(trained_small_cnn.model, digits.test), abs=1 / len(digits.test)
    )
    assert record["val_accuracy"] == pytest.approx(
        es.evaluate(trained_small_cnn.model, digits.val), abs=1 / len(digits.val)
    )
    how = record["measured_with"]
    assert (how["accuracy_samples"], how["val_samples"]) == (len(digits.test), len(digits.val))
    assert how["validation"] == digits.validation
    assert how["validation"].startswith("carved from the 1,797 digits: 10% drawn at seed 0")
    assert "validation_warnings" not in record  # 180 samples, every class


def test_worker_side_imports_neither_torch_nor_onnx():
    code = (
        "import sys; import edgeslim.measure.worker; "
        "from edgeslim.measure import accuracy, latency, memory, sparsity, runtime; "
        "print(sorted(m for m in ('torch', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_inputs_get_clear_errors(small_cnn_onnx, tmp_path, quick):
    with pytest.raises(DataError, match="model file not found"):
        es.measure(tmp_path / "missing.onnx", "digits", quick)
    (tmp_path / "notes.onnx").write_text("definitely not protobuf")
    with pytest.raises(DataError, match="not an ONNX model"):
        es.measure(tmp_path / "notes.onnx", "digits", quick)
    with pytest.raises(DataError, match=r"does not fit .* samples of shape \(12,\)"):
        import numpy as np

        np.savez(tmp_path / "vec.npz", x=np.zeros((30, 12)), y=np.arange(30) % 2)
        es.measure(small_cnn_onnx, f"npz:{tmp_path / 'vec.npz'}", quick)
