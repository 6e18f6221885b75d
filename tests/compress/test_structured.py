import pytest
import torch

import edgeslim as es
from edgeslim.errors import ConfigError
from edgeslim.export import export_onnx
from edgeslim.graph import summarize
from edgeslim.measure.compute import compute


@pytest.mark.slow
@pytest.mark.parametrize("name", es.models.models_for("classification"))
def test_structured_50_on_every_zoo_model_exports_matches_and_halves_macs(name, digits, tmp_path):
    base = es.Candidate(name, model=es.models.build(name, digits.spec))
    (pruned,) = es.compress(
        base, digits, [[{"prune": {"kind": "structured", "ratio": 0.5}}]], show_progress=False
    )
    macs = {}
    for label, candidate in (("dense", base), ("pruned", pruned)):
        check = export_onnx(candidate.model, digits, tmp_path / f"{label}.onnx")  # checks outputs
        assert check.agreement == 1.0
        macs[label] = compute(summarize(tmp_path / f"{label}.onnx"))["macs"]
    assert macs["dense"] >= 2 * macs["pruned"]
    assert (tmp_path / "pruned.onnx").stat().st_size < (tmp_path / "dense.onnx").stat().st_size


@pytest.mark.slow
def test_structured_50_keeps_accuracy_within_two_points(trained_small_cnn, digits, tmp_path, quick):
    recipe = [{"prune": {"kind": "structured", "ratio": 0.5}}, {"finetune": {"epochs": 10}}]
    (pruned,) = es.compress(
        trained_small_cnn, digits, [recipe], out_dir=tmp_path, show_progress=False
    )
    dense = es.measure(trained_small_cnn, digits, quick)
    record = es.measure(pruned, digits, quick)
    assert record["accuracy"] >= dense["accuracy"] - 0.02
    assert record["macs"] * 2 <= dense["macs"] and record["params"] * 2 <= dense["params"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        {"macs_reduction": 2.0, "importance": "taylor"},
        {"macs_reduction": 3.0, "importance": "l1", "steps": 2, "epochs_per_step": 1},
        {"ratio": 0.4, "importance": "bn-scale", "scope": "global"},
        {"macs_reduction": 2.0, "ratios": "auto"},
    ],
)
def test_targets_importances_and_auto_ratios(trained_small_cnn, digits, settings):
    recipe = [{"prune": {"kind": "structured", **settings}}, {"finetune": {"epochs": 3}}]
    (pruned,) = es.compress(trained_small_cnn, digits, [recipe], show_progress=False)
    result = pruned.step("prune")["result"]
    wanted = settings.get("macs_reduction", 1.2)
    assert result["macs_reduction"] >= wanted * 0.999
    if settings.get("ratios") == "auto":
        assert set(result["ratios"]) and result["sensitivity"]
        assert pytest.approx(result["macs_reduction"], rel=0.1) == 2.0
    assert es.evaluate(pruned.model, digits.test) > 0.9  # recovered by fine-tuning


def test_auto_ratios_that_cannot_reach_the_target_say_so(trained_small_cnn, digits):
    recipe = [{"prune": {"kind": "structured", "macs_reduction": 500.0, "ratios": "auto"}}]
    with pytest.raises(ConfigError, match="cannot reach a 500x MACs reduction"):
        es.compress(trained_small_cnn, digits, [recipe], show_progress=False)


def crafted_stem(digits):
    """small-cnn whose first block's channels are made to rank by construction: channel 5 is
    large everywhere (weights x20, BN scale 5), channel 9 is zero everywhere, channel 7 has no
    weights at all but a BN scale of 1.2 (above every other channel's 1.0)."""
    torch.manual_seed(0)
    model = es.models.build("small-cnn", digits.spec)
    conv, bn, following = model[0][0], model[0][1], model[1][0]
    with torch.no_grad():
        conv.weight[5] *= 20
        following.weight[:, 5] *= 20
        bn.weight[5] = 5.0
        for channel in (9, 7):
            conv.weight[channel] = 0
            following.weight[:, channel] = 0
        bn.weight[9], bn.bias[9] = 0.0, 0.0
        bn.weight[7], bn.bias[7] = 1.2, 0.0
    return model


@pytest.mark.parametrize("importance", ["l1", "l2", "bn-scale"])
def test_each_importance_keeps_the_channel_built_to_matter(importance, digits):
    """The crafted channels are told apart after pruning by their BN scales (5, 1.2, 0; the
    rest 1): every criterion keeps 5 and drops 9; only bn-scale keeps the weightless 7."""
    prune = {"kind": "structured", "ratio": 0.5, "importance": importance}
    (pruned,) = es.compress(
        es.Candidate("crafted", model=crafted_stem(digits)),
        digits,
        [[{"prune": prune}]],
        show_progress=False,
    )
    scales = [round(float(v), 4) for v in pruned.model[0][1].weight]
    assert len(scales) == 8
    assert 5.0 in scales and 0.0 not in scales
    assert (1.2 in scales) == (importance == "bn-scale")
