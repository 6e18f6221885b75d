"""The user's boards (a devices file) and their measured calibrations.

```yaml
# ~/.config/edgeslim/devices.yaml (or the file $EDGESLIM_DEVICES names)
pi4:
  ssh: pi@raspberrypi.local          # a list of destinations: a pool of identical boards
  python: /home/pi/venv/bin/python   # numpy and the runtime, nothing else
  runtimes: [onnxruntime]
  profile: cortex-a53                # its budget; latency measured on the board itself
```

Calibrations live beside it (``calibration.json``), written by ``edgeslim devices calibrate``.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeslim.boards.board import Board, BoardConfig
from edgeslim.devices import DEVICES
from edgeslim.errors import ConfigError, describe_validation
from edgeslim.files import write_atomic
from edgeslim.yamlfiles import load_file


def devices_file() -> Path:
    if os.environ.get("EDGESLIM_DEVICES"):
        return Path(os.environ["EDGESLIM_DEVICES"])
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "edgeslim" / "devices.yaml"


def board_config(raw: Any, where: str) -> BoardConfig:
    try:
        return BoardConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc, where)) from exc


def boards(path: Path | None = None) -> dict[str, BoardConfig]:
    """Every board of the devices file (none when there is no file)."""
    path = path or devices_file()
    if not path.exists():
        return {}
    raw = load_file(path, "devices file") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{path}: expected board names, each with its settings (ssh: ...)")
    return {
        name: board_config({"name": name, **settings}, f"{path}: {name}")
        for name, settings in raw.items()
    }


def find_board(name: str, where: str = "device") -> BoardConfig:
    known = boards()
    if name not in known:
        raise ConfigError(
            f"{where}: unknown device profile {name!r}, and no board of that name in "
            f"{devices_file()} (profiles: {sorted(DEVICES)}; boards: {sorted(known) or 'none'})"
        )
    return known[name]


def board_named(name: str) -> Board:
    return Board(find_board(name))


def calibration_file() -> Path:
    return devices_file().with_name("calibration.json")


def calibrations() -> dict[str, dict[str, Any]]:
    path = calibration_file()
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable calibration file ({exc})") from exc


def calibration(name: str) -> dict[str, Any] | None:
    """The last calibration of board ``name``: its slowdown, date and models."""
    return calibrations().get(name)


def save_calibration(name: str, entry: dict[str, Any]) -> Path:
    path = calibration_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = calibrations()
    stored[name] = {
        **entry,
        "calibrated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(path, json.dumps(stored, indent=2))
    return path
