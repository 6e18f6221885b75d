"""The experiment file: what it expands to, and the YAML path of every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslim import config, yamlfiles
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


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """ "Billion laughs": a few lines whose aliases expand to width**levels items."""
    lines = [f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "bombs:\n" + "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "alias bomb as a grid": alias_bomb()
    + "candidates:\n  - recipe: [{prune: {kind: unstructured}}]\n    grid: {prune.sparsity: *l8}\n",
    "alias bomb as a step's kind": alias_bomb()
    + "candidates:\n  - recipe: [{prune: {kind: *l8}}]\n",
    "merge-key bomb": "bombs:\n  m0: &m0 {a: 1, b: 2}\n"
    + "".join(f"  m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}\n" for i in range(1, 9)),
    "a list that contains itself": "x: &x [1, *x]\n",
    "nesting past the limit": "x: " + "[" * 60 + "]" * 60 + "\n",
    "nesting past libyaml's limit": "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "too much aliased text": "s: &s " + "x" * 20_000 + "\nt: [" + ", ".join(["*s"] * 100) + "]\n",
}


@pytest.mark.parametrize("case", HOSTILE_YAML)
def test_hostile_yaml_is_refused_before_it_expands(case, tmp_path):
    import time

    path = tmp_path / "exp.yaml"
    path.write_text("name: t\nmodel: small-cnn\n" + HOSTILE_YAML[case])
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert time.monotonic() - started < 5, case
    message = str(info.value)
    assert message.startswith(f"{path}") and len(message) < 300 and "\n" not in message, message
    assert any(
        words in message
        for words in ("expands to over", "contains it", "levels deep", "maximum nesting depth")
    ), message


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: t\nmodel: small-cnn\nx: [" + "0," * yamlfiles.MAX_FILE_BYTES + "0]\n")
    with pytest.raises(ConfigError, match=r"too large for an experiment file \(over 256 KB\)"):
        config.load(big)
    with pytest.raises(ConfigError, match="too large"):  # a device that never ends
        config.load("/dev/zero")


def test_yaml_errors_are_one_line_with_line_and_column(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("name: t\nmodel: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        config.load(bad)
    assert str(info.value).startswith(f"{bad}:3:1: not valid YAML: ") and "\n" not in str(
        info.value
    )


@pytest.mark.parametrize(
    "step, message",
    [
        ({"prune": [1, 2]}, "candidates[0].recipe[0].prune: expected a mapping of settings"),
        ({"finetune": 5}, "candidates[0].recipe[0].finetune: expected a mapping of settings"),
        ({"prune": "abc"}, "candidates[0].recipe[0].prune: expected a mapping of settings"),
        ({"prune": {"kind": ["a", "b"]}}, "candidates[0].recipe[0].prune.kind: expected the name"),
        (
            {"prune": {}, "finetune": {}},
            "candidates[0].recipe[0]: a step is a mapping with one key",
        ),
    ],
)
def test_steps_that_are_not_mappings_name_their_yaml_path(step, message):
    for grid in ({}, {"prune.sparsity": [0.5]}):  # the grid is set in the steps: after the check
        with pytest.raises(ConfigError) as info:
            config.parse(minimal(candidates=[{"recipe": [step], "grid": grid}]))
        assert message in str(info.value), str(info.value)


def test_the_api_checks_a_steps_shape_too():
    from edgeslim.recipes import expand

    with pytest.raises(ConfigError, match=r"recipes\[0\]\[1\]\.finetune: expected a mapping.*list"):
        expand([{"prune": {"kind": "unstructured"}}, {"finetune": [3]}], "recipes[0]")


@pytest.mark.parametrize(
    "raw, message",
    [
        (minimal(name="adv\n"), "name: Value error, 'adv\\n' is not a valid name"),
        (
            minimal(candidates=[{"name": "abc\n", "preset": "fp16"}]),
            "candidates[0].name: Value error, 'abc\\n' is not a valid name",
        ),
        (
            minimal(device={"name": "pi\n", "ssh": "pi@host"}),
            "device.BoardConfig.name: Value error, 'pi\\n' is not a valid name",
        ),
        (
            minimal(device={"name": "pi", "ssh": "pi@host\n"}),
            "device.BoardConfig.ssh: Value error, 'pi@host\\n' is not an SSH destination",
        ),
    ],
)
def test_a_final_newline_makes_a_name_invalid(raw, message):
    with pytest.raises(ConfigError) as info:
        config.parse(raw)
    assert message in str(info.value), str(info.value)


def test_grid_values_name_candidates_so_they_are_scalars_and_few():
    sparse = {"recipe": [{"prune": {"kind": "unstructured"}}]}
    with pytest.raises(ConfigError, match=r"grid.prune.sparsity: each value is a number.*a list"):
        config.parse(minimal(candidates=[{**sparse, "grid": {"prune.sparsity": [[0.5]]}}]))
    values = [round(0.001 * i, 3) for i in range(1, 41)]
    grid = {"prune.sparsity": values, "prune.kind": ["unstructured"] * 30}
    with pytest.raises(ConfigError, match="the grids make 1,200 candidates; at most 1,000"):
        config.parse(minimal(candidates=[{**sparse, "grid": grid}]))


def test_messages_hold_a_cut_value_never_a_whole_one():
    huge = "x" * 100_000
    raw = minimal(
        name=huge,
        measure={"cores": ["a"] * 10_000},
        candidates=[{"recipe": [{"prune": {"kind": "unstructured"}}], "grid": {huge: [1]}}],
    )
    with pytest.raises(ConfigError) as info:
        config.parse(raw)
    message = str(info.value)
    assert len(message) < 2000 and "more" in message and "..." in message, message


def test_a_hostile_devices_file_is_refused_like_an_experiment_file(tmp_path, monkeypatch):
    """The devices file is YAML a user edits by hand: the same bounds hold for it."""
    from edgeslim.boards.registry import boards

    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
    devices = tmp_path / "devices.yaml"
    devices.write_text("\n".join(bomb) + "\n")
    with pytest.raises(ConfigError, match="devices.yaml:.*expands to over.*a devices file"):
        boards(devices)
    devices.write_text("pi: {ssh: pi@host}\n  bad: [\n")
    with pytest.raises(ConfigError, match=r"devices.yaml:\d+:\d+: not valid YAML"):
        boards(devices)


@pytest.mark.parametrize(
    "raw, message",
    [
        (minimal(train={"epoch": 2}), "train.epoch: Extra inputs are not permitted (did you "),
        (minimal(epochs=2), "epochs: Extra inputs are not permitted (did you mean 'train.epochs'"),
        (minimal(measure={"thread": 1}), "(did you mean 'threads'?)"),
        (minimal(budget={"arena_kb": 64}), "unknown metric (did you mean 'tensor_arena_kb'?)"),
        (minimal(budget={"latency_p95": 5}), "unknown metric (did you mean 'latency_p95_ms'?)"),
        (minimal(objectives=["acuracy"]), "unknown ['acuracy'] (did you mean 'accuracy'?)"),
        (minimal(candidates=["int8-statc"]), "unknown preset 'int8-statc' (did you mean 'int8-"),
        (minimal(candidates=[{"recipe": [{"prun": {}}]}]), "'prun' (did you mean 'prune'?)"),
        (
            minimal(candidates=[{"recipe": [{"prune": {"kind": "structure"}}]}]),
            "got 'structure' (did you mean 'structured'?)",
        ),
        (
            minimal(candidates=[{"recipe": [{"finetune": {"epoch": 2}}]}]),
            "recipe[0].finetune.epoch: Extra inputs are not permitted (did you mean 'epochs'?)",
        ),
        (minimal(measure={"runtime": "onnxruntim"}), "(did you mean 'onnxruntime'?)"),
    ],
)
def test_near_misses_are_named(raw, message):
    with pytest.raises(ConfigError) as info:
        config.parse(raw)
    assert message in str(info.value)


MYNET = "import torch\ndef build(spec):\n    return torch.nn.Linear(64, spec.num_classes)\n"


def test_paths_and_modules_are_the_experiment_files_not_the_current_folders(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "mynet.py").write_text(MYNET)
    (proj / "w.pt").write_bytes(b"")
    (proj / "exp.yaml").write_text(
        "name: t\nmodel: mynet:build\nweights: w.pt\ndata: imagefolder:shapes\n"
        "candidates:\n"
        "  - {name: a, recipe: [{distill: {teacher: teacher.pt2,\n"
        "                                    student: {model: mynet.py:build}}}]}\n"
        "  - {name: b, recipe: [{distill: {teacher: base}}]}\n"
    )
    (proj / "teacher.pt2").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    experiment = config.load("proj/exp.yaml")
    assert experiment.folder == proj
    assert experiment.config.model == f"{proj / 'mynet.py'}:build"
    assert experiment.config.weights == str(proj / "w.pt")
    assert experiment.config.data == f"imagefolder:{proj / 'shapes'}"
    first, second = (recipe[0]["distill"] for recipe in experiment.recipes.values())
    assert first["teacher"] == str(proj / "teacher.pt2")
    assert first["student"]["model"] == f"{proj / 'mynet.py'}:build"
    assert second["teacher"] == "base"
    # what the run folder keeps parses again to the same experiment, from anywhere
    monkeypatch.chdir(proj)
    again = config.parse(experiment.to_dict())
    assert again.to_dict() == experiment.to_dict()
    # an installed module's function and a zoo name stay as they are; a missing one is refused
    assert config.parse(minimal(model="torch.nn:Identity")).config.model == "torch.nn:Identity"
    (proj / "exp.yaml").write_text("name: t\nmodel: mynet:buld\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: model: .*did you mean 'build'"):
        config.load(proj / "exp.yaml")
    (proj / "exp.yaml").write_text("name: t\nmodel: small-cnn\nweights: gone.pt\n")
    with pytest.raises(ConfigError, match=f"weights: no such file: {proj / 'gone.pt'}"):
        config.load(proj / "exp.yaml")


def test_a_run_folder_parses_though_its_files_are_gone(tmp_path):
    """The report reads experiment.json again: its paths need not exist there."""
    raw = minimal(model="/gone/mynet.py:build", data="imagefolder:/gone/shapes")
    experiment = config.parse(raw, tmp_path / "experiment.json")
    assert experiment.config.model == "/gone/mynet.py:build"
