"""One's own model and data, end to end, as a user types it (issue 27): a module and an image
folder beside the experiment file, run from another folder; the same seed twice; one's own
distillation student, checked before the baseline trains; near misses named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# The example of docs/tutorials/own-model.md: proj/mynet.py (the same code, before ruff's layout)
# and proj/exp.yaml, verbatim, beside proj/shapes/. tests/test_docs.py runs the page's own blocks.
MYNET = """\
from torch import nn


def build(num_classes, input_shape):  # input_shape: one sample's (channels, height, width)
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * height * width, num_classes),
    )


def small(num_classes, input_shape):  # a smaller student to distill the trained model into
    channels, height, width = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, num_classes))
"""

EXPERIMENT = """\
name: shapes
model: mynet:build             # mynet.py beside this file; or mynet.py:build, models/net.py:build
data: imagefolder:shapes       # shapes/<class>/<image>.png, beside this file
train: {epochs: 2, batch_size: 8, seed: 0}
candidates:
  - name: student              # distilled into a model of one's own
    recipe: [{distill: {epochs: 1, student: {model: mynet:small}}}]
  - int8-dynamic
objectives: [accuracy, storage_kb]
measure: {runs: 60, min_runs: 20, warmup_runs: 5, max_seconds: 0.5, batch_sizes: [1, 16],
          throughput_seconds: 0.05}  # quick figures, for this example only
"""

# a student whose outputs are not the data's classes: refused before the baseline trains
WRONG = """

