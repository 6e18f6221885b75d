from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import edgeslim as es
from edgeslim.errors import ModelLoadError, UntrustedFileError
from edgeslim.models.loading import locate


def tiny(spec=None):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))


def test_factory_torchscript_export_and_onnx_paths(digits, tmp_path, monkeypatch):
    module = tmp_path / "user_models.py"
    module.write_text(
        "import torch\n"
        "def net(spec):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(),"
        " torch.nn.Linear(64, spec.num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = es.models.load_model("user_models:net", digits.spec)
    assert isinstance(model, torch.nn.Module)
    x = torch.from_numpy(digits.test.x[:4])

    torch.jit.save(torch.jit.script(model), tmp_path / "scripted.pt")
    scripted = es.models.load_model(str(tmp_path / "scripted.pt"))
    torch.testing.assert_close(scripted(x), model(x))

    torch.export.save(torch.export.export(model, (x,)), tmp_path / "exported.pt2")
    exported = es.models.load_model(str(tmp_path / "exported.pt2"))
    torch.testing.assert_close(exported(x), model(x))

    onnx_file = es.export(es.Candidate("m", model=model), digits, tmp_path).artifact
    assert es.models.load_model(str(onnx_file)) == onnx_file  # ONNX stays a file
    sys.modules.pop("user_models", None)


def test_state_dict_loads_only_with_an_architecture(digits, tmp_path):
    model = es.models.build("small-cnn", digits.spec)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ModelLoadError, match="no architecture"):
        es.models.load_model(str(tmp_path / "weights.pt"), digits.spec)
    loaded = es.models.load_model("small-cnn", digits.spec, weights=tmp_path / "weights.pt")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ModelLoadError, match="do not fit the architecture") as refused:
        es.models.load_model("lenet5", digits.spec, weights=tmp_path / "weights.pt")
    # the message names keys and shapes, not just torch's "Error(s) in loading state_dict"
    assert "missing: " in str(refused.value) and "unexpected: " in str(refused.value)
    wider = es.models.build("small-cnn", digits.spec, width=2.0)
    torch.save(wider.state_dict(), tmp_path / "wider.pt")
    with pytest.raises(ModelLoadError, match=r"size mismatch: \S+ \(\d+, 1, 3, 3\) in the file"):
        es.models.load_model("small-cnn", digits.spec, weights=tmp_path / "wider.pt")


