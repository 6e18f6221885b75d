from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

import edgeslim as es
from edgeslim.errors import ModelLoadError, UntrustedFileError


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
    with pytest.raises(ModelLoadError, match="do not fit the architecture"):
        es.models.load_model("lenet5", digits.spec, weights=tmp_path / "weights.pt")


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


def test_missing_and_unknown_references(digits):
    with pytest.raises(ModelLoadError, match="missing.pt: model file not found|no such file"):
        es.models.load_model("missing.pt", digits.spec)
    with pytest.raises(ModelLoadError, match="cannot import"):
        es.models.load_model("no_such_package.models:net", digits.spec)