def wrong(input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[1] * input_shape[2], 3))
"""


def project(root: Path, experiment: str = EXPERIMENT, extra: str = "") -> Path:
    """``root/proj`` with the example's files and an image folder of two classes of tiny PNGs
    (dark and light 8x8 grey squares with noise); returns the experiment file."""
    from PIL import Image

    proj = root / "proj"
    rng = np.random.default_rng(0)
    for label, (low, high) in {"dark": (0, 110), "light": (145, 255)}.items():
        folder = proj / "shapes" / label
        folder.mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(low, high, size=(8, 8), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{i:02d}.png")
    (proj / "mynet.py").write_text(MYNET + extra)
    path = proj / "exp.yaml"
    path.write_text(experiment)
    return path


def edgeslim(*args, cwd: Path, columns: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("PYTHONPATH", None)  # the module is found beside the file, not on a path
    return subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def refused(*args, cwd: Path) -> str:
    """Exit status 2 and one ``error:`` line, before any training; returns that line."""
    out = edgeslim(*args, cwd=cwd)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    assert "training" not in out.stdout and "epoch" not in out.stdout, out.stdout
    return lines[0]


def records(folder: Path) -> dict[str, dict]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return {r["name"]: r for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    project(root)
    out = edgeslim("run", "proj/exp.yaml", cwd=root)  # from the folder above the project
    return root, out


@pytest.mark.slow
def test_own_module_and_data_beside_the_yaml_run_from_another_folder(shapes_run):
    root, out = shapes_run
    assert out.returncode == 0, out.stderr[-3000:]
    assert "baseline: training" in out.stdout
    assert "WARNING" not in out.stderr, out.stderr
    folder = root / "runs" / "shapes"  # the run folder is the current folder's
    found = records(folder)
    assert {found[n]["status"] for n in ("baseline", "student", "int8-dynamic")} == {"ok"}
    proj = root / "proj"
    written = json.loads((folder / "experiment.json").read_text())
    assert written["model"] == f"{proj / 'mynet.py'}:build"  # holds from any folder
    assert written["data"] == f"imagefolder:{proj / 'shapes'}"
    (distill,) = [step["distill"] for step in found["student"]["recipe"] if "distill" in step]
    student = distill["student"]
    assert student["model"] == f"{proj / 'mynet.py'}:small"


@pytest.mark.slow
def test_the_same_seed_twice_gives_the_same_model_numbers_and_pick(shapes_run):
    root, first = shapes_run
    second = edgeslim("run", "proj/exp.yaml", "--runs", "again", cwd=root)
    assert second.returncode == 0, second.stderr[-3000:]
    a, b = records(root / "runs" / "shapes"), records(root / "again" / "shapes")
    assert set(a) == set(b) == {"baseline", "student", "int8-dynamic"}
    for name in a:
        for key in ("accuracy", "agreement", "storage_kb", "params", "spec_hash", "recipe"):
            assert a[name][key] == b[name][key], (name, key)
    (weights_a,) = (root / "runs" / "shapes").glob("baseline-*.pt")
    (weights_b,) = (root / "again" / "shapes").glob("baseline-*.pt")
    assert weights_a.name == weights_b.name  # the same baseline key
    state_a, state_b = torch.load(weights_a), torch.load(weights_b)
    for key, tensor in state_a.items():
        assert torch.equal(tensor, state_b[key]), key
    said = (first.stdout + second.stdout).splitlines()
    picks = [line.split()[1] for line in said if line.startswith("recommended:")]
    assert len(picks) == 2 and picks[0] == picks[1], picks  # flags of noisy timing aside


STUDENTS = {
    "a misspelt function": ("mynet:smal", "did you mean 'small'?"),
    "a model of other classes": ("mynet:wrong", "student outputs 3"),
    "a zoo-only setting": ("{model: mynet:small, width: 0.5}", "width and depth scale a zoo"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(STUDENTS))
def test_ones_own_student_is_refused_before_the_baseline_trains(case, tmp_path):
    student, words = STUDENTS[case]
    if not student.startswith("{"):
        student = f"{{model: {student}}}"
    experiment = EXPERIMENT.replace("{model: mynet:small}", student)
    project(tmp_path, experiment, extra=WRONG)
    line = refused("run", "proj/exp.yaml", cwd=tmp_path)
    assert words in line, line
    assert not (tmp_path / "runs").exists()  # no run folder, no .lock left behind


@pytest.mark.slow
def test_paths_are_the_yamls_and_errors_say_where_they_looked(tmp_path):
    path = project(tmp_path, EXPERIMENT.replace("imagefolder:shapes", "imagefolder:shapez"))
    line = refused("run", "proj/exp.yaml", cwd=tmp_path)
    assert f"{tmp_path / 'proj' / 'shapez'}: image folder not found" in line, line
    assert not (tmp_path / "runs").exists()  # failed before any work: no lock left
    path.write_text(EXPERIMENT.replace("model: mynet:build", "model: mynett:build"))
    line = refused("run", "proj/exp.yaml", cwd=tmp_path)
    for place in (
        f"{tmp_path / 'proj' / 'mynett.py'} (beside the experiment file)",
        f"{tmp_path / 'mynett.py'} (in the current folder)",
        "an installed module 'mynett'",
    ):
        assert place in line, line
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_near_misses_are_named(tmp_path):
    path = project(tmp_path, EXPERIMENT.replace("epochs: 2", "epoch: 2"))
    line = refused("run", path, cwd=tmp_path)
    assert "train.epoch: Extra inputs are not permitted (did you mean 'epochs'?)" in line, line
    path.write_text(EXPERIMENT + "budget: {arena_kb: 64}\n")
    line = refused("run", path, cwd=tmp_path)
    assert "budget.arena_kb: unknown metric (did you mean 'tensor_arena_kb'?)" in line, line


def test_devices_prints_every_metric_name_whole_at_80_columns(tmp_path):
    from edgeslim.devices import DEVICES

    out = edgeslim("devices", cwd=tmp_path, columns=80)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout and max(map(len, out.stdout.splitlines())) <= 80
    words = set(out.stdout.split())
    for profile in DEVICES.values():
        for name in [*profile.budget, *profile.measure]:
            assert name in words or f"{name}:" in words, (name, out.stdout)
