import pytest

import edgeslim as es
from edgeslim.compress import layers as L
from tests.conftest import QUICK


@pytest.fixture(scope="module")
def dense(trained_small_cnn, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("dense")
    candidate = es.export(trained_small_cnn, digits, out)
    return candidate, es.measure(candidate, digits, QUICK)


def test_global_80_percent_reaches_target_keeps_accuracy_and_shrinks_storage(
    trained_small_cnn, digits, dense, tmp_path, quick
):
    recipe = [{"prune": {"kind": "unstructured", "sparsity": 0.8}}, {"finetune": {"epochs": 3}}]
    (pruned,) = es.compress(
        trained_small_cnn, digits, [recipe], out_dir=tmp_path, show_progress=False
    )
    record = es.measure(pruned, digits, quick)
    _, dense_record = dense
    assert record["weight_sparsity"] == pytest.approx(0.80, abs=0.01)  # in the exported file
    assert record["accuracy"] >= dense_record["accuracy"] - 0.01
    assert record["storage_compressed_kb"] * 3 <= dense_record["storage_compressed_kb"]
    assert record["storage_kb"] == pytest.approx(dense_record["storage_kb"], rel=0.01)  # dense file
    step = pruned.step("prune")
    assert step["kind"] == "unstructured" and step["result"]["sparsity_reached"] == 0.8
    # first and last layers are skipped by default and stay dense
    names = list(L.weighted_layers(pruned.model))
    assert names[0] not in step["result"]["pruned_layers"]
    assert names[-1] not in step["result"]["pruned_layers"]


def test_per_layer_scope_prunes_every_chosen_layer_equally(trained_small_cnn, digits):
    recipe = [
        {
            "prune": {
                "kind": "unstructured",
                "sparsity": 0.5,
                "scope": "layer",
                "skip_first": False,
                "skip_last": False,
            }
        }
    ]
    (pruned,) = es.compress(trained_small_cnn, digits, [recipe], show_progress=False)
    by_layer = pruned.step("prune")["result"]["pruned_layers"]
    assert len(by_layer) == 4
    assert all(v == pytest.approx(0.5, abs=0.01) for v in by_layer.values())


@pytest.mark.slow
def test_agp_schedule_and_explicit_and_auto_ratios(trained_small_cnn, digits):
    recipes = [
        [
            {
                "prune": {
                    "kind": "unstructured",
                    "sparsity": 0.7,
                    "schedule": "agp",
                    "steps": 3,
                    "epochs_per_step": 1,
                }
            }
        ],
        [{"prune": {"kind": "unstructured", "sparsity": 0, "ratios": {"3.0": 0.6}}}],
        [{"prune": {"kind": "unstructured", "sparsity": 0.6, "ratios": "auto"}}],
    ]
    agp, explicit, auto = es.compress(trained_small_cnn, digits, recipes, show_progress=False)
    assert agp.step("prune")["result"]["sparsity_reached"] == pytest.approx(0.7, abs=0.01)
    assert explicit.step("prune")["result"]["pruned_layers"] == {"3.0": 0.6}
    result = auto.step("prune")["result"]
    assert result["sparsity_reached"] == pytest.approx(0.6, abs=0.01)
    assert len(result["sensitivity"]) == 2  # one row per prunable layer
    # the pruned layers hold real zeros that survive fine-tuning
    (tuned,) = es.compress(agp, digits, [[{"finetune": {"epochs": 2}}]], show_progress=False)
    assert L.sparsity(L.weighted_layers(tuned.model)) == pytest.approx(0.7, abs=0.01)
