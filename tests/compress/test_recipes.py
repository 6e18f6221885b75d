import pytest
import torch

import edgeslim as es
from edgeslim import recipes
from edgeslim.errors import ConfigError

BAD = {
    "sparsity above range": (
        {"prune": {"kind": "unstructured", "sparsity": 1.0}},
        r"recipes\[1\]\[0\]\.prune\.sparsity: .*less than 1",
    ),
    "sparsity below range": (
        {"prune": {"kind": "unstructured", "sparsity": -0.1}},
        "greater than or equal to 0",
    ),
    "unknown layer": (
        {"prune": {"kind": "unstructured", "sparsity": 0.5, "skip": ["conv9"]}},
        "no conv/linear layer named 'conv9'",
    ),
    "removes every channel": (
        {"prune": {"kind": "structured", "ratios": {"0.0": 0.97}}},
        "would remove every one of its 16 output channels",
    ),
    "ratio of one": ({"prune": {"kind": "structured", "ratio": 1.0}}, "less than 1"),
    "N above M": ({"prune": {"kind": "nm", "n": 4, "m": 2}}, "N:M needs N < M"),
    "unknown kind": ({"prune": {"kind": "random", "ratio": 0.5}}, "expected one of"),
    "unknown step": ({"shrink": {}}, "unknown step 'shrink'"),
    "typo in a setting": ({"finetune": {"epoch": 3}}, r"finetune\.epoch: Extra inputs"),
    "two targets": (
        {"prune": {"kind": "structured", "ratio": 0.5, "macs_reduction": 2}},
        "exactly one of ratio or macs_reduction",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipes_fail_before_any_work(case, trained_small_cnn, digits, monkeypatch):
    step, message = BAD[case]
    calls = []
    monkeypatch.setattr(recipes, "run_recipe", lambda *a, **k: calls.append(a))
    good = [{"finetune": {"epochs": 1}}]
    with pytest.raises(ConfigError, match=message):
        es.compress(trained_small_cnn, digits, [good, [step]], show_progress=False)
    assert calls == []  # the valid first recipe did not start either


def test_candidates_record_their_recipe_and_leave_the_base_alone(trained_small_cnn, digits):
    before = {k: v.clone() for k, v in trained_small_cnn.model.state_dict().items()}
    steps_before = tuple(trained_small_cnn.recipe)
    recipe = [
        {"prune": {"kind": "structured", "ratio": 0.25, "importance": "l2"}},
        {"finetune": {"epochs": 1}},
    ]
    (candidate,) = es.compress(trained_small_cnn, digits, [recipe], show_progress=False)
    assert candidate.name == "prune-structured-0.25+finetune-1"
    assert [next(iter(s)) for s in candidate.recipe] == ["train", "prune", "finetune", "export"]
    assert candidate.step("prune")["importance"] == "l2"
    for key, value in trained_small_cnn.model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)  # not fine-tuned in place
    assert trained_small_cnn.recipe == steps_before  # gained no step


def test_same_recipes_get_distinct_names_and_files(trained_small_cnn, digits, tmp_path):
    recipe = [{"finetune": {"epochs": 1}}]
    a, b = es.compress(
        trained_small_cnn, digits, [recipe, recipe], out_dir=tmp_path, show_progress=False
    )
    assert (a.name, b.name) == ("finetune-1", "finetune-1-2")
    assert a.artifact != b.artifact and a.artifact.exists() and b.artifact.exists()
    with pytest.raises(ConfigError, match="names must be unique"):
        es.compress(
            trained_small_cnn, digits, [recipe, recipe], names=["x", "x"], show_progress=False
        )
