import pytest
import torch

import edgeslim as es
from edgeslim.compress import layers as L
from edgeslim.compress.semistructured import grouped, pattern_holds, ungrouped


def test_grouping_round_trips_and_runs_along_input_channels():
    weight = torch.arange(2 * 8 * 3 * 3, dtype=torch.float).reshape(2, 8, 3, 3)
    groups = grouped(weight, 4)
    torch.testing.assert_close(ungrouped(groups, weight.shape), weight)
    # first group: output 0, kernel position (0, 0), input channels 0..3
    torch.testing.assert_close(groups[0], weight[0, 0:4, 0, 0])


@pytest.mark.slow
@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 8)])
def test_nm_pattern_holds_in_every_pruned_layer_after_finetuning(trained_small_cnn, digits, n, m):
    recipe = [{"prune": {"kind": "nm", "n": n, "m": m}}, {"finetune": {"epochs": 2}}]
    (pruned,) = es.compress(trained_small_cnn, digits, [recipe], show_progress=False)
    result = pruned.step("prune")["result"]
    layers = L.weighted_layers(pruned.model)
    assert result["pruned_layers"] and "0.0" in result["skipped_layers"]  # 1-channel stem
    for name in result["pruned_layers"]:
        weight = layers[name].weight
        assert pattern_holds(weight, n, m)
        assert float((weight == 0).float().mean()) == pytest.approx(1 - n / m, abs=0.01)
    if (n, m) == (2, 4):
        assert es.evaluate(pruned.model, digits.test) >= 0.95
