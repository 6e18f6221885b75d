"""The experiment file: what it expands to, and the YAML path of every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslim import config
from edgeslim.demo import DEMO
from edgeslim.devices import DEVICES
from edgeslim.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def minimal(**changes) -> dict:
    return {"name": "t", "model": "small-cnn", **changes}


def test_presets_recipes_and_grids_expand_to_named_validated_recipes():
    experiment = config.parse(
        minimal(
            candidates=[
                "int8-static",
                {
                    "name": "sparse",
                    "recipe": [{"prune": {"kind": "unstructured"}}, {"finetune": {"epochs": 1}}],
                    "grid": {"prune.sparsity": [0.5, 0.9], "finetune.epochs": [1, 2]},
                },
                {"recipe": [{"prune": {"kind": "nm", "n": 2, "m": 4}}]},
            ]
        )
    )
    names = list(experiment.recipes)
    assert names[0] == "int8-static"
    assert names[1:5] == [
        "sparse-sparsity-0.5-epochs-1",
        "sparse-sparsity-0.5-epochs-2",
        "sparse-sparsity-0.9-epochs-1",
        "sparse-sparsity-0.9-epochs-2",
    ]
    assert names[5] == "prune-nm-2-4"  # unnamed recipes are named after their steps
    assert experiment.recipes["sparse-sparsity-0.9-epochs-2"] == [
        {"prune": {"kind": "unstructured", "sparsity": 0.9}},
        {"finetune": {"epochs": 2}},
    ]


@pytest.mark.parametrize(
    "raw, message",
    [
        (minimal(modle="x"), "modle: Extra inputs are not permitted"),
        (minimal(train={"epochs": -1}), "train.epochs: Input should be greater than or equal to 0"),
        (minimal(measure={"threads": 0}), "measure.threads: Input should be greater"),
        (minimal(measure={"runs": "many"}), "measure.runs: Input should be a valid integer"),
        (
            minimal(candidates=["int8", "fp16"]),
            "candidates[0].preset: unknown preset 'int8'",
        ),
        (
            minimal(
                candidates=[{"recipe": [{"prune": {"kind": "unstructured", "sparsity": 1.5}}]}]
            ),
            "candidates[0].recipe[0].prune.sparsity: Input should be less than 1",
        ),
        (
            minimal(candidates=["fp16", {"recipe": [{"prun": {}}]}]),
            "candidates[1].recipe[0]: unknown step 'prun'",
        ),
        (
            minimal(candidates=[{"preset": "fp16", "recipe": []}]),
            "candidates[0]: Value error, give either a preset name or a recipe",
        ),
        (
            minimal(candidates=[{"preset": "fp16", "grid": {"sparsity": [0.5]}}]),
            "grid key 'sparsity' must be 'step.setting'",
        ),
        (
            minimal(candidates=[{"preset": "fp16", "grid": {"prune.sparsity": [0.5]}}]),
            "candidates[0].grid.prune.sparsity: the recipe has no 'prune' step",
        ),
        (minimal(candidates=["fp16", "fp16"]), "candidates[1]: a candidate named 'fp16' already"),
        (minimal(budget={"latency_ms": "<= 2"}), "budget.latency_ms: unknown metric"),
        (minimal(budget={"accuracy": "> 0.9"}), "budget.accuracy: expected a number or '<= N'"),
        (minimal(objectives=["accuracy", "speed"]), "objectives: unknown ['speed']"),
        (minimal(device="raspberry"), "device: unknown device profile 'raspberry'"),
        (minimal(name="../escape"), "name: Value error, '../escape' is not a valid name"),
        (minimal(name="a/b"), "is not a valid name"),
    ],
)
def test_mistakes_name_their_yaml_path(raw, message):
    with pytest.raises(ConfigError) as info:
        config.parse(raw)
    assert message in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("name: t\nmodel: small-cnn\ncandidates: [int8]\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: candidates\[0\]\.preset"):
        config.load(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        config.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    evil.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\nmodel: x\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(evil)
    assert not marker.exists()


def test_a_device_profile_gives_budget_and_emulation_and_the_file_overrides_it():
    profile = DEVICES["cortex-a53"]
    experiment = config.parse(
        minimal(device="cortex-a53", budget={"storage_kb": 100}, measure={"runs": 50})
    )
    bounds = {str(b) for b in experiment.budget.bounds}
    assert "storage_kb <= 100" in bounds  # the file's bound replaces the profile's
    assert "storage_kb <= 8192" not in bounds
    assert "latency_p95_ms <= 4.125" in bounds and "peak_memory_mb <= 128" in bounds  # 33 ms / 8
    settings = experiment.measure_settings()
    assert settings.memory_limit_mb == profile.measure["memory_limit_mb"]
    assert settings.runs == 50
    own = config.parse(minimal(device="cortex-a53", measure={"memory_limit_mb": 512}))
    assert own.measure_settings().memory_limit_mb == 512


def test_every_profile_cites_a_source_and_a_valid_budget():
    for profile in DEVICES.values():
        assert profile.source and profile.description
        experiment = config.parse(minimal(device=profile.name))
        assert len(experiment.budget.bounds) == len(profile.budget)


@pytest.mark.parametrize("name", ["digits.yaml", "fashion-mnist.yaml", "board.yaml"])
def test_shipped_examples_are_valid(name):
    experiment = config.load(EXAMPLES / name)
    assert experiment.recipes and experiment.budget


def test_the_demo_covers_every_technique():
    experiment = config.parse(DEMO)
    steps = [step for recipe in experiment.recipes.values() for step in recipe]
    kinds = {
        (key, (settings or {}).get("kind")) for step in steps for key, settings in step.items()
    }
    for wanted in [
        ("prune", "unstructured"),
        ("prune", "structured"),
        ("prune", "nm"),
        ("quantize", "static-int8"),
        ("quantize", "dynamic-int8"),
        ("quantize", "fp16"),
        ("quantize", "weight-int4"),
        ("qat", None),
        ("distill", None),
        ("finetune", None),
    ]:
        assert wanted in kinds, wanted
    assert any(len(recipe) >= 3 for recipe in experiment.recipes.values())  # combinations
    assert experiment.budget
