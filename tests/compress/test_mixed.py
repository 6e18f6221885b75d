"""Mixed precision: per-layer widths from measured sensitivity, under a size or accuracy budget."""

import pytest

import edgeslim as es
from edgeslim.errors import ConfigError
from tests.conftest import QUICK


@pytest.fixture(scope="module")
def uniform(trained_small_cnn, digits, tmp_path_factory):
    """The same model with every layer at INT8 and at INT4 weights, measured."""
    recipes = [[{"quantize": {"kind": k}}] for k in ("weight-int8", "weight-int4")]
    built = es.compress(
        trained_small_cnn,
        digits,
        recipes,
        names=["int8", "int4"],
        out_dir=tmp_path_factory.mktemp("uniform"),
        show_progress=False,
    )
    return {c.name: es.measure(c, digits, QUICK) for c in built}


@pytest.mark.slow
def test_a_size_budget_mixes_widths_and_is_met(trained_small_cnn, digits, uniform, tmp_path):
    # small-cnn has 23,824 conv/linear weights: 23.3 KB at INT8, 11.6 KB at INT4
    recipe = [{"quantize": {"kind": "mixed", "weight_kb": 16.0}}]
    (c,) = es.compress(trained_small_cnn, digits, [recipe], out_dir=tmp_path, show_progress=False)
    result = c.step("quantize")["result"]
    assert result["weight_kb"] <= 16.0
    assert set(result["layer_bits"].values()) == {4, 8}  # a mix, not one width
    assert set(result["sensitivity"]) == set(result["layer_bits"])  # every layer measured
    record = es.measure(c, digits, QUICK)
    assert uniform["int4"]["storage_kb"] < record["storage_kb"] < uniform["int8"]["storage_kb"]
    assert record["accuracy"] >= uniform["int4"]["accuracy"]


def test_an_accuracy_budget_keeps_the_drop_and_narrows_what_tolerates_it(
    trained_small_cnn, digits, uniform, tmp_path
):
    recipe = [{"quantize": {"kind": "mixed", "bits": [4, 8, 16], "max_drop": 0.005}}]
    (c,) = es.compress(trained_small_cnn, digits, [recipe], out_dir=tmp_path, show_progress=False)
    result = c.step("quantize")["result"]
    assert result["val_accuracy"]["fp32"] - result["val_accuracy"]["mixed"] <= 0.005
    assert 4 in result["layer_bits"].values()  # some layer tolerates INT4
    assert all(bits in (4, 8, 16) for bits in result["layer_bits"].values())
    record = es.measure(c, digits, QUICK)
    assert record["storage_kb"] < uniform["int8"]["storage_kb"]


def test_an_unreachable_size_budget_is_refused(trained_small_cnn, digits):
    with pytest.raises(ConfigError, match="out of reach; every layer at 4 bits takes"):
        es.compress(
            trained_small_cnn,
            digits,
            [[{"quantize": {"kind": "mixed", "weight_kb": 1}}]],
            show_progress=False,
        )
