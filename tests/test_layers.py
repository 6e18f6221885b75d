"""The layers of DESIGN.md hold: the import-linter contract in pyproject.toml passes, breaks on a
deliberate cycle, every module imports on its own, and the measuring worker stays free of the
packages a board does not have."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgeslim

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# what a board's Python has: numpy and the runtime (tests/boards checks the device venv itself)
NOT_ON_A_BOARD = ("torch", "onnx", "PIL", "sklearn", "pycocotools", "yaml", "pydantic", "optuna")


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_the_layers_contract_is_kept():
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # a lower layer importing a higher one: both contracts break (it is a cycle too)
        (
            "budget.py",
            "from edgeslim.config import Experiment",
            "edgeslim.budget -> edgeslim.config",
        ),
        # a cycle inside one package, where the layers contract does not look
        (
            "measure/coding.py",
            "from edgeslim.measure import storage",
            "No cycles are allowed in edgeslim.measure",
        ),
    ],
)
def test_a_deliberate_cycle_breaks_the_contract(tmp_path, module, line, broken):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "edgeslim", src / "edgeslim")
    target = src / "edgeslim" / module
    target.write_text(f"{line}  # noqa\n" + target.read_text())
    done = lint_imports(src)
    assert done.returncode == 1, done.stdout
    assert "BROKEN" in done.stdout and broken in done.stdout


def all_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(edgeslim.__path__, "edgeslim.")
        if info.name != "edgeslim.__main__"
    )


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    """In one fresh interpreter per group would be slower; import order cannot hide a cycle
    here anyway (the contract above forbids them), so one process imports each in turn."""
    names = all_modules()
    assert len(names) > 90  # the walk found the package, not an empty folder
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        # a runtime's optional extra may be absent outside CI\n"
        "        if not (exc.name or '').split('.')[0] in "
        "('ai_edge_litert', 'tflite_micro', 'executorch', 'openvino', 'litert_torch', "
        "'ai_edge_quantizer', 'torchao'):\n"
        "            raise\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_worker_imports_nothing_a_board_lacks():
    """What ``python -m edgeslim.measure.worker`` imports before it measures (its own module,
    then the families and the runtime registry it loads in ``main``)."""
    code = (
        "import json, sys\n"
        "import edgeslim.measure.worker\n"
        "from edgeslim.data.bundle import DataSpec\n"
        "from edgeslim.figures import without_nonfinite\n"
        "from edgeslim.measure import accuracy, detection, latency, sparsity\n"
        "from edgeslim.measure.registry import CHECK_ORDER, families\n"
        "from edgeslim.measure.runtime import RuntimeContext\n"
        "from edgeslim.runtimes import runtime\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "edgeslim" in loaded and "numpy" in loaded
    assert loaded.isdisjoint(NOT_ON_A_BOARD), sorted(loaded & set(NOT_ON_A_BOARD))


def test_the_package_root_stays_cheap():
    """``import edgeslim`` loads no submodule: the worker and ``edgeslim --help`` rely on it."""
    code = "import json, sys, edgeslim; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m for m in json.loads(done.stdout) if m.startswith("edgeslim.")}
    assert loaded <= {"edgeslim.version"}, loaded
    assert importlib.import_module("edgeslim").__version__ == edgeslim.__version__


def test_every_top_level_module_has_a_layer():
    """import-linter leaves a module that no layer names unchecked: each must be placed."""
    from importlinter.api import read_configuration

    contracts = read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    placed = [name.strip() for layer in layers["layers"] for name in layer.split("|")]
    top = {info.name for info in pkgutil.iter_modules(edgeslim.__path__)} - {"__main__"}
    assert sorted(placed) == sorted(top)


def test_measuring_a_file_and_choosing_load_no_torch():
    """torch takes over a second to import: the selection, the budgets and the measurement of
    an ONNX file do without it (only a PyTorch model to export needs it)."""
    code = (
        "import json, sys\n"
        "import edgeslim.select, edgeslim.budget, edgeslim.measure.api\n"
        "print(json.dumps('torch' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) is False
