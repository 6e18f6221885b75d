import pytest

import edgeslim as es
from edgeslim.errors import ConfigError
from edgeslim.export import export_onnx
from edgeslim.measure.compute import compute
from edgeslim.measure.graph import summarize


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


def test_structured_50_keeps_accuracy_within_two_points(trained_small_cnn, digits, tmp_path, quick):
    recipe = [{"prune": {"kind": "structured", "ratio": 0.5}}, {"finetune": {"epochs": 10}}]
    (pruned,) = es.compress(
        trained_small_cnn, digits, [recipe], out_dir=tmp_path, show_progress=False
    )
    dense = es.measure(trained_small_cnn, digits, quick)
    record = es.measure(pruned, digits, quick)
    assert record["accuracy"] >= dense["accuracy"] - 0.02
    assert record["macs"] * 2 <= dense["macs"] and record["params"] * 2 <= dense["params"]


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
