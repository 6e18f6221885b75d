"""``edgeslim devices check``: what a board has, asked over SSH before any work is sent there."""

from __future__ import annotations

import json
from typing import Any

from edgeslim.boards.board import Board
from edgeslim.boards.ssh import run
from edgeslim.errors import BoardError
from edgeslim.runtimes import runtime

# runs on the board with its Python's standard library; argv: the packages to look up, workdir
PROBE = r"""
import glob, importlib.metadata as md, json, os, platform, shutil, socket, sys, tempfile
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
def meminfo(key):
    for line in read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
def clock_mhz():
    khz = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq").strip()
    if khz:
        return round(int(khz) / 1000)
    mhz = [l.split(":")[1] for l in read("/proc/cpuinfo").splitlines() if l.startswith("cpu MHz")]
    return round(float(mhz[0])) if mhz else None
def cpu():
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith(("model name", "Model", "Hardware")):
            return line.split(":", 1)[1].strip()
    return platform.machine()
def version(module):
    import importlib.util
    if importlib.util.find_spec(module) is None:
        return None
    for name in (module, module.replace("_", "-")):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            pass
    return "installed"
workdir = sys.argv[2] or tempfile.gettempdir()
os.makedirs(workdir, exist_ok=True)
print(json.dumps({
    "host": socket.gethostname(),
    "uname": " ".join(part for part in platform.uname() if part),
    "python": platform.python_version(),
    "python_path": sys.executable,
    "cpu": cpu(),
    "cores": os.cpu_count(),
    "memory_available_mb": meminfo("MemAvailable"),
    "memory_total_mb": meminfo("MemTotal"),
    "clock_max_mhz": clock_mhz(),
    "workdir": workdir,
    "disk_free_mb": round(shutil.disk_usage(workdir).free / 2**20),
    "leftover_folders": len(glob.glob(os.path.join(workdir, "edgeslim-run-*"))),
    "packages": {name: version(name) for name in ["numpy", *sys.argv[1].split(",")] if name},
}))
"""


def check(board: Board, target: str | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
    """Reach one board of the pool (the first by default) and report what it has: Python,
    numpy and each runtime's version, cores, free memory and disk, the clock."""
    config = board.config
    target = target or config.ssh[0]
    packages = sorted({runtime(name).package for name in config.runtimes})
    out = run(
        target,
        [config.python, "-c", PROBE, ",".join(packages), config.workdir or ""],
        board.options,
        timeout_s,
    )
    try:
        facts = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BoardError(f"{target}: unexpected answer to the probe: {out[-300:]!r}") from None
    facts["ssh"] = target
    facts["missing"] = [name for name, v in facts["packages"].items() if v is None]
    return facts


def check_ready(board: Board) -> list[dict[str, Any]]:
    """Every board of the pool reachable, with numpy and the board's runtimes: a BoardError
    now, before an experiment does any work, not a failed record per candidate later."""
    reports = []
    for target in board.config.ssh:
        facts = check(board, target)
        if facts["missing"]:
            raise BoardError(
                f"board {board.name} ({target}): {', '.join(facts['missing'])} not installed for "
                f"{facts['python_path']}; install with `{facts['python_path']} -m pip install "
                f"{' '.join(facts['missing'])}`"
            )
        reports.append(facts)
    return reports
