import subprocess
import sys

import pytest

import edgeslim as es
from edgeslim.compress import layer_sensitivity
from edgeslim.errors import ConfigError


@pytest.mark.parametrize("kind", ["unstructured", "structured"])
def test_sensitivity_table_covers_layers_and_ratios(trained_small_cnn, digits, kind):
    table = layer_sensitivity(
        trained_small_cnn.model, digits, kind, (0.5, 0.9), show_progress=False
    )
    assert table.baseline_accuracy == es.evaluate(trained_small_cnn.model, digits.val)
    assert len(table.accuracy) >= 3
    for layer, by_ratio in table.accuracy.items():
        assert set(by_ratio) == {0.5, 0.9}
        assert by_ratio[0.9] <= table.baseline_accuracy + 0.02, layer
    # pruning 90% of any layer alone hurts somewhere: the table is not flat
    assert max(table.drop(layer, 0.9) for layer in table.accuracy) > 0.05
    # the model is untouched afterwards
    assert es.evaluate(trained_small_cnn.model, digits.val) == table.baseline_accuracy


def test_bad_sensitivity_arguments(trained_small_cnn, digits):
    with pytest.raises(ConfigError, match="kind must be one of"):
        layer_sensitivity(trained_small_cnn.model, digits, "bogus")
    with pytest.raises(ConfigError, match="ratios must lie in"):
        layer_sensitivity(trained_small_cnn.model, digits, "unstructured", (0.5, 1.5))


@pytest.mark.slow
def test_sensitivity_command_prints_a_table():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeslim.cli",
            "sensitivity",
            "small-cnn",
            "--epochs",
            "3",
            "--ratios",
            "0.5,0.9",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "160", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "sensitivity of small-cnn" in out.stdout and "3.0" in out.stdout