class CreatesFile:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_and_never_runs(digits, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weights": CreatesFile(marker)}, tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(CreatesFile(marker), f)
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(UntrustedFileError, match="refused.*execute code.*state_dict"):
            es.models.load_model("small-cnn", digits.spec, weights=tmp_path / name)
        with pytest.raises(UntrustedFileError):
            es.models.load_model(str(tmp_path / name), digits.spec)
    assert not marker.exists()


def rewritten(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the zip ``source`` with the members whose names end in a key replaced."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            ending = next((k for k in replace if name.endswith(k)), None)
            new.writestr(name, old.read(name) if ending is None else replace[ending])
    return target


def crafted_archives(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """torch.export archives that run ``touch marker`` when torch.export.load reads them: a
    weight marked ``use_pickle`` whose payload is a pickle, and pickled sample inputs."""
    x = torch.zeros(1, 1, 8, 8)
    legit = tmp_path / "legit.pt2"
    torch.export.save(torch.export.export(tiny(), (x,)), legit)
    with zipfile.ZipFile(legit) as archive:
        config_name = next(n for n in archive.namelist() if n.endswith("weights_config.json"))
        config = json.loads(archive.read(config_name))
    entry = config["config"]["1.weight"]
    entry["use_pickle"] = True
    payload = pickle.dumps(CreatesFile(marker))
    return {
        "pickled weight": rewritten(
            legit,
            tmp_path / "weight.pt2",
            {config_name.split("/")[-1]: json.dumps(config).encode(), entry["path_name"]: payload},
        ),
        "pickled sample inputs": rewritten(
            legit, tmp_path / "inputs.pt2", {"sample_inputs/model.pt": payload}
        ),
    }


@pytest.mark.slow
def test_crafted_torch_export_archives_are_refused_and_never_run(digits, tmp_path):
    marker = tmp_path / "pwned"
    archives = crafted_archives(tmp_path, marker)
    for kind, path in archives.items():
        with pytest.raises(UntrustedFileError, match="refused.*pickle"):
            es.models.load_model(str(path), digits.spec)
        assert not marker.exists(), kind
        cli = subprocess.run(
            [sys.executable, "-m", "edgeslim.cli", "measure", str(path), "--runs", "10"],
            capture_output=True,
            text=True,
        )
        assert cli.returncode == 2, cli.stderr
        assert cli.stderr.startswith("error:") and "Traceback" not in cli.stderr
        assert not marker.exists(), kind
    # the files are truly hostile: torch's own loader runs each payload
    for kind, path in archives.items():
        subprocess.run(
            [sys.executable, "-c", f"import torch; torch.export.load({str(path)!r})"],
            capture_output=True,
        )
        assert marker.exists(), f"{kind}: the crafted archive did not run under torch"
        marker.unlink()


def test_an_archive_with_compiled_code_is_refused(digits, tmp_path):
    legit = tmp_path / "legit.pt2"
    torch.export.save(torch.export.export(tiny(), (torch.zeros(1, 1, 8, 8),)), legit)
    with zipfile.ZipFile(legit, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(UntrustedFileError, match="compiled code"):
        es.models.load_model(str(legit), digits.spec)


def test_an_exported_program_of_fixed_batch_measures_and_refuses_training(digits, tmp_path):
    model = es.models.build("small-cnn", digits.spec).eval()
    path = tmp_path / "batch1.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(digits.test.x[:1]),)), path)
    loaded = es.models.load_model(str(path), digits.spec)
    x = torch.from_numpy(digits.test.x[:5])  # not the exported batch size: run in slices
    torch.testing.assert_close(loaded(x), model(x))
    record = es.measure(loaded, digits, es.MeasureSettings(runs=20, min_runs=10))
    expected = float(
        (model(torch.from_numpy(digits.test.x)).argmax(1).numpy() == digits.test.y).mean()
    )
    assert record["accuracy"] == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ModelLoadError, match="frozen graph.*package.module:function"):
        es.train(loaded, digits, epochs=1)


def test_missing_and_unknown_references(digits):
    with pytest.raises(ModelLoadError, match="missing.pt: model file not found|no such file"):
        es.models.load_model("missing.pt", digits.spec)
    with pytest.raises(ModelLoadError, match="cannot import"):
        es.models.load_model("no_such_package.models:net", digits.spec)


NET = (
    "import torch\n"
    "def build(num_classes, input_shape):\n"
    "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear({inputs}, num_classes))\n"
)


def write_net(folder: Path, name: str = "mynet.py", inputs: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(NET.format(inputs=inputs))
    return folder / name


def test_a_function_builds_the_same_model_from_the_same_seed(digits, tmp_path):
    write_net(tmp_path)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = es.models.load_model("mynet:build", digits.spec, base_dir=tmp_path, seed=0)
    again = es.models.load_model("mynet:build", digits.spec, base_dir=tmp_path, seed=0)
    other = es.models.load_model("mynet:build", digits.spec, base_dir=tmp_path, seed=1)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[1].weight, other[1].weight)
    # the caller's random state is left as it was
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert (np.random.get_state()[1] == numpy_state).all()


def test_a_module_is_found_beside_the_experiment_then_in_the_current_folder(
    digits, tmp_path, monkeypatch
):
    write_net(tmp_path / "proj", inputs=64)
    write_net(tmp_path, inputs=32)  # another mynet.py, in the current folder
    monkeypatch.chdir(tmp_path)
    beside = es.models.load_model("mynet:build", digits.spec, base_dir=tmp_path / "proj")
    assert beside[1].in_features == 64
    here = es.models.load_model("mynet:build", digits.spec, base_dir=tmp_path / "elsewhere")
    assert here[1].in_features == 32
    # a file, relative to the experiment's folder, with or without .py
    write_net(tmp_path / "proj" / "models", "net.py", inputs=64)
    for ref in ("mynet.py:build", "models/net.py:build", "models/net:build"):
        model = es.models.load_model(ref, digits.spec, base_dir=tmp_path / "proj")
        assert model[1].in_features == 64, ref
    assert locate("mynet:build", tmp_path / "proj") == f"{tmp_path / 'proj' / 'mynet.py'}:build"
    assert locate("small-cnn", tmp_path) == "small-cnn"
    assert locate("torch.nn:Linear", tmp_path) == "torch.nn:Linear"  # an installed module's


def test_a_package_beside_the_experiment_keeps_its_relative_imports(digits, tmp_path):
    package = tmp_path / "proj" / "zoo_of_mine"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text("import torch\nHEAD = torch.nn.Linear\n")
    (package / "nets.py").write_text(
        "import torch\nfrom .layers import HEAD\n"
        "def build(spec):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), HEAD(64, spec.num_classes))\n"
    )
    model = es.models.load_model("zoo_of_mine.nets:build", digits.spec, base_dir=package.parent)
    assert model[1].out_features == 10
    for name in [m for m in sys.modules if m.startswith("zoo_of_mine")]:
        del sys.modules[name]


def test_a_missing_module_says_where_it_looked(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        es.models.load_model("mynet:build", digits.spec, base_dir=tmp_path / "proj")
    message = str(info.value)
    assert f"{tmp_path / 'proj' / 'mynet.py'} (beside the experiment file)" in message
    assert f"{tmp_path / 'mynet.py'} (in the current folder)" in message
    assert "an installed module 'mynet'" in message
    with pytest.raises(ModelLoadError, match=f"no file {tmp_path / 'proj' / 'net.py'}"):
        es.models.load_model("net.py:build", digits.spec, base_dir=tmp_path / "proj")
    with pytest.raises(ModelLoadError, match="did you mean 'small-cnn'"):
        es.models.load_model("smal-cnn", digits.spec)


@pytest.mark.parametrize(
    "source, ref, words",
    [
        (NET.format(inputs=64), "mynet:bulid", "has no function 'bulid' (did you mean 'build'?)"),
        ("import no_such_dependency\n", "mynet:build", "No module named 'no_such_dependency'"),
        ("def build():\n    raise ValueError('bad width')\n", "mynet:build", "bad width"),
        ("def build(size):\n    pass\n", "mynet:build", "parameter 'size' has no default"),
        ("def build():\n    return 3\n", "mynet:build", "returned int, expected a torch.nn"),
    ],
)
def test_a_function_that_fails_says_what_and_where(digits, tmp_path, source, ref, words):
    (tmp_path / "mynet.py").write_text(source)
    with pytest.raises(ModelLoadError, match=re.escape(words)) as info:
        es.models.load_model(ref, digits.spec, base_dir=tmp_path)
    if "bad width" in words:
        assert "(mynet.py, line 2)" in str(info.value)
